"""``vitalgate backup create | restore | verify``: copies of a deployment, checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from registry.db import DEFAULT_REGISTRY_URL
from registry.errors import RegistryError
from vitalgate.backup import (
    BackupError,
    create_backup,
    restore_backup,
    verify_backup,
)

app = typer.Typer(no_args_is_help=True)

EXIT_DIFFERS = 1
EXIT_UNUSABLE = 2

RegistryUrl = Annotated[
    str,
    typer.Option(
        envvar="VITALGATE_REGISTRY_URL", help="Registry URL (sqlite:/// or postgresql://)."
    ),
]
StoreUrl = Annotated[
    str,
    typer.Option(
        envvar="VITALGATE_STORE_URL", help="Reading store URL (sqlite:/// or influxdb-v1://)."
    ),
]
InfluxRpc = Annotated[
    str | None,
    typer.Option(help="InfluxDB 1.x backup service HOST:PORT (default: the store's host:8088)."),
]


@app.callback()
def _group() -> None:
    """Back up and restore the registry and the reading store; verify a restore."""


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(EXIT_UNUSABLE)


@app.command("create")
def create(
    out: Annotated[Path, typer.Option(help="New directory for the backup.")],
    registry: RegistryUrl = DEFAULT_REGISTRY_URL,
    store: StoreUrl = "sqlite:///./vitalgate-data/readings.db",
    influx_rpc: InfluxRpc = None,
) -> None:
    """Copy the registry and the store into OUT, with a manifest of what they hold."""
    try:
        state = create_backup(registry, store, out, influx_rpc=influx_rpc)
    except (BackupError, RegistryError) as exc:
        raise _fail(exc) from exc
    rows = sum(table.rows for table in state.tables.values())
    typer.echo(
        json.dumps(
            {
                "backup": str(out),
                "registry_rows": rows,
                "readings": state.readings,
                "audit_head": state.audit_head,
            }
        )
    )


@app.command("restore")
def restore(
    source: Annotated[Path, typer.Option("--from", help="Backup directory.")],
    registry: RegistryUrl = DEFAULT_REGISTRY_URL,
    store: StoreUrl = "sqlite:///./vitalgate-data/readings.db",
    influx_rpc: InfluxRpc = None,
) -> None:
    """Restore a backup into an EMPTY registry and store, then verify it against its manifest."""
    try:
        problems = restore_backup(source, registry, store, influx_rpc=influx_rpc)
    except (BackupError, RegistryError) as exc:
        raise _fail(exc) from exc
    _report(problems, "restored and verified")


@app.command("verify")
def verify(
    source: Annotated[Path, typer.Option("--from", help="Backup directory.")],
    registry: RegistryUrl = DEFAULT_REGISTRY_URL,
    store: StoreUrl = "sqlite:///./vitalgate-data/readings.db",
) -> None:
    """Compare a deployment with a backup's manifest: every row, every reading, the audit chain."""
    try:
        problems = verify_backup(source, registry, store)
    except (BackupError, RegistryError) as exc:
        raise _fail(exc) from exc
    _report(problems, "matches the backup")


def _report(problems: list[str], ok: str) -> None:
    for problem in problems:
        typer.echo(f"DIFFERS {problem}")
    if problems:
        typer.echo(f"{len(problems)} difference(s)", err=True)
        raise typer.Exit(EXIT_DIFFERS)
    typer.echo(ok)
