"""SpO₂ and heart rate: counts, mean and extremes, and SpO₂ below target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np

from readings.model import HeartRateReading, Reading, Spo2Reading
from reports.summaries.period import Period
from reports.summaries.sufficiency import Figure, require
from reports.summaries.targets import Targets

VITALS_MIN_READINGS: Final = 3
"""readings. Project rule: a mean or a share of spot readings needs 3 of them (a single
spot check is shown as its own min = max, not as a mean)."""


@dataclass(frozen=True, slots=True)
class Spo2Summary:
    """SpO₂ over a period (spot checks and continuous readings alike), %.

    ``below_target_percent`` is the share of readings strictly below the patient's lower
    SpO₂ target (94 %, or 88 % for COPD: BTS 2017).
    """

    readings: int
    mean_percent: Figure[float]
    min_percent: float
    max_percent: float
    below_target_percent: Figure[float]


@dataclass(frozen=True, slots=True)
class HeartRateSummary:
    """Heart rate over a period from heart-rate sensors, beats per minute.

    The pulse that BP monitors and oximeters report is part of their readings, not of this.
    """

    readings: int
    mean_per_min: Figure[float]
    min_per_min: float
    max_per_min: float


_REASON: Final = "fewer than 3 readings"


def summarise_spo2(
    readings: Iterable[Reading], period: Period, targets: Targets
) -> Spo2Summary | None:
    """The SpO₂ summary of the period, or ``None`` without SpO₂ readings in it."""
    chosen = period.select(readings, Spo2Reading)
    if not chosen:
        return None
    values = np.fromiter((r.values.spo2 for r in chosen), np.float64, len(chosen))
    n = len(chosen)
    return Spo2Summary(
        readings=n,
        mean_percent=require(n, VITALS_MIN_READINGS, _REASON, lambda: float(values.mean())),
        min_percent=float(values.min()),
        max_percent=float(values.max()),
        below_target_percent=require(
            n,
            VITALS_MIN_READINGS,
            _REASON,
            lambda: 100.0 * float((values < targets.spo2_low_percent).mean()),
        ),
    )


def summarise_heart_rate(readings: Iterable[Reading], period: Period) -> HeartRateSummary | None:
    """The heart-rate summary of the period, or ``None`` without heart-rate readings in it."""
    chosen = period.select(readings, HeartRateReading)
    if not chosen:
        return None
    values = np.fromiter((r.values.heart_rate for r in chosen), np.float64, len(chosen))
    n = len(chosen)
    return HeartRateSummary(
        readings=n,
        mean_per_min=require(n, VITALS_MIN_READINGS, _REASON, lambda: float(values.mean())),
        min_per_min=float(values.min()),
        max_per_min=float(values.max()),
    )
