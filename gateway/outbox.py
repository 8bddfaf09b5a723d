"""The durable outbox: every reading waits here until ingest acknowledges it end to end.

A broker's PUBACK does not make a reading durable (Mosquitto snapshots its queues every
half hour; see docs/gateway.md), so a reading leaves the outbox only when ingest says it stored
it (``gw/{id}/ack``). A row's life::

    add ──► pending ──begin_batch──► (in flight, memory only) ──PUBACK: mark_sent──► sent
               ▲                         │ publish failed: requeue                    │
               └─────────────────────────┘          ack timeout: eligible again ◄─────┤
                                                    end-to-end ack: acknowledge ──► deleted

SQLite in WAL mode with ``synchronous=FULL``: when :meth:`SqliteOutbox.add` returns, its
readings are on the disk, and readings are added in batches so that one fsync covers
many. A device's download cursor is written in the same transaction as the readings it
covers, so a crash can never skip a record. Bookkeeping — PUBACK records and deletions
after the end-to-end ack — is committed without the fsync: a power cut can undo it,
which costs a duplicate publish (absorbed by the reading's identity downstream), never
a reading. ``integrity_check`` runs at every open.

The *sent* state lives in a narrow side table (``sent``), not in the reading's row; the
``outbox_rows`` view shows both as one table (``state`` ``pending``/``sent``,
``sent_at``, ``retry_at``, ``attempts``) for operators and tests.

**Disk quota policy.** ``quota_bytes`` bounds the space the backlog may take
(``used_bytes``: pages holding data; pages freed by acknowledged rows are reused before
the file grows). At the quota the outbox is *over quota*: new low-value telemetry
(:func:`is_clinical` is false: heart-rate streams and continuous oximetry, which are
stamped on receipt and stored nowhere else) is refused and counted, while clinical
readings (glucose, CGM, blood pressure, weight, temperature, SpO₂ spot checks) are still
kept. ``reserve_bytes`` above the quota is the hard ceiling: there :meth:`SqliteOutbox.add`
raises :class:`~gateway.errors.OutboxFull`, stores nothing of the call and leaves the
cursor where it was, so the records stay on the device. The publisher announces both
conditions in the retained status and as events; nothing is dropped silently.

Memory stays bounded whatever the backlog: batches are read with lazy, ordered queries
and stop at their budget; the in-flight set holds row numbers of at most the
publisher's window.
"""

from __future__ import annotations

import sqlite3
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate, repeat
from operator import add
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, Self

from device_drivers.base import RecordCursor
from gateway.errors import ConfigError, OutboxCorrupt, OutboxError, OutboxFull
from readings.codec import encode_reading
from readings.model import Kind, Reading

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (UTC)."""

SCHEMA_VERSION: Final = 1

DEFAULT_ACK_TIMEOUT_SECONDS: Final = 60.0
"""Ingest acknowledges once InfluxDB answered 204, normally within a second or two; a
minute lets a busy ingest catch up without the gateway re-publishing its whole window."""
MAX_ACK_TIMEOUT_SECONDS: Final = 900.0
"""The ack timeout doubles with every publish of a row. 15 minutes bounds how long a
reading lost by a crashed broker waits to be sent again, while ingest being down for
hours does not make the gateway fill the broker's queue with copies."""
DEFAULT_CLINICAL_RESERVE_BYTES: Final = 8 * 1024 * 1024
"""Room above the quota kept for clinical readings only: ≈ 20,000 spot checks of ≈ 400
bytes, months of a household's meters and cuffs, while telemetry is refused."""
QUOTA_HYSTERESIS_FRACTION: Final = 0.05
"""Over quota clears only 5 % below the quota, so status and events do not flap while
the backlog hovers at the limit."""
BOOKKEEPING_HEADROOM_FRACTION: Final = 0.10
"""SQLite's own limit (``max_page_count``) sits 10 % (at least 1 MiB) above the ceiling, or
above the file when that is larger: recording progress must never be refused because the
outbox is full, and marking every row of a full outbox sent takes ≈ 6 % of its size
(≈ 35 of ≈ 560 bytes per row)."""
MIN_BOOKKEEPING_HEADROOM_BYTES: Final = 1024 * 1024
BUSY_TIMEOUT_MILLISECONDS: Final = 10_000
"""One process owns the outbox, but an operator's ``sqlite3`` shell may hold a read lock
for a moment; waiting beats failing a commit."""
WAL_SIZE_LIMIT_BYTES: Final = 8 * 1024 * 1024
"""The WAL file is truncated to this after a checkpoint, so a burst does not leave a
large file behind on a small SD card."""

STATE_PENDING: Final = "pending"
STATE_SENT: Final = "sent"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    reading_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    encoded BLOB NOT NULL,
    clinical INTEGER NOT NULL CHECK (clinical IN (0, 1)),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    rowid INTEGER PRIMARY KEY,
    sent_at INTEGER NOT NULL,
    retry_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL CHECK (attempts >= 1)
);
CREATE INDEX IF NOT EXISTS sent_retry ON sent (retry_at);
CREATE TRIGGER IF NOT EXISTS outbox_row_deleted AFTER DELETE ON outbox
BEGIN
    DELETE FROM sent WHERE rowid = old.rowid;
END;
CREATE VIEW IF NOT EXISTS outbox_rows AS
SELECT outbox.rowid AS rowid, reading_id, device_id, kind, clinical, created_at,
       CASE WHEN sent.rowid IS NULL THEN 'pending' ELSE 'sent' END AS state,
       sent.sent_at AS sent_at, sent.retry_at AS retry_at,
       coalesce(sent.attempts, 0) AS attempts
FROM outbox LEFT JOIN sent ON sent.rowid = outbox.rowid;
CREATE TABLE IF NOT EXISTS device_cursors (
    device_id TEXT PRIMARY KEY,
    last_seq INTEGER,
    last_device_time TEXT
);
"""
# A row is *pending* until the broker PUBACKs it, then *sent*: it has a row of the same
# number in ``sent`` (time of the last PUBACK, when it becomes eligible again without an
# end-to-end ack, how many publishes were PUBACKed). The state lives in that narrow table
# rather than in the reading's row because marking sent then writes ≈ 35 bytes instead of
# rewriting the ≈ 500-byte row: measured, rewriting put the whole backlog through the WAL
# a second time and halved the drain rate. ``outbox_rows`` shows both as one table for
# operators. Times are milliseconds since the Unix epoch (UTC). AUTOINCREMENT keeps row
# numbers growing even after the table was emptied, which the pending scan (rows after
# the last one handed out) relies on.

_INSERT: Final = """
INSERT INTO outbox (reading_id, device_id, kind, encoded, clinical, created_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (reading_id) DO NOTHING
"""
_UPSERT_CURSOR: Final = """
INSERT INTO device_cursors (device_id, last_seq, last_device_time) VALUES (?, ?, ?)
ON CONFLICT (device_id) DO UPDATE
SET last_seq = excluded.last_seq, last_device_time = excluded.last_device_time
"""
_SELECT_OVERDUE: Final = """
SELECT outbox.rowid, reading_id, encoded, attempts
FROM sent JOIN outbox ON outbox.rowid = sent.rowid
WHERE retry_at <= ? ORDER BY retry_at
"""
_SELECT_PENDING: Final = """
SELECT rowid, reading_id, encoded, 0 FROM outbox
WHERE rowid > ? AND NOT EXISTS (SELECT 1 FROM sent WHERE sent.rowid = outbox.rowid)
ORDER BY rowid
"""
_SELECT_PENDING_AFTER_SENT: Final = """
SELECT rowid, reading_id, encoded, 0 FROM outbox WHERE rowid > ? ORDER BY rowid
"""
# The second form is for the usual case, no sent row after the scan's start: it spares
# a lookup per row (≈ 30 % of the scan).
_MARK_SENT: Final = """
INSERT INTO sent (rowid, sent_at, retry_at, attempts)
SELECT rowid, ?, ?, ? FROM outbox WHERE rowid BETWEEN ? AND ?
ON CONFLICT (rowid) DO UPDATE
SET sent_at = excluded.sent_at, retry_at = excluded.retry_at, attempts = excluded.attempts
"""
# One statement per run of consecutive row numbers (a batch is usually one run): SQLite
# inserts the run itself, ≈ 5× faster than a statement per row. Selecting from outbox
# skips rows acknowledged before their PUBACK was processed: no stray ``sent`` row.


def runs_of(rowids: tuple[int, ...], attempts: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """``(first, last, attempt)`` for each run of consecutive row numbers of one attempt."""
    if not rowids:
        return []
    first, last = min(rowids), max(rowids)
    if last - first == len(rowids) - 1 and attempts.count(attempts[0]) == len(attempts):
        return [(first, last, attempts[0])]  # the usual batch: one run (row numbers are unique)
    runs: list[tuple[int, int, int]] = []
    for rowid, attempt in sorted(zip(rowids, attempts, strict=True)):
        if runs and runs[-1][1] == rowid - 1 and runs[-1][2] == attempt:
            runs[-1] = (runs[-1][0], rowid, attempt)
        else:
            runs.append((rowid, rowid, attempt))
    return runs


_HEALTHY_CHECK: Final = "ok"
_SQLITE_PRIMARY_CODE_MASK: Final = 0xFF


def is_clinical(reading: Reading) -> bool:
    """Whether a reading is clinical (kept over quota) rather than low-value telemetry.

    Low-value: heart-rate streams (straps, watches) and continuous oximetry — SpO₂
    without a device record key, i.e. stamped on receipt. They arrive every second, a
    gap in them is visible in the status, and the device keeps no copy to lose twice.
    Everything a person measured on purpose is clinical: glucose and CGM, blood
    pressure, weight, temperature and SpO₂ spot checks.
    """
    if reading.kind is Kind.HEART_RATE:
        return False
    if reading.kind is Kind.SPO2:
        return reading.seq is not None or reading.device_time is not None
    return True


def ack_timeout_seconds(attempt: int, base_seconds: float, max_seconds: float) -> float:
    """How long after its ``attempt``-th PUBACK a row waits for the end-to-end ack.

    ``base_seconds`` after the first publish, doubling with each further one, never more
    than ``max_seconds``.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts publishes from 1, got {attempt}")
    return min(max_seconds, base_seconds * 2.0 ** min(attempt - 1, 32))


@dataclass(frozen=True, slots=True)
class BatchBudget:
    """Bounds of one batch: how many readings, and how many bytes once joined.

    A batch always takes its first reading, whatever its size: a reading never waits
    forever because it is large (the contract bounds a reading far below a payload).

    Attributes:
        max_count: readings per batch, at least 1.
        max_bytes: bytes of the readings joined with commas (the envelope's list body).
    """

    max_count: int
    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_count < 1:
            raise ValueError(f"max_count must be at least 1, got {self.max_count}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {self.max_bytes}")

    def fits(self, count: int, joined_bytes: int, sizes: Sequence[int]) -> int:
        """How many of the next readings (of ``sizes`` bytes, in order) still fit after
        ``count`` readings taking ``joined_bytes`` (commas included)."""
        room = self.max_count - count
        if room <= 0 or not sizes:
            return 0
        # Running totals with a comma after every reading, so the limit is max_bytes + 1;
        # accumulate and bisect keep the per-reading work in C (the drain's hot path).
        start = joined_bytes + 1 if count else 0
        totals = list(accumulate(map(add, sizes[:room], repeat(1)), initial=start))
        taken = bisect_right(totals, self.max_bytes + 1, lo=1) - 1
        return max(taken, 1) if count == 0 else taken

    def joined(self, count: int, joined_bytes: int, sizes: Sequence[int]) -> int:
        """Bytes joined with commas after adding readings of ``sizes`` to ``count`` of them."""
        if not sizes:
            return joined_bytes
        return joined_bytes + sum(sizes) + len(sizes) - (0 if count else 1)


_Row = tuple[int, str, bytes, int]
"""rowid, reading id, encoded reading, earlier PUBACKed publishes."""


@dataclass(slots=True)
class _Draft:
    """A batch being collected."""

    rows: list[_Row] = field(default_factory=list)
    joined: int = 0


@dataclass(frozen=True, slots=True)
class Batch:
    """Readings handed to the publisher, in flight until marked sent or requeued.

    Attributes:
        rowids: the outbox rows, oldest first.
        reading_ids: their reading ids.
        encoded: their JSON, exactly as encoded at capture.
        attempts: how many earlier publishes of each row were PUBACKed (0: first publish).
        payload_bytes: bytes of ``encoded`` joined with commas.
    """

    rowids: tuple[int, ...]
    reading_ids: tuple[str, ...]
    encoded: tuple[bytes, ...]
    attempts: tuple[int, ...]
    payload_bytes: int

    def __len__(self) -> int:
        return len(self.rowids)

    @property
    def republished(self) -> int:
        """How many of the readings were published before (their ack timed out)."""
        return sum(1 for attempt in self.attempts if attempt)


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`Outbox.add` did.

    Attributes:
        added: readings stored now.
        duplicates: readings whose id was already in the outbox (a re-download).
        refused_ids: low-value readings refused because the outbox is over quota.
        over_quota: whether the outbox is over quota after the call.
    """

    added: int
    duplicates: int
    refused_ids: tuple[str, ...]
    over_quota: bool


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """The outbox at a glance, for the status message.

    Attributes:
        depth: readings not yet acknowledged end to end.
        oldest_created_at: when the oldest of them was captured, or ``None`` when empty.
        used_bytes: space the backlog occupies (data pages).
        quota_bytes: where low-value telemetry starts being refused.
        ceiling_bytes: where clinical readings are refused too (quota plus reserve).
        over_quota: the quota was reached (clears 5 % below it).
        full: the ceiling is reached: even clinical readings are refused.
        refused_low_value: low-value readings refused since the outbox was opened.
        refused_clinical: clinical readings refused (left on their device) since then.
    """

    depth: int
    oldest_created_at: datetime | None
    used_bytes: int
    quota_bytes: int
    ceiling_bytes: int
    over_quota: bool
    full: bool
    refused_low_value: int
    refused_clinical: int


class Outbox(Protocol):
    """Store-and-forward of readings, acknowledged end to end. Thread-safe."""

    def add(
        self, readings: Sequence[Reading], *, cursor: tuple[str, RecordCursor] | None = None
    ) -> AddResult:
        """Store readings (and a device's cursor) in one transaction; known ids are ignored.

        Raises:
            OutboxFull: at the hard ceiling; nothing was stored, the cursor did not move.
            OutboxError: the database failed.
        """

    def cursor(self, device_id: str) -> RecordCursor | None:
        """The download cursor stored for ``device_id``, if any."""

    def begin_batch(self, max_count: int, max_bytes: int) -> Batch | None:
        """Take the oldest eligible rows (overdue sent rows, then pending) into flight."""

    def mark_sent(self, *batches: Batch) -> None:
        """Record the broker's PUBACK: the rows wait for the end-to-end ack."""

    def requeue(self, batch: Batch) -> None:
        """Return a batch whose publish failed; its rows become eligible at once."""

    def acknowledge(self, reading_ids: Iterable[str]) -> int:
        """Delete rows ingest acknowledged end to end; returns how many were deleted."""

    def stats(self) -> OutboxStats:
        """Depth, age of the oldest row, space and quota state."""

    def close(self) -> None:
        """Close the database."""


def _to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("the outbox clock must return timezone-aware datetimes")
    return round(value.timestamp() * 1000)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _primary_code(exc: sqlite3.Error) -> int:
    return getattr(exc, "sqlite_errorcode", -1) & _SQLITE_PRIMARY_CODE_MASK


class SqliteOutbox:
    """The outbox in one SQLite file (WAL, ``synchronous=FULL``). Thread-safe.

    One process owns an outbox at a time: the in-flight set lives in its memory.

    Args:
        path: the database file (created with its directory if missing).
        quota_bytes: where low-value telemetry starts being refused.
        clock: the current time, timezone-aware.
        reserve_bytes: room above the quota kept for clinical readings.
        ack_timeout_seconds: how long a sent row waits for the end-to-end ack before it
            is published again (doubling with each publish).
        max_ack_timeout_seconds: the ack timeout's upper bound.

    Raises:
        ConfigError: a size or timeout is out of range.
        OutboxCorrupt: the file failed ``integrity_check`` or is not a database.
        OutboxError: the file cannot be opened or was written by another schema version.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        quota_bytes: int,
        clock: Clock,
        reserve_bytes: int = DEFAULT_CLINICAL_RESERVE_BYTES,
        ack_timeout_seconds: float = DEFAULT_ACK_TIMEOUT_SECONDS,
        max_ack_timeout_seconds: float = MAX_ACK_TIMEOUT_SECONDS,
    ) -> None:
        if quota_bytes <= 0:
            raise ConfigError("quota_bytes", f"must be positive, got {quota_bytes}")
        if reserve_bytes < 0:
            raise ConfigError("reserve_bytes", f"must not be negative, got {reserve_bytes}")
        if ack_timeout_seconds <= 0:
            raise ConfigError("ack_timeout_seconds", f"must be positive, got {ack_timeout_seconds}")
        if max_ack_timeout_seconds < ack_timeout_seconds:
            raise ConfigError(
                "max_ack_timeout_seconds",
                f"must be at least ack_timeout_seconds ({ack_timeout_seconds}), "
                f"got {max_ack_timeout_seconds}",
            )
        self.path = Path(path)
        self.quota_bytes = quota_bytes
        self.ceiling_bytes = quota_bytes + reserve_bytes
        self._clock = clock
        self._ack_timeout_seconds = ack_timeout_seconds
        self._max_ack_timeout_seconds = max_ack_timeout_seconds
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._pending_after = 0
        """Every pending row up to this row number is in flight (the pending scan's start)."""
        self._refused_low_value = 0
        self._refused_clinical = 0
        self._db = self._open()
        self._page_size = int(self._pragma("page_size"))
        # Above the ceiling, or above the file as it is if that is larger (a quota lowered
        # in the configuration): a backlog must always be able to record its progress
        # and drain, whatever its size.
        basis = max(self.ceiling_bytes, int(self._pragma("page_count")) * self._page_size)
        headroom = max(MIN_BOOKKEEPING_HEADROOM_BYTES, round(basis * BOOKKEEPING_HEADROOM_FRACTION))
        self._db.execute(f"PRAGMA max_page_count = {-(-(basis + headroom) // self._page_size)}")
        self._depth = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self._max_sent_rowid = int(
            self._db.execute("SELECT coalesce(max(rowid), 0) FROM sent").fetchone()[0]
        )
        """No row after this one is sent (the pending scan may skip looking)."""
        self._over_quota = self._used_bytes() >= quota_bytes
        self._correct_future_retries()

    # -- opening -----------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(self.path, f"cannot create its directory: {exc}") from exc
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"cannot open: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MILLISECONDS}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(self.path, f"cannot use WAL mode (SQLite chose {mode!r})")
            db.execute("PRAGMA synchronous = FULL")
            db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
            problems = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
            if problems != [_HEALTHY_CHECK]:
                raise OutboxCorrupt(self.path, "\n".join(problems))
            self._create_schema(db)
        except sqlite3.DatabaseError as exc:
            db.close()
            if _primary_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                raise OutboxCorrupt(self.path, str(exc)) from exc
            raise OutboxError(self.path, f"cannot open: {exc}") from exc
        except OutboxError:
            db.close()
            raise
        return db

    def _create_schema(self, db: sqlite3.Connection) -> None:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise OutboxError(
                self.path,
                f"schema version {version} is not the version {SCHEMA_VERSION} this gateway "
                "speaks; run the gateway release that wrote it until the outbox is empty",
            )
        # executescript commits any open transaction first, so the script brings its own.
        try:
            db.executescript(
                f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;"
            )
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _correct_future_retries(self) -> None:
        # A clock that stepped back (an RTC reset, an NTP correction) would leave sent rows
        # waiting far beyond any ack timeout; make those eligible now.
        now_ms = _to_ms(self._clock())
        horizon_ms = now_ms + round(self._max_ack_timeout_seconds * 1000)
        with self._write() as db:
            db.execute("UPDATE sent SET retry_at = ? WHERE retry_at > ?", (now_ms, horizon_ms))

    # -- helpers -----------------------------------------------------------------------

    def _pragma(self, name: str) -> int | str:
        value: int | str = self._db.execute(f"PRAGMA {name}").fetchone()[0]
        return value

    def _used_bytes(self) -> int:
        pages = int(self._pragma("page_count")) - int(self._pragma("freelist_count"))
        return pages * self._page_size

    def _update_over_quota(self, used_bytes: int) -> bool:
        if used_bytes >= self.quota_bytes:
            self._over_quota = True
        elif used_bytes < self.quota_bytes * (1 - QUOTA_HYSTERESIS_FRACTION):
            self._over_quota = False
        return self._over_quota

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite error rolls it back and becomes OutboxError.

        ``durable=False`` commits without the fsync (``synchronous=NORMAL`` for this one
        transaction): for bookkeeping whose loss in a power cut costs only a duplicate
        publish, never a reading. The next durable commit fsyncs the WAL it follows.
        ``synchronous=FULL`` is restored on every path out — a BEGIN refused (busy), a
        body or a COMMIT failing (a full disk) — or every later reading and cursor would
        be committed without an fsync.
        """
        if durable:
            with self._transaction() as db:
                yield db
            return
        self._db.execute("PRAGMA synchronous = NORMAL")
        try:
            with self._transaction() as db:
                yield db
        finally:
            self._db.execute("PRAGMA synchronous = FULL")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error; SQLite errors become
        :class:`OutboxError` with the SQLite error as their cause."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(self.path, f"cannot begin a transaction: {exc}") from exc
        try:
            yield self._db
        except BaseException as exc:
            # SQLite rolls back by itself on some errors (a full disk, I/O errors).
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(self.path, f"write failed: {exc}") from exc
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise OutboxError(self.path, f"commit failed: {exc}") from exc

    def _now_ms(self) -> int:
        return _to_ms(self._clock())

    # -- the Outbox protocol -----------------------------------------------------------

    def add(
        self, readings: Sequence[Reading], *, cursor: tuple[str, RecordCursor] | None = None
    ) -> AddResult:
        """Store readings and, in the same transaction, a device's download cursor.

        Each reading is encoded once, here; the publisher sends these bytes as they are.
        Readings whose id is already stored are ignored (re-downloading a meter after a
        reset is harmless). Over quota, low-value readings are refused (see
        :func:`is_clinical`) and counted; the cursor still moves, because telemetry is not
        kept on the device to be fetched again.

        Raises:
            OutboxFull: the hard ceiling is reached; nothing of this call was stored and
                the cursor did not move, so the records stay on the device.
            OutboxError: the database failed; nothing of this call was stored.
        """
        rows = [
            (
                reading.id,
                reading.device_id,
                reading.kind.value,
                encode_reading(reading),
                is_clinical(reading),
            )
            for reading in readings
        ]
        with self._lock:
            used = self._used_bytes()
            over_quota = self._update_over_quota(used)
            refused_ids: tuple[str, ...] = ()
            if over_quota:
                refused_ids = tuple(row[0] for row in rows if not row[4])
                rows = [row for row in rows if row[4]]
            if rows and used >= self.ceiling_bytes:
                self._refused_clinical += len(rows)
                raise OutboxFull(
                    self.path, used_bytes=used, ceiling_bytes=self.ceiling_bytes, refused=len(rows)
                )
            now_ms = self._now_ms()
            try:
                with self._write() as db:
                    added = db.executemany(
                        _INSERT,
                        (
                            (rid, device, kind, encoded, int(clinical), now_ms)
                            for rid, device, kind, encoded, clinical in rows
                        ),
                    ).rowcount
                    if cursor is not None:
                        device_id, record_cursor = cursor
                        last_time = record_cursor.last_device_time
                        db.execute(
                            _UPSERT_CURSOR,
                            (
                                device_id,
                                record_cursor.last_seq,
                                last_time.isoformat() if last_time is not None else None,
                            ),
                        )
            except OutboxError as exc:
                cause = exc.__cause__
                if isinstance(cause, sqlite3.Error) and _primary_code(cause) == sqlite3.SQLITE_FULL:
                    self._refused_clinical += len(rows)
                    raise OutboxFull(
                        self.path,
                        used_bytes=self._used_bytes(),
                        ceiling_bytes=self.ceiling_bytes,
                        refused=len(rows),
                    ) from cause
                raise
            self._refused_low_value += len(refused_ids)
            self._depth += added
            return AddResult(
                added=added,
                duplicates=len(rows) - added,
                refused_ids=refused_ids,
                over_quota=self._update_over_quota(self._used_bytes()),
            )

    def cursor(self, device_id: str) -> RecordCursor | None:
        """The download cursor stored for ``device_id``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT last_seq, last_device_time FROM device_cursors WHERE device_id = ?",
                (device_id,),
            ).fetchone()
        if row is None:
            return None
        last_seq, last_time = row
        return RecordCursor(
            last_seq=last_seq,
            last_device_time=datetime.fromisoformat(last_time) if last_time is not None else None,
        )

    def begin_batch(self, max_count: int, max_bytes: int) -> Batch | None:
        """Take the oldest eligible rows into flight, within ``max_count`` and ``max_bytes``.

        Sent rows whose ack timeout expired come first (they are the oldest), then pending
        rows in the order they were added. Rows already in flight are never handed out
        twice. Returns ``None`` when nothing is eligible.
        """
        budget = BatchBudget(max_count, max_bytes)
        draft = _Draft()
        with self._lock:
            overdue = self._db.execute(_SELECT_OVERDUE, (self._now_ms(),))
            try:
                room_left = self._collect(overdue, budget, draft)
            finally:
                overdue.close()
            if room_left:
                query = (
                    _SELECT_PENDING_AFTER_SENT
                    if self._pending_after >= self._max_sent_rowid
                    else _SELECT_PENDING
                )
                pending = self._db.execute(query, (self._pending_after,))
                try:
                    before = len(draft.rows)
                    self._collect(pending, budget, draft)
                    if len(draft.rows) > before:
                        self._pending_after = draft.rows[-1][0]
                finally:
                    pending.close()
            if not draft.rows:
                return None
            rowids, reading_ids, encoded, attempts = zip(*draft.rows, strict=True)
            self._in_flight.update(rowids)
        return Batch(
            rowids=rowids,
            reading_ids=reading_ids,
            encoded=encoded,
            attempts=attempts,
            payload_bytes=draft.joined,
        )

    def _collect(self, rows: sqlite3.Cursor, budget: BatchBudget, draft: _Draft) -> bool:
        """Add rows to the draft while the budget lasts; False once it is exhausted.

        Reads at most one batch's worth of rows beyond what it takes (bounded memory).
        """
        while True:
            wanted = budget.max_count - len(draft.rows)
            if wanted <= 0:
                return False
            chunk: list[_Row] = rows.fetchmany(wanted)
            if not chunk:
                return True
            if self._in_flight:
                chunk = [row for row in chunk if row[0] not in self._in_flight]
            sizes = [len(row[2]) for row in chunk]
            taken = budget.fits(len(draft.rows), draft.joined, sizes)
            draft.joined = budget.joined(len(draft.rows), draft.joined, sizes[:taken])
            draft.rows.extend(chunk[:taken])
            if taken < len(chunk):
                return False

    def mark_sent(self, *batches: Batch) -> None:
        """Record the broker's PUBACK for these batches, in one transaction.

        Each row becomes *sent* and waits for the end-to-end ack until its ack timeout;
        rows acknowledged meanwhile are simply gone. On an error the batches stay in
        flight: requeue them.

        Raises:
            OutboxError: the database failed; nothing was recorded.
        """
        with self._lock:
            now_ms = self._now_ms()
            retry_at: dict[int, int] = {}
            for batch in batches:
                for attempt in set(batch.attempts):
                    timeout = ack_timeout_seconds(
                        attempt + 1, self._ack_timeout_seconds, self._max_ack_timeout_seconds
                    )
                    retry_at[attempt] = now_ms + round(timeout * 1000)
            params = [
                (now_ms, retry_at[attempt], attempt + 1, first, last)
                for batch in batches
                for first, last, attempt in runs_of(batch.rowids, batch.attempts)
            ]
            # Not fsynced: losing a PUBACK record in a power cut only means the rows are
            # published once more after the restart, with the same ids.
            with self._write(durable=False) as db:
                db.executemany(_MARK_SENT, params)
            self._max_sent_rowid = max(self._max_sent_rowid, max(run[4] for run in params))
            for batch in batches:
                self._in_flight.difference_update(batch.rowids)

    def requeue(self, batch: Batch) -> None:
        """Return a batch whose publish failed: its rows are eligible again at once."""
        with self._lock:
            self._in_flight.difference_update(batch.rowids)
            first_publish = [
                rowid
                for rowid, attempt in zip(batch.rowids, batch.attempts, strict=True)
                if attempt == 0
            ]
            if first_publish:
                self._pending_after = min(self._pending_after, min(first_publish) - 1)

    def acknowledge(self, reading_ids: Iterable[str]) -> int:
        """Delete the rows ingest acknowledged end to end (whatever their state).

        Unknown ids (acknowledged before, or never here) are ignored.

        Raises:
            OutboxError: the database failed; nothing was deleted.
        """
        with self._lock:
            # Not fsynced: a deletion lost in a power cut brings the row back, it is
            # published again and ingest, which stores by identity, acknowledges it again.
            with self._write(durable=False) as db:
                # rowcount leaves out the trigger's deletions from ``sent``.
                deleted = db.executemany(
                    "DELETE FROM outbox WHERE reading_id = ?", ((rid,) for rid in reading_ids)
                ).rowcount
            self._depth -= deleted
        return deleted

    def stats(self) -> OutboxStats:
        """Depth, age of the oldest row, space and quota state (cheap: no table scan)."""
        with self._lock:
            row = self._db.execute(
                "SELECT created_at FROM outbox ORDER BY rowid LIMIT 1"
            ).fetchone()
            used = self._used_bytes()
            return OutboxStats(
                depth=self._depth,
                oldest_created_at=_from_ms(row[0]) if row is not None else None,
                used_bytes=used,
                quota_bytes=self.quota_bytes,
                ceiling_bytes=self.ceiling_bytes,
                over_quota=self._update_over_quota(used),
                full=used >= self.ceiling_bytes,
                refused_low_value=self._refused_low_value,
                refused_clinical=self._refused_clinical,
            )

    def close(self) -> None:
        """Checkpoint the WAL into the database and close it."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
