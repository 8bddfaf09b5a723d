"""Commands to gateways (``cmd/pair``, ``cmd/unpair``), published through :mod:`infra.mqtt`.

The API holds a :class:`CommandPublisher` (``ApiContext.commands``): ``vitalgate serve``
gives it a :class:`MqttCommandPublisher` when it has a broker; a test may give one on a
real Mosquitto from the harness. A command the broker did not acknowledge in time is a
:class:`CommandNotSent`: the route says so instead of pretending.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Final, Protocol

from infra.mqtt import ClientSettings, MqttClient, MqttError, connect, create_client

PUBLISH_TIMEOUT_SECONDS: Final = 5.0
"""How long a request waits for the broker's PUBACK of a command; a broker that takes
longer is not there for practical purposes, and the person at the screen is told."""


class CommandNotSent(MqttError):
    """The broker did not take the command (not connected, or no PUBACK in time)."""


class CommandPublisher(Protocol):
    """Publishes one command, QoS 1, and returns once the broker acknowledged it."""

    def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` on ``topic``.

        Raises:
            CommandNotSent: the broker did not acknowledge it.
        """
        ...


class MqttCommandPublisher:
    """A :class:`CommandPublisher` over one MQTT client (paho's thread keeps the link)."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._client: MqttClient | None = None
        self._lock = threading.Lock()
        self.connected = threading.Event()

    def start(self) -> None:
        """Connect.

        Raises:
            MqttError: the broker cannot be reached.
        """
        client = create_client(self._settings)

        def on_connect(*_: object) -> None:
            self.connected.set()

        def on_disconnect(*_: object) -> None:
            self.connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        connect(client, self._settings)
        client.loop_start()
        self._client = client

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish QoS 1 and wait for the PUBACK (:data:`PUBLISH_TIMEOUT_SECONDS`)."""
        client = self._client
        if client is None or not self.connected.wait(PUBLISH_TIMEOUT_SECONDS):
            raise CommandNotSent("not connected to the broker")
        with self._lock:
            info = client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT_SECONDS)
        except (RuntimeError, ValueError) as exc:
            raise CommandNotSent(str(exc)) from exc
        if not info.is_published():
            raise CommandNotSent(f"no PUBACK within {PUBLISH_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """Disconnect."""
        if self._client is not None:
            with contextlib.suppress(MqttError, OSError):
                self._client.disconnect()
            self._client.loop_stop()
            self._client = None
