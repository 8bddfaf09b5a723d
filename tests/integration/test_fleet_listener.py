"""The fleet listener against a real Mosquitto: a retained status is recorded when the
listener (re)subscribes, a will turns the gateway offline since the moment it arrived,
events published while the listener was away arrive through its persistent session, and
every event is stored exactly once however often it is delivered."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from infra.mqtt import ClientSettings, parse_mqtt_url
from ingest.fleet_listener import FleetListener, fleet_client_settings
from readings.codec import (
    DeviceStatus,
    EventMessage,
    EventType,
    GatewayState,
    StatusMessage,
    encode_message,
)
from readings.topics import events_topic, status_topic
from registry.db import create_engine_for, session_scope, upgrade
from registry.fleet import FleetRepository
from registry.fleet_models import GatewayEventRow
from registry.repositories import GatewayRepository
from tests.fakes import ManualClock
from tests.harness.services import MosquittoServer

pytestmark = pytest.mark.integration

GW = "gw-fleet"
CUFF = "Omron-HEM_7600T-20250001"
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
WAIT_SECONDS = 15.0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    with session_scope(engine) as session:
        GatewayRepository(session).add(GW)
    yield engine
    engine.dispose()


def _client(mosquitto: MosquittoServer, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return client


def _publish(
    mosquitto: MosquittoServer, topic: str, payload: bytes, *, retain: bool = False
) -> None:
    client = _client(mosquitto, "test-publisher")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    info = client.publish(topic, payload, qos=1, retain=retain)
    info.wait_for_publish(WAIT_SECONDS)
    client.disconnect()
    client.loop_stop()


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, "the listener did not record it in time"
        time.sleep(0.05)


def _listener(mosquitto: MosquittoServer, registry: Engine, clock: ManualClock) -> FleetListener:
    base = ClientSettings(endpoint=parse_mqtt_url(mosquitto.url), client_id="unused")
    listener = FleetListener(
        fleet_client_settings(base, client_id="vitalgate-fleet-test"), registry, clock=clock
    )
    listener.start()
    assert listener.subscribed.wait(WAIT_SECONDS), "no SUBACK"
    return listener


def _events(registry: Engine) -> int:
    with session_scope(registry, write=False) as session:
        return session.scalar(select(func.count()).select_from(GatewayEventRow)) or 0


def test_retained_status_will_and_events_are_recorded_once(
    mosquitto: MosquittoServer, registry: Engine
) -> None:
    clock = ManualClock(T0)
    device = DeviceStatus(device_id=CUFF, state="idle", battery_percent=64)
    online = StatusMessage(
        gateway_id=GW, state=GatewayState.ONLINE, at=T0, queue_depth=5, devices=[device]
    )
    # The gateway connected (with its will) and published its retained status before any
    # listener ran.
    gateway = _client(mosquitto, GW)
    will = StatusMessage(gateway_id=GW, state=GatewayState.OFFLINE, at=T0)
    gateway.will_set(status_topic(GW), encode_message(will), qos=1, retain=True)
    gateway.connect(mosquitto.host, mosquitto.port, keepalive=5)
    gateway.loop_start()
    gateway.publish(status_topic(GW), encode_message(online), qos=1, retain=True).wait_for_publish(
        WAIT_SECONDS
    )

    listener = _listener(mosquitto, registry, clock)
    try:
        _wait(lambda: listener.counts.get("status", 0) >= 1)
        with session_scope(registry, write=False) as session:
            status = FleetRepository(session).gateway_status(GW)
        assert status is not None
        assert (status.state, status.queue_depth, status.since_exact) == (
            GatewayState.ONLINE,
            5,
            False,  # found retained: it came online while no listener ran
        )
        # The link dies without DISCONNECT: the broker publishes the will.
        clock.advance(minutes=2)
        gateway.loop_stop()
        gateway.socket().close()
        _wait(lambda: listener.counts.get("status", 0) >= 2)
        with session_scope(registry, write=False) as session:
            status = FleetRepository(session).gateway_status(GW)
        assert status is not None
        assert (status.state, status.since, status.since_exact) == (
            GatewayState.OFFLINE,
            T0.replace(minute=2),
            True,
        )
        assert status.last_seen_at == T0
    finally:
        listener.stop()

    # Events while the listener is away wait in its persistent session; one is delivered
    # twice (as after a lost PUBACK), byte for byte the same.
    battery = encode_message(
        EventMessage(
            gateway_id=GW,
            at=T0,
            event=EventType.BATTERY_LOW,
            device_id=CUFF,
            detail={"battery_percent": 9},
        )
    )
    _publish(mosquitto, events_topic(GW), battery)
    _publish(mosquitto, events_topic(GW), battery)
    clock.advance(hours=1)
    listener = _listener(mosquitto, registry, clock)
    try:
        _wait(lambda: listener.counts.get("duplicate_event", 0) >= 1)
        # The retained offline status arrived again: it changes nothing of "since".
        _wait(lambda: listener.counts.get("status", 0) >= 1)
        assert listener.counts.get("event") == 1
    finally:
        listener.stop()
    assert _events(registry) == 1
    with session_scope(registry, write=False) as session:
        fleet = FleetRepository(session)
        status = fleet.gateway_status(GW)
        cuff = fleet.device_statuses([CUFF])[CUFF]
    assert status is not None
    assert status.since == T0.replace(minute=2)
    assert (cuff.battery_percent, cuff.battery_low_at) == (9, T0)
