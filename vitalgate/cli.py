"""The ``vitalgate`` command.

Subcommand groups are imported only when used: ``vitalgate --help`` stays fast, and a
gateway box, installed without the server extra, can run ``vitalgate gateway`` without
the modules that ``vitalgate ingest`` needs.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from typer import _click as click  # typer ≥ 0.29 vendors click; its classes are these
from typer.core import TyperGroup


@dataclass(frozen=True, slots=True)
class LazyGroup:
    """A subcommand group imported on first use."""

    module: str
    help: str
    extra: str | None = None
    """The distribution extra its imports need, named in the error when they are missing."""
    attribute: str = "app"
    """The module's Typer application."""


LAZY_GROUPS: Final[dict[str, LazyGroup]] = {
    "decode": LazyGroup(
        "vitalgate.commands.decode", "Decode device bytes (GATT, OneTouch, ASTM) to readings."
    ),
    "devices": LazyGroup(
        "vitalgate.commands.devices", "Supported device models, and devices in range."
    ),
    "gateway": LazyGroup(
        "vitalgate.commands.gateway",
        "Run the home gateway; pair and unpair devices.",
        extra="gateway",
    ),
    "ingest": LazyGroup(
        "vitalgate.commands.ingest", "Run the ingest worker (MQTT → stores).", extra="server"
    ),
    "registry": LazyGroup(
        "vitalgate.commands.registry",
        "The care registry: gateways, patients, device bindings.",
        extra="server",
    ),
    "users": LazyGroup(
        "vitalgate.commands.care",
        "Accounts of staff, patients and family members.",
        extra="server",
        attribute="users_app",
    ),
    "care": LazyGroup(
        "vitalgate.commands.care",
        "Care teams, contracts, the duty rota and family consent.",
        extra="server",
        attribute="care_app",
    ),
    "serve": LazyGroup(
        "vitalgate.commands.serve", "Serve the API (and later the pages).", extra="server"
    ),
    "audit": LazyGroup(
        "vitalgate.commands.audit", "The audit log: verify its hash chain.", extra="server"
    ),
    "backup": LazyGroup(
        "vitalgate.commands.backup",
        "Back up and restore the registry and the reading store; verify a restore.",
        extra="server",
    ),
    "quarantine": LazyGroup(
        "vitalgate.commands.quarantine",
        "What ingest quarantined and why; release it once the cause is fixed.",
        extra="server",
    ),
    "alerts": LazyGroup(
        "vitalgate.commands.alerts", "Alert rules: check rule files, backtest them over readings."
    ),
    "summary": LazyGroup("vitalgate.commands.summary", "Summaries from files.", extra="server"),
    "report": LazyGroup(
        "vitalgate.commands.report", "One patient's one-page PDF report.", extra="server"
    ),
    "export": LazyGroup(
        "vitalgate.commands.export", "Export a patient's data: FHIR Bundle or CSV.", extra="server"
    ),
    "demo": LazyGroup(
        "vitalgate.commands.demo",
        "Run a whole simulated deployment on this machine.",
        extra="all",
    ),
}


class _LazyTyperGroup(TyperGroup):
    """Lists lazy groups from their static help; imports a group only to run it."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_GROUPS})

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = LAZY_GROUPS.get(cmd_name)
        if lazy is None:
            return super().get_command(ctx, cmd_name)
        if self._listing:
            return TyperGroup(name=cmd_name, help=lazy.help)
        try:
            module = importlib.import_module(lazy.module)
        except ModuleNotFoundError as exc:
            if exc.name is None or lazy.module.startswith(exc.name):
                raise
            hint = f" Install it with: pip install 'vitalgate[{lazy.extra}]'." if lazy.extra else ""
            typer.echo(
                f"'vitalgate {cmd_name}' needs the package {exc.name!r}, "
                f"which is not installed.{hint}",
                err=True,
            )
            raise typer.Exit(2) from None
        command = typer.main.get_command(getattr(module, lazy.attribute))
        command.name = cmd_name
        return command


app = typer.Typer(
    name="vitalgate",
    cls=_LazyTyperGroup,
    help="VitalGate: home monitoring of chronic disease, from the meter to the doctor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

wire_app = typer.Typer(
    help="The wire contract: check payloads, write the JSON Schema.", no_args_is_help=True
)
app.add_typer(wire_app, name="wire")


@app.command()
def version() -> None:
    """Print the VitalGate version."""
    from vitalgate import __version__

    typer.echo(__version__)


@wire_app.command("check")
def wire_check(
    source: Annotated[
        str, typer.Argument(help="Payload file, or '-' to read standard input.", metavar="FILE|-")
    ],
) -> None:
    """Validate a readings payload against the contract.

    Prints the decoded readings as JSON, or every error with the field it names (and exits
    with status 1). For anyone building a third-party gateway.
    """
    from readings.codec import decode_readings_partial, reading_to_builtins
    from readings.errors import PayloadError

    payload = _read_source(source)
    try:
        decoded = decode_readings_partial(payload)
    except PayloadError as error:
        typer.echo(f"invalid payload: {error.field}: {error.problem}", err=True)
        raise typer.Exit(1) from None
    for rejected in decoded.rejected:
        typer.echo(f"invalid reading: {rejected.error.field}: {rejected.error.problem}", err=True)
    if decoded.rejected:
        raise typer.Exit(1)
    document: list[dict[str, Any]] = []
    for reading in decoded.readings:
        item = reading_to_builtins(reading)
        item["kind"] = reading.kind.value
        document.append(item)
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))


@wire_app.command("schema")
def wire_schema(
    out: Annotated[Path, typer.Option(help="Folder to write the *.schema.json files into.")] = Path(
        "docs/schema"
    ),
) -> None:
    """Write the contract's JSON Schema files (generated from the models)."""
    from readings.schema import all_schemas

    out.mkdir(parents=True, exist_ok=True)
    for name, schema in all_schemas().items():
        (out / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        typer.echo(str(out / name))


def _read_source(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {source}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    """Entry point of the ``vitalgate`` console script."""
    app()
