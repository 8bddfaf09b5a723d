"""The live event stream: new readings and alert changes reach each open page, for the
patients it may see.

Ingest republishes every stored reading on ``vitalgate/v1/accepted/{partition}``.
:class:`AcceptedListener` subscribes to all partitions (one MQTT client per API process,
through :mod:`infra.mqtt`) and hands the readings to :class:`LiveHub`, which fans them out
to every open stream; :class:`~dashboard_api.alert_tail.AlertTail` hands it the alert
events the alert worker records in the registry. The stream route
(:mod:`dashboard_api.routes.stream`) decides **per event**, with the same
:func:`dashboard_api.authz.decide` as every request, whether the subscriber may read that
patient's readings (or alerts) *now* — so a consent revoked, a contract ended
or a duty shift over stops the flow at the next event, on a stream already open.

A reading re-sent after its ack appears on ``accepted/`` again; the hub drops ids it has
seen recently, so a page does not show it twice. A subscriber that cannot keep up loses
its oldest events (bounded queue) and is told so (``lagged``), never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from infra.mqtt import (
    ClientSettings,
    MqttClient,
    MqttError,
    connect,
    create_client,
)
from readings.codec import decode_envelope
from readings.errors import PayloadError
from readings.model import Reading
from readings.topics import ALL_ACCEPTED_FILTER
from registry.alert_feed import AlertChange

logger = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_EVENTS: Final = 1_000
"""Events held for one slow page before the oldest are dropped (a chart reloads anyway)."""
RECENT_IDS_REMEMBERED: Final = 50_000
"""Ids remembered to drop re-sent readings: several minutes of a clinic's traffic."""


@dataclass(frozen=True, slots=True)
class LiveReading:
    """A new reading, as a stream carries it (no device serials, no gateway ids)."""

    id: str
    patient_id: str
    kind: str
    measured_at: datetime
    values: dict[str, float]
    unit: str
    flags: tuple[str, ...]

    @classmethod
    def of(cls, reading: Reading) -> LiveReading:
        """The stream's view of an accepted reading."""
        return cls(
            id=reading.id,
            patient_id=reading.patient_id,
            kind=reading.kind.value,
            measured_at=reading.measured_at,
            values={
                name: float(value)
                for name, value in reading.values.as_dict().items()
                if isinstance(value, int | float)
            },
            unit=str(reading.source_unit),
            flags=tuple(reading.flags),
        )


@dataclass(frozen=True, slots=True)
class LiveAlert:
    """An alert opened or changed: enough for a page to ask the API again, no health data."""

    event_id: int
    alert_id: int
    patient_id: str
    rule_id: str
    severity: str
    kind: str
    state: str
    at: datetime

    @classmethod
    def of(cls, change: AlertChange) -> LiveAlert:
        """The stream's view of a recorded alert event."""
        return cls(
            event_id=change.event_id,
            alert_id=change.alert_id,
            patient_id=change.patient_id,
            rule_id=change.rule_id,
            severity=change.severity,
            kind=change.kind,
            state=change.state,
            at=change.at,
        )


LiveEvent = LiveReading | LiveAlert
"""What a stream carries."""


@dataclass
class Subscription:
    """One open stream's queue, filled from the listener's thread."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[LiveEvent] = field(
        default_factory=lambda: asyncio.Queue(SUBSCRIBER_QUEUE_EVENTS)
    )
    lagged: int = 0

    def offer(self, event: LiveEvent) -> None:
        """Queue ``event``; drop the oldest if full. Runs in the subscriber's loop."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.lagged += 1
        self.queue.put_nowait(event)


class LiveHub:
    """Fans accepted readings and alert changes out to every open stream (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[int, Subscription] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()

    def subscribe(self) -> Subscription:
        """A new subscription fed in the calling event loop."""
        subscription = Subscription(loop=asyncio.get_running_loop())
        with self._lock:
            self._by_key[id(subscription)] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop feeding ``subscription``."""
        with self._lock:
            self._by_key.pop(id(subscription), None)

    @property
    def subscribers(self) -> int:
        """How many streams are open."""
        with self._lock:
            return len(self._by_key)

    def publish(self, readings: Sequence[Reading]) -> int:
        """Hand new readings to every stream; returns how many were new."""
        fresh = []
        with self._lock:
            for reading in readings:
                if not self._remember(reading.id):
                    fresh.append(LiveReading.of(reading))
        self._fan_out(fresh)
        return len(fresh)

    def publish_alerts(self, alerts: Sequence[LiveAlert]) -> int:
        """Hand alert changes to every stream; returns how many were new (an event id
        announced twice — by two tails in one process — is sent once)."""
        fresh = []
        with self._lock:
            for alert in alerts:
                if not self._remember(f"alert-event:{alert.event_id}"):
                    fresh.append(alert)
        self._fan_out(fresh)
        return len(fresh)

    def _remember(self, key: str) -> bool:
        """Whether ``key`` was seen recently; remembers it. Call with the lock held."""
        if key in self._recent:
            return True
        self._recent[key] = None
        if len(self._recent) > RECENT_IDS_REMEMBERED:
            self._recent.popitem(last=False)
        return False

    def _fan_out(self, events: Sequence[LiveEvent]) -> None:
        with self._lock:
            subscriptions = list(self._by_key.values())
        for subscription in subscriptions:
            for event in events:
                with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                    subscription.loop.call_soon_threadsafe(subscription.offer, event)


class AcceptedListener:
    """Subscribes to ``accepted/+`` and feeds a :class:`LiveHub`."""

    def __init__(self, settings: ClientSettings, hub: LiveHub) -> None:
        self._settings = settings
        self._hub = hub
        self._client: MqttClient | None = None
        self.subscribed = threading.Event()

    def start(self) -> None:
        """Connect and subscribe (paho's own thread keeps the link and reconnects).

        Raises:
            MqttError: the broker cannot be reached.
        """
        client = create_client(self._settings)

        def on_connect(client: Any, *_: Any) -> None:
            client.subscribe([(ALL_ACCEPTED_FILTER, 1)])

        def on_subscribe(*_: Any) -> None:
            self.subscribed.set()

        def on_message(_client: Any, _userdata: Any, message: Any) -> None:
            try:
                envelope = decode_envelope(bytes(message.payload))
            except PayloadError:
                # Only ingest may publish here (broker ACL); anything else is not shown.
                logger.warning("an undecodable message on %s was not streamed", message.topic)
                return
            self._hub.publish(envelope.readings)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        connect(client, self._settings)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        """Disconnect."""
        if self._client is not None:
            with contextlib.suppress(MqttError, OSError):
                self._client.disconnect()
            self._client.loop_stop()
            self._client = None
