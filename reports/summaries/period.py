"""The period a summary covers, in the patient's time zone."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from readings.model import Reading
from reports.errors import InvalidPeriod

R = TypeVar("R", bound=Reading)

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Period:
    """The half-open interval ``[start, end)`` and the zone its days and clock times are in.

    ``start`` and ``end`` are aware datetimes. Days ("readings per day", "the first day of
    the week", "3 days earlier") are the patient's local calendar days, and clock times
    ("morning", the time-of-day bands) are local wall-clock times in ``zone``.
    """

    start: datetime
    end: datetime
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidPeriod("period bounds need a UTC offset or a zone")
        if not self.start < self.end:
            raise InvalidPeriod(f"period is empty or reversed: {self.start} .. {self.end}")

    @classmethod
    def local_days(cls, first: date, end: date, zone: ZoneInfo) -> Period:
        """From local midnight of ``first`` to local midnight of ``end`` (exclusive)."""
        return cls(
            datetime.combine(first, time(), tzinfo=zone),
            datetime.combine(end, time(), tzinfo=zone),
            zone,
        )

    @property
    def days(self) -> float:
        """Length in days of elapsed time (a DST day counts 23 or 25 h)."""
        return (self.end - self.start).total_seconds() / SECONDS_PER_DAY

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` lies in ``[start, end)``."""
        return self.start <= moment < self.end

    def select(self, readings: Iterable[Reading], kind: type[R]) -> list[R]:
        """The readings of class ``kind`` inside the period, in time order.

        Readings flagged ``control_solution`` are quality-control tests of the meter, not
        of the patient, and are never summarised.
        """
        # Readings are in UTC: comparing them with UTC bounds skips a zone lookup per reading.
        start, end = self.start.astimezone(UTC), self.end.astimezone(UTC)
        chosen = [
            reading
            for reading in readings
            if isinstance(reading, kind)
            and start <= reading.measured_at < end
            and "control_solution" not in reading.flags
        ]
        chosen.sort(key=lambda reading: reading.measured_at)
        return chosen


def epoch_seconds(readings: Sequence[Reading]) -> npt.NDArray[np.float64]:
    """``measured_at`` of each reading as POSIX seconds."""
    return np.fromiter(
        (reading.measured_at.timestamp() for reading in readings), np.float64, len(readings)
    )


def local_clock(readings: Sequence[Reading], zone: ZoneInfo) -> list[datetime]:
    """``measured_at`` of each reading as a wall-clock time in ``zone``."""
    return [reading.measured_at.astimezone(zone) for reading in readings]


def local_day_index(readings: Sequence[Reading], period: Period) -> npt.NDArray[np.int64]:
    """Each reading's local calendar day, counted from the period's first local day (0)."""
    first = period.start.astimezone(period.zone).date()
    return np.fromiter(
        ((reading.measured_at.astimezone(period.zone).date() - first).days for reading in readings),
        np.int64,
        len(readings),
    )


def minutes_of_day(readings: Sequence[Reading], zone: ZoneInfo) -> npt.NDArray[np.int64]:
    """Each reading's local wall-clock time as minutes after local midnight (0-1439)."""
    clocks = local_clock(readings, zone)
    return np.fromiter((c.hour * 60 + c.minute for c in clocks), np.int64, len(clocks))
