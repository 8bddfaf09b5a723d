"""A really full outbox database for tests: SQLite itself answers SQLITE_FULL.

``PRAGMA max_page_count`` caps how many pages the outbox's own connection may give the
database file. Capped at the pages it has now, every write that needs a new page fails
inside SQLite exactly as on a disk with no space left (``SQLITE_FULL``, "database or disk
is full"), while writes that fit in free pages still succeed, as they do on a real full
disk. No wrapper stands between the outbox and SQLite.
"""

from __future__ import annotations

import sqlite3

from gateway.outbox import SqliteOutbox


class FullDatabase:
    """Makes a live outbox's database full, and lets it grow again.

    Thread-safe with the outbox: every statement runs under the outbox's own lock.
    """

    def __init__(self, outbox: SqliteOutbox) -> None:
        self._outbox = outbox
        self._limit_before: int | None = None

    def _connection(self) -> sqlite3.Connection:
        # The outbox's own connection: max_page_count and synchronous are per connection.
        return self._outbox._db

    def fill(self) -> None:
        """From now on the database cannot grow by a single page."""
        with self._outbox._lock:
            db = self._connection()
            self._limit_before = int(db.execute("PRAGMA max_page_count").fetchone()[0])
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            db.execute(f"PRAGMA max_page_count = {pages}")

    def release(self) -> None:
        """The space is back: the limit the outbox set for itself applies again."""
        if self._limit_before is None:
            raise RuntimeError("release() without fill()")
        with self._outbox._lock:
            self._connection().execute(f"PRAGMA max_page_count = {self._limit_before}")
        self._limit_before = None

    def synchronous(self) -> int:
        """The outbox connection's ``PRAGMA synchronous`` (2 is FULL, 1 NORMAL)."""
        with self._outbox._lock:
            return int(self._connection().execute("PRAGMA synchronous").fetchone()[0])

    def set_busy_timeout(self, milliseconds: int) -> None:
        """How long the outbox waits for another connection's lock before SQLITE_BUSY."""
        with self._outbox._lock:
            self._connection().execute(f"PRAGMA busy_timeout = {milliseconds}")
