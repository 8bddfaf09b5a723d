"""BP home mean, weight changes, SpO₂ and heart rate: hand-computed values and sufficiency."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from reports.summaries import (
    HomeMean,
    Insufficient,
    Period,
    Sufficient,
    Targets,
    summarise_blood_pressure,
    summarise_heart_rate,
    summarise_spo2,
    summarise_weight,
)
from tests.reports.builders import SHANGHAI, T0, bp, heart_rate, spo2, weight

TWO_WEEKS = Period.local_days(date(2026, 3, 1), date(2026, 3, 15), SHANGHAI)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hour, minutes=minute)


def _home_week(days: range) -> list:
    """Morning 140/90 at 07:00 and evening 130/80 at 21:00 on each local day."""
    out = []
    for day in days:
        out += [bp(140, 90, _at(day, 7)), bp(130, 80, _at(day, 21))]
    return out


def test_home_mean_drops_the_first_day_of_the_last_7() -> None:
    # Days 7..13 (8-14 March) are the last 7 local days; day 7 reads 180/110 and is dropped.
    readings = [bp(180, 110, _at(7, 7)), bp(180, 110, _at(7, 21)), *_home_week(range(8, 14))]
    readings += [bp(200, 120, _at(6, 7))]  # 7 March, the day before the window: not used
    summary = summarise_blood_pressure(readings, TWO_WEEKS, Targets())
    assert summary is not None
    assert summary.readings == 15
    assert summary.readings_used == 12
    assert summary.home_mean == Sufficient(HomeMean(135.0, 85.0, 12))
    assert summary.morning_mean == Sufficient(HomeMean(140.0, 90.0, 6))
    assert summary.evening_mean == Sufficient(HomeMean(130.0, 80.0, 6))
    # above target (>= 135 or >= 85): 2 + 1 + 6 mornings of 15
    assert summary.above_target_percent == Sufficient(pytest.approx(100.0 * 9 / 15))


def test_target_is_reached_at_exactly_135_or_85() -> None:
    readings = [bp(135, 70, _at(i, 7)) for i in range(6)] + [
        bp(120, 85, _at(i, 8)) for i in range(6)
    ]
    readings += [bp(134, 84, _at(i, 9)) for i in range(12)]
    summary = summarise_blood_pressure(readings, TWO_WEEKS, Targets())
    assert summary is not None
    assert summary.above_target_percent == Sufficient(50.0)


def test_first_day_dropped_is_the_first_day_with_readings() -> None:
    # Readings only on days 10..13: day 10 dropped, 3 days x 2 = 6 used -> insufficient.
    summary = summarise_blood_pressure(_home_week(range(10, 14)), TWO_WEEKS, Targets())
    assert summary is not None
    assert summary.readings_used == 6
    assert isinstance(summary.home_mean, Insufficient)
    assert (summary.home_mean.have, summary.home_mean.need) == (6, 12)
    assert summary.morning_mean == summary.home_mean


def test_eleven_readings_are_not_enough_twelve_are() -> None:
    readings = _home_week(range(7, 14))  # 14, of which 12 after day 7
    enough = summarise_blood_pressure(readings, TWO_WEEKS, Targets())
    short = summarise_blood_pressure(readings[:-1], TWO_WEEKS, Targets())
    assert enough is not None
    assert short is not None
    assert isinstance(enough.home_mean, Sufficient)
    assert short.home_mean == Insufficient(
        "fewer than 12 home readings in the last 7 days after the first day", 11, 12
    )
    assert short.readings_used == 11
    # evening has 5 of 6 needed once the home mean is sufficient? here it is not computed
    assert isinstance(short.evening_mean, Insufficient)


def test_session_needs_six_readings() -> None:
    readings = [bp(140, 90, _at(7, 7))] + [bp(140, 90, _at(d, 7)) for d in range(8, 14)]
    readings += [bp(130, 80, _at(d, 21)) for d in range(8, 13)]
    readings += [bp(130, 80, _at(13, 13))]  # 13:00 is neither morning nor evening
    summary = summarise_blood_pressure(readings, TWO_WEEKS, Targets())
    assert summary is not None
    assert summary.readings_used == 12
    assert summary.morning_mean == Sufficient(HomeMean(140.0, 90.0, 6))
    assert summary.evening_mean == Insufficient("fewer than 6 evening readings", 5, 6)


def test_weight_changes_use_the_first_weight_of_each_local_day() -> None:
    readings = [weight(70.0 + 0.1 * d, _at(d, 7)) for d in range(14)]
    readings += [weight(90.0, _at(13, 20))]  # evening weight of the last day: not the day's
    summary = summarise_weight(readings, TWO_WEEKS)
    assert summary is not None
    assert summary.days_with_weight == 14
    assert summary.latest_kg == pytest.approx(71.3)
    assert summary.change_3d_kg == Sufficient(pytest.approx(0.3))
    assert summary.change_7d_kg == Sufficient(pytest.approx(0.7))
    assert summary.trend_kg_per_week == Sufficient(pytest.approx(0.7))


def test_weight_change_without_the_earlier_day_is_insufficient() -> None:
    readings = [weight(70.0, _at(d, 7)) for d in (0, 1, 2, 9, 13)]
    summary = summarise_weight(readings, TWO_WEEKS)
    assert summary is not None
    assert summary.change_3d_kg == Insufficient("no weight 3 days before the latest", 0, 1)
    assert summary.change_7d_kg == Insufficient("no weight 7 days before the latest", 0, 1)
    assert summary.trend_kg_per_week == Sufficient(pytest.approx(0.0))
    assert isinstance(summarise_weight(readings[:4], TWO_WEEKS).trend_kg_per_week, Insufficient)  # type: ignore[union-attr]


def test_spo2_below_target_and_copd_target() -> None:
    readings = [spo2(v, _at(0, 8 + i)) for i, v in enumerate([93.0, 94.0, 88.0, 87.0])]
    summary = summarise_spo2(readings, TWO_WEEKS, Targets())
    assert summary is not None
    assert summary.mean_percent == Sufficient(pytest.approx(90.5))
    assert summary.below_target_percent == Sufficient(75.0)  # 93, 88, 87 < 94
    copd = summarise_spo2(readings, TWO_WEEKS, Targets.for_conditions(frozenset({"copd"})))
    assert copd is not None
    assert copd.below_target_percent == Sufficient(25.0)  # only 87 < 88
    assert (summary.min_percent, summary.max_percent) == (87.0, 94.0)


def test_heart_rate_and_its_sufficiency() -> None:
    readings = [heart_rate(v, _at(0, 8 + i)) for i, v in enumerate([60.0, 70.0])]
    summary = summarise_heart_rate(readings, TWO_WEEKS)
    assert summary is not None
    assert summary.mean_per_min == Insufficient("fewer than 3 readings", 2, 3)
    readings.append(heart_rate(110.0, _at(1, 8)))
    summary = summarise_heart_rate(readings, TWO_WEEKS)
    assert summary is not None
    assert summary.mean_per_min == Sufficient(pytest.approx(80.0))
    assert (summary.min_per_min, summary.max_per_min) == (60.0, 110.0)
