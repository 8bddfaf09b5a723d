"""Home blood pressure: the 7-day home mean of the guidelines' protocol, and % above target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np

from readings.model import BloodPressureReading, Reading
from reports.summaries.period import Period, local_clock
from reports.summaries.sufficiency import Figure, Insufficient, Sufficient, require
from reports.summaries.targets import Targets

HOME_WINDOW_DAYS: Final = 7
"""days. Home BP monitoring over 7 days, morning and evening, first day discarded (ESH 2023
home BP protocol; Chinese hypertension guideline 2018/2024 home-monitoring advice; rule B2)."""

HOME_MIN_READINGS: Final = 12
"""readings. The home mean needs at least 12 readings after the first day is dropped (ESH
home BP protocol: "at least 12 measurements"); % above target uses the same minimum."""

SESSION_MIN_READINGS: Final = 6
"""readings. Project rule: a morning or evening mean needs 6 readings, half the protocol's
12 (3 days of duplicate readings)."""

MORNING_HOURS: Final = range(4, 12)
"""Local hours 04:00-11:59 count as the morning measurement (ESH: within an hour of
waking, before medication and breakfast)."""

EVENING_HOURS: Final = frozenset(range(18, 24)) | frozenset(range(4))
"""Local hours 18:00-03:59 count as the evening measurement (ESH: before going to bed)."""


@dataclass(frozen=True, slots=True)
class HomeMean:
    """A mean systolic/diastolic pair, mmHg."""

    systolic: float
    diastolic: float
    readings: int


@dataclass(frozen=True, slots=True)
class BloodPressureSummary:
    """Home blood pressure over a period; see ``docs/summaries.md``.

    Attributes:
        readings: BP readings in the period.
        home_mean: mean of the readings of the period's last 7 local days, the first day
            with readings among them dropped.
        readings_used: readings behind ``home_mean`` (counted even when insufficient).
        morning_mean, evening_mean: the same readings, split by local clock time.
        above_target_percent: % of the period's readings at or above the systolic or the
            diastolic target.
    """

    readings: int
    home_mean: Figure[HomeMean]
    readings_used: int
    morning_mean: Figure[HomeMean]
    evening_mean: Figure[HomeMean]
    above_target_percent: Figure[float]


def _mean(systolic: np.ndarray, diastolic: np.ndarray) -> HomeMean:
    return HomeMean(float(systolic.mean()), float(diastolic.mean()), int(systolic.size))


def summarise_blood_pressure(
    readings: Iterable[Reading], period: Period, targets: Targets
) -> BloodPressureSummary | None:
    """The BP summary of the period, or ``None`` without BP readings in it."""
    bp = period.select(readings, BloodPressureReading)
    if not bp:
        return None
    clocks = local_clock(bp, period.zone)
    systolic = np.fromiter((r.values.systolic for r in bp), np.float64, len(bp))
    diastolic = np.fromiter((r.values.diastolic for r in bp), np.float64, len(bp))
    last_day = (period.end - timedelta(microseconds=1)).astimezone(period.zone).date()
    window_first = last_day - timedelta(days=HOME_WINDOW_DAYS - 1)
    days = np.array([c.date().toordinal() for c in clocks])
    in_window = days >= window_first.toordinal()
    used = in_window.copy()
    if in_window.any():
        # The first day of a series reads high (the patient is new to the routine): drop it.
        used &= days != days[in_window].min()
    hours = np.array([c.hour for c in clocks])
    morning = used & np.isin(hours, list(MORNING_HOURS))
    evening = used & np.isin(hours, list(EVENING_HOURS))
    n_used = int(used.sum())
    above = (systolic >= targets.systolic_high_mmhg) | (diastolic >= targets.diastolic_high_mmhg)
    home: Figure[HomeMean] = require(
        n_used,
        HOME_MIN_READINGS,
        "fewer than 12 home readings in the last 7 days after the first day",
        lambda: _mean(systolic[used], diastolic[used]),
    )
    return BloodPressureSummary(
        readings=len(bp),
        home_mean=home,
        readings_used=n_used,
        morning_mean=_session(home, morning, systolic, diastolic, "morning"),
        evening_mean=_session(home, evening, systolic, diastolic, "evening"),
        above_target_percent=require(
            len(bp),
            HOME_MIN_READINGS,
            "fewer than 12 BP readings in the period",
            lambda: 100.0 * float(above.mean()),
        ),
    )


def _session(
    home: Figure[HomeMean],
    chosen: np.ndarray,
    systolic: np.ndarray,
    diastolic: np.ndarray,
    name: str,
) -> Figure[HomeMean]:
    if isinstance(home, Insufficient):
        return home
    count = int(chosen.sum())
    if count < SESSION_MIN_READINGS:
        return Insufficient(f"fewer than 6 {name} readings", count, SESSION_MIN_READINGS)
    return Sufficient(_mean(systolic[chosen], diastolic[chosen]))
