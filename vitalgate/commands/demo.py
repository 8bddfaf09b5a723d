"""``vitalgate demo``: a whole simulated deployment on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run a whole simulated deployment on this machine.")


@app.callback(invoke_without_command=True)
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the SQLite stores, the gateway's outbox and logs.",
            show_default="./vitalgate-data",
        ),
    ] = None,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Use this MQTT broker (e.g. Mosquitto) instead of the embedded one."),
    ] = None,
    mqtt_protocol: Annotated[
        str | None,
        typer.Option(help="'5' or '3.1.1' (default: 3.1.1 for the embedded broker, else 5)."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Reading store URL, e.g. influxdb-v1://127.0.0.1:8086/vitalgate "
            "(default: SQLite in the data folder)."
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            help="Registry URL, e.g. postgresql://user@127.0.0.1/vitalgate "
            "(default: SQLite in the data folder)."
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds.", min=1)
    ] = None,
    live: Annotated[
        bool, typer.Option("--live/--no-live", help="Live table, or plain lines (logs, CI).")
    ] = True,
) -> None:
    """Start a broker, the registry and store, a simulated home (a real gateway process
    with simulated devices) and ingest; show readings arriving per patient until Ctrl-C.
    """
    from vitalgate.demo import DemoError, DemoOptions, default_data_dir, run_demo

    options = DemoOptions(
        data_dir=data_dir or default_data_dir(),
        mqtt_url=mqtt_url,
        mqtt_protocol=mqtt_protocol,
        store_url=store,
        registry_url=registry,
        duration_seconds=duration,
        live=live,
    )
    try:
        run_demo(options)
    except DemoError as exc:
        typer.echo(f"demo: {exc}", err=True)
        raise typer.Exit(1) from None
