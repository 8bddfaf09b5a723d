"""G7's view of the 14-day CGM summary: the reports' summaries module, not a second copy.

The rule engine asks for a summary through an injected function (so the rules stay free of
pandas); this is that function for the evaluator and the backtest. Time in ranges comes
from :func:`reports.summaries.cgm.summarise_cgm` with the consensus boundaries applied in
the device's unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from readings.files import PatientProfile
from readings.model import Reading
from reports.summaries.cgm import summarise_cgm
from reports.summaries.period import Period
from reports.summaries.sufficiency import Sufficient

G7_DAYS: Final = 14
"""The consensus reporting period for TIR/TBR (Battelino et al., Diabetes Care 2019)."""


@dataclass(frozen=True, slots=True)
class CgmTimeInRanges:
    """What G7 reads (``alerts.rules.common.CgmSummaryLike``)."""

    days: float
    wear_percent: float
    tir_percent: float
    tbr_below_3_9_percent: float
    tbr_below_3_0_percent: float


def cgm_summary_for_rules(
    readings: Sequence[Reading], profile: PatientProfile, now: datetime
) -> CgmTimeInRanges | None:
    """The last 14 days' CGM summary at ``now``, or None without a sufficient one."""
    period = Period(now - timedelta(days=G7_DAYS), now, profile.time_zone)
    summary = summarise_cgm(readings, period)
    if summary is None or not isinstance(summary.time_in_ranges_percent, Sufficient):
        return None
    ranges = summary.time_in_ranges_percent.value
    return CgmTimeInRanges(
        days=period.days,
        wear_percent=summary.active_percent,
        tir_percent=ranges.target,
        tbr_below_3_9_percent=ranges.very_low + ranges.low,
        tbr_below_3_0_percent=ranges.very_low,
    )
