"""Backup and restore of a deployment: the care registry and the reading store.

Each part is copied with the tool its database is meant to be copied with, because only
that tool gives a consistent copy of a live database:

* a SQLite registry or reading store: SQLite's online backup API (a consistent snapshot
  while ingest keeps writing);
* a PostgreSQL registry: ``pg_dump --format=custom``, restored with ``pg_restore`` (the
  audit table's append-only trigger is restored after its rows, as pg_dump orders it);
* an InfluxDB 1.x reading store: ``influxd backup -portable`` over InfluxDB's RPC port
  (8088 by default; ``--influx-rpc`` names another), restored with ``influxd restore
  -portable`` into a server that does not have the database yet.

Each backup directory holds a ``manifest.json``: when it was taken, the registry's schema
revision, every registry table's row count and a digest of its rows, the audit chain's
head, and the number and digest of the reading ids. ``verify`` compares a running
deployment with it, so a restore is checked, not assumed: every reading, every registry
row (alerts, visits, audit), and an audit chain that still verifies.

InfluxDB 2.x stores are not handled here: use ``influx backup`` / ``influx restore`` (its
own, token-authenticated tools) and run ``verify`` afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from sqlalchemy import Engine, MetaData, inspect, select

from ingest.stores import open_store
from registry.audit import chain_head, verify_audit_log
from registry.db import check_schema, create_engine_for, current_revision, session_scope
from vitalgate.errors import VitalgateError

MANIFEST: Final = "manifest.json"
MANIFEST_FORMAT: Final = 1
DEFAULT_INFLUX_RPC_PORT: Final = 8088
"""InfluxDB 1.x's backup/restore (RPC) service port unless its ``bind-address`` says otherwise."""
TOOL_TIMEOUT_SECONDS: Final = 3600.0
"""A generous bound for pg_dump / influxd backup of a city's data; a hung tool must end."""


class BackupError(VitalgateError):
    """A backup, restore or verification cannot be done; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class TableState:
    """What a registry table held: how many rows, and a digest of their content."""

    rows: int
    digest: str


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """The facts a backup records and a restore must reproduce."""

    schema_revision: str | None
    tables: Mapping[str, TableState]
    audit_head: str | None
    """``SEQ:HASH`` of the audit chain's last row, or None when the log is empty."""
    readings: int
    readings_digest: str

    def differences(self, other: DeploymentState) -> list[str]:
        """What differs from ``other``, in words; empty when they are the same."""
        found: list[str] = []
        if self.schema_revision != other.schema_revision:
            found.append(f"schema revision {other.schema_revision} != {self.schema_revision}")
        for name in sorted(set(self.tables) | set(other.tables)):
            mine, theirs = self.tables.get(name), other.tables.get(name)
            if mine != theirs:
                found.append(
                    f"table {name}: {_rows(theirs)} rows now, {_rows(mine)} in the backup"
                    + (" (same count, different content)" if _rows(mine) == _rows(theirs) else "")
                )
        if self.audit_head != other.audit_head:
            found.append(f"audit head {other.audit_head} != {self.audit_head}")
        if (self.readings, self.readings_digest) != (other.readings, other.readings_digest):
            found.append(f"readings: {other.readings} now, {self.readings} in the backup")
        return found


def _rows(state: TableState | None) -> int:
    return 0 if state is None else state.rows


# -- reading the state ---------------------------------------------------------------


def registry_state(engine: Engine) -> tuple[str | None, dict[str, TableState], str | None]:
    """Schema revision, per-table row counts and digests, and the audit head."""
    check_schema(engine)
    metadata = MetaData()
    metadata.reflect(engine)
    tables: dict[str, TableState] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            digest = hashlib.sha256()
            count = 0
            for row in connection.execute(select(table).order_by(*order)):
                digest.update(_canonical_row(dict(row._mapping)))
                count += 1
            tables[table.name] = TableState(rows=count, digest=digest.hexdigest())
    with session_scope(engine, write=False) as session:
        head = chain_head(session)
    return (
        current_revision(engine),
        tables,
        None if head is None else f"{head.seq}:{head.row_hash}",
    )


def _canonical_row(row: Mapping[str, Any]) -> bytes:
    def value(item: Any) -> Any:
        if isinstance(item, datetime):
            # SQLite gives naive UTC, PostgreSQL aware: the same instant either way.
            aware = item if item.tzinfo else item.replace(tzinfo=UTC)
            return aware.astimezone(UTC).isoformat()
        if isinstance(item, date):
            return item.isoformat()
        if isinstance(item, bytes | memoryview):
            return bytes(item).hex()
        return item

    return json.dumps({k: value(v) for k, v in sorted(row.items())}, default=str).encode() + b"\n"


def store_state(store_url: str) -> tuple[int, str]:
    """How many readings the store holds and a digest of their sorted ids."""
    store = open_store(store_url)
    try:
        ids = sorted(store.ids())
    finally:
        store.close()
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    return len(ids), digest


def deployment_state(registry_url: str, store_url: str) -> DeploymentState:
    """The facts of a running deployment that a backup records."""
    engine = create_engine_for(registry_url)
    try:
        revision, tables, head = registry_state(engine)
    finally:
        engine.dispose()
    readings, digest = store_state(store_url)
    return DeploymentState(revision, tables, head, readings, digest)


# -- backup --------------------------------------------------------------------------


def create_backup(
    registry_url: str, store_url: str, out: Path, *, influx_rpc: str | None = None
) -> DeploymentState:
    """Copy the registry and the reading store into the new directory ``out``.

    The manifest is computed from the live deployment just before the copies; a backup of
    a deployment that keeps writing may then hold *more* than the manifest says, never
    less (``verify`` after a restore reports it).
    """
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out}: not empty; a backup goes into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    state = deployment_state(registry_url, store_url)
    registry_part = _backup_registry(registry_url, out)
    store_part = _backup_store(store_url, out, influx_rpc)
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "registry": registry_part,
        "store": store_part,
        "state": _state_to_json(state),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return state


def _backup_registry(url: str, out: Path) -> str:
    scheme = urlsplit(url).scheme
    if scheme.startswith("sqlite"):
        _sqlite_copy(_sqlite_path(url, "registry"), out / "registry.sqlite")
        return "sqlite"
    if scheme.startswith("postgresql"):
        _run(["pg_dump", "--format=custom", "--file", str(out / "registry.pgdump"),
              "--dbname", _libpq(url)], "pg_dump", _pg_password(url))  # fmt: skip
        return "postgresql"
    raise BackupError(f"registry: cannot back up a {scheme!r} database")


def _backup_store(url: str, out: Path, influx_rpc: str | None) -> str:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        _sqlite_copy(_sqlite_path(url, "store"), out / "readings.sqlite")
        return "sqlite"
    if parts.scheme == "influxdb-v1":
        rpc = influx_rpc or f"{parts.hostname}:{DEFAULT_INFLUX_RPC_PORT}"
        database = unquote(parts.path.strip("/"))
        _run(["influxd", "backup", "-portable", "-host", rpc, "-database", database,
              str(out / "influxdb")], "influxd backup")  # fmt: skip
        return "influxdb-v1"
    raise BackupError(
        f"store: {parts.scheme!r} stores are backed up with their own tools "
        "(InfluxDB 2: influx backup); run `vitalgate backup verify` after restoring"
    )


# -- restore -------------------------------------------------------------------------


def restore_backup(
    source: Path, registry_url: str, store_url: str, *, influx_rpc: str | None = None
) -> list[str]:
    """Restore ``source`` into an empty registry and store; return what differs afterwards.

    Refuses a registry that already has tables or a SQLite file that exists: a restore
    never merges into, or overwrites, a deployment.
    """
    manifest = read_manifest(source)
    registry_kind, store_kind = manifest["registry"], manifest["store"]
    _restore_registry(registry_kind, source, registry_url)
    _restore_store(store_kind, source, store_url, influx_rpc)
    expected = _state_from_json(manifest["state"])
    after = deployment_state(registry_url, store_url)
    problems = expected.differences(after)
    problems.extend(audit_problems(registry_url))
    return problems


def read_manifest(source: Path) -> dict[str, Any]:
    """The manifest of a backup directory."""
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source}: no readable {MANIFEST}: {exc}") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{source}: manifest format {manifest.get('format')!r} is not known")
    return manifest


def _restore_registry(kind: str, source: Path, url: str) -> None:
    scheme = urlsplit(url).scheme
    if kind == "sqlite" and scheme.startswith("sqlite"):
        target = _sqlite_path(url, "registry")
        if target.exists():
            raise BackupError(f"registry: {target} exists; restore into a new file")
        _sqlite_copy(source / "registry.sqlite", target)
        return
    if kind == "postgresql" and scheme.startswith("postgresql"):
        engine = create_engine_for(url)
        try:
            if inspect(engine).get_table_names():
                raise BackupError(
                    "registry: the target database has tables; restore into an empty one"
                )
        finally:
            engine.dispose()
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
              "--dbname", _libpq(url), str(source / "registry.pgdump")], "pg_restore",
             _pg_password(url))  # fmt: skip
        return
    raise BackupError(f"registry: a {kind} backup cannot be restored into a {scheme!r} database")


def _restore_store(kind: str, source: Path, url: str, influx_rpc: str | None) -> None:
    parts = urlsplit(url)
    if kind == "sqlite" and parts.scheme == "sqlite":
        target = _sqlite_path(url, "store")
        if target.exists():
            raise BackupError(f"store: {target} exists; restore into a new file")
        _sqlite_copy(source / "readings.sqlite", target)
        return
    if kind == "influxdb-v1" and parts.scheme == "influxdb-v1":
        rpc = influx_rpc or f"{parts.hostname}:{DEFAULT_INFLUX_RPC_PORT}"
        manifest_db = unquote(parts.path.strip("/"))
        _run(["influxd", "restore", "-portable", "-host", rpc, "-db", _backed_up_db(source),
              "-newdb", manifest_db, str(source / "influxdb")], "influxd restore")  # fmt: skip
        return
    raise BackupError(f"store: a {kind} backup cannot be restored into a {parts.scheme!r} store")


def _backed_up_db(source: Path) -> str:
    # influxd restore needs the database name as it was backed up; the manifest of the
    # portable backup lists it.
    manifests = sorted((source / "influxdb").glob("*.manifest"))
    if not manifests:
        raise BackupError(f"{source / 'influxdb'}: no InfluxDB backup manifest")
    data = json.loads(manifests[0].read_text(encoding="utf-8"))
    databases = {entry["database"] for entry in data.get("files", [])}
    if len(databases) != 1:
        raise BackupError(f"{manifests[0]}: expected one database, found {sorted(databases)}")
    return str(databases.pop())


# -- verify --------------------------------------------------------------------------


def verify_backup(source: Path, registry_url: str, store_url: str) -> list[str]:
    """Compare a running deployment with a backup's manifest; list the differences."""
    expected = _state_from_json(read_manifest(source)["state"])
    problems = expected.differences(deployment_state(registry_url, store_url))
    problems.extend(audit_problems(registry_url))
    return problems


def audit_problems(registry_url: str) -> list[str]:
    """The audit chain's problems, in words (empty when it verifies)."""
    engine = create_engine_for(registry_url)
    try:
        with session_scope(engine, write=False) as session:
            return [f"audit: {problem}" for problem in verify_audit_log(session)]
    finally:
        engine.dispose()


# -- helpers -------------------------------------------------------------------------


def _state_to_json(state: DeploymentState) -> dict[str, Any]:
    data = asdict(state)
    data["tables"] = {name: asdict(table) for name, table in state.tables.items()}
    return data


def _state_from_json(data: Mapping[str, Any]) -> DeploymentState:
    return DeploymentState(
        schema_revision=data["schema_revision"],
        tables={name: TableState(**table) for name, table in data["tables"].items()},
        audit_head=data["audit_head"],
        readings=data["readings"],
        readings_digest=data["readings_digest"],
    )


def _sqlite_path(url: str, part: str) -> Path:
    prefix = url.split("://", 1)[0] + ":///"
    if not url.startswith(prefix) or url == prefix or ":memory:" in url:
        raise BackupError(f"{part}: {url.split('?')[0]!r} is not a SQLite file URL")
    return Path(unquote(url[len(prefix) :].split("?", 1)[0]))


def _sqlite_copy(source: Path, target: Path) -> None:
    if not source.exists():
        raise BackupError(f"{source}: no such SQLite database")
    target.parent.mkdir(parents=True, exist_ok=True)
    # The online backup API copies a consistent snapshot while other connections write.
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    # Not a WAL file of the copy's own: a restored deployment opens it like any other.
    sqlite3.connect(target).close()


def _libpq(url: str) -> str:
    """The URL for libpq tools, without its password (that goes in PGPASSWORD, not argv,
    where any user of the host could read it in the process list)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[-1]
    user = netloc[0].split(":", 1)[0] if len(netloc) == 2 else ""
    # SQLAlchemy's driver suffix (postgresql+psycopg://) is not libpq's.
    return f"postgresql://{user + '@' if user else ''}{host}{parts.path}" + (
        f"?{parts.query}" if parts.query else ""
    )


def _pg_password(url: str) -> dict[str, str]:
    password = urlsplit(url).password
    return {"PGPASSWORD": unquote(password)} if password else {}


def _run(command: Iterable[str], tool: str, env: Mapping[str, str] | None = None) -> None:
    argv = list(command)
    if shutil.which(argv[0]) is None:
        raise BackupError(f"{tool}: {argv[0]} is not installed")
    try:
        done = subprocess.run(  # noqa: S603 - fixed tool, arguments from configuration
            argv,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{tool}: no answer within {TOOL_TIMEOUT_SECONDS:.0f} s") from exc
    if done.returncode != 0:
        # The tools' messages name files and databases, never row content; keep the tail.
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackupError(f"{tool} failed ({done.returncode}): {' / '.join(tail)}")


__all__ = [
    "BackupError",
    "DeploymentState",
    "TableState",
    "audit_problems",
    "create_backup",
    "deployment_state",
    "read_manifest",
    "restore_backup",
    "verify_backup",
]
