"""A test consumer that plays ingest's part of the delivery contract.

It subscribes to every gateway's readings (QoS 1, persistent session), records each
reading id it receives (duplicates counted too), and acknowledges end to end on
``gw/{id}/ack`` as ingest does after a durable write. Acking can be paused (the held
acknowledgements go out on resume). Optionally it also records statuses and events.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from readings.codec import (
    MAX_IDS_PER_ACK,
    AckMessage,
    EventMessage,
    StatusMessage,
    decode_envelope,
    decode_message,
    encode_message,
)
from readings.topics import (
    ALL_EVENTS_FILTER,
    ALL_READINGS_FILTER,
    ALL_STATUS_FILTER,
    Channel,
    ack_topic,
    parse_topic,
)

# The broker keeps the consumer's session (and the readings queued for it) this long.
SESSION_EXPIRY_SECONDS = 3600
# paho's reconnect delays are whole seconds; a test's broker comes back within seconds.
RECONNECT_MIN_DELAY_SECONDS = 1
RECONNECT_MAX_DELAY_SECONDS = 2
CONNECT_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05


class _IdOnly(msgspec.Struct):
    id: str


class _IdsEnvelope(msgspec.Struct):
    gateway_id: str
    readings: list[_IdOnly]


_IDS_DECODER = msgspec.json.Decoder(_IdsEnvelope)


class AckingConsumer:
    """Ingest's part of the contract, for tests and benchmarks.

    Args:
        host: broker host.
        port: broker port.
        validate: decode every envelope with the contract's decoder (slower, proves the
            payload is well-formed); otherwise only ids are read.
        watch_status: also record statuses and events of every gateway.
        client_id: fixed client id (a persistent session is keyed by it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        validate: bool = True,
        watch_status: bool = False,
        client_id: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.validate = validate
        self.watch_status = watch_status
        self.client_id = client_id or f"vg-test-ingest-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Condition()
        self._ids: Counter[str] = Counter()
        self._acked: set[str] = set()
        self._held: list[tuple[str, list[str]]] = []
        self._paused = False
        self.messages = 0
        self.statuses: list[StatusMessage] = []
        self.retained_statuses: list[StatusMessage] = []
        self.events: list[EventMessage] = []
        self.errors: list[str] = []
        self._connected = threading.Event()
        self._client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        client.reconnect_delay_set(RECONNECT_MIN_DELAY_SECONDS, RECONNECT_MAX_DELAY_SECONDS)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Connect (persistent session) and wait until the broker confirmed the subscription."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        self._client.connect_async(
            self.host, self.port, keepalive=30, clean_start=False, properties=properties
        )
        self._client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_SECONDS):
            raise TimeoutError(f"consumer could not connect to {self.host}:{self.port}")

    def stop(self) -> None:
        """Disconnect (the broker keeps the session) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        # A fresh client for a later start(): paho's state machine is single-use here.
        self._client = self._new_client()

    @property
    def connected(self) -> bool:
        """Whether the consumer is connected and subscribed."""
        return self._connected.is_set()

    def wait_connected(self, timeout_seconds: float) -> bool:
        """Block until connected and subscribed."""
        return self._connected.wait(timeout_seconds)

    # -- acking ---------------------------------------------------------------------

    def pause_acks(self) -> None:
        """Keep receiving but hold the end-to-end acknowledgements."""
        with self._lock:
            self._paused = True

    def resume_acks(self) -> None:
        """Send the held acknowledgements and ack from now on."""
        with self._lock:
            self._paused = False
            held, self._held = self._held, []
        for gateway_id, ids in held:
            self._ack(gateway_id, ids)

    # -- what was received ----------------------------------------------------------

    def received_ids(self) -> set[str]:
        """Distinct reading ids received so far."""
        with self._lock:
            return set(self._ids)

    def received_count(self) -> int:
        """Readings received so far, duplicates included."""
        with self._lock:
            return sum(self._ids.values())

    def acked_ids(self) -> set[str]:
        """Ids acknowledged end to end so far."""
        with self._lock:
            return set(self._acked)

    def wait_for_ids(self, expected: Iterable[str], timeout_seconds: float) -> bool:
        """Block until every id in ``expected`` was received (and acked unless paused)."""
        wanted = set(expected)
        deadline = time.monotonic() + timeout_seconds
        with self._lock:
            while not wanted <= self._acked and not (self._paused and wanted <= set(self._ids)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, POLL_SECONDS * 10))
            return True

    def wait_until(self, predicate: Any, timeout_seconds: float) -> bool:
        """Block until ``predicate(self)`` holds, polling."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(POLL_SECONDS)
        return bool(predicate(self))

    # -- paho callbacks -------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.errors.append(f"connect refused: {reason}")
            return
        topics = [(ALL_READINGS_FILTER, 1)]
        if self.watch_status:
            topics += [(ALL_STATUS_FILTER, 1), (ALL_EVENTS_FILTER, 1)]
        client.subscribe(topics)

    def _on_subscribe(self, *_args: Any) -> None:
        # Ready only once the broker confirmed the subscription: a message published
        # before that (an event, which is not retained) would be missed.
        self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            parsed = parse_topic(message.topic)
            payload = bytes(message.payload)
            if parsed.channel is Channel.READINGS:
                self._on_readings(payload)
            elif parsed.channel is Channel.STATUS:
                status = decode_message(payload, StatusMessage)
                with self._lock:
                    (self.retained_statuses if message.retain else self.statuses).append(status)
                    self._lock.notify_all()
            elif parsed.channel is Channel.EVENTS:
                event = decode_message(payload, EventMessage)
                with self._lock:
                    self.events.append(event)
                    self._lock.notify_all()
        except Exception as exc:
            self.errors.append(f"{message.topic}: {type(exc).__name__}: {exc}")

    def _on_readings(self, payload: bytes) -> None:
        if self.validate:
            envelope = decode_envelope(payload)
            gateway_id = envelope.gateway_id
            ids = [reading.id for reading in envelope.readings]
        else:
            light = _IDS_DECODER.decode(payload)
            gateway_id = light.gateway_id
            ids = [reading.id for reading in light.readings]
        with self._lock:
            self.messages += 1
            self._ids.update(ids)
            if self._paused:
                self._held.append((gateway_id, ids))
                self._lock.notify_all()
                return
        self._ack(gateway_id, ids)

    def _ack(self, gateway_id: str, ids: list[str]) -> None:
        for start in range(0, len(ids), MAX_IDS_PER_ACK):
            chunk = ids[start : start + MAX_IDS_PER_ACK]
            ack = AckMessage(gateway_id=gateway_id, acked_at=datetime.now(UTC), ids=chunk)
            self._client.publish(ack_topic(gateway_id), encode_message(ack), qos=1)
        with self._lock:
            self._acked.update(ids)
            self._lock.notify_all()
