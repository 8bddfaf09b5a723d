"""Time in the registry: an injectable clock and the one rule, timezone-aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

from registry.errors import InvalidRegistryInput

Clock: TypeAlias = Callable[[], datetime]
"""Returns the current time, timezone-aware. Injected so tests control time."""


def utc_now() -> datetime:
    """The current time in UTC (the default :data:`Clock`)."""
    return datetime.now(UTC)


def aware_utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC.

    Raises:
        InvalidRegistryInput: ``value`` is naive (its zone would be a guess).
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRegistryInput(field, "naive datetime: give a timezone-aware time")
    return value.astimezone(UTC)
