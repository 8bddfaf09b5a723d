"""Engines, sessions and migrations of the care registry.

Two backends: SQLite (the default, embedded deployments and tests) and PostgreSQL through
psycopg 3 (production). :func:`create_engine_for` configures each for durability;
:func:`upgrade` brings a database to the newest schema with the Alembic migrations shipped
inside this package (no ``alembic.ini`` needed). Processes that only use the registry
(ingest, the dashboard) call :func:`check_schema` at start-up instead of migrating.

Adding a migration (developers)::

    from alembic import command
    from registry.db import alembic_config, create_engine_for
    with create_engine_for(url).begin() as connection:
        config = alembic_config(connection)
        command.revision(config, message="what changes", autogenerate=True)
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

# The care model's tables belong to the same metadata: import them wherever engines exist.
from registry import alert_models as _alert_models  # noqa: F401
from registry import care_models as _care_models  # noqa: F401
from registry import evaluation_models as _evaluation_models  # noqa: F401
from registry import fleet_models as _fleet_models  # noqa: F401
from registry import incident_models as _incident_models  # noqa: F401
from registry import notification_prefs_models as _notification_prefs_models  # noqa: F401
from registry import symptom_models as _symptom_models  # noqa: F401
from registry import triage_models as _triage_models  # noqa: F401 - their tables are in Base
from registry import visit_models as _visit_models  # noqa: F401 - their tables are in Base
from registry import visit_reminder_models as _visit_reminder_models  # noqa: F401
from registry import visit_schedule_models as _visit_schedule_models  # noqa: F401
from registry.audit import refuse_audit_rewrites
from registry.errors import InvalidRegistryInput, MigrationError, RegistryUnavailable

DEFAULT_REGISTRY_URL: Final = "sqlite:///./vitalgate-data/registry.db"
"""Where ``vitalgate registry`` commands look when no ``--registry`` is given."""

MIGRATIONS_DIRECTORY: Final = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_SECONDS: Final = 15.0
"""How long a writer waits for SQLite's single write lock. Writers hold it for one short
transaction (a quarantine batch, an operator command), so waiting is far cheaper than
failing an ingest batch; 15 s still surfaces a lock held by a stuck process."""

SQLITE_WAL_RETRY_SECONDS: Final = 0.05
"""Pause between attempts to switch a file another process holds locked to WAL."""

SQLITE_MIGRATION_LOCK_WAIT_SECONDS: Final = 300.0
"""How long a process waits for another one's migration of the same SQLite file. Migrating
from scratch copies tables and fsyncs each step, which on a slow or loaded disk takes longer
than an ordinary writer's wait; the wait ends as soon as the other migration commits."""

POSTGRES_MIGRATION_LOCK_KEY: Final = 0x5647_5245_4749  # "VGREGI"
"""Advisory lock taken while migrating PostgreSQL, so two processes started together
(an operator's ``init`` and a deploy script) cannot both create the tables."""

_SQLITE_BEGIN_OPTION: Final = "vitalgate_sqlite_begin"
_SQLITE_IMMEDIATE: Final = "IMMEDIATE"
_POSTGRES_DRIVER: Final = "psycopg"


UNREACHABLE_ERRORS: Final = (OperationalError, InterfaceError)
"""Driver errors that mean "the database cannot serve us now" rather than a bug."""


def unavailable(exc: DBAPIError) -> RegistryUnavailable:
    """Translate a connection-level driver error, keeping only its first line.

    The full text of a driver error can contain the SQL and its parameters (patient ids);
    the first line is the driver's own reason.
    """
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    return RegistryUnavailable(lines[0] if lines else type(exc).__name__)


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidRegistryInput("url", f"not a database URL: {exc}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise InvalidRegistryInput("url", f"SQLite driver {driver!r} is not supported")
        return parsed
    if backend in ("postgresql", "postgres"):
        if driver not in ("", _POSTGRES_DRIVER):
            raise InvalidRegistryInput(
                "url", f"PostgreSQL driver {driver!r} is not supported: use postgresql+psycopg://"
            )
        return parsed.set(drivername=f"postgresql+{_POSTGRES_DRIVER}")
    raise InvalidRegistryInput(
        "url", f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://..."
    )


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def create_engine_for(url: str) -> Engine:
    """An engine for the registry at ``url``, configured for durability.

    SQLite: WAL journal, ``synchronous=FULL`` (a commit survives power loss, not only a
    crash), foreign keys enforced, SQLAlchemy in control of ``BEGIN`` so that reads are
    repeatable and DDL is transactional, and writers that wait for the lock. An in-memory
    URL (``sqlite://``) gives one shared connection, for tests of other packages.
    PostgreSQL: psycopg 3 (``postgresql://`` is rewritten to ``postgresql+psycopg://``),
    connections checked before use so a restarted server costs no failed request.

    Raises:
        InvalidRegistryInput: the URL is malformed or names an unsupported database.
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True)
        _refuse_audit_rewrites(engine)
        return engine
    if _is_sqlite_memory(parsed):
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    _refuse_audit_rewrites(engine)
    return engine


def _refuse_audit_rewrites(engine: Engine) -> None:
    # The audit log is append-only: see registry.audit.
    event.listen(engine, "before_cursor_execute", refuse_audit_rewrites)


def _configure_sqlite_connection(dbapi_connection: Any, _record: object) -> None:
    connection: sqlite3.Connection = dbapi_connection
    # Take BEGIN away from the sqlite3 module: it would skip it before SELECT and DDL.
    connection.isolation_level = None
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    # Switching a new file to WAL needs an exclusive lock and SQLite does not wait for it
    # (no busy handler): a second process opening the file while the first migrates it is
    # refused at once with "database is locked". Retry until the ordinary busy timeout.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(SQLITE_WAL_RETRY_SECONDS)


def _begin_sqlite_transaction(connection: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that read first and
    # then writes fails at once (SQLITE_BUSY) when another writer committed meanwhile,
    # instead of waiting for the lock.
    mode = connection.get_execution_options().get(_SQLITE_BEGIN_OPTION)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == _SQLITE_IMMEDIATE else "BEGIN")


def _set_busy_timeout(connection: Connection, seconds: float) -> None:
    # On the DB-API connection itself: through SQLAlchemy this would begin a transaction.
    dbapi_connection: Any = connection.connection.driver_connection
    dbapi_connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


def writer(engine: Engine) -> Engine:
    """``engine`` set up for transactions that write (on SQLite: ``BEGIN IMMEDIATE``)."""
    return engine.execution_options(**{_SQLITE_BEGIN_OPTION: _SQLITE_IMMEDIATE})


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """One transaction as an ORM session: committed when the block ends, else rolled back.

    Args:
        engine: from :func:`create_engine_for`.
        write: the block changes data (takes SQLite's write lock at ``BEGIN``).
    """
    bind = writer(engine) if write else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration for the shipped migrations, built in code.

    Args:
        connection: the connection the migration environment runs on; required by every
            command that touches a database.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationError("no migrations are shipped with the registry package")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, ``None`` for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this code expects.

    Raises:
        MigrationError: the database was never initialised, is behind (run
            ``vitalgate registry init``) or is ahead (this code is older than the database).
        RegistryUnavailable: the database cannot be reached.
    """
    try:
        revision = current_revision(engine)
    except UNREACHABLE_ERRORS as exc:
        raise unavailable(exc) from exc
    head = head_revision()
    if revision == head:
        return
    if revision is None:
        raise MigrationError(
            "the registry database is not initialised: run `vitalgate registry init`"
        )
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if revision in known:
        raise MigrationError(
            f"the registry schema is at revision {revision}, this code needs {head}: "
            "run `vitalgate registry init` to migrate",
            revision=revision,
        )
    raise MigrationError(
        f"the registry schema is at revision {revision}, unknown to this code "
        f"(newest known: {head}): upgrade VitalGate",
        revision=revision,
    )


def upgrade(target: str | Engine) -> str:
    """Migrate the registry to the newest schema; a database already there is left as is.

    For a SQLite file URL the parent directory is created if missing. Safe to run from two
    processes at once: SQLite's write lock or a PostgreSQL advisory lock serialises them.

    Args:
        target: a registry URL, or an engine from :func:`create_engine_for` (needed for an
            in-memory SQLite registry, which lives only as long as its engine).

    Returns:
        The revision the database is now at.

    Raises:
        InvalidRegistryInput: the URL is malformed or unsupported.
        RegistryUnavailable: the database cannot be reached or is locked.
        MigrationError: the migration failed (nothing of it was committed).
    """
    if isinstance(target, str):
        engine = create_engine_for(target)
        ensure_sqlite_directory(engine.url)
        try:
            return _upgrade(engine)
        finally:
            engine.dispose()
    return _upgrade(target)


def ensure_sqlite_directory(url: URL) -> None:
    """Create the directory of a SQLite registry file if missing (other URLs: nothing).

    Raises:
        MigrationError: the directory cannot be created.
    """
    if url.get_backend_name() != "sqlite" or url.database is None or _is_sqlite_memory(url):
        return
    directory = Path(url.database).expanduser().parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MigrationError(f"cannot create the registry directory {directory}: {exc}") from exc


def _upgrade(engine: Engine) -> str:
    try:
        with writer(engine).connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # Set before BEGIN IMMEDIATE, which is what waits for the other migrator.
                _set_busy_timeout(connection, SQLITE_MIGRATION_LOCK_WAIT_SECONDS)
            try:
                with connection.begin():
                    if not sqlite:
                        connection.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": POSTGRES_MIGRATION_LOCK_KEY},
                        )
                    command.upgrade(alembic_config(connection), "head")
            finally:
                if sqlite:
                    _set_busy_timeout(connection, SQLITE_BUSY_TIMEOUT_SECONDS)
    except UNREACHABLE_ERRORS as exc:
        raise unavailable(exc) from exc
    except (SQLAlchemyError, CommandError) as exc:
        raise MigrationError(f"migrating the registry failed: {exc}") from exc
    return head_revision()
