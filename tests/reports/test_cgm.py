"""CGM summary: hand-computed values on fixed series, boundaries, sufficiency, zones."""

from __future__ import annotations

import math
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from readings.units import MG_PER_DL_PER_MMOL_PER_L
from reports.summaries import (
    Insufficient,
    Period,
    Sufficient,
    TimeInRanges,
    gmi_percent,
    summarise_cgm,
)
from tests.reports.builders import SHANGHAI, T0, cgm

FOURTEEN_DAYS = Period.local_days(date(2026, 3, 1), date(2026, 3, 15), SHANGHAI)
SLOTS = 14 * 288  # 5-min slots in 14 days


def _series(values: list[float], unit: str = "mmol/L", slots: int = SLOTS) -> list:
    """``values`` cycled over ``slots`` consecutive 5-min readings from T0."""
    return [cgm(values[i % len(values)], T0 + timedelta(minutes=5 * i), unit) for i in range(slots)]


def _value(figure):  # type: ignore[no-untyped-def]
    assert isinstance(figure, Sufficient), figure
    return figure.value


def test_gmi_is_the_published_formula() -> None:
    # 3.31 + 0.02392 x 154 mg/dL = 6.99368 (Bergenstal 2018)
    assert gmi_percent(154 / MG_PER_DL_PER_MMOL_PER_L) == pytest.approx(6.99368, abs=1e-9)
    # 8.0 mmol/L = 144.1248 mg/dL -> 3.31 + 0.02392 x 144.1248 = 6.757465...
    assert gmi_percent(8.0) == pytest.approx(3.31 + 0.02392 * 144.1248, abs=1e-9)


def test_mean_sd_cv_gmi_of_an_alternating_series() -> None:
    summary = summarise_cgm(_series([6.0, 10.0]), FOURTEEN_DAYS)
    assert summary is not None
    assert summary.readings == SLOTS
    assert summary.sample_interval_minutes == pytest.approx(5.0)
    assert summary.active_percent == pytest.approx(100.0)
    assert _value(summary.mean_mmol_l) == pytest.approx(8.0)
    # sample SD of N values, half 6 and half 10: 2 * sqrt(N / (N - 1))
    sd = 2.0 * math.sqrt(SLOTS / (SLOTS - 1))
    assert _value(summary.sd_mmol_l) == pytest.approx(sd)
    assert _value(summary.cv_percent) == pytest.approx(100.0 * sd / 8.0)
    assert _value(summary.gmi_percent) == pytest.approx(6.757465, abs=1e-5)


def test_mg_dl_device_gmi_uses_its_own_mean() -> None:
    summary = summarise_cgm(_series([154.0], "mg/dL"), FOURTEEN_DAYS)
    assert summary is not None
    assert _value(summary.gmi_percent) == pytest.approx(6.99368, abs=1e-9)


# Each boundary and its neighbour: very_low 1, low 2, target 2, high 2, very_high 1 (of 8).
MMOL_EDGES = [2.9, 3.0, 3.8, 3.9, 10.0, 10.1, 13.9, 14.0]
MG_EDGES = [53.0, 54.0, 69.0, 70.0, 180.0, 181.0, 250.0, 251.0]
EXPECTED_EDGES = TimeInRanges(12.5, 25.0, 25.0, 25.0, 12.5)


@pytest.mark.parametrize(("values", "unit"), [(MMOL_EDGES, "mmol/L"), (MG_EDGES, "mg/dL")])
def test_consensus_boundaries_are_half_open(values: list[float], unit: str) -> None:
    summary = summarise_cgm(_series(values, unit), FOURTEEN_DAYS)
    assert summary is not None
    assert _value(summary.time_in_ranges_percent) == EXPECTED_EDGES


def test_mg_dl_boundaries_are_applied_in_mg_dl() -> None:
    # 70 mg/dL is 3.886 mmol/L: "low" in mmol/L, but the consensus's mg/dL target starts at
    # 70, and that is what the patient's device showed. 250 mg/dL = 13.877 is high, and
    # 180 mg/dL = 9.991 is target in both.
    summary = summarise_cgm(_series([70.0, 250.0], "mg/dL"), FOURTEEN_DAYS)
    assert summary is not None
    assert _value(summary.time_in_ranges_percent) == TimeInRanges(0.0, 0.0, 50.0, 50.0, 0.0)


def test_wear_below_70_percent_withholds_every_figure() -> None:
    slots = 9 * 288  # 9 of 14 days: 64.29 %
    summary = summarise_cgm(_series([6.0], slots=slots), FOURTEEN_DAYS)
    assert summary is not None
    assert summary.active_percent == pytest.approx(100.0 * 9 / 14)
    for figure in (
        summary.mean_mmol_l,
        summary.gmi_percent,
        summary.cv_percent,
        summary.time_in_ranges_percent,
        summary.percentile_bands,
    ):
        assert isinstance(figure, Insufficient)
        assert figure.need == 70.0
        assert figure.have == pytest.approx(100.0 * 9 / 14)


def test_exactly_70_percent_wear_is_enough() -> None:
    # 14 days x 288 slots x 0.7 = 2822.4 -> 2823 readings are >= 70 %, 2822 are not
    assert not isinstance(
        summarise_cgm(_series([6.0], slots=2823), FOURTEEN_DAYS).mean_mmol_l,  # type: ignore[union-attr]
        Insufficient,
    )
    assert isinstance(
        summarise_cgm(_series([6.0], slots=2822), FOURTEEN_DAYS).mean_mmol_l,  # type: ignore[union-attr]
        Insufficient,
    )


def test_a_period_shorter_than_14_days_is_insufficient() -> None:
    week = Period.local_days(date(2026, 3, 1), date(2026, 3, 8), SHANGHAI)
    summary = summarise_cgm(_series([6.0], slots=7 * 288), week)
    assert summary is not None
    assert summary.active_percent == pytest.approx(100.0)
    assert summary.mean_mmol_l == Insufficient("period shorter than 14 days", 7.0, 14.0)


def test_no_cgm_reading_is_no_section() -> None:
    assert summarise_cgm([], FOURTEEN_DAYS) is None


def test_percentile_bands_by_local_time_of_day() -> None:
    # Hour h of the local day reads h + 1 at every 5-minute slot, except at minutes 0-4 of
    # each hour the value is h + 1 too: a band per hour holds one value, so p5 = p95 = h + 1.
    readings = [
        cgm(float((i * 5 // 60) % 24 + 1), T0 + timedelta(minutes=5 * i)) for i in range(SLOTS)
    ]
    summary = summarise_cgm(readings, FOURTEEN_DAYS)
    assert summary is not None
    bands = _value(summary.percentile_bands)
    assert [b.start_minute for b in bands] == [60 * h for h in range(24)]
    assert all(b.readings == 14 * 12 for b in bands)
    assert [b.p50 for b in bands] == [float(h + 1) for h in range(24)]
    # The same instants seen from UTC: local 08:00 Shanghai is 00:00 UTC.
    utc = ZoneInfo("UTC")
    utc_period = Period(FOURTEEN_DAYS.start, FOURTEEN_DAYS.end, utc)
    utc_bands = _value(summarise_cgm(readings, utc_period).percentile_bands)  # type: ignore[union-attr]
    assert utc_bands[0].p50 == 9.0


def test_percentiles_interpolate_linearly() -> None:
    # One bin holding 1..5: linear interpolation (h = (n - 1) p) gives p5 = 1.2, p95 = 4.8.
    day = Period.local_days(date(2026, 3, 1), date(2026, 3, 2), SHANGHAI)
    readings = [cgm(float(v), T0 + timedelta(minutes=5 * v)) for v in (3, 1, 5, 2, 4)]
    summary = summarise_cgm(readings, day, band_minutes=1440, min_days=0, min_active_percent=0)
    assert summary is not None
    (band,) = _value(summary.percentile_bands)
    assert band.readings == 5
    assert (band.p5, band.p25, band.p50, band.p75, band.p95) == pytest.approx(
        (1.2, 2.0, 3.0, 4.0, 4.8)
    )


def test_active_time_counts_sampling_slots_at_the_devices_interval() -> None:
    # 5-min readings with day 6 missing: the interval stays 5 min (the median gap, not the
    # mean, which the one-day gap would stretch), and 13 of 14 days are active.
    readings = [r for i, r in enumerate(_series([6.0])) if i // 288 != 6]
    summary = summarise_cgm(readings, FOURTEEN_DAYS)
    assert summary is not None
    assert summary.sample_interval_minutes == pytest.approx(5.0)
    assert summary.active_percent == pytest.approx(100.0 * 13 / 14)
    # a 15-min device (Libre 1 history) is fully active at one reading per 15 min
    sparse = [cgm(6.0, T0 + timedelta(minutes=15 * i)) for i in range(14 * 96)]
    summary = summarise_cgm(sparse, FOURTEEN_DAYS)
    assert summary is not None
    assert summary.active_percent == pytest.approx(100.0)
