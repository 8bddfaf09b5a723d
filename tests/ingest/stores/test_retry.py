"""Which store failures are retried, and after how long (one pure function, a table)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.stores import InvalidQuery, StoreConfigError, StoreResponseError, StoreUnavailable
from ingest.stores.retry import (
    RETRY_AFTER_MAX_SECONDS,
    RETRY_MAX_DELAY_SECONDS,
    parse_retry_after,
    retry_delay_for,
)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "attempt", "delay"),
    [
        (StoreUnavailable("timeout"), 1, 1.0),
        (StoreUnavailable("timeout"), 2, 2.0),
        (StoreUnavailable("timeout"), 5, 16.0),
        (StoreUnavailable("timeout"), 6, RETRY_MAX_DELAY_SECONDS),
        (StoreUnavailable("timeout"), 10_000, RETRY_MAX_DELAY_SECONDS),
        (StoreUnavailable("429", retry_after_seconds=7.0), 1, 7.0),
        (StoreUnavailable("429", retry_after_seconds=7.0), 9, 7.0),
        (StoreUnavailable("503", retry_after_seconds=0.0), 3, 0.0),
        (StoreUnavailable("503", retry_after_seconds=86_400.0), 1, RETRY_AFTER_MAX_SECONDS),
        (StoreConfigError("database", "not found"), 1, None),
        (StoreResponseError("bad query", status=400), 1, None),
        (InvalidQuery("field", "unknown"), 1, None),
        (ValueError("not a store error"), 1, None),
    ],
)
def test_retry_delay(error: BaseException, attempt: int, delay: float | None) -> None:
    assert retry_delay_for(error, attempt) == delay


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("12", 12.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("Sun, 01 Mar 2026 08:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 07:59:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds
