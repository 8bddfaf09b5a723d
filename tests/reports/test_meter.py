"""Meter glucose summary: fixed series, target boundaries, events, meal context, zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reports.summaries import Insufficient, Period, Sufficient, Targets, summarise_meter
from tests.reports.builders import SHANGHAI, T0, meter

WEEK = Period.local_days(date(2026, 3, 1), date(2026, 3, 8), SHANGHAI)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hour, minutes=minute)


def _value(figure):  # type: ignore[no-untyped-def]
    assert isinstance(figure, Sufficient), figure
    return figure.value


def test_fixed_series() -> None:
    values = [5.0, 6.0, 7.0, 8.0, 9.0, 5.0, 6.0, 7.0, 8.0, 9.0]  # mean 7, sample SD sqrt(20/9)
    readings = [meter(v, _at(i % 7, 8 + i)) for i, v in enumerate(values)]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    assert summary.readings == 10
    assert summary.readings_per_day == pytest.approx(10 / 7)
    assert _value(summary.mean_mmol_l) == pytest.approx(7.0)
    assert _value(summary.sd_mmol_l) == pytest.approx((20 / 9) ** 0.5)
    assert (summary.min_mmol_l, summary.max_mmol_l) == (5.0, 9.0)
    assert _value(summary.in_target_percent) == 100.0
    assert summary.events_below_3_9 == summary.events_below_3_0 == 0


def test_target_range_is_closed_at_both_ends_and_personal() -> None:
    values = [3.8, 3.9, 10.0, 10.1, 4.4, 7.0, 7.1, 4.3, 6.0, 6.0]
    readings = [meter(v, _at(i % 7, 7 + i)) for i, v in enumerate(values)]
    default = summarise_meter(readings, WEEK, Targets())
    assert default is not None
    assert _value(default.in_target_percent) == pytest.approx(80.0)  # not 3.8, not 10.1
    personal = summarise_meter(
        readings, WEEK, Targets(glucose_low_mmol_l=4.4, glucose_high_mmol_l=7.0)
    )
    assert personal is not None
    assert _value(personal.in_target_percent) == pytest.approx(40.0)  # 4.4, 7.0, 6.0, 6.0


def test_mg_dl_meter_is_judged_against_the_mg_dl_consensus_figures() -> None:
    values = [69.0, 70.0, 180.0, 181.0, 100, 100, 100, 100, 100, 100]
    readings = [meter(v, _at(i % 7, 7 + i), unit="mg/dL") for i, v in enumerate(values)]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    assert _value(summary.in_target_percent) == pytest.approx(80.0)  # 70 and 180 in target
    assert summary.events_below_3_9 == 1  # 69 < 70
    assert summary.events_below_3_0 == 0


def test_hypoglycaemia_events() -> None:
    readings = [
        # one event < 3.9 that also went < 3.0: 15-min re-tests, then recovery
        meter(3.5, _at(0, 8, 0)),
        meter(2.8, _at(0, 8, 15)),
        meter(3.6, _at(0, 8, 30)),
        meter(4.2, _at(0, 8, 45)),
        # low again after recovery: a new event (< 3.9 only)
        meter(3.7, _at(0, 9, 0)),
        # two lows 61 min apart with nothing between: two events
        meter(3.0, _at(1, 14, 0)),  # 3.0 is not < 3.0
        meter(3.8, _at(1, 15, 1)),
        # two lows exactly 60 min apart: one event
        meter(2.9, _at(2, 14, 0)),
        meter(2.9, _at(2, 15, 0)),
        meter(3.9, _at(3, 7, 0)),  # 3.9 is not low
    ]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    assert summary.events_below_3_9 == 5
    assert summary.events_below_3_0 == 2


def test_mg_dl_hypo_levels() -> None:
    readings = [meter(v, _at(i, 8), unit="mg/dL") for i, v in enumerate([53.0, 54.0, 70.0])]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    assert (summary.events_below_3_9, summary.events_below_3_0) == (2, 1)


def test_by_meal_context() -> None:
    readings = [meter(5.0, _at(i % 7, 7), meal="fasting") for i in range(10)]
    readings += [meter(11.0, _at(i % 7, 13), meal="postprandial") for i in range(3)]
    readings += [meter(6.0, _at(0, 22))]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    by_meal = {m.context: m for m in summary.by_meal}
    assert sorted(by_meal) == ["fasting", "postprandial", "unspecified"]
    assert _value(by_meal["fasting"].mean_mmol_l) == 5.0
    assert _value(by_meal["fasting"].in_target_percent) == 100.0
    assert by_meal["postprandial"].readings == 3
    assert isinstance(by_meal["postprandial"].mean_mmol_l, Insufficient)


def test_fewer_than_10_readings_withholds_mean_sd_and_in_target() -> None:
    readings = [meter(6.0, _at(i, 8)) for i in range(7)] + [meter(6.0, _at(0, 20))] * 2
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    expected = Insufficient("fewer than 10 meter readings", 9, 10)
    assert summary.mean_mmol_l == summary.sd_mmol_l == summary.in_target_percent == expected
    assert summary.readings == 9
    assert summary.min_mmol_l == 6.0


def test_control_solution_tests_are_not_the_patients() -> None:
    readings = [meter(2.0, _at(0, 8), flags=("control_solution",)), meter(6.0, _at(0, 9))]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    assert summary.readings == 1
    assert summary.events_below_3_9 == 0


def test_days_are_the_patients_local_days() -> None:
    # 2026-02-28 16:30 UTC is 2026-03-01 00:30 in Shanghai: inside a Shanghai period
    # starting on 1 March, outside the UTC one; 2026-03-07 16:30 UTC is 8 March in Shanghai.
    readings = [
        meter(6.0, datetime(2026, 2, 28, 16, 30, tzinfo=UTC)),
        meter(6.0, datetime(2026, 3, 7, 16, 30, tzinfo=UTC)),
    ]
    shanghai = summarise_meter(readings, WEEK, Targets())
    utc_week = Period.local_days(date(2026, 3, 1), date(2026, 3, 8), ZoneInfo("UTC"))
    utc = summarise_meter(readings, utc_week, Targets())
    assert shanghai is not None
    assert utc is not None
    assert shanghai.readings == 1
    assert utc.readings == 1
    assert shanghai.min_mmol_l == utc.min_mmol_l == 6.0
    assert WEEK.contains(readings[0].measured_at)
    assert not utc_week.contains(readings[0].measured_at)
    assert utc_week.contains(readings[1].measured_at)
    assert not WEEK.contains(readings[1].measured_at)


def test_no_meter_reading_is_no_section() -> None:
    assert summarise_meter([], WEEK, Targets()) is None


def test_the_period_is_half_open() -> None:
    readings = [
        meter(6.0, WEEK.start),
        meter(2.0, WEEK.end),
        meter(2.5, WEEK.start - timedelta(seconds=1)),
    ]
    summary = summarise_meter(readings, WEEK, Targets())
    assert summary is not None
    assert summary.readings == 1
    assert summary.events_below_3_9 == 0
