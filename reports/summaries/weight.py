"""Weight: the heart-failure changes over 3 and 7 days, and the trend."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np

from readings.model import Reading, WeightReading
from reports.summaries.period import Period, local_clock
from reports.summaries.sufficiency import Figure, Insufficient, Sufficient, require

SHORT_CHANGE_DAYS: Final = 3
"""days. HF: a gain of more than 2 kg in 3 days needs the doctor or nurse (ESC HFA
heartfailurematters.org; Chinese HF guideline "3天内体重突然增加2kg以上"; rule H1)."""

LONG_CHANGE_DAYS: Final = 7
"""days. The weekly change (AHA-style advice: about 2.3 kg in a week; rule H2's window)."""

TREND_MIN_DAYS: Final = 5
"""days with a weight. Project rule: a least-squares slope over fewer days follows single
readings (a heavy meal, a different scale) more than the patient's fluid balance."""


@dataclass(frozen=True, slots=True)
class WeightSummary:
    """Weight over a period; see ``docs/summaries.md``.

    The day's weight is its first reading (the morning weight the HF advice asks for).

    Attributes:
        readings: weight readings in the period.
        days_with_weight: local days with at least one weight.
        latest_kg: the day's weight of the last day with a weight.
        change_3d_kg: latest day's weight minus the weight of the day 3 days before it.
        change_7d_kg: the same, 7 days before.
        trend_kg_per_week: least-squares slope of the day's weights over the period.
    """

    readings: int
    days_with_weight: int
    latest_kg: float
    change_3d_kg: Figure[float]
    change_7d_kg: Figure[float]
    trend_kg_per_week: Figure[float]


def summarise_weight(readings: Iterable[Reading], period: Period) -> WeightSummary | None:
    """The weight summary of the period, or ``None`` without weight readings in it."""
    weights = period.select(readings, WeightReading)
    if not weights:
        return None
    days = np.array([c.date().toordinal() for c in local_clock(weights, period.zone)])
    kg = np.fromiter((r.values.weight for r in weights), np.float64, len(weights))
    # Readings are in time order, so the first index of each day is its first weight.
    day_values, first_index = np.unique(days, return_index=True)
    daily = dict(zip(day_values.tolist(), kg[first_index].tolist(), strict=True))
    latest_day = int(day_values[-1])
    return WeightSummary(
        readings=len(weights),
        days_with_weight=len(daily),
        latest_kg=daily[latest_day],
        change_3d_kg=_change(daily, latest_day, SHORT_CHANGE_DAYS),
        change_7d_kg=_change(daily, latest_day, LONG_CHANGE_DAYS),
        trend_kg_per_week=require(
            len(daily),
            TREND_MIN_DAYS,
            "fewer than 5 days with a weight",
            lambda: 7.0 * float(np.polyfit(day_values.astype(np.float64), kg[first_index], 1)[0]),
        ),
    )


def _change(daily: dict[int, float], latest_day: int, days: int) -> Figure[float]:
    earlier = daily.get(latest_day - days)
    if earlier is None:
        return Insufficient(f"no weight {days} days before the latest", 0, 1)
    return Sufficient(daily[latest_day] - earlier)
