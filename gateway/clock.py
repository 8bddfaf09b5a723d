"""Device clocks: from a meter's wall-clock time to the UTC time a doctor can trust.

Home devices keep local wall-clock time with no zone, drift by minutes a year, and reset to
their factory date (often 2000-01-01) when the battery is changed. The gateway reads each
device's clock when it connects, compares it with its own, and for every record:

* keeps the raw ``device_time`` untouched (it is part of the reading's identity);
* turns the device's wall clock into UTC with the **patient's** time zone (DST included:
  an ambiguous hour is read as its first occurrence, a skipped hour as after the jump);
* corrects ``measured_at`` by the observed offset when it exceeds
  :data:`MAX_UNCORRECTED_OFFSET_SECONDS`, flagging ``clock_corrected``;
* after a clock reset, corrects only the records made since the reset (their times sit in
  the reset epoch); records made before it carry the clock's then-correct time and are left
  alone — shifting them by decades would be worse than any drift.

Pure functions; the gateway's clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

MAX_UNCORRECTED_OFFSET_SECONDS: Final = 120.0
"""Meter clocks drift by minutes per year and are set by hand; below two minutes the
difference is within what a patient's note of "before breakfast" can resolve, and
correcting it would only add noise to readings that were right."""

PLAUSIBLE_DEVICE_EPOCH: Final = datetime(2010, 1, 1)  # noqa: DTZ001 - device wall clocks are naive
"""No Bluetooth health device predates 2010 (GLS 1.0 was adopted in 2012): an earlier
clock means the device was reset to its factory date."""

FUTURE_TOLERANCE: Final = timedelta(minutes=5)
"""A corrected time later than the gateway's clock by more than this is flagged."""

FLAG_CLOCK_CORRECTED: Final = "clock_corrected"
FLAG_CLOCK_RESET: Final = "device_clock_reset"
FLAG_TIME_UNTRUSTED: Final = "device_time_untrusted"
FLAG_TIME_IN_FUTURE: Final = "device_time_in_future"


@dataclass(frozen=True, slots=True)
class ClockObservation:
    """The device's clock and the gateway's, read at the same moment.

    Attributes:
        device_now: what the device's clock said (naive wall-clock time).
        gateway_now: the gateway's clock at that moment (UTC).
    """

    device_now: datetime
    gateway_now: datetime

    def offset(self, time_zone: ZoneInfo) -> timedelta:
        """How far the device's wall clock is ahead of the patient's real wall clock."""
        gateway_local = self.gateway_now.astimezone(time_zone).replace(tzinfo=None)
        return self.device_now - gateway_local

    @property
    def clock_was_reset(self) -> bool:
        """The device clock reads before any real device existed."""
        return self.device_now < PLAUSIBLE_DEVICE_EPOCH


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    """When a record was measured, and what the gateway had to do to know it."""

    measured_at: datetime
    flags: frozenset[str]


def local_to_utc(wall_clock: datetime, time_zone: ZoneInfo) -> datetime:
    """A naive wall-clock time in ``time_zone`` as UTC.

    Ambiguous times (the repeated hour when DST ends) resolve to the first occurrence
    (``fold=0``); nonexistent times (the hour skipped when DST starts) resolve as if the
    clock had not yet been moved forward, which zoneinfo does for ``fold=0``.
    """
    return wall_clock.replace(tzinfo=time_zone, fold=0).astimezone(UTC)


def needs_correction(
    observation: ClockObservation,
    time_zone: ZoneInfo,
    *,
    max_offset_seconds: float = MAX_UNCORRECTED_OFFSET_SECONDS,
) -> bool:
    """Whether the device clock is off by more than the bound (or was reset)."""
    offset = observation.offset(time_zone)
    return observation.clock_was_reset or abs(offset.total_seconds()) > max_offset_seconds


def resolve_measured_at(
    *,
    device_time: datetime | None,
    received_at: datetime,
    time_zone: ZoneInfo,
    observation: ClockObservation | None,
    max_offset_seconds: float = MAX_UNCORRECTED_OFFSET_SECONDS,
) -> ResolvedTime:
    """The UTC ``measured_at`` of a record and the flags that explain it.

    Args:
        device_time: the record's raw wall-clock time, or ``None`` when the device sent no
            (known) time — then the gateway's receipt time is the best there is.
        received_at: when the gateway received the record (UTC).
        time_zone: the patient's time zone.
        observation: the device clock read at this connection, or ``None`` when the device
            has no readable clock.
        max_offset_seconds: offsets up to this are left uncorrected.
    """
    if device_time is None:
        return ResolvedTime(received_at, frozenset())
    flags: set[str] = set()
    wall_clock = device_time
    if observation is not None and needs_correction(
        observation, time_zone, max_offset_seconds=max_offset_seconds
    ):
        in_reset_epoch = device_time < PLAUSIBLE_DEVICE_EPOCH
        if observation.clock_was_reset:
            flags.add(FLAG_CLOCK_RESET)
        if in_reset_epoch or not observation.clock_was_reset:
            wall_clock = device_time - observation.offset(time_zone)
            flags.add(FLAG_CLOCK_CORRECTED)
    if wall_clock < PLAUSIBLE_DEVICE_EPOCH:
        # A reset clock that could not be corrected (no clock reading): the time is
        # meaningless; receipt time is closer to the truth than 2000-01-01.
        return ResolvedTime(received_at, frozenset(flags | {FLAG_TIME_UNTRUSTED}))
    measured_at = local_to_utc(wall_clock, time_zone)
    reference = observation.gateway_now if observation is not None else received_at
    if measured_at > max(reference, received_at) + FUTURE_TOLERANCE:
        flags.add(FLAG_TIME_IN_FUTURE)
    return ResolvedTime(measured_at, frozenset(flags))
