"""``vitalgate alerts run``: the alert worker — evaluator, lifecycle and escalation.

One process per worker index; several share the partitions through leases in the
registry. It consumes ``accepted/{partition}`` of the partitions it holds, records alerts
through the lifecycle, and runs due escalation steps and visit reminders (APScheduler only
wakes them).
"""

from __future__ import annotations

import json
import signal
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from readings.topics import DEFAULT_PARTITIONS


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run(
    registry: Annotated[
        str, typer.Option(envvar="VITALGATE_REGISTRY_URL", help="Registry URL.")
    ] = "sqlite:///./vitalgate-data/registry.db",
    store: Annotated[
        str, typer.Option(envvar="VITALGATE_STORE_URL", help="Reading store URL.")
    ] = "sqlite:///./vitalgate-data/readings.db",
    mqtt_url: Annotated[
        str, typer.Option(envvar="VITALGATE_ALERTS_MQTT_URL", help="Broker URL.")
    ] = "mqtt://127.0.0.1:1883",
    mqtt_protocol: Annotated[str, typer.Option(help="5 or 3.1.1.")] = "5",
    worker_index: Annotated[int, typer.Option(help="Index of this worker on its host.")] = 0,
    partitions: Annotated[
        int, typer.Option(help="Partitions of accepted/ (ingest's setting).")
    ] = DEFAULT_PARTITIONS,
    rules_file: Annotated[
        Path | None, typer.Option("--rules", help="Rule file (default: the shipped rules).")
    ] = None,
    notify_file: Annotated[
        Path | None,
        typer.Option(
            help="Write SMS, voice, WeChat and e-mail messages to this file instead of "
            "sending them (demo, testing; mode 0600)."
        ),
    ] = None,
    lease_seconds: Annotated[float, typer.Option(help="Partition lease length.")] = 30.0,
    metrics_port: Annotated[
        int | None, typer.Option(help="Prometheus /metrics port on 127.0.0.1 (none: off).")
    ] = 9490,
) -> None:
    """Run the alert worker until SIGTERM or Ctrl-C."""
    from alerts.assembly import assemble_worker
    from alerts.notify.inbox import InboxNotifier
    from alerts.pipeline import FileNotifier
    from alerts.rules.loader import default_rules, load_rules
    from alerts.scheduler import wake_worker
    from alerts.service import EvaluatorService
    from infra.mqtt import ClientSettings, MqttProtocol, parse_mqtt_url
    from ingest.stores import open_store
    from registry.db import check_schema, create_engine_for

    engine = create_engine_for(registry)
    check_schema(engine)
    reading_store = open_store(store)
    rules = load_rules(rules_file) if rules_file else default_rules()
    holder = f"{socket.gethostname()}-alerts-{worker_index}"
    # The in-app inbox is the alerts table itself (the pages list it); the notifier only
    # records the delivery. Other channels: a file in the demo, webhooks in production.
    notifiers: dict[str, object] = {"inbox": InboxNotifier(lambda _event: None)}
    if notify_file is not None:
        for channel in ("sms", "voice", "wechat", "email"):
            notifiers[channel] = FileNotifier(channel, notify_file)
    parts = assemble_worker(
        engine,
        reading_store,
        rules=rules,
        notifiers=notifiers,  # type: ignore[arg-type]
        holder=holder,
        clock=_utc_now,
        partitions=partitions,
        lease_ttl=timedelta(seconds=lease_seconds),
    )
    settings = ClientSettings(
        endpoint=parse_mqtt_url(mqtt_url),
        client_id=f"vitalgate-alerts-{worker_index}",
        protocol=MqttProtocol(mqtt_protocol),
        persistent_session=True,
        session_expiry_seconds=7 * 24 * 3600,
        manual_ack=True,
    )
    from prometheus_client import start_http_server

    from alerts.metrics import AlertMetrics, registry_metrics

    metrics = AlertMetrics()
    registry_metrics(engine, metrics.registry)
    if metrics_port is not None:
        # Loopback only: the endpoint is unauthenticated (see docs/operations.md).
        start_http_server(metrics_port, addr="127.0.0.1", registry=metrics.registry)
    service = EvaluatorService(parts.evaluator, settings, metrics=metrics)
    scheduler = wake_worker(parts.escalation, visit_reminders=parts.visit_reminders)

    def stop(signum: int, frame: FrameType | None) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    typer.echo(json.dumps({"alerts": "running", "holder": holder, "partitions": partitions}))
    try:
        service.run()
    finally:
        scheduler.shutdown(wait=False)
        reading_store.close()
        engine.dispose()
