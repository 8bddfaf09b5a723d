"""When to retry a failed store write, and after how long: one pure decision, table-tested.

The caller (the ingest worker's writer thread) owns the loop: it keeps the batch, holds
back every acknowledgement, sleeps :func:`retry_delay_for` seconds and writes the same
batch again. Nothing is dropped: a store that stays down keeps readings in the broker
and the gateways' outboxes, which is where they are durable.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from ingest.stores.base import StoreUnavailable

RETRY_FIRST_DELAY_SECONDS: Final = 1.0
"""A restarting influxd answers again after 1–3 s on a small box (harness measurement)."""
RETRY_MAX_DELAY_SECONDS: Final = 30.0
"""Cap of the doubling backoff: once the store is back, the backlog (and the alerts that
wait on it) starts draining within half a minute."""
RETRY_AFTER_MAX_SECONDS: Final = 300.0
"""A server's ``Retry-After`` is honoured up to 5 minutes; a longer one (a misconfigured
proxy) would starve alerting, so we ask again then."""


def retry_delay_for(error: BaseException, attempt: int) -> float | None:
    """Seconds to wait before retrying after ``error``, or None if retrying cannot help.

    Args:
        error: what the failed write raised.
        attempt: 1 for the first retry, 2 for the second …

    Only :class:`~ingest.stores.base.StoreUnavailable` is retryable. Its
    ``retry_after_seconds`` (the server's ``Retry-After``) wins when given; otherwise the
    delay doubles from :data:`RETRY_FIRST_DELAY_SECONDS` up to
    :data:`RETRY_MAX_DELAY_SECONDS`.
    """
    if not isinstance(error, StoreUnavailable):
        return None
    if error.retry_after_seconds is not None:
        return min(max(error.retry_after_seconds, 0.0), RETRY_AFTER_MAX_SECONDS)
    exponent = min(max(attempt, 1) - 1, 30)
    return min(RETRY_FIRST_DELAY_SECONDS * 2.0**exponent, RETRY_MAX_DELAY_SECONDS)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns None for a missing or unreadable header, 0 for a date in the past.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
