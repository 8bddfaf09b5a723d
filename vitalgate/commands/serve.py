"""``vitalgate serve``: the VitalGate API over a registry and a reading store.

Example::

    export VITALGATE_API_TOKEN_SECRET="$(cat /etc/vitalgate/token-secret)"
    vitalgate serve --registry postgresql://vitalgate@db/vitalgate \\
        --store influxdb-v1://vitalgate:SECRET@influx:8086/vitalgate \\
        --sms-webhook https://sms.clinic.internal/send --host 127.0.0.1 --port 8000

The signing key comes from ``VITALGATE_API_TOKEN_SECRET`` (or ``--token-secret-file``),
never from a command line another user could read in ``ps``. Put a TLS reverse proxy in front.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from dashboard_api.app import create_app
from dashboard_api.commands import MqttCommandPublisher
from dashboard_api.config import ApiSettings
from dashboard_api.live import AcceptedListener, LiveHub
from dashboard_api.sms import FileSmsSender, SmsSender, WebhookSmsSender
from infra.mqtt import ClientSettings, MqttError, MqttProtocol, TlsSettings, parse_mqtt_url
from infra.settings import is_known_default_secret
from ingest.config import IngestConfigError, load_settings
from ingest.fleet_listener import FleetListener, fleet_client_settings
from ingest.stores import open_store
from ingest.stores.base import StoreError
from ingest.validate import DEFAULT_LIMITS
from registry.db import DEFAULT_REGISTRY_URL, check_schema, create_engine_for
from registry.errors import RegistryError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def serve(
    registry: Annotated[
        str, typer.Option(envvar="VITALGATE_REGISTRY_URL", help="Registry database URL.")
    ] = DEFAULT_REGISTRY_URL,
    store: Annotated[
        str, typer.Option(envvar="VITALGATE_STORE_URL", help="Reading store URL.")
    ] = "sqlite:///./vitalgate-data/readings.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: a free one, printed).")] = 8000,
    token_secret_file: Annotated[
        Path | None, typer.Option(help="File holding the token signing key.")
    ] = None,
    sms_webhook: Annotated[
        str | None, typer.Option(help="URL of the clinic's SMS gateway (JSON POST).")
    ] = None,
    sms_file: Annotated[
        Path | None, typer.Option(help="Write SMS to this file instead (demo, testing).")
    ] = None,
    insecure_cookies: Annotated[
        bool, typer.Option(help="Cookies without Secure, for plain-HTTP loopback only.")
    ] = False,
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            envvar="VITALGATE_API_MQTT_URL",
            help="Broker with ingest's accepted/ topics (mqtts://vitalgate-api:…@host): "
            "feeds the live stream, the gateway fleet state and pairing; without it "
            "/api/v1/stream and pairing answer 503.",
        ),
    ] = None,
    mqtt_protocol: Annotated[str, typer.Option(help="5 or 3.1.1.")] = "5",
    mqtt_ca_file: Annotated[Path | None, typer.Option(help="CA of the broker (PEM).")] = None,
    mqtt_cert_file: Annotated[Path | None, typer.Option(help="Client certificate.")] = None,
    mqtt_key_file: Annotated[Path | None, typer.Option(help="Its key.")] = None,
    ingest_config: Annotated[
        Path | None,
        typer.Option(
            help="The ingest worker's settings file: a quarantine release through the API "
            "is examined with the same plausibility limits as ingest (default: ingest's "
            "defaults)."
        ),
    ] = None,
    fleet: Annotated[
        bool,
        typer.Option(
            help="With --mqtt-url: record gateways' status and events (the fleet listener) "
            "and send pairing commands. Run it in one API process per deployment."
        ),
    ] = True,
    fleet_client_id: Annotated[
        str, typer.Option(help="The fleet listener's fixed MQTT client id (its session).")
    ] = "vitalgate-fleet",
) -> None:
    """Serve the API until interrupted."""
    if token_secret_file is not None:
        os.environ["VITALGATE_API_TOKEN_SECRET"] = token_secret_file.read_text().strip()
    try:
        settings = ApiSettings(secure_cookies=not insecure_cookies)  # type: ignore[call-arg]
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            typer.echo(f"error: VITALGATE_API_{field.upper()}: {error['msg']}", err=True)
        raise typer.Exit(2) from None
    if is_known_default_secret(settings.token_secret.get_secret_value()):
        typer.echo("error: VITALGATE_API_TOKEN_SECRET is a well-known default", err=True)
        raise typer.Exit(2)
    if (sms_webhook is None) == (sms_file is None):
        typer.echo("error: give exactly one of --sms-webhook and --sms-file", err=True)
        raise typer.Exit(2)
    sms: SmsSender = WebhookSmsSender(sms_webhook) if sms_webhook else FileSmsSender(sms_file)  # type: ignore[arg-type]
    try:
        engine = create_engine_for(registry)
        check_schema(engine)
        reading_store = open_store(store)
    except (RegistryError, StoreError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    # The live stream always carries alert changes (tailed from the registry); readings
    # only with a broker to hear them from.
    hub = LiveHub()
    listener = None
    fleet_listener: FleetListener | None = None
    commands: MqttCommandPublisher | None = None
    if mqtt_url:
        try:
            base = ClientSettings(
                endpoint=parse_mqtt_url(mqtt_url),
                client_id=f"vitalgate-api-{os.getpid()}",
                protocol=MqttProtocol(mqtt_protocol),
                tls=TlsSettings(
                    ca_file=mqtt_ca_file, cert_file=mqtt_cert_file, key_file=mqtt_key_file
                )
                if (mqtt_ca_file or mqtt_cert_file)
                else None,
            )
            listener = AcceptedListener(base, hub)
            listener.start()
            if fleet:
                # Same broker user (vitalgate-api may read status/events and write cmd/),
                # separate clients: the fleet's session is persistent, the live feed's not.
                fleet_listener = FleetListener(
                    fleet_client_settings(base, client_id=fleet_client_id), engine
                )
                fleet_listener.start()
                commands = MqttCommandPublisher(
                    replace(base, client_id=f"vitalgate-api-cmd-{os.getpid()}")
                )
                commands.start()
        except (MqttError, ValueError) as exc:
            typer.echo(f"error: MQTT: {exc}", err=True)
            raise typer.Exit(1) from None
    plausibility = DEFAULT_LIMITS
    if ingest_config is not None:
        try:
            plausibility = load_settings(
                config_file=ingest_config, store_url=store, registry_url=registry
            ).plausibility
        except IngestConfigError as exc:
            typer.echo(f"error: --ingest-config: {exc.key}: {exc.problem}", err=True)
            raise typer.Exit(2) from None
    application = create_app(
        settings,
        registry=engine,
        store=reading_store,
        sms=sms,
        live=hub,
        plausibility=plausibility,
        commands=commands,
    )
    config = uvicorn.Config(
        application, host=host, port=port, log_level="info", access_log=False, server_header=False
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        if listener is not None:
            listener.stop()
        if fleet_listener is not None:
            fleet_listener.stop()
        if commands is not None:
            commands.stop()
        reading_store.close()
        engine.dispose()
