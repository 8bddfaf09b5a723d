"""``vitalgate ingest``: run an ingest worker (MQTT → validate → ownership → store → ack)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from ingest.config import IngestConfigError, IngestSettings, load_settings
from ingest.metrics import MetricsServer, start_metrics_server
from ingest.stores.base import StoreConfigError, StoreError
from ingest.worker import IngestConnectError, IngestWorker, IngestWorkerFailed, open_worker
from registry.errors import MigrationError, RegistryError, RegistryUnavailable

app = typer.Typer(help="Run the ingest worker (MQTT → stores).", no_args_is_help=True)

EXIT_BAD_INPUT = 2
EXIT_RUNTIME_FAILURE = 1
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
WAIT_SLICE_SECONDS = 0.5
"""The main thread wakes this often so signals are handled promptly."""


@app.callback()
def ingest() -> None:
    """The ingest worker: reads gateway batches, stores them, acknowledges end to end."""


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _settings(**options: object) -> IngestSettings:
    try:
        return load_settings(**options)
    except IngestConfigError as exc:
        raise _fail(f"configuration error:\n{exc}", EXIT_BAD_INPUT) from None


def _open(settings: IngestSettings) -> IngestWorker:
    try:
        return open_worker(settings)
    except (StoreConfigError, MigrationError) as exc:
        raise _fail(f"cannot start ingest: {exc}", EXIT_BAD_INPUT) from None
    except (StoreError, RegistryUnavailable) as exc:
        raise _fail(f"cannot start ingest: {exc}", EXIT_RUNTIME_FAILURE) from None
    except RegistryError as exc:
        raise _fail(f"cannot start ingest: {exc}", EXIT_BAD_INPUT) from None


@app.command()
def run(
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            help="Broker: mqtt:// or mqtts://user:password@host:port (user, port optional)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="Reading store: sqlite:///path, influxdb-v1://host:port/db or "
            "influxdb://TOKEN@host:port?org=ORG&bucket=BUCKET."
        ),
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="Care registry database URL (SQLAlchemy).")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Shared-subscription group the workers split work in.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML or YAML file with any ingest setting.")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus /metrics port on 127.0.0.1 (0: any free one).")
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(help="MQTT client id; keep it fixed across restarts of this worker."),
    ] = None,
    worker_index: Annotated[
        int | None, typer.Option(help="Index of this worker on its host (default client id).")
    ] = None,
    mqtt_protocol: Annotated[
        str | None,
        typer.Option(help="'5' (default) or '3.1.1' for brokers without MQTT 5 (one worker)."),
    ] = None,
) -> None:
    """Run one worker until SIGTERM or Ctrl-C; the current batch is finished first.

    Prints one JSON line saying where it listens. Options override the environment
    (VITALGATE_INGEST_*), which overrides the --config file.
    """
    settings = _settings(
        config_file=config,
        mqtt_url=mqtt_url,
        store_url=store,
        registry_url=registry,
        group=group,
        metrics_port=metrics_port,
        client_id=client_id,
        worker_index=worker_index,
        mqtt_protocol=mqtt_protocol,
    )
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    worker = _open(settings)
    metrics_server: MetricsServer | None = None
    try:
        if settings.metrics_port is not None:
            try:
                metrics_server = start_metrics_server(
                    worker.metrics, settings.metrics_port, settings.metrics_address
                )
            except OSError as exc:
                raise _fail(
                    f"cannot serve metrics on {settings.metrics_address}:{settings.metrics_port}: "
                    f"{exc.strerror}",
                    EXIT_BAD_INPUT,
                ) from None
        _stop_on_signals(worker)
        try:
            worker.start()
        except IngestConnectError as exc:
            raise _fail(str(exc), EXIT_RUNTIME_FAILURE) from None
        endpoint = settings.mqtt_endpoint
        typer.echo(
            json.dumps(
                {
                    "event": "listening",
                    "broker": f"{endpoint.host}:{endpoint.port}",
                    "client_id": settings.mqtt_client_id,
                    "subscription": worker.subscription,
                    "metrics_url": metrics_server.url if metrics_server else None,
                }
            )
        )
        while not worker.wait(WAIT_SLICE_SECONDS):
            pass
    finally:
        try:
            worker.close()
        except IngestWorkerFailed as exc:
            raise _fail(f"ingest stopped: {exc}", EXIT_RUNTIME_FAILURE) from None
        finally:
            if metrics_server is not None:
                metrics_server.close()


def _stop_on_signals(worker: IngestWorker) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
