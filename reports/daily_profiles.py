"""CGM daily profiles: one glucose trace per local day, for the report's small multiples.

Pure: readings and a period in, one :class:`DayProfile` per local day out. The page has
room for :data:`MAX_DAYS` small charts, so a longer period shows its last days and says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from readings.model import CgmGlucoseReading, Reading
from reports.summaries import Period

MAX_DAYS: Final = 14
"""days. Two rows of seven tiny charts: what fits on the one page beside the other panels,
and the consensus reporting period, so a default report shows every day."""

BIN_MINUTES: Final = 15
"""min. Readings are averaged per 15-minute bin before drawing. A day's panel is 96 CSS px
(25 mm) wide for 1,440 min, so one bin is about one pixel: finer bins draw nothing more, and
WeasyPrint's time grows with the points (14 days of 5-minute data drawn as 4,032 points
added ≈ 1.1 s to a report on the loaded 2-core machine; as 1,344 points ≈ 0.5 s).
"""

GAP_MINUTES: Final = 30
"""min. A longer gap between two bins is drawn as a gap, not a line: twice the longest CGM
interval on the market (Libre history, 15 min), so one missed reading still joins up but a
sensor change or a lost signal is visible."""


@dataclass(frozen=True, slots=True)
class DayProfile:
    """One local day's CGM trace.

    Attributes:
        day: the local calendar day.
        segments: runs of (minute after local midnight, mmol/L) points, split at gaps
            longer than :data:`GAP_MINUTES`; empty when the sensor sent nothing that day.
        readings: CGM readings of that day.
    """

    day: date
    segments: tuple[tuple[tuple[float, float], ...], ...]
    readings: int


@dataclass(frozen=True, slots=True)
class DailyProfiles:
    """The days drawn and how many days the period has."""

    days: tuple[DayProfile, ...]
    period_days: int

    @property
    def truncated(self) -> bool:
        """Whether only the last :data:`MAX_DAYS` of a longer period are drawn."""
        return self.period_days > len(self.days)


def daily_profiles(
    readings: Iterable[Reading], period: Period, max_days: int = MAX_DAYS
) -> DailyProfiles:
    """The CGM trace of each of the period's last ``max_days`` local days (oldest first)."""
    zone = period.zone
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    period_days = (last - first).days + 1
    shown_from = max(first, last - timedelta(days=max_days - 1))
    bins: dict[date, dict[int, list[float]]] = {}
    for reading in period.select(readings, CgmGlucoseReading):
        local = reading.measured_at.astimezone(zone)
        if local.date() < shown_from:
            continue
        minute = local.hour * 60 + local.minute + local.second / 60
        slot = int(minute // BIN_MINUTES)
        bins.setdefault(local.date(), {}).setdefault(slot, []).append(reading.values.glucose)
    days = []
    for offset in range((last - shown_from).days + 1):
        day = shown_from + timedelta(days=offset)
        day_bins = bins.get(day, {})
        points = [
            ((slot + 0.5) * BIN_MINUTES, sum(values) / len(values))
            for slot, values in sorted(day_bins.items())
        ]
        days.append(DayProfile(day, _segments(points), sum(len(v) for v in day_bins.values())))
    return DailyProfiles(tuple(days), period_days)


def _segments(
    points: list[tuple[float, float]],
) -> tuple[tuple[tuple[float, float], ...], ...]:
    runs: list[list[tuple[float, float]]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] <= GAP_MINUTES:
            runs[-1].append(point)
        else:
            runs.append([point])
    return tuple(tuple(run) for run in runs)
