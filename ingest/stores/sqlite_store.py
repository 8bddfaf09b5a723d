"""The embedded reading store: one SQLite file, for the demo and small clinics.

Durable on return from :meth:`SqliteReadingStore.write`: WAL journal with
``synchronous=FULL`` (one fsync per commit; a batch is one transaction), so a committed
batch survives power loss, not only a crash of the process (``docs/storage.md``).
Idempotent: ``id`` is UNIQUE and rows are added with ``INSERT OR IGNORE``.

Each row keeps the point timestamp InfluxDB would use (``measured_at`` in ms × 10⁶ plus
the id-derived offset, :func:`ingest.stores.points.timestamp_ns`), so ordering and
ties behave the same in every backend. Values are stored as JSON; window aggregates are
computed in SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec

from ingest.stores.base import (
    StoreConfigError,
    StoredReading,
    StoreUnavailable,
    ValueNumbers,
    WindowAggregate,
    WriteResult,
    check_time_range,
    window_milliseconds,
)
from ingest.stores.points import (
    NANOSECONDS_PER_MILLISECOND,
    bound_ns,
    check_value_field,
    decode_context,
    from_timestamp_ns,
    timestamp_ns,
)
from readings.identity import format_device_time
from readings.model import Kind, Reading

SCHEMA_VERSION: Final = 1
"""Stored in ``PRAGMA user_version``; a file from a newer VitalGate is refused."""

BUSY_TIMEOUT_MILLISECONDS: Final = 10_000
"""How long a statement waits for another process's write lock (a second ingest worker
on the same file) before SQLite answers "database is locked"."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS readings (
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    values_json TEXT NOT NULL,
    source_unit TEXT NOT NULL,
    flags TEXT NOT NULL,
    seq INTEGER,
    device_time TEXT,
    context_json TEXT
);
CREATE INDEX IF NOT EXISTS readings_by_patient_kind_time
    ON readings (patient_id, kind, time_ns);
"""

_COLUMNS: Final = (
    "id, kind, patient_id, device_id, gateway_id, time_ns, values_json, source_unit, flags, "
    "seq, device_time, context_json"
)
_INSERT: Final = f"INSERT OR IGNORE INTO readings ({_COLUMNS}) VALUES ({','.join('?' * 12)})"  # noqa: S608 - constant text

_IDS_PER_QUERY: Final = 500
"""Patient ids per batched query: well under SQLite's bound-parameter limit (32,766)."""
_JSON_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_VALUES_DECODER: Final = msgspec.json.Decoder(dict[str, float | list[float]])
"""msgspec decodes JSON integers into these float fields as floats."""


def _row_of(reading: Reading) -> tuple[Any, ...]:
    return (
        reading.id,
        reading.kind.value,
        reading.patient_id,
        reading.device_id,
        reading.gateway_id,
        timestamp_ns(reading),
        _JSON_ENCODER.encode(reading.values).decode(),
        reading.source_unit,
        ",".join(reading.flags),
        reading.seq,
        format_device_time(reading.device_time) if reading.device_time is not None else None,
        _JSON_ENCODER.encode(reading.context).decode() if reading.context else None,
    )


def _stored_of(row: sqlite3.Row) -> StoredReading:
    kind = Kind(row["kind"])
    values: dict[str, ValueNumbers] = {}
    for name, value in _VALUES_DECODER.decode(row["values_json"]).items():
        values[name] = tuple(value) if isinstance(value, list) else value
    return StoredReading(
        id=row["id"],
        kind=kind,
        patient_id=row["patient_id"],
        device_id=row["device_id"],
        gateway_id=row["gateway_id"],
        measured_at=from_timestamp_ns(row["time_ns"]),
        values=values,
        source_unit=row["source_unit"],
        flags=tuple(row["flags"].split(",")) if row["flags"] else (),
        seq=row["seq"],
        device_time=datetime.fromisoformat(row["device_time"]) if row["device_time"] else None,
        context=decode_context(row["context_json"]) if row["context_json"] else {},
    )


def _where(
    patient_id: str | None,
    kind: Kind | None,
    start: datetime | None,
    end: datetime | None,
) -> tuple[str, dict[str, Any]]:
    """A WHERE clause with named parameters for the filters given."""
    clauses = []
    params: dict[str, Any] = {}
    if patient_id is not None:
        clauses.append("patient_id = :patient_id")
        params["patient_id"] = patient_id
    if kind is not None:
        clauses.append("kind = :kind")
        params["kind"] = kind.value
    if start is not None:
        clauses.append("time_ns >= :start_ns")
        params["start_ns"] = bound_ns(start)
    if end is not None:
        clauses.append("time_ns < :end_ns")
        params["end_ns"] = bound_ns(end)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


class SqliteReadingStore:
    """:class:`~ingest.stores.base.ReadingStore` in one SQLite file.

    One connection writes (the ingest writer thread), another serves queries, each
    behind its own lock: with WAL, queries never wait for a write in progress.

    Args:
        path: the database file; its directory is created if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            self._migrate()
            self._reader = self._connect()
        except (OSError, sqlite3.Error) as error:
            raise StoreConfigError("path", f"cannot open {self.path}: {error}") from error
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MILLISECONDS / 1000,
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is fsynced at every commit, so a batch acknowledged to the gateway
        # survives power loss (NORMAL may roll back the last commits after one).
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MILLISECONDS}")
        return connection

    def _migrate(self) -> None:
        version = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreConfigError(
                "path",
                f"{self.path} has schema version {version}, newer than this VitalGate "
                f"({SCHEMA_VERSION}): upgrade VitalGate",
            )
        if version < SCHEMA_VERSION:
            self._writer.executescript(
                f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
            )

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._read_lock:
            try:
                yield self._reader
            except sqlite3.Error as error:
                raise StoreUnavailable(f"SQLite query failed: {error}") from error

    def write(self, readings: Sequence[Reading]) -> WriteResult:
        """Insert ``readings`` in one transaction; return once it is committed and fsynced.

        Raises:
            StoreUnavailable: SQLite failed (disk full, I/O error, locked too long);
                nothing of the batch was written.
        """
        if not readings:
            return WriteResult(stored=())
        rows = [_row_of(reading) for reading in readings]
        with self._write_lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    self._writer.executemany(_INSERT, rows)
                    self._writer.execute("COMMIT")
                except BaseException:
                    if self._writer.in_transaction:
                        self._writer.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise StoreUnavailable(f"SQLite write failed: {error}") from error
        return WriteResult(stored=tuple(reading.id for reading in readings))

    def readings(
        self, patient_id: str, kind: Kind, start: datetime, end: datetime
    ) -> list[StoredReading]:
        """A patient's readings of one kind with ``start <= measured_at < end``, oldest first."""
        check_time_range(start, end)
        where, params = _where(patient_id, kind, start, end)
        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM readings{where} ORDER BY time_ns",  # noqa: S608 - placeholders only
                params,
            ).fetchall()
        return [_stored_of(row) for row in rows]

    def aggregates(
        self,
        patient_id: str,
        kind: Kind,
        field: str,
        start: datetime,
        end: datetime,
        every: timedelta,
    ) -> list[WindowAggregate]:
        """Mean, min, max and count of ``field`` per epoch-aligned window of ``every``."""
        check_value_field(kind, field)
        check_time_range(start, end)
        window_ns = window_milliseconds(every) * NANOSECONDS_PER_MILLISECOND
        where, params = _where(patient_id, kind, start, end)
        # Floor division that also holds for times before 1970 (SQLite's % keeps the sign).
        query = (
            "SELECT time_ns - ((time_ns % :w) + :w) % :w AS window_ns,"  # noqa: S608 - placeholders only
            " avg(value), min(value), max(value), count(value)"
            " FROM (SELECT time_ns, json_extract(values_json, :path) AS value"
            f" FROM readings{where})"
            " WHERE value IS NOT NULL GROUP BY window_ns ORDER BY window_ns"
        )
        with self._reading() as connection:
            rows = connection.execute(
                query, {**params, "w": window_ns, "path": f"$.{field}"}
            ).fetchall()
        return [
            WindowAggregate(
                window_start=from_timestamp_ns(row[0]),
                mean=float(row[1]),
                min=float(row[2]),
                max=float(row[3]),
                count=int(row[4]),
            )
            for row in rows
        ]

    def last_readings(self, patient_id: str) -> dict[Kind, StoredReading]:
        """The latest reading of each kind the patient has."""
        latest: dict[Kind, StoredReading] = {}
        with self._reading() as connection:
            for kind in Kind:
                row = connection.execute(
                    f"SELECT {_COLUMNS} FROM readings WHERE patient_id = ? AND kind = ?"  # noqa: S608
                    " ORDER BY time_ns DESC LIMIT 1",
                    (patient_id, kind.value),
                ).fetchone()
                if row is not None:
                    latest[kind] = _stored_of(row)
        return latest

    def last_readings_of(self, patient_ids: Sequence[str]) -> dict[str, dict[Kind, StoredReading]]:
        """The latest reading of each kind of each patient, one query per chunk of patients."""
        latest: dict[str, dict[Kind, StoredReading]] = {
            patient_id: {} for patient_id in patient_ids
        }
        wanted = list(latest)
        with self._reading() as connection:
            for first in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[first : first + _IDS_PER_QUERY]
                marks = ",".join("?" * len(chunk))
                # The newest time per (patient, kind) comes off the covering index; joining
                # back on it fetches those rows only.
                rows = connection.execute(
                    "WITH newest AS (SELECT patient_id, kind, max(time_ns) AS time_ns"  # noqa: S608 - placeholders only
                    f" FROM readings WHERE patient_id IN ({marks}) GROUP BY patient_id, kind)"
                    f" SELECT {_COLUMNS} FROM readings"
                    " JOIN newest USING (patient_id, kind, time_ns)",
                    chunk,
                ).fetchall()
                for row in rows:
                    stored = _stored_of(row)
                    # Two readings in the same nanosecond: keep one, as last_readings does.
                    latest[stored.patient_id].setdefault(stored.kind, stored)
        return latest

    def count(
        self,
        *,
        patient_id: str | None = None,
        kind: Kind | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """How many readings match every filter given."""
        check_time_range(start, end)
        where, params = _where(patient_id, kind, start, end)
        with self._reading() as connection:
            return int(
                connection.execute(
                    f"SELECT count(*) FROM readings{where}",  # noqa: S608 - placeholders only
                    params,
                ).fetchone()[0]
            )

    def ids(self, patient_id: str | None = None) -> set[str]:
        """Ids of all stored readings (of one patient)."""
        where, params = _where(patient_id, None, None, None)
        with self._reading() as connection:
            rows = connection.execute(
                f"SELECT id FROM readings{where}",  # noqa: S608 - placeholders only
                params,
            )
            return {row[0] for row in rows}

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the file answers a query."""
        with self._reading() as connection:
            connection.execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Close both connections (a clean WAL checkpoint on the last one)."""
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._writer.close()
