"""Meter (self-monitored) glucose summary: the report's BGM variant for patients without CGM."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from readings.model import GlucoseReading, Reading
from readings.units import mmol_per_l_to_mg_per_dl
from reports.summaries.glucose_ranges import (
    MG_DL_BOUNDARIES,
    MMOL_L_BOUNDARIES,
    below,
    values_in_source_unit,
)
from reports.summaries.period import Period, epoch_seconds
from reports.summaries.sufficiency import Figure, require
from reports.summaries.targets import Targets

METER_MIN_READINGS: Final = 10
"""readings. Project rule (no consensus exists for meters): mean, SD and % in target need 10
readings in the period; with a typical SD of 2.5 mmol/L the mean of 10 is within ±1.6
mmol/L (95 %), below that one reading moves the figure more than a doctor would act on."""

HYPO_EVENT_JOIN_S: Final = 3600.0
"""s. Consecutive low meter readings at most 60 min apart are one event: the "15-15"
hypoglycaemia treatment (ADA Standards §6) re-tests after 15 min and repeats, so a treated
episode shows as a run of low readings about 15 min apart, not as several events."""

UNSPECIFIED_MEAL: Final = "unspecified"
"""The meal context of a reading whose device did not say (``context`` has no ``meal``)."""

_CONSENSUS_MG_DL: Final[Mapping[float, float]] = {
    MMOL_L_BOUNDARIES.very_low_below: MG_DL_BOUNDARIES.very_low_below,
    MMOL_L_BOUNDARIES.target_from: MG_DL_BOUNDARIES.target_from,
    MMOL_L_BOUNDARIES.target_to: MG_DL_BOUNDARIES.target_to,
    MMOL_L_BOUNDARIES.very_high_above: MG_DL_BOUNDARIES.very_high_above,
}
"""A target bound that is a consensus boundary in mmol/L is the consensus's mg/dL figure
for mg/dL meters (3.9 -> 70, not 70.26); other bounds are converted exactly."""


@dataclass(frozen=True, slots=True)
class MealContextSummary:
    """Meter glucose of the readings with one meal context (``preprandial``, ``fasting`` …)."""

    context: str
    readings: int
    mean_mmol_l: Figure[float]
    in_target_percent: Figure[float]


@dataclass(frozen=True, slots=True)
class MeterSummary:
    """Meter glucose over a period; see ``docs/summaries.md``.

    Attributes:
        readings: meter readings in the period (control-solution tests excluded).
        readings_per_day: ``readings`` / the period's length in days.
        min_mmol_l, max_mmol_l: lowest and highest reading (a ``LO``/``HI`` result counts
            as the meter's range limit it carries).
        events_below_3_9: hypoglycaemia events below 3.9 mmol/L (< 70 mg/dL), level 1 or
            lower (an event that went below 3.0 counts here too).
        events_below_3_0: events below 3.0 mmol/L (< 54 mg/dL), level 2.
        by_meal: per meal context, sorted by context name.
    """

    readings: int
    readings_per_day: float
    mean_mmol_l: Figure[float]
    sd_mmol_l: Figure[float]
    in_target_percent: Figure[float]
    min_mmol_l: float
    max_mmol_l: float
    events_below_3_9: int
    events_below_3_0: int
    by_meal: tuple[MealContextSummary, ...]


def count_events(seconds: npt.NDArray[np.float64], low: npt.NDArray[np.bool_]) -> int:
    """Runs of consecutive low readings (in time order), each at most ``HYPO_EVENT_JOIN_S``
    after the previous one; a reading at or above the threshold ends a run."""
    if not low.any():
        return 0
    starts = low.copy()
    if low.size > 1:
        joined = low[1:] & low[:-1] & (np.diff(seconds) <= HYPO_EVENT_JOIN_S)
        starts[1:] &= ~joined
    return int(starts.sum())


def in_target(
    judged: npt.NDArray[np.float64], is_mg: npt.NDArray[np.bool_], targets: Targets
) -> npt.NDArray[np.bool_]:
    """Readings inside ``[low, high]`` of the glucose target, in the device's unit."""
    low, high = targets.glucose_low_mmol_l, targets.glucose_high_mmol_l
    low_mg = _CONSENSUS_MG_DL.get(low, mmol_per_l_to_mg_per_dl(low))
    high_mg = _CONSENSUS_MG_DL.get(high, mmol_per_l_to_mg_per_dl(high))
    lows = np.where(is_mg, low_mg, low)
    highs = np.where(is_mg, high_mg, high)
    result: npt.NDArray[np.bool_] = (judged >= lows) & (judged <= highs)
    return result


def summarise_meter(
    readings: Iterable[Reading], period: Period, targets: Targets
) -> MeterSummary | None:
    """The meter-glucose summary of the period, or ``None`` without meter readings in it."""
    meter = period.select(readings, GlucoseReading)
    if not meter:
        return None
    judged, is_mg = values_in_source_unit(meter)
    mmol = np.fromiter((r.values.glucose for r in meter), np.float64, len(meter))
    seconds = epoch_seconds(meter)
    hit = in_target(judged, is_mg, targets)
    n = len(meter)
    reason = f"fewer than {METER_MIN_READINGS} meter readings"
    # A handful of contexts per patient: numpy's grouping costs microseconds where a pandas
    # groupby costs milliseconds, and the triage view summarises 10,000 patients.
    contexts, group = np.unique(
        [str(r.context.get("meal", UNSPECIFIED_MEAL)) for r in meter], return_inverse=True
    )
    sizes = np.bincount(group, minlength=contexts.size)
    sums = np.bincount(group, weights=mmol, minlength=contexts.size)
    hits = np.bincount(group, weights=hit.astype(np.float64), minlength=contexts.size)
    by_meal = tuple(
        _meal_summary(str(context), int(size), total / size, hits_ / size, reason)
        for context, size, total, hits_ in zip(
            contexts.tolist(), sizes.tolist(), sums.tolist(), hits.tolist(), strict=True
        )
    )
    return MeterSummary(
        readings=n,
        readings_per_day=n / period.days,
        mean_mmol_l=require(n, METER_MIN_READINGS, reason, lambda: float(mmol.mean())),
        sd_mmol_l=require(n, METER_MIN_READINGS, reason, lambda: float(mmol.std(ddof=1))),
        in_target_percent=require(n, METER_MIN_READINGS, reason, lambda: 100.0 * float(hit.mean())),
        min_mmol_l=float(mmol.min()),
        max_mmol_l=float(mmol.max()),
        events_below_3_9=count_events(seconds, below(judged, is_mg, 1)),
        events_below_3_0=count_events(seconds, below(judged, is_mg, 2)),
        by_meal=by_meal,
    )


def _meal_summary(
    context: str, readings: int, mean: float, hit_share: float, reason: str
) -> MealContextSummary:
    return MealContextSummary(
        context=context,
        readings=readings,
        mean_mmol_l=require(readings, METER_MIN_READINGS, reason, lambda: mean),
        in_target_percent=require(readings, METER_MIN_READINGS, reason, lambda: 100.0 * hit_share),
    )
