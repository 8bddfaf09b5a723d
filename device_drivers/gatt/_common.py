"""Shared steps from decoded characteristic fields to a :class:`Measurement`.

The conventions every parser follows (``docs/devices.md``, "GATT values"):

* A special SFLOAT/FLOAT (NaN, NRes, ±INF, reserved) never becomes a number. For a
  secondary value the value is left out, the flag ``<field>_unavailable`` is set and the
  context keeps the special's name as ``<field>_special``; for the primary value the
  measurement has no values and the disposition is ``DEVICE_ERROR``.
* A pressure, pulse, saturation or weight of 0 or less is treated the same way (flag
  ``<field>_not_positive``): the contract requires these to be positive, so a patient
  reading built from a measurement can never be refused by the contract.
* Device times are naive wall-clock times. An unknown date (year/month/day 0) or a time
  that is not a calendar time gives ``device_time=None`` and keeps the raw fields in the
  context as ``device_time_raw``; a time that is not a calendar time is also flagged
  ``device_time_invalid``.
* Status bit fields are :class:`enum.IntFlag` whose member names, lower-cased, are the
  flag names; RFU bits are masked off before the flag is built, never rejected.
* Bytes after the last defined field are ignored; a measurement reports their number in
  its context as ``trailing_bytes`` (see :func:`note_trailing_bytes`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import IntEnum, IntFlag
from typing import Any, TypeAlias

from device_drivers.gatt.datetime_fields import DateTimeFields
from device_drivers.gatt.ieee11073 import DecodedFloat, SpecialValue

ContextValue: TypeAlias = str | int | float | bool


def flag_names(flags: IntFlag | None) -> frozenset[str]:
    """The lower-cased names of the members set in ``flags``."""
    if flags is None:
        return frozenset()
    return frozenset(
        member.name.lower()
        for member in type(flags)
        if member.name is not None and member.value and member in flags
    )


def secondary_number(
    field: str,
    value: DecodedFloat | None,
    flags: set[str],
    context: dict[str, ContextValue],
) -> float | None:
    """A secondary value as a number, or ``None`` with flag and context for a special."""
    if isinstance(value, SpecialValue):
        flags.add(f"{field}_unavailable")
        context[f"{field}_special"] = value.value
        return None
    return value


def positive_number(
    field: str,
    value: DecodedFloat | None,
    flags: set[str],
    context: dict[str, ContextValue],
) -> float | None:
    """Like :func:`secondary_number`, and a value ≤ 0 (which no cuff, oximeter or scale
    can measure) is also left out, flagged ``<field>_not_positive`` with the number kept
    in the context as ``<field>_as_sent``."""
    number = secondary_number(field, value, flags, context)
    if number is not None and number <= 0:
        flags.add(f"{field}_not_positive")
        context[f"{field}_as_sent"] = number
        return None
    return number


def note_trailing_bytes(count: int, context: dict[str, ContextValue]) -> None:
    """Report bytes a value carried after its last defined field (ignored otherwise)."""
    if count:
        context["trailing_bytes"] = count


def device_time_of(
    stamp: DateTimeFields | None,
    flags: set[str],
    context: dict[str, ContextValue],
    *,
    offset_minutes: int = 0,
) -> datetime | None:
    """The naive device time of ``stamp`` shifted by ``offset_minutes``, if it is a time."""
    if stamp is None:
        return None
    base = stamp.to_datetime()
    if base is None:
        context["device_time_raw"] = stamp.as_text()
        if not stamp.date_unknown:
            flags.add("device_time_invalid")
        return None
    try:
        return base + timedelta(minutes=offset_minutes)
    except OverflowError:
        context["device_time_raw"] = stamp.as_text()
        flags.add("device_time_invalid")
        return None


def to_json_value(value: Any) -> Any:
    """A decoded field structure as JSON-ready builtins.

    Specials become their names (``"NaN"``, ``"NRes"`` …), never numbers; bit fields become
    sorted lists of flag names; code enums their lower-case names; date-times their raw
    fields plus ``datetime`` (ISO text, or ``None`` when unknown).
    """
    if isinstance(value, SpecialValue):
        return value.value
    if isinstance(value, IntFlag):
        return sorted(flag_names(value))
    if isinstance(value, IntEnum):
        return value.name.lower()
    if isinstance(value, DateTimeFields):
        moment = value.to_datetime()
        return {
            **{field.name: getattr(value, field.name) for field in dataclasses.fields(value)},
            "datetime": moment.isoformat() if moment is not None else None,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_json_value(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [to_json_value(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    return value
