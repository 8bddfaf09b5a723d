"""Date Time (0x2A08) and Current Time (0x2A2B); byte layouts in ``docs/devices.md``.

Both are the device's local wall-clock time with no zone. Year, month or day 0 means
"unknown": such a time has no :meth:`DateTimeFields.to_datetime` (``None``), but the raw
fields are kept, because the time of day is still what the device displayed. Fields
outside their calendar ranges (month 13, hour 24 …) are kept raw the same way and never
make the value fail to decode: a broken clock must not lose a blood-glucose record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntFlag
from typing import Final

from device_drivers.gatt._wire import FieldReader, pack_uint, padding

FRACTIONS_PER_SECOND: Final = 256
MICROSECONDS_PER_SECOND: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class DateTimeFields:
    """The seven Date Time octets as sent (year 0, month 0 or day 0 = unknown)."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int

    @property
    def date_unknown(self) -> bool:
        """Whether the device marked the year, month or day as unknown (0)."""
        return self.year == 0 or self.month == 0 or self.day == 0

    def to_datetime(self) -> datetime | None:
        """The naive local time, or ``None`` when the date is unknown or not a calendar time."""
        if self.date_unknown:
            return None
        try:
            # Device wall-clock time: the device does not know its zone.
            return datetime(  # noqa: DTZ001
                self.year, self.month, self.day, self.hours, self.minutes, self.seconds
            )
        except ValueError:
            return None

    def as_text(self) -> str:
        """The raw fields as ``YYYY-MM-DDTHH:MM:SS``, zeros kept (for logs and context)."""
        return (
            f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
            f"T{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}"
        )

    @classmethod
    def from_datetime(cls, value: datetime) -> DateTimeFields:
        """The fields of a wall-clock time (its zone, if any, is ignored; seconds truncated)."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, value.second)


class AdjustReason(IntFlag):
    """Why the Current Time was last adjusted (bits 4–7 RFU, ignored)."""

    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


NO_ADJUSTMENT: Final = AdjustReason(0)


@dataclass(frozen=True, slots=True)
class CurrentTimeFields:
    """Current Time 0x2A2B: Exact Time 256 plus the adjust reason."""

    date_time: DateTimeFields
    day_of_week: int = 0
    """0 unknown, 1 Monday … 7 Sunday."""
    fractions256: int = 0
    """1/256 s (0 when the device does not support fractions)."""
    adjust_reason: AdjustReason = NO_ADJUSTMENT
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""

    def to_datetime(self) -> datetime | None:
        """The naive local time including the fraction of a second, or ``None`` if unknown."""
        whole = self.date_time.to_datetime()
        if whole is None:
            return None
        microseconds = self.fractions256 * MICROSECONDS_PER_SECOND // FRACTIONS_PER_SECOND
        return whole.replace(microsecond=microseconds)


def read_date_time(reader: FieldReader, field: str) -> DateTimeFields:
    """Read a 7-octet Date Time field (Time Stamp, Base Time …) from ``reader``."""
    return DateTimeFields(
        year=reader.uint16(f"{field}.year"),
        month=reader.uint8(f"{field}.month"),
        day=reader.uint8(f"{field}.day"),
        hours=reader.uint8(f"{field}.hours"),
        minutes=reader.uint8(f"{field}.minutes"),
        seconds=reader.uint8(f"{field}.seconds"),
    )


def parse_date_time(data: bytes) -> DateTimeFields:
    """Decode a Date Time (0x2A08) value; trailing bytes are ignored
    (:func:`device_drivers.gatt.decode_characteristic` counts them).

    Raises:
        InvalidFrame: fewer than 7 bytes.
    """
    return read_date_time(FieldReader(data), "date_time")


def encode_date_time(value: DateTimeFields, *, field: str = "date_time") -> bytes:
    """The 7 octets of a Date Time.

    Raises:
        UnencodableValue: a field does not fit its octet(s).
    """
    return (
        pack_uint(value.year, 2, f"{field}.year")
        + pack_uint(value.month, 1, f"{field}.month")
        + pack_uint(value.day, 1, f"{field}.day")
        + pack_uint(value.hours, 1, f"{field}.hours")
        + pack_uint(value.minutes, 1, f"{field}.minutes")
        + pack_uint(value.seconds, 1, f"{field}.seconds")
    )


_ADJUST_REASON_MASK: Final = 0x0F


def parse_current_time(data: bytes) -> CurrentTimeFields:
    """Decode a Current Time (0x2A2B) value; trailing bytes are ignored and counted.

    Raises:
        InvalidFrame: fewer than 10 bytes.
    """
    reader = FieldReader(data)
    date_time = read_date_time(reader, "date_time")
    day_of_week = reader.uint8("day_of_week")
    fractions256 = reader.uint8("fractions256")
    adjust_reason = AdjustReason(reader.uint8("adjust_reason") & _ADJUST_REASON_MASK)
    return CurrentTimeFields(
        date_time, day_of_week, fractions256, adjust_reason, reader.trailing_bytes()
    )


def encode_current_time(value: CurrentTimeFields) -> bytes:
    """The 10 octets of a Current Time (used to set a device clock and by simulators).

    Raises:
        UnencodableValue: a field does not fit its octet(s).
    """
    return (
        encode_date_time(value.date_time)
        + pack_uint(value.day_of_week, 1, "day_of_week")
        + pack_uint(value.fractions256, 1, "fractions256")
        + pack_uint(int(value.adjust_reason), 1, "adjust_reason")
        + padding(value.trailing_bytes)
    )


def current_time_from_datetime(
    value: datetime, adjust_reason: AdjustReason = AdjustReason.MANUAL_TIME_UPDATE
) -> CurrentTimeFields:
    """The Current Time value that sets a device clock to the wall-clock time ``value``."""
    return CurrentTimeFields(
        date_time=DateTimeFields.from_datetime(value),
        day_of_week=value.isoweekday(),
        fractions256=value.microsecond * FRACTIONS_PER_SECOND // MICROSECONDS_PER_SECOND,
        adjust_reason=adjust_reason,
    )
