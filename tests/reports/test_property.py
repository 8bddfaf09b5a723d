"""Property test: the summaries against a plain (no numpy, no pandas) reimplementation."""

from __future__ import annotations

import itertools
import math
import statistics
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readings.units import MG_PER_DL_PER_MMOL_PER_L, to_canonical
from reports.summaries import (
    Insufficient,
    Period,
    Sufficient,
    Targets,
    summarise_cgm,
    summarise_meter,
)
from tests.reports.builders import SHANGHAI, T0, cgm, meter

DAY = Period.local_days(date(2026, 3, 1), date(2026, 3, 2), SHANGHAI)

# (minute offset in the day, value in the device's unit, unit)
mmol_values = st.integers(min_value=10, max_value=300).map(lambda tenths: tenths / 10)
mg_values = st.integers(min_value=20, max_value=500).map(float)
samples = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 1439), mmol_values, st.just("mmol/L")),
        st.tuples(st.integers(0, 1439), mg_values, st.just("mg/dL")),
    ),
    min_size=2,
    max_size=120,
)


def plain_range(value: float, unit: str) -> int:
    """The consensus range, written out with the published figures of each unit."""
    edges = (54, 70, 180, 250) if unit == "mg/dL" else (3.0, 3.9, 10.0, 13.9)
    if value < edges[0]:
        return 0
    if value < edges[1]:
        return 1
    if value <= edges[2]:
        return 2
    if value <= edges[3]:
        return 3
    return 4


def plain_percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    h = (len(ordered) - 1) * p
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def _at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


@settings(max_examples=60, deadline=None)
@given(samples)
def test_cgm_matches_a_plain_reimplementation(series: list[tuple[int, float, str]]) -> None:
    readings = [cgm(value, _at(minute), unit) for minute, value, unit in series]
    summary = summarise_cgm(readings, DAY, min_days=0, min_active_percent=0)
    assert summary is not None
    mmol = [to_canonical(value, unit) for _, value, unit in series]
    assert isinstance(summary.mean_mmol_l, Sufficient)
    assert summary.mean_mmol_l.value == pytest.approx(statistics.fmean(mmol))
    assert summary.sd_mmol_l == Sufficient(pytest.approx(statistics.stdev(mmol), abs=1e-9))
    expected_gmi = 3.31 + 0.02392 * statistics.fmean(mmol) * MG_PER_DL_PER_MMOL_PER_L
    assert summary.gmi_percent == Sufficient(pytest.approx(expected_gmi))
    counts = [0] * 5
    for _, value, unit in series:
        counts[plain_range(value, unit)] += 1
    tir = summary.time_in_ranges_percent
    assert isinstance(tir, Sufficient)
    got = [tir.value.very_low, tir.value.low, tir.value.target, tir.value.high, tir.value.very_high]
    assert got == pytest.approx([100.0 * c / len(series) for c in counts])
    # active: distinct slots of the (clamped median) interval, over the day
    minutes = sorted(minute for minute, _, _ in series)
    gaps = [b - a for a, b in itertools.pairwise(minutes) if b > a]
    interval = min(max(statistics.median(gaps) * 60, 60), 900) if gaps else 300
    slots = {math.floor(minute * 60 / interval) for minute in minutes}
    assert summary.active_percent == pytest.approx(
        min(100.0, 100.0 * len(slots) / math.ceil(86400 / interval))
    )
    # hourly bands in local time
    by_hour: dict[int, list[float]] = {}
    for (minute, _, _), value in zip(series, mmol, strict=True):
        by_hour.setdefault(minute // 60, []).append(value)
    bands = summary.percentile_bands
    assert isinstance(bands, Sufficient)
    assert [b.start_minute // 60 for b in bands.value] == sorted(by_hour)
    for band in bands.value:
        values = by_hour[band.start_minute // 60]
        assert band.readings == len(values)
        for p, got_p in zip(
            (0.05, 0.25, 0.5, 0.75, 0.95),
            (band.p5, band.p25, band.p50, band.p75, band.p95),
            strict=True,
        ):
            assert got_p == pytest.approx(plain_percentile(values, p))


def plain_events(series: list[tuple[int, float, str]], level: int) -> int:
    """Runs of consecutive low readings at most 60 min apart."""
    limits = {"mg/dL": (70, 54), "mmol/L": (3.9, 3.0)}
    events = 0
    previous_low_minute: int | None = None
    for minute, value, unit in sorted(series, key=lambda s: s[0]):
        low = value < limits[unit][level - 1]
        if low and (previous_low_minute is None or minute - previous_low_minute > 60):
            events += 1
        previous_low_minute = minute if low else None
    return events


@settings(max_examples=60, deadline=None)
@given(samples)
def test_meter_matches_a_plain_reimplementation(series: list[tuple[int, float, str]]) -> None:
    # distinct minutes: the order of two readings at one instant is not defined
    series = list({minute: (minute, v, u) for minute, v, u in series}.values())
    readings = [meter(value, _at(minute), unit) for minute, value, unit in series]
    summary = summarise_meter(readings, DAY, Targets())
    assert summary is not None
    assert summary.readings == len(series)
    assert summary.readings_per_day == pytest.approx(len(series))
    assert summary.events_below_3_9 == plain_events(series, 1)
    assert summary.events_below_3_0 == plain_events(series, 2)
    in_target = sum(plain_range(value, unit) == 2 for _, value, unit in series)
    if len(series) >= 10:
        assert summary.in_target_percent == Sufficient(
            pytest.approx(100.0 * in_target / len(series))
        )
    else:
        assert isinstance(summary.in_target_percent, Insufficient)
