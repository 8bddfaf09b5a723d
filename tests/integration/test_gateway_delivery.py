"""The gateway delivers through a real Mosquitto to a consumer that acks end to end.

Outbox (SQLite) → publisher (paho, MQTT 5 or 3.1.1) → Mosquitto → test consumer, which
acknowledges on ``gw/{id}/ack`` like ingest: every reading arrives, rows leave the
outbox only when acknowledged, the status is retained (and offline on a clean stop),
commands reach their handler, and a full disk is announced without losing a clinical
reading.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.errors import OutboxFull
from gateway.outbox import SqliteOutbox
from gateway.publisher import BrokerSettings, MqttProtocol, Publisher, PublisherSettings
from readings.codec import DeviceStatus, EventType, GatewayState, SyncTimeCommand, encode_message
from readings.topics import command_topic
from tests.gateway.consumer import AckingConsumer
from tests.harness.services import MosquittoServer
from tests.tools.synthetic import SyntheticBurst, SyntheticKind, run_burst, synthetic_ids

pytestmark = pytest.mark.integration

GATEWAY = "gw-delivery"
WAIT_SECONDS = 30.0
CONNECT_WAIT_SECONDS = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def running_publisher(
    outbox: SqliteOutbox, broker: MosquittoServer, **overrides: Any
) -> Iterator[Publisher]:
    protocol = overrides.pop("protocol", MqttProtocol.V5)
    callbacks = {
        key: overrides.pop(key) for key in ("device_statuses", "on_command") if key in overrides
    }
    settings = PublisherSettings(
        gateway_id=GATEWAY,
        broker=BrokerSettings(host=broker.host, port=broker.port, protocol=protocol),
        reconnect_min_seconds=0.2,
        reconnect_max_seconds=1.0,
        **overrides,
    )
    publisher = Publisher(settings, outbox, **callbacks)
    publisher.start()
    try:
        assert publisher.wait_connected(CONNECT_WAIT_SECONDS), "publisher did not connect"
        yield publisher
    finally:
        publisher.stop()


@pytest.fixture
def consumer(mosquitto: MosquittoServer) -> Iterator[AckingConsumer]:
    acking = AckingConsumer(mosquitto.host, mosquitto.port, watch_status=True)
    acking.start()
    yield acking
    acking.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    box = SqliteOutbox(tmp_path / "outbox.db", quota_bytes=10**9, clock=utc_now)
    yield box
    box.close()


@pytest.mark.parametrize("protocol", [MqttProtocol.V5, MqttProtocol.V311])
def test_a_backlog_arrives_once_by_identity_and_leaves_the_outbox_on_ack(
    mosquitto: MosquittoServer,
    consumer: AckingConsumer,
    outbox: SqliteOutbox,
    protocol: MqttProtocol,
) -> None:
    burst = SyntheticBurst(count=3000, gateway_id=GATEWAY)
    run_burst(burst, outbox, clock=utc_now)

    with running_publisher(
        outbox, mosquitto, protocol=protocol, batch_max_readings=200
    ) as publisher:
        assert consumer.wait_for_ids(synthetic_ids(burst), WAIT_SECONDS)
        assert consumer.wait_until(lambda _c: outbox.stats().depth == 0, WAIT_SECONDS)
        counters = publisher.counters()

    assert consumer.received_ids() == synthetic_ids(burst)
    assert counters.readings_acknowledged == 3000
    assert counters.batches_published == 15
    assert consumer.errors == []


def test_status_is_retained_online_then_offline_on_a_clean_stop(
    mosquitto: MosquittoServer, consumer: AckingConsumer, outbox: SqliteOutbox
) -> None:
    run_burst(SyntheticBurst(count=10, gateway_id=GATEWAY), outbox, clock=utc_now)
    device = DeviceStatus(
        device_id="Roche-Accu_Chek_Guide-92310000123", state="idle", battery_percent=15
    )

    with running_publisher(outbox, mosquitto, device_statuses=lambda: [device]):
        assert consumer.wait_until(
            lambda c: any(s.state is GatewayState.ONLINE for s in c.statuses), WAIT_SECONDS
        )
        online = next(s for s in consumer.statuses if s.state is GatewayState.ONLINE)
    assert consumer.wait_until(lambda c: c.statuses[-1].state is GatewayState.OFFLINE, WAIT_SECONDS)

    assert online.gateway_id == GATEWAY
    assert online.queue_depth is not None
    assert online.outbox_quota_bytes == 10**9
    assert online.devices == [device]
    # a newcomer sees the retained offline status
    late = AckingConsumer(mosquitto.host, mosquitto.port, watch_status=True)
    late.start()
    try:
        assert late.wait_until(lambda c: bool(c.retained_statuses), WAIT_SECONDS)
        assert late.retained_statuses[-1].state is GatewayState.OFFLINE
    finally:
        late.stop()


def test_commands_reach_the_handler(mosquitto: MosquittoServer, outbox: SqliteOutbox) -> None:
    received: list[tuple[str, bytes]] = []
    arrived = threading.Event()

    def on_command(topic: str, payload: bytes) -> None:
        received.append((topic, payload))
        arrived.set()

    with running_publisher(outbox, mosquitto, on_command=on_command):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        try:
            payload = encode_message(SyncTimeCommand())
            client.publish(command_topic(GATEWAY, "sync_time"), payload, qos=1).wait_for_publish(5)
            assert arrived.wait(WAIT_SECONDS)
        finally:
            client.disconnect()
            client.loop_stop()

    assert received == [(command_topic(GATEWAY, "sync_time"), payload)]


def test_disk_quota_is_announced_and_no_clinical_reading_is_dropped(
    mosquitto: MosquittoServer, consumer: AckingConsumer, tmp_path: Path
) -> None:
    # The clinic stops acknowledging, so the outbox fills: first with a heart-rate
    # stream (telemetry) past the quota, then with a meter's records up to the ceiling.
    outbox = SqliteOutbox(
        tmp_path / "quota.db", quota_bytes=256 * 1024, reserve_bytes=128 * 1024, clock=utc_now
    )
    # ≈ 600 bytes of disk per row: the quota holds ≈ 450 rows, the reserve ≈ 220 more,
    # and what the meter still holds after the ceiling fits once the backlog is gone.
    stream = SyntheticBurst(count=3000, gateway_id=GATEWAY, kind=SyntheticKind.HEART_RATE)
    meter = SyntheticBurst(count=600, gateway_id=GATEWAY, serial="meter-1")
    consumer.pause_acks()
    try:
        with running_publisher(outbox, mosquitto):
            run_burst(stream, outbox, clock=utc_now)
            over_quota = outbox.stats()
            with pytest.raises(OutboxFull):
                run_burst(meter, outbox, clock=utc_now)
            stopped_at = outbox.cursor(meter.device_id)
            assert stopped_at is not None
            assert stopped_at.last_seq is not None

            # the status says so, and events were published
            assert consumer.wait_until(
                lambda c: any(s.over_quota for s in c.statuses), WAIT_SECONDS
            )
            assert consumer.wait_until(
                lambda c: {e.detail.get("level") for e in c.events} >= {"quota", "ceiling"},
                WAIT_SECONDS,
            )

            # the clinic acknowledges again: the backlog drains, the condition clears,
            # and the meter's remaining records are fetched from where it stopped
            consumer.resume_acks()
            assert consumer.wait_until(
                lambda c: any(e.event is EventType.OUTBOX_BELOW_QUOTA for e in c.events),
                WAIT_SECONDS,
            )
            assert consumer.wait_until(lambda c: not c.statuses[-1].over_quota, WAIT_SECONDS)
            run_burst(meter, outbox, clock=utc_now)
            assert consumer.wait_for_ids(synthetic_ids(meter), WAIT_SECONDS)
            assert consumer.wait_until(lambda _c: outbox.stats().depth == 0, WAIT_SECONDS)
    finally:
        outbox.close()

    assert stopped_at.last_seq < meter.count - 1  # the ceiling really stopped the download
    stream_ids = consumer.received_ids() & synthetic_ids(stream)
    assert over_quota.refused_low_value > 0
    assert len(stream_ids) + over_quota.refused_low_value == stream.count
    ceiling_events = [e for e in consumer.events if e.detail.get("level") == "ceiling"]
    assert ceiling_events[0].detail["refused_clinical"] >= 1
    assert consumer.errors == []
