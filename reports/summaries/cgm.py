"""CGM summary: the consensus metrics of the one-page report and of alert rule G7."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from readings.model import CgmGlucoseReading, Reading
from readings.units import mmol_per_l_to_mg_per_dl
from reports.summaries.glucose_ranges import RANGES, classify, values_in_source_unit
from reports.summaries.period import Period, epoch_seconds, minutes_of_day
from reports.summaries.sufficiency import Figure, Insufficient, Sufficient

CGM_MIN_DAYS: Final = 14.0
"""days. The consensus asks for 14 days of CGM data for the report's metrics (Battelino
2019: "≥14 days", which correlates with 3 months of glucose)."""

CGM_MIN_ACTIVE_PERCENT: Final = 70.0
"""%. ...of which at least 70 % must have sensor data (same source)."""

DST_SLACK_DAYS: Final = 1.0 / 24.0
"""days. A 14-local-day period across a DST change lasts 13 d 23 h; it still counts as 14."""

GMI_INTERCEPT_PERCENT: Final = 3.31
GMI_SLOPE_PERCENT_PER_MG_DL: Final = 0.02392
"""GMI (%) = 3.31 + 0.02392 × mean glucose in mg/dL (Bergenstal et al., Diabetes Care
2018; the consensus report's "glucose management indicator")."""

DEFAULT_INTERVAL_S: Final = 300.0
"""s. Sampling interval assumed with fewer than two readings: 5 min, the common CGM rate
(Dexcom G6/G7, Sibionics, Yuwell Anytime)."""

MIN_INTERVAL_S: Final = 60.0
MAX_INTERVAL_S: Final = 900.0
"""s. The estimated sampling interval is kept within 1-15 min, the range of CGMs on the
market (Libre 1 min … Libre 1 history 15 min), so a few gaps cannot make wear look full."""

PERCENTILES: Final = (5, 25, 50, 75, 95)
"""The bands of the consensus report's daily profile: 5-95 %, 25-75 % and the median."""

DEFAULT_BAND_MINUTES: Final = 60
"""min. Width of a time-of-day bin of the percentile bands (24 bins a day)."""


@dataclass(frozen=True, slots=True)
class TimeInRanges:
    """Percent of CGM readings in each consensus range; the five add up to 100."""

    very_low: float
    low: float
    target: float
    high: float
    very_high: float


@dataclass(frozen=True, slots=True)
class TimeOfDayBand:
    """Glucose percentiles (mmol/L) of the readings whose local clock time is in a bin.

    Attributes:
        start_minute: the bin starts at this many minutes after local midnight.
        readings: readings in the bin over the whole period.
        p5, p25, p50, p75, p95: percentiles, linear interpolation between readings.
    """

    start_minute: int
    readings: int
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float


@dataclass(frozen=True, slots=True)
class CgmSummary:
    """CGM figures over a period; see ``docs/summaries.md`` for definitions.

    ``active_percent`` is the sufficiency measure itself and always has a value; every other
    figure needs ``CGM_MIN_DAYS`` of period and ``CGM_MIN_ACTIVE_PERCENT`` of wear.
    """

    readings: int
    sample_interval_minutes: float
    active_percent: float
    mean_mmol_l: Figure[float]
    sd_mmol_l: Figure[float]
    gmi_percent: Figure[float]
    cv_percent: Figure[float]
    time_in_ranges_percent: Figure[TimeInRanges]
    percentile_bands: Figure[tuple[TimeOfDayBand, ...]]


def gmi_percent(mean_mmol_l: float) -> float:
    """The published GMI formula: 3.31 + 0.02392 × mean glucose in mg/dL."""
    return GMI_INTERCEPT_PERCENT + GMI_SLOPE_PERCENT_PER_MG_DL * mmol_per_l_to_mg_per_dl(
        mean_mmol_l
    )


def sample_interval_s(seconds: np.ndarray) -> float:
    """The device's sampling interval: the median gap between readings, within 1-15 min."""
    if seconds.size < 2:
        return DEFAULT_INTERVAL_S
    gaps = np.diff(seconds)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return DEFAULT_INTERVAL_S
    return float(min(max(float(np.median(gaps)), MIN_INTERVAL_S), MAX_INTERVAL_S))


def active_percent(seconds: np.ndarray, period: Period, interval_s: float) -> float:
    """% of the period's sampling slots (of ``interval_s``, from ``period.start``) that hold
    at least one reading."""
    total = math.ceil((period.end - period.start).total_seconds() / interval_s)
    if seconds.size == 0:
        return 0.0
    slots = np.unique(np.floor((seconds - period.start.timestamp()) / interval_s))
    return min(100.0, 100.0 * slots.size / total)


def summarise_cgm(
    readings: Iterable[Reading],
    period: Period,
    *,
    band_minutes: int = DEFAULT_BAND_MINUTES,
    min_days: float = CGM_MIN_DAYS,
    min_active_percent: float = CGM_MIN_ACTIVE_PERCENT,
) -> CgmSummary | None:
    """The CGM summary of the period, or ``None`` when there is no CGM reading in it.

    Args:
        readings: any readings; only :class:`CgmGlucoseReading` inside the period count.
        period: the period, with the patient's zone (for the time-of-day bands).
        band_minutes: width of a time-of-day bin; must divide 1440.
        min_days, min_active_percent: the sufficiency rule; keep the consensus defaults
            for anything a clinician reads (a caller may relax them for a short triage
            window, and must then say so where the figure is shown).
    """
    if 1440 % band_minutes:
        raise ValueError(f"band_minutes must divide 1440, got {band_minutes}")
    cgm = period.select(readings, CgmGlucoseReading)
    if not cgm:
        return None
    seconds = epoch_seconds(cgm)
    interval = sample_interval_s(seconds)
    active = active_percent(seconds, period, interval)
    judged, is_mg = values_in_source_unit(cgm)
    mmol = np.fromiter((r.values.glucose for r in cgm), np.float64, len(cgm))

    gate: Insufficient | None = None
    if period.days < min_days - DST_SLACK_DAYS:
        gate = Insufficient(
            f"period shorter than {min_days:g} days", round(period.days, 2), min_days
        )
    elif active < min_active_percent:
        gate = Insufficient(
            f"CGM active less than {min_active_percent:g} % of the time", active, min_active_percent
        )
    elif len(cgm) < 2:
        gate = Insufficient("fewer than 2 CGM readings", len(cgm), 2)
    if gate is not None:
        return CgmSummary(
            readings=len(cgm),
            sample_interval_minutes=interval / 60.0,
            active_percent=active,
            mean_mmol_l=gate,
            sd_mmol_l=gate,
            gmi_percent=gate,
            cv_percent=gate,
            time_in_ranges_percent=gate,
            percentile_bands=gate,
        )
    mean = float(mmol.mean())
    sd = float(mmol.std(ddof=1))
    counts = np.bincount(classify(judged, is_mg), minlength=len(RANGES))
    shares = 100.0 * counts / len(cgm)
    return CgmSummary(
        readings=len(cgm),
        sample_interval_minutes=interval / 60.0,
        active_percent=active,
        mean_mmol_l=Sufficient(mean),
        sd_mmol_l=Sufficient(sd),
        gmi_percent=Sufficient(gmi_percent(mean)),
        cv_percent=Sufficient(100.0 * sd / mean),
        time_in_ranges_percent=Sufficient(TimeInRanges(*(float(share) for share in shares))),
        percentile_bands=Sufficient(
            percentile_bands(mmol, minutes_of_day(cgm, period.zone), band_minutes)
        ),
    )


def percentile_bands(
    mmol: np.ndarray, minute_of_day: np.ndarray, band_minutes: int
) -> tuple[TimeOfDayBand, ...]:
    """Percentiles 5/25/50/75/95 of the values in each local time-of-day bin that has any."""
    frame = pd.DataFrame({"bin": minute_of_day // band_minutes, "glucose": mmol})
    grouped = frame.groupby("bin", sort=True)["glucose"]
    quantiles = grouped.quantile([p / 100.0 for p in PERCENTILES]).unstack()
    sizes = grouped.size()
    return tuple(
        TimeOfDayBand(
            int(bin_) * band_minutes,
            int(sizes.loc[bin_]),
            *(float(v) for v in quantiles.loc[bin_].to_numpy()),
        )
        for bin_ in quantiles.index
    )
