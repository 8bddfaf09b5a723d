"""The fleet listener: every gateway's retained ``status`` and its ``events`` → the registry.

Thin on purpose: :func:`ingest.fleet.examine_fleet_message` decides what a message means,
:class:`registry.fleet.FleetRepository` stores it. This class owns the MQTT client (built
through :mod:`infra.mqtt`) and the order of things:

* An ordinary (not shared) subscription: a broker hands retained messages to a new
  ordinary subscription only, so the listener learns every gateway's current status when
  it (re)subscribes.
* A persistent session with a fixed client id and QoS 1, so events published while the
  listener was away are queued by the broker; each message is acknowledged only after
  its transaction committed. A message delivered again (after a crash between commit and
  PUBACK, or by a second listener) finds its event already stored and changes nothing.

It runs inside ``vitalgate serve`` (see ``docs/fleet.md`` for why), in paho's own thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine

from infra.mqtt import ClientFactory, ClientSettings, MqttClient, MqttError, connect, create_client
from ingest.fleet import EventUpdate, FleetRejection, StatusUpdate, examine_fleet_message
from readings.topics import ALL_EVENTS_FILTER, ALL_STATUS_FILTER
from registry.db import session_scope
from registry.errors import NotFound, RegistryError
from registry.fleet import FleetRepository

logger = logging.getLogger(__name__)

FLEET_SESSION_EXPIRY_SECONDS: Final = 7 * 24 * 3600
"""The broker keeps the listener's session (and the events for it) a week: a listener down
over a long holiday weekend misses nothing."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HandledMessage:
    """What became of one message (for tests and counters).

    Attributes:
        outcome: ``status``, ``event``, ``duplicate_event``, ``rejected:<reason>``,
            ``unknown_gateway`` or ``registry_error``.
        gateway_id: the topic's gateway, when there was one.
    """

    outcome: str
    gateway_id: str | None = None


class FleetListener:
    """Subscribes to every gateway's status and events and records them."""

    def __init__(
        self,
        settings: ClientSettings,
        registry: Engine,
        *,
        clock: Callable[[], datetime] = _utc_now,
        client_factory: ClientFactory = create_client,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._clock = clock
        self._client_factory = client_factory
        self._client: MqttClient | None = None
        self.subscribed = threading.Event()
        self.counts: dict[str, int] = {}

    def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> HandledMessage:
        """Examine and store one message; never raises for a bad message."""
        received_at = self._clock()
        examined = examine_fleet_message(topic, payload, received_at=received_at, retained=retained)
        if isinstance(examined, FleetRejection):
            logger.warning(
                "gateway message not recorded",
                extra={"topic": topic, "reason": examined.reason.value},
            )
            return self._count(HandledMessage(f"rejected:{examined.reason.value}"))
        gateway_id = examined.message.gateway_id
        try:
            with session_scope(self._registry) as session:
                fleet = FleetRepository(session, clock=self._clock)
                if isinstance(examined, StatusUpdate):
                    fleet.record_status(
                        examined.message, received_at=received_at, retained=examined.retained
                    )
                    outcome = None
                else:
                    assert isinstance(examined, EventUpdate)
                    outcome = fleet.record_event(examined.message, received_at=received_at)
            # Counted once committed: whoever reads the count may read the row.
            if outcome is None:
                return self._count(HandledMessage("status", gateway_id))
        except NotFound:
            logger.warning("message of a gateway not in the registry", extra={"topic": topic})
            return self._count(HandledMessage("unknown_gateway", gateway_id))
        except RegistryError as exc:
            logger.error("fleet state not recorded", extra={"topic": topic, "error": str(exc)})
            return self._count(HandledMessage("registry_error", gateway_id))
        assert isinstance(examined, EventUpdate)
        if outcome.unrequested_pairing:
            logger.warning(
                "a gateway paired a device nobody asked for; not bound",
                extra={"gateway_id": gateway_id, "device_id": examined.message.device_id},
            )
        return self._count(
            HandledMessage("event" if outcome.stored else "duplicate_event", gateway_id)
        )

    def _count(self, handled: HandledMessage) -> HandledMessage:
        self.counts[handled.outcome] = self.counts.get(handled.outcome, 0) + 1
        return handled

    def start(self) -> None:
        """Connect and subscribe; paho's thread keeps the link and reconnects.

        Raises:
            MqttError: the broker cannot be reached.
        """
        client = self._client_factory(self._settings)

        def on_connect(client: Any, *_: Any) -> None:
            client.subscribe([(ALL_STATUS_FILTER, 1), (ALL_EVENTS_FILTER, 1)])

        def on_subscribe(*_: Any) -> None:
            self.subscribed.set()

        def on_message(_client: Any, _userdata: Any, message: Any) -> None:
            handled = self.handle(
                message.topic, bytes(message.payload), retained=bool(message.retain)
            )
            if handled.outcome != "registry_error" and self._settings.manual_ack:
                # Acknowledged only once stored; a registry failure leaves it for redelivery.
                client.ack(message.mid, message.qos)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        connect(client, self._settings)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        """Disconnect (the persistent session stays with the broker)."""
        if self._client is not None:
            with contextlib.suppress(MqttError, OSError):
                self._client.disconnect()
            self._client.loop_stop()
            self._client = None
            self.subscribed.clear()


def fleet_client_settings(base: ClientSettings, *, client_id: str) -> ClientSettings:
    """``base`` (broker, TLS, credentials) as the fleet listener needs it: a fixed client id,
    a persistent session that outlives restarts, messages acknowledged after storing."""
    return ClientSettings(
        endpoint=base.endpoint,
        client_id=client_id,
        protocol=base.protocol,
        tls=base.tls,
        username=base.username,
        password=base.password,
        keepalive_seconds=base.keepalive_seconds,
        persistent_session=True,
        session_expiry_seconds=FLEET_SESSION_EXPIRY_SECONDS,
        manual_ack=True,
        connect_timeout_seconds=base.connect_timeout_seconds,
    )
