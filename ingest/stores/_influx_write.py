"""How both InfluxDB backends write a batch and read the server's answer (``docs/storage.md``).

* 2xx: every point is durable (the WAL is fsynced before the answer).
* 413: the body is too large: split the batch in half and write each half.
* 400/422: points were refused. Which ones the message never says (InfluxDB 1.x
  reports only the first shard's first error, and 2.x and 3.x summarise), so the store
  asks which of the batch's ids are present and rejects the rest with the server's
  message. Where the refusal may have dropped the whole batch (InfluxDB 2.0–2.1 answer
  400 for one bad line), the batch is bisected instead: halves are written again —
  harmless, a point's identity makes a rewrite a no-op — until each refused point
  stands alone.
* 429, 5xx, timeouts, refused connections: :class:`StoreUnavailable` with the server's
  ``Retry-After``; the caller retries the whole batch.
* 401/403/404: :class:`StoreConfigError` (credentials, database or bucket).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol

from ingest.stores.base import (
    PointEncodingError,
    RejectedPoint,
    StoreConfigError,
    StoreResponseError,
    StoreUnavailable,
    WriteResult,
)
from ingest.stores.points import SeriesCache, encode_point
from readings.model import Kind, Reading

MAX_POINTS_PER_REQUEST: Final = 5000
"""InfluxDB 1.6.7 writes ≈ 140–290k points/s in batches of 500–10k, only ≈ 80k/s in
batches of 100 (``docs/storage.md``); 5000 points (≈ 1.2 MB) stay far below max-body-size."""

MAX_REASON_LENGTH: Final = 500
"""A server message kept as a rejection reason is cut here; 1.x can echo whole lines."""


@dataclass(frozen=True, slots=True)
class WriteAnswer:
    """The server's answer to one write request.

    Attributes:
        status: HTTP status.
        message: the server's error message (empty on success).
        retry_after_seconds: parsed ``Retry-After``, if any.
    """

    status: int
    message: str = ""
    retry_after_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class PendingPoint:
    """One encoded reading on its way to the server.

    Attributes:
        reading_id: the reading's id.
        kind: its measurement.
        device_id: its device tag.
        timestamp_ns: its point timestamp.
        line: its line protocol.
    """

    reading_id: str
    kind: Kind
    device_id: str
    timestamp_ns: int
    line: str


class PointSink(Protocol):
    """What a backend provides to :func:`write_readings`."""

    def post(self, lines: Sequence[str]) -> WriteAnswer:
        """Send one write request; raise :class:`StoreUnavailable` if no answer came."""
        ...

    def present_ids(self, points: Sequence[PendingPoint]) -> set[str]:
        """Which of ``points`` the store now holds (by reading id)."""
        ...

    def refusal_keeps_valid_points(self, answer: WriteAnswer) -> bool:
        """Whether the server wrote the valid points of a batch it answered 400/422."""
        ...


class _Outcome(Enum):
    WRITTEN = "written"
    TOO_LARGE = "too_large"
    REFUSED = "refused"


def server_message(body: bytes | str | None, fallback: str) -> str:
    """The ``error`` (1.x) or ``message`` (2.x) of a JSON error body, else the body text."""
    if not body:
        return fallback
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        decoded = json.loads(text)
    except ValueError:
        return text.strip()[:MAX_REASON_LENGTH] or fallback
    if isinstance(decoded, dict):
        for key in ("error", "message"):
            value = decoded.get(key)
            if isinstance(value, str) and value:
                return value[:MAX_REASON_LENGTH]
    return text.strip()[:MAX_REASON_LENGTH]


def classify(answer: WriteAnswer, *, target: str, container: str) -> _Outcome:
    """Map a write answer to what to do, raising for the answers that end the write.

    Args:
        answer: the server's answer.
        target: what the request wrote to, for error messages (``database "x"``).
        container: the configuration part a 404 blames (``database`` or ``bucket``).

    Raises:
        StoreUnavailable: 408, 429 or 5xx.
        StoreConfigError: 401, 403 or 404.
        StoreResponseError: any other unexpected status.
    """
    status = answer.status
    if 200 <= status < 300:
        return _Outcome.WRITTEN
    if status == 413:
        return _Outcome.TOO_LARGE
    if status in (400, 422):
        return _Outcome.REFUSED
    if status in (408, 429) or status >= 500:
        raise StoreUnavailable(
            f"HTTP {status}: {answer.message}", retry_after_seconds=answer.retry_after_seconds
        )
    if status in (401, 403):
        raise StoreConfigError(
            "credentials", f"refused with HTTP {status} writing to {target}: {answer.message}"
        )
    if status == 404:
        raise StoreConfigError(container, f"{target} not found: {answer.message}")
    raise StoreResponseError(answer.message, status=status)


def write_readings(
    readings: Sequence[Reading],
    sink: PointSink,
    *,
    target: str,
    container: str,
    max_points_per_request: int = MAX_POINTS_PER_REQUEST,
) -> WriteResult:
    """Write ``readings`` through ``sink`` following the rules in the module docstring.

    Raises:
        StoreUnavailable: a request got no usable answer; some chunks may be written,
            which is harmless since the retry rewrites the same points.
        StoreConfigError: the server refuses us.
    """
    refused: dict[str, str] = {}
    pending: list[PendingPoint] = []
    series: SeriesCache = {}  # the batch's series keys, each escaped once
    for reading in readings:
        try:
            line, timestamp = encode_point(reading, series)
        except PointEncodingError as error:
            refused[reading.id] = f"cannot be written as a point: {error}"
            continue
        pending.append(PendingPoint(reading.id, reading.kind, reading.device_id, timestamp, line))
    for start in range(0, len(pending), max_points_per_request):
        chunk = pending[start : start + max_points_per_request]
        _write_chunk(chunk, sink, refused, target=target, container=container)
    return WriteResult(
        stored=tuple(reading.id for reading in readings if reading.id not in refused),
        rejected=tuple(RejectedPoint(reading_id, reason) for reading_id, reason in refused.items()),
    )


def _write_chunk(
    chunk: Sequence[PendingPoint],
    sink: PointSink,
    refused: dict[str, str],
    *,
    target: str,
    container: str,
) -> None:
    answer = sink.post([point.line for point in chunk])
    outcome = classify(answer, target=target, container=container)
    if outcome is _Outcome.WRITTEN:
        return
    if len(chunk) == 1:
        reason = (
            f"point larger than the server accepts (HTTP 413): {answer.message}"
            if outcome is _Outcome.TOO_LARGE
            else f"refused by the store (HTTP {answer.status}): {answer.message}"
        )
        refused[chunk[0].reading_id] = reason
        return
    if outcome is _Outcome.REFUSED and sink.refusal_keeps_valid_points(answer):
        present = sink.present_ids(chunk)
        for point in chunk:
            if point.reading_id not in present:
                refused[point.reading_id] = (
                    f"refused by the store (HTTP {answer.status}): {answer.message}"
                )
        return
    middle = len(chunk) // 2
    _write_chunk(chunk[:middle], sink, refused, target=target, container=container)
    _write_chunk(chunk[middle:], sink, refused, target=target, container=container)


def group_by_kind(points: Sequence[PendingPoint]) -> dict[Kind, list[PendingPoint]]:
    """``points`` grouped by measurement, in first-seen order."""
    groups: dict[Kind, list[PendingPoint]] = {}
    for point in points:
        groups.setdefault(point.kind, []).append(point)
    return groups
