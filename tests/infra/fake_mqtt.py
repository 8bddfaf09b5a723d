"""An in-memory stand-in for a broker and its clients, implementing :class:`MqttClient`.

For unit tests of the loops that drive a client (the gateway's publisher, the ingest
worker) without a broker process: :meth:`FakeBroker.factory` is the ``client_factory``
they take. The broker routes publishes to subscribers (``+``/``#`` filters, ``$share``
groups read as plain filters), answers QoS 1 with a PUBACK unless told otherwise, can
refuse CONNECTs and can drop a client's connection.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from infra.mqtt import ClientSettings, MqttClient

IDLE_SLEEP_SECONDS = 0.002
"""A fake loop with nothing to do sleeps this long, like paho waiting on its socket."""


@dataclass(frozen=True)
class Published:
    """One message a client published."""

    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class FakeBroker:
    """Routes messages between :class:`FakeClient` instances.

    Attributes:
        refuse_connects: how many CONNECTs to refuse, with ``refusal``.
        refusal: the CONNACK reason code name of a refusal.
        auto_puback: answer QoS 1 publishes with a PUBACK.
        on_publish: called with each :class:`Published` as it arrives (any thread).
    """

    refuse_connects: int = 0
    refusal: str = "Not authorized"
    auto_puback: bool = True
    on_publish: Callable[[Published], None] | None = None
    published: list[Published] = field(default_factory=list)
    clients: list[FakeClient] = field(default_factory=list)
    connects: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)

    def factory(self, settings: ClientSettings) -> MqttClient:
        """A ``client_factory`` whose clients talk to this broker."""
        client = FakeClient(self, settings)
        with self.lock:
            self.clients.append(client)
        return client

    def connected(self, client_id: str) -> FakeClient | None:
        """The connected client with this id, if any."""
        with self.lock:
            for client in self.clients:
                if client.settings.client_id == client_id and client.connected:
                    return client
        return None

    def inject(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Deliver a message to every subscriber, as if a client off-stage had sent it."""
        self._route(Published("off-stage", topic, payload, qos, False))

    def drop(self, client_id: str) -> None:
        """Break the connection of the client with this id (it sees the link lost)."""
        client = self.connected(client_id)
        assert client is not None, f"{client_id} is not connected"
        client.lose()

    def messages(self, topic: str) -> list[Published]:
        """Everything published on ``topic`` so far."""
        with self.lock:
            return [message for message in self.published if message.topic == topic]

    def _connect(self) -> ReasonCode:
        with self.lock:
            self.connects += 1
            if self.refuse_connects > 0:
                self.refuse_connects -= 1
                return ReasonCode(PacketTypes.CONNACK, self.refusal)
            return ReasonCode(PacketTypes.CONNACK, "Success")

    def _route(self, message: Published) -> None:
        with self.lock:
            self.published.append(message)
            receivers = [client for client in self.clients if client.matches(message.topic)]
        if self.on_publish is not None:
            self.on_publish(message)
        for client in receivers:
            client.receive(message)


class FakeClient:
    """A client of :class:`FakeBroker` with the members of :class:`MqttClient`."""

    def __init__(self, broker: FakeBroker, settings: ClientSettings) -> None:
        self.broker = broker
        self.settings = settings
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_subscribe: Any = None
        self.on_publish: Any = None
        self.on_message: Any = None
        self.will: Published | None = None
        self.filters: list[str] = []
        self.acked: list[int] = []
        self.connected = False
        self._lost = False
        self._events: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._mid = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- MqttClient --------------------------------------------------------------------

    @property
    def last_socket_error(self) -> str | None:
        return None

    def connect(
        self,
        host: str,
        port: int = 1883,
        keepalive: int = 60,
        *,
        clean_start: bool = True,
        properties: Properties | None = None,
    ) -> MQTTErrorCode:
        reason = self.broker._connect()
        self.connected = not reason.is_failure
        self._post(
            lambda: self._call(
                self.on_connect, mqtt.ConnectFlags(session_present=False), reason, None
            )
        )
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def will_set(
        self, topic: str, payload: bytes | None = None, qos: int = 0, retain: bool = False
    ) -> None:
        self.will = Published(self.settings.client_id, topic, payload or b"", qos, retain)

    def loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        if self._lost:
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        if not self._run_events():
            time.sleep(min(timeout, IDLE_SLEEP_SECONDS))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_start(self) -> MQTTErrorCode:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop_forever, daemon=True)
        self._thread.start()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_stop(self) -> MQTTErrorCode:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish(
        self, topic: str, payload: bytes | None = None, qos: int = 0, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        info = mqtt.MQTTMessageInfo(self._next_mid())
        if not self.connected or self._lost:
            info.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
            return info
        self.broker._route(Published(self.settings.client_id, topic, payload or b"", qos, retain))
        if qos > 0 and self.broker.auto_puback:
            success = ReasonCode(PacketTypes.PUBACK, "Success")
            self._post(lambda: self._call(self.on_publish, info.mid, success, None))
        return info

    def subscribe(
        self, topic: str | list[tuple[str, int]], qos: int = 0
    ) -> tuple[MQTTErrorCode, int | None]:
        topics = [topic] if isinstance(topic, str) else [name for name, _qos in topic]
        with self.broker.lock:
            self.filters.extend(_without_share(name) for name in topics)
        mid = self._next_mid()
        granted = [ReasonCode(PacketTypes.SUBACK, "Granted QoS 1") for _ in topics]
        self._post(lambda: self._call(self.on_subscribe, mid, granted, None))
        return MQTTErrorCode.MQTT_ERR_SUCCESS, mid

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        with self._lock:
            self.acked.append(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def disconnect(self) -> MQTTErrorCode:
        self.connected = False
        with self.broker.lock:
            self.filters.clear()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def socket(self) -> Any:
        return None

    # -- the broker's side -------------------------------------------------------------

    def matches(self, topic: str) -> bool:
        """Whether a subscription of this (connected) client matches ``topic``."""
        return self.connected and any(mqtt.topic_matches_sub(f, topic) for f in self.filters)

    def receive(self, message: Published) -> None:
        """Queue a message for delivery through the loop."""
        inbound = mqtt.MQTTMessage(self._next_mid(), message.topic.encode())
        inbound.payload = message.payload
        inbound.qos = message.qos
        self._post(lambda: self._call(self.on_message, inbound))

    def lose(self) -> None:
        """The connection breaks: the loop reports it, queued events are gone."""
        self._lost = True
        self.connected = False
        with self._lock:
            self._events.clear()
        if self._thread is not None:
            reason = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
            self._call(self.on_disconnect, mqtt.DisconnectFlags(False), reason, None)

    # -- internals ---------------------------------------------------------------------

    def _next_mid(self) -> int:
        with self._lock:
            self._mid += 1
            return self._mid

    def _post(self, event: Callable[[], None]) -> None:
        with self._lock:
            self._events.append(event)

    def _run_events(self) -> bool:
        ran = False
        while True:
            with self._lock:
                if not self._events:
                    return ran
                event = self._events.popleft()
            event()
            ran = True

    def _call(self, callback: Any, *args: Any) -> None:
        if callback is not None:
            callback(self, None, *args)

    def _loop_forever(self) -> None:
        while not self._stop.is_set():
            if not self._run_events():
                time.sleep(IDLE_SLEEP_SECONDS)


def _without_share(topic_filter: str) -> str:
    """``$share/group/filter`` → ``filter`` (one fake subscriber per group is enough)."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter
