"""The test harness itself: real Mosquitto and InfluxDB start, serve, and survive faults.

These double as executable documentation of the service behaviour the fault tests
build on: SIGKILL/restart on the same port, SIGSTOP/SIGCONT.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.harness.services import (
    InfluxDBServer,
    MosquittoFactory,
    MosquittoServer,
    mqtt_connack_received,
)

pytestmark = pytest.mark.integration

# Every wait in these tests is bounded; a healthy local service answers in milliseconds.
EVENT_TIMEOUT_SECONDS = 5.0
# paho's reconnect delay is in whole seconds (int); 1 s is its minimum useful value.
RECONNECT_MIN_DELAY_SECONDS = 1
RECONNECT_MAX_DELAY_SECONDS = 2
# Long enough to be sure a paused broker is not merely slow to CONNACK.
PAUSED_CONNECT_WAIT_SECONDS = 1.0
MQTT_KEEPALIVE_SECONDS = 10
# More than Mosquitto's stock max_queued_messages (1000), which the harness raises.
OFFLINE_BACKLOG_MESSAGES = 1500
OFFLINE_SESSION_EXPIRY_SECONDS = 300
# Published once the backlog is drained: the next message after what the broker kept.
# A sentinel instead of "no message for N seconds", which a loaded CI machine breaks.
END_OF_BACKLOG = b"end-of-backlog"
DELIVERY_DEADLINE_SECONDS = 15.0


class MqttProbe:
    """A paho 2.x MQTT v5 client that records connects and received messages.

    It subscribes in ``on_connect`` so that subscriptions come back after every
    automatic reconnect.
    """

    def __init__(
        self,
        broker: MosquittoServer,
        subscribe_to: str | None = None,
        *,
        client_id: str | None = None,
        session_expiry_seconds: int = 0,
    ) -> None:
        self.broker = broker
        self.subscribe_to = subscribe_to
        # MQTT v5: the session (subscriptions, queued messages) outlives the connection
        # only with clean_start=False and a non-zero session expiry interval.
        self.session_expiry_seconds = session_expiry_seconds
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"vg-harness-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.reconnect_delay_set(RECONNECT_MIN_DELAY_SECONDS, RECONNECT_MAX_DELAY_SECONDS)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.connect_count = 0
        self.session_present = False

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            return
        self.connect_count += 1
        self.session_present = flags.session_present
        self.disconnected.clear()
        if self.subscribe_to is not None:
            client.subscribe(self.subscribe_to, qos=1)
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.disconnected.set()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if all(not code.is_failure for code in reason_codes):
            self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def start(self) -> MqttProbe:
        """Connect with the network loop in a background thread (auto-reconnect on)."""
        properties = None
        if self.session_expiry_seconds:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.session_expiry_seconds
        self.client.connect(
            self.broker.host,
            self.broker.port,
            keepalive=MQTT_KEEPALIVE_SECONDS,
            clean_start=not self.session_expiry_seconds,
            properties=properties,
        )
        self.client.loop_start()
        return self

    def wait_ready(self) -> None:
        """Wait for CONNACK and, if subscribing, SUBACK."""
        assert self.connected.wait(EVENT_TIMEOUT_SECONDS), "no CONNACK"
        if self.subscribe_to is not None:
            assert self.subscribed.wait(EVENT_TIMEOUT_SECONDS), "no SUBACK"

    def publish_qos1(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait (bounded) for the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=EVENT_TIMEOUT_SECONDS)
        assert info.is_published(), f"no PUBACK for {topic} (rc={info.rc})"

    def next_message(self) -> mqtt.MQTTMessage:
        """The next received message, failing after the event timeout."""
        try:
            return self.messages.get(timeout=EVENT_TIMEOUT_SECONDS)
        except queue.Empty:
            pytest.fail(f"no message within {EVENT_TIMEOUT_SECONDS} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mqtt_probes() -> Iterator[list[MqttProbe]]:
    """Collects probes so that every client is disconnected even when a test fails."""
    probes: list[MqttProbe] = []
    yield probes
    for probe in probes:
        probe.close()


def _probe(
    probes: list[MqttProbe],
    broker: MosquittoServer,
    subscribe_to: str | None = None,
    **kwargs: Any,
) -> MqttProbe:
    probe = MqttProbe(broker, subscribe_to, **kwargs)
    probes.append(probe)
    probe.start().wait_ready()
    return probe


def _topic() -> str:
    return f"vitalgate/test/{uuid.uuid4().hex}"


def test_mosquitto_delivers_qos1_message(
    mosquitto: MosquittoServer, mqtt_probes: list[MqttProbe]
) -> None:
    topic = _topic()
    subscriber = _probe(mqtt_probes, mosquitto, subscribe_to=topic)
    publisher = _probe(mqtt_probes, mosquitto)

    publisher.publish_qos1(topic, b"systolic=128")

    message = subscriber.next_message()
    assert (message.topic, message.payload, message.qos) == (topic, b"systolic=128", 1)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    assert mosquitto.port not in (1883, 8883)


def test_mosquitto_config_raises_queue_limits_and_accepts_overrides(
    mosquitto_factory: MosquittoFactory,
) -> None:
    broker = mosquitto_factory(extra_config=["max_queued_messages 1000"])
    config = broker.config_path.read_text()

    assert "max_queued_messages 1000\n" in config
    assert "max_queued_messages 1000000" not in config, "override must replace the default"
    assert "max_queued_bytes 0" in config
    assert f"persistence_location {broker.data_dir}/" in config


@pytest.mark.parametrize(
    ("extra_config", "expect_all"),
    [((), True), (("max_queued_messages 1000",), False)],
    ids=["harness-queue-limits", "stock-limit-1000-drops"],
)
def test_mosquitto_queue_limit_for_offline_session(
    mosquitto_factory: MosquittoFactory,
    mqtt_probes: list[MqttProbe],
    extra_config: tuple[str, ...],
    expect_all: bool,
) -> None:
    """The harness broker keeps a >1000 backlog; Mosquitto's stock limit silently drops."""
    broker = mosquitto_factory(extra_config=list(extra_config))
    topic, client_id = _topic(), f"vg-ingest-{uuid.uuid4().hex[:8]}"
    expiry = OFFLINE_SESSION_EXPIRY_SECONDS
    # Subscribe with a persistent session, then go offline: the broker queues for us.
    _probe(
        mqtt_probes, broker, subscribe_to=topic, client_id=client_id, session_expiry_seconds=expiry
    ).close()

    publisher = _probe(mqtt_probes, broker)
    infos = [
        publisher.client.publish(topic, str(i).encode(), qos=1)
        for i in range(OFFLINE_BACKLOG_MESSAGES)
    ]
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    for info in infos:
        info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
    # Every message got its PUBACK, whether or not the broker then kept it.
    assert all(info.is_published() for info in infos)

    consumer = _probe(mqtt_probes, broker, client_id=client_id, session_expiry_seconds=expiry)
    assert consumer.session_present
    # Mosquitto's stock limit keeps the oldest 1000 and drops the rest without telling anyone.
    kept = OFFLINE_BACKLOG_MESSAGES if expect_all else 1000
    deadline = time.monotonic() + DELIVERY_DEADLINE_SECONDS
    received: list[bytes] = []
    while len(received) < kept:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(received)} of {kept} kept messages arrived"
        with contextlib.suppress(queue.Empty):
            received.append(bytes(consumer.messages.get(timeout=remaining).payload))
    assert received == [str(i).encode() for i in range(kept)]

    # Nothing beyond what was kept is still on its way: the sentinel comes next.
    publisher.publish_qos1(topic, END_OF_BACKLOG)
    assert consumer.next_message().payload == END_OF_BACKLOG


def test_influxdb_point_reads_back(influxdb: InfluxDBServer, influx_database: str) -> None:
    influxdb.write_lines(
        influx_database,
        "blood_pressure,patient=p1 systolic=128i,diastolic=84i 1700000000",
        precision="s",
    )

    rows = influxdb.series_values(
        influx_database, "SELECT systolic, diastolic FROM blood_pressure WHERE patient = 'p1'"
    )

    assert rows == [[1_700_000_000 * 10**9, 128, 84]]
    assert influxdb.port not in (8086, 8088)
    assert influxdb.rpc_port not in (8086, 8088)


@pytest.mark.fault
def test_mosquitto_sigkill_restart_same_port_client_reconnects(
    mosquitto: MosquittoServer, mqtt_probes: list[MqttProbe]
) -> None:
    topic = _topic()
    client = _probe(mqtt_probes, mosquitto, subscribe_to=topic)
    port, old_pid = mosquitto.port, mosquitto.pid

    mosquitto.kill()
    assert client.disconnected.wait(EVENT_TIMEOUT_SECONDS), "client did not notice the kill"
    mosquitto.start()

    assert (mosquitto.port, mosquitto.url) == (port, f"mqtt://127.0.0.1:{port}")
    assert mosquitto.pid not in (None, old_pid)
    # paho's own loop reconnects (reconnect_on_failure) and on_connect resubscribes.
    client.wait_ready()
    assert client.connect_count == 2
    client.publish_qos1(topic, b"after-restart")
    assert client.next_message().payload == b"after-restart"


@pytest.mark.fault
def test_influxdb_sigkill_keeps_acknowledged_points(influxdb_fresh: InfluxDBServer) -> None:
    server = influxdb_fresh
    server.create_database("vitals")
    batches, per_batch = 5, 100
    base_s = 1_700_000_000
    for batch in range(batches):
        lines = "\n".join(
            f"heart_rate,patient=p{i % 3} bpm={60 + i % 40}i {base_s + batch * per_batch + i}"
            for i in range(per_batch)
        )
        # write_lines raises unless 204: every point counted below was acknowledged.
        server.write_lines("vitals", lines, precision="s")
    port = server.port

    server.kill()
    server.start()

    assert server.port == port
    rows = server.series_values("vitals", "SELECT count(bpm) FROM heart_rate")
    assert rows[0][1] == batches * per_batch


@pytest.mark.fault
def test_mosquitto_sigstop_blocks_connect_until_sigcont(
    mosquitto: MosquittoServer, mqtt_probes: list[MqttProbe]
) -> None:
    mosquitto.pause()
    try:
        # The kernel still completes the TCP handshake (listen backlog), so only the
        # MQTT-level CONNACK shows the broker is frozen.
        assert not mqtt_connack_received(mosquitto.host, mosquitto.port, 0.5)
        pending = MqttProbe(mosquitto)
        mqtt_probes.append(pending)
        started = time.monotonic()
        pending.start()
        assert not pending.connected.wait(PAUSED_CONNECT_WAIT_SECONDS)
        assert time.monotonic() - started >= PAUSED_CONNECT_WAIT_SECONDS
    finally:
        mosquitto.resume()

    # The CONNECT queued while frozen is answered once the broker runs again.
    assert pending.connected.wait(EVENT_TIMEOUT_SECONDS), "no CONNACK after SIGCONT"
    topic = _topic()
    subscriber = _probe(mqtt_probes, mosquitto, subscribe_to=topic)
    pending.publish_qos1(topic, b"after-resume")
    assert subscriber.next_message().payload == b"after-resume"


def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            current = conn.execute(sqlalchemy.text("SELECT current_database()")).scalar_one()
            tables = conn.execute(
                sqlalchemy.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert postgres_url.rsplit("/", 1)[1] == current
    assert current.startswith("vitalgate_test_")
    assert tables == 0
