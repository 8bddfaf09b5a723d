"""The reading-store interface: what ingest writes through and alerts and the dashboard read.

Every backend (SQLite, InfluxDB 1.x, InfluxDB 2.x) implements :class:`ReadingStore` and
passes the same contract test suite. A store is idempotent by reading id: writing a
reading again is harmless, so a batch can be retried after any failure.

Time ranges are half-open, ``start <= measured_at < end``, in UTC. Aggregation windows
are aligned to the Unix epoch (a one-hour window starts on the hour, UTC) and only
windows that hold at least one reading are returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ingest.errors import IngestError
from readings.model import Kind, Reading

ValueNumbers = float | tuple[float, ...]
"""A stored value: one number, or a series (``rr_intervals``)."""

ContextValue = str | int | float | bool


class StoreError(IngestError):
    """Root of every error a reading store raises."""


class StoreUnavailable(StoreError):
    """The store cannot take or answer requests now (down, overloaded, timed out).

    Recoverable: the caller retries the same batch later and acknowledges nothing
    meanwhile. See :func:`ingest.stores.retry.retry_delay_for`.

    Attributes:
        reason: what happened, for logs (no health data, no credentials).
        retry_after_seconds: how long the server asked us to wait (``Retry-After``),
            or None if it did not say.
    """

    def __init__(self, reason: str, *, retry_after_seconds: float | None = None) -> None:
        suffix = f" (retry after {retry_after_seconds:g} s)" if retry_after_seconds else ""
        super().__init__(f"reading store unavailable: {reason}{suffix}")
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


class StoreConfigError(StoreError):
    """The store's configuration is wrong: bad URL, unknown database, refused credentials.

    Attributes:
        part: the part of the configuration at fault (``scheme``, ``path``, ``org`` …).
        problem: what is wrong with it and how to fix it.
    """

    def __init__(self, part: str, problem: str) -> None:
        super().__init__(f"reading store {part}: {problem}")
        self.part = part
        self.problem = problem


class StoreResponseError(StoreError):
    """The store answered something this client does not understand or did not expect.

    Not retried: it points at a bug or an incompatible server version.

    Attributes:
        status: the HTTP status, if the store speaks HTTP.
        detail: the server's message, shortened.
    """

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        prefix = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"unexpected answer from the reading store: {prefix}{detail}")
        self.status = status
        self.detail = detail


class InvalidQuery(StoreError, ValueError):
    """A query's arguments are wrong (before anything is sent to the store).

    Attributes:
        parameter: the argument at fault.
        problem: what is wrong with it.
    """

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


class PointEncodingError(StoreError, ValueError):
    """A reading cannot be written as an InfluxDB point (a field breaks line protocol).

    Only a reading built around the contract's validation can cause this; the store puts
    it in :attr:`WriteResult.rejected` and writes the rest of the batch.

    Attributes:
        field: the reading's field at fault.
        problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class RejectedPoint:
    """A reading the store refused for good (never retried); it belongs in quarantine.

    Attributes:
        reading_id: the refused reading's id.
        reason: the store's reason, e.g. the server's ``partial write`` message.
    """

    reading_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What became of one :meth:`ReadingStore.write` call.

    Attributes:
        stored: ids now durably in the store, including ones that were already there, in
            the order they were given (a reading given twice is listed twice).
        rejected: readings the store refused for good.
    """

    stored: tuple[str, ...]
    rejected: tuple[RejectedPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as a store gives it back.

    ``received_at`` is not stored; everything else a reading carries is.

    Attributes:
        id: the reading's id.
        kind: what it measures.
        patient_id: the patient the reading belongs to.
        device_id: ``manufacturer-model-serial``.
        gateway_id: the gateway that received it.
        measured_at: UTC, millisecond precision.
        values: the values present, by field name, in canonical units.
        source_unit: the unit the device sent (UCUM code).
        flags: sorted status flags.
        seq: the device's record sequence number, if any.
        device_time: the device's raw wall-clock time, if any.
        context: the circumstances the device reported (meal, sample site …).
    """

    id: str
    kind: Kind
    patient_id: str
    device_id: str
    gateway_id: str
    measured_at: datetime
    values: Mapping[str, ValueNumbers]
    source_unit: str
    flags: tuple[str, ...] = ()
    seq: int | None = None
    device_time: datetime | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @classmethod
    def from_reading(cls, reading: Reading) -> StoredReading:
        """What a store gives back after ``reading`` was written."""
        return cls(
            id=reading.id,
            kind=reading.kind,
            patient_id=reading.patient_id,
            device_id=reading.device_id,
            gateway_id=reading.gateway_id,
            measured_at=reading.measured_at,
            values=reading.values.as_dict(),
            source_unit=reading.source_unit,
            flags=tuple(reading.flags),
            seq=reading.seq,
            device_time=reading.device_time,
            context=dict(reading.context),
        )


@dataclass(frozen=True, slots=True)
class WindowAggregate:
    """Summary of one value field over one time window that holds readings.

    Attributes:
        window_start: UTC start of the window (aligned to the Unix epoch).
        mean: arithmetic mean.
        min: smallest value.
        max: largest value.
        count: number of readings in the window that carry the field.
    """

    window_start: datetime
    mean: float
    min: float
    max: float
    count: int


def check_time_range(start: datetime | None, end: datetime | None) -> None:
    """Raise :class:`InvalidQuery` for a naive bound or an end before the start."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise InvalidQuery(name, "timestamp has no UTC offset")
    if start is not None and end is not None and end < start:
        raise InvalidQuery("end", "is before start")


def window_milliseconds(every: timedelta) -> int:
    """``every`` in whole milliseconds.

    Raises:
        InvalidQuery: ``every`` is not a positive whole number of milliseconds (points sit
            up to 1 ms after their ``measured_at``, see ``docs/storage.md``, so a finer
            window would put a reading in the wrong one).
    """
    microseconds = every // timedelta(microseconds=1)
    if microseconds <= 0 or microseconds % 1000:
        raise InvalidQuery("every", "must be a positive whole number of milliseconds")
    return microseconds // 1000


class ReadingStore(Protocol):
    """A durable, idempotent store of readings.

    Safe for one writer thread plus any number of query callers in other threads.
    """

    def write(self, readings: Sequence[Reading]) -> WriteResult:
        """Store ``readings``; return only once they are durable.

        Idempotent by reading id: a reading already stored is stored once and listed in
        :attr:`WriteResult.stored`. Batches too large for the server are split.

        Raises:
            StoreUnavailable: nothing can be said about the batch; retry it all later.
            StoreConfigError: the store refuses us (credentials, unknown database).
        """
        ...

    def readings(
        self, patient_id: str, kind: Kind, start: datetime, end: datetime
    ) -> list[StoredReading]:
        """A patient's readings of one kind with ``start <= measured_at < end``, oldest first."""
        ...

    def aggregates(
        self,
        patient_id: str,
        kind: Kind,
        field: str,
        start: datetime,
        end: datetime,
        every: timedelta,
    ) -> list[WindowAggregate]:
        """Mean, min, max and count of one numeric value field per window of ``every``.

        Raises:
            InvalidQuery: ``field`` is not a numeric field of ``kind``, or ``every`` is
                not positive.
        """
        ...

    def last_readings(self, patient_id: str) -> dict[Kind, StoredReading]:
        """The latest reading (by ``measured_at``) of each kind the patient has."""
        ...

    def last_readings_of(self, patient_ids: Sequence[str]) -> dict[str, dict[Kind, StoredReading]]:
        """:meth:`last_readings` for many patients at once, in a few queries (for lists).

        Every id asked for is a key of the answer; a patient without readings maps to ``{}``.
        """
        ...

    def count(
        self,
        *,
        patient_id: str | None = None,
        kind: Kind | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """How many readings match every filter given."""
        ...

    def ids(self, patient_id: str | None = None) -> set[str]:
        """Ids of all stored readings (of one patient). May scan everything: for tests."""
        ...

    def ping(self) -> None:
        """Return if the store answers.

        Raises:
            StoreUnavailable: it does not.
        """
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
