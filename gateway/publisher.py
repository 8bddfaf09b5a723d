"""The MQTT publisher: outbox → broker, rows deleted only on the end-to-end ack.

One worker thread owns one MQTT client per connection (built by :mod:`infra.mqtt`, or
by the injected ``client_factory``; MQTT 5 by default, 3.1.1 on request) and drives its
network loop itself, so that PUBACKs, acknowledgements and outbox writes happen in one
place, in order, without locks around paho:

* **Batches.** The oldest eligible rows (:meth:`Outbox.begin_batch`) are wrapped in an
  envelope from the bytes encoded at capture and published at QoS 1 on
  ``gw/{id}/readings``; at most ``window_batches`` are in flight. A PUBACK marks a batch
  sent; an acknowledgement on ``gw/{id}/ack`` deletes its rows; a sent row without an
  acknowledgement is published again, with the same ids, after the outbox's ack timeout.
* **Connection.** An explicit reconnect loop with exponential backoff and jitter
  (:func:`next_reconnect_delay`); every reconnect waits at least the minimum delay, so a
  broker that drops the gateway at once is never hammered. A new client per connection:
  batches that were in flight are requeued, never left in paho's memory. Persistent
  session (clean start off, session expiry) so acknowledgements published while the
  gateway was away are delivered when it returns, and the ack subscription is renewed
  on every connect anyway.
* **Status.** A retained status on ``gw/{id}/status`` (queue depth, age of the oldest
  unacknowledged reading, outbox space and quota, each device's last contact and
  battery) on connect, every ``status_interval_seconds`` and on change; the offline form
  of it is the will, and is published explicitly on a clean stop.
* **Link status.** :meth:`Publisher.link` says whether the broker accepted the
  connection and, if not, why and what to do (a refused or expired certificate, bad
  credentials, nothing listening); with ``link_status_path`` the same is written to a
  JSON file on every change, because a gateway the broker refuses cannot publish its
  status.
* **Events.** :meth:`Publisher.publish_event` queues an event (bounded, oldest dropped and
  counted); events are re-sent after a reconnect until PUBACKed. The publisher itself
  raises ``outbox_over_quota`` / ``outbox_below_quota`` when the outbox crosses its quota
  or refuses clinical readings.

Thread model: :meth:`Publisher.start` / :meth:`Publisher.stop` from any thread, or
``await publisher.run()`` from asyncio (cancel the task to stop). ``publish_event`` and
``request_status`` are thread-safe and never block. Callbacks given to the publisher
(``device_statuses``, ``on_command``) run on its worker thread and must be quick and
thread-safe (e.g. hand over with ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Final, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.errors import ConfigError, OutboxError, PublisherError
from gateway.outbox import Batch, BatchBudget, Clock, Outbox, OutboxStats
from infra.mqtt import (
    DEFAULT_CLIENT_FACTORY,
    ClientFactory,
    ClientSettings,
    MqttClient,
    MqttConnectError,
    MqttEndpoint,
    MqttError,
    closed_before_connack,
    connect_error,
)
from infra.mqtt import MqttProtocol as MqttProtocol  # re-exported: settings name it
from infra.mqtt import TlsSettings as ClientTlsSettings
from infra.mqtt import connect as mqtt_connect
from readings.codec import (
    MAX_PAYLOAD_BYTES,
    MAX_READINGS_PER_ENVELOPE,
    AckMessage,
    DeviceStatus,
    EventMessage,
    EventType,
    GatewayState,
    StatusMessage,
    decode_message,
    encode_envelope_from_encoded,
    encode_message,
)
from readings.errors import PayloadError, TopicError
from readings.topics import (
    ack_topic,
    command_filter,
    events_topic,
    readings_topic,
    status_topic,
)

logger = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS: Final = 1.0
"""Never reconnect sooner: a broker that accepts and drops the gateway at once must not
see a connection storm (``docs/mqtt.md``, "Reconnecting and keep-alive")."""
RECONNECT_MAX_SECONDS: Final = 60.0
"""A home gateway is back within a minute of its broker; with full jitter, thousands of
gateways returning after a broker restart still spread over that minute."""
KEEPALIVE_SECONDS: Final = 30
"""Home routers drop idle NAT mappings after 60 s or more; 30 s keeps the mapping and
finds a half-open link (one that drops traffic without closing) within about a minute."""
CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""TCP, TLS and CONNACK over a slow home uplink; longer means the broker is not there."""
SESSION_EXPIRY_SECONDS: Final = 7 * 24 * 3600
"""The broker keeps the gateway's session (its ack subscription and the acks queued for
it) for a week offline; beyond that the ack timeout re-publishes and ingest re-acks."""
DEFAULT_WINDOW_BATCHES: Final = 4
"""Batches awaiting PUBACK: ≈ 750 kB in flight keeps a 50 ms uplink busy at 15 MB/s, far
beyond a home line. Measured on loopback, 4 drains faster than 8 or 16 (paho rescans its
in-flight list per ack; ``docs/mqtt.md``)."""
DEFAULT_BATCH_MAX_READINGS: Final = 500
"""≈ 160 kB per message: per-message cost at ingest dominates, so batches are large, yet
half the contract's 1,000 keeps one message's ingest work and its ack small."""
DEFAULT_STATUS_INTERVAL_SECONDS: Final = 60.0
"""The clinic's view of a gateway (queue depth, device battery) is at most a minute old."""
STATUS_CHECK_SECONDS: Final = 1.0
"""How often the outbox quota and the device list are looked at for changes."""
IDLE_POLL_SECONDS: Final = 0.05
"""Longest wait in the network loop: new readings leave within 50 ms of their commit."""
EVENT_WINDOW: Final = 16
"""Events awaiting PUBACK; events are few, this only bounds a burst."""
MAX_QUEUED_EVENTS: Final = 1000
"""Events kept while offline; beyond that the oldest are dropped and counted. Events are
not readings: the readings themselves are never dropped."""
STOP_FLUSH_SECONDS: Final = 2.0
"""On a clean stop, how long to wait for the offline status's PUBACK."""
V311_RECEIVE_MAXIMUM: Final = 20
"""QoS 1 messages in flight towards a v3.1.1 broker, which cannot say its limit: Mosquitto's
default. An MQTT 5 broker states its Receive Maximum in the CONNACK; paho does not honour
it, so the publisher does (exceeding it makes the broker drop the connection)."""
MQTT5_DEFAULT_RECEIVE_MAXIMUM: Final = 65_535
"""The MQTT 5 default when the CONNACK carries no Receive Maximum."""
PAHO_INFLIGHT_LIMIT: Final = 65_535
"""paho's own in-flight limit is set out of the way: the publisher counts what is in
flight itself (batches, events, statuses) against the broker's Receive Maximum."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS towards the broker.

    Attributes:
        ca_file: CA certificate(s) to verify the broker with (PEM).
        cert_file: the gateway's client certificate (PEM), if the broker requires one.
        key_file: its private key (PEM); required with ``cert_file``.
        crl_file: the CA's certificate revocation list (PEM): a revoked broker
            certificate is refused.
    """

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    crl_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(
                "tls.key_file", "a client certificate needs its key, and a key its certificate"
            )

    def client_tls(self) -> ClientTlsSettings:
        """The adapter's form of these settings."""
        return ClientTlsSettings(
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            crl_file=self.crl_file,
        )


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how to connect.

    Attributes:
        host: broker host name or address.
        port: broker port (8883 for TLS by convention).
        client_id: MQTT client id; default ``vitalgate-gw-<gateway_id>``. Fixed, because
            the persistent session (and the acks queued in it) is keyed by it.
        username: MQTT user name (one credential per gateway).
        password: its password.
        tls: TLS settings; ``None`` for plain MQTT (tests and a local broker only).
        protocol: MQTT 5 (default) or 3.1.1.
        keepalive_seconds: MQTT keepalive.
        session_expiry_seconds: how long the broker keeps the session while offline (v5).
        connect_timeout_seconds: bound on TCP connect, TLS handshake and CONNACK.
    """

    host: str
    port: int
    client_id: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    protocol: MqttProtocol = MqttProtocol.V5
    keepalive_seconds: int = KEEPALIVE_SECONDS
    session_expiry_seconds: int = SESSION_EXPIRY_SECONDS
    connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("broker.host", "must not be empty")
        if not 0 < self.port < 65536:
            raise ConfigError("broker.port", f"must be 1..65535, got {self.port}")
        if self.password is not None and self.username is None:
            raise ConfigError("broker.password", "a password needs a username")
        if self.keepalive_seconds < 5:
            raise ConfigError(
                "broker.keepalive_seconds", f"must be at least 5, got {self.keepalive_seconds}"
            )
        if self.connect_timeout_seconds <= 0:
            raise ConfigError(
                "broker.connect_timeout_seconds",
                f"must be positive, got {self.connect_timeout_seconds}",
            )
        if self.session_expiry_seconds < 0:
            raise ConfigError(
                "broker.session_expiry_seconds",
                f"must not be negative, got {self.session_expiry_seconds}",
            )

    def client_settings(self, client_id: str) -> ClientSettings:
        """How the adapter builds and connects the client: a persistent session (acks
        queued while the gateway was away are delivered when it returns), paho's own
        in-flight limit out of the way (the publisher counts against the broker's)."""
        return ClientSettings(
            endpoint=MqttEndpoint(self.host, self.port, tls=self.tls is not None),
            client_id=client_id,
            protocol=self.protocol,
            tls=self.tls.client_tls() if self.tls is not None else None,
            username=self.username,
            password=self.password,
            keepalive_seconds=self.keepalive_seconds,
            persistent_session=True,
            session_expiry_seconds=self.session_expiry_seconds,
            connect_timeout_seconds=self.connect_timeout_seconds,
            max_inflight_messages=PAHO_INFLIGHT_LIMIT,
        )


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    """What the publisher does.

    Attributes:
        gateway_id: this gateway's id (topics, envelopes, status).
        broker: where to publish.
        window_batches: batches awaiting PUBACK at once.
        batch_max_readings: readings per batch (at most the contract's 1,000).
        batch_max_bytes: bytes per envelope (at most the contract's 512 KiB).
        status_interval_seconds: period of the retained status.
        reconnect_min_seconds: shortest wait before a reconnect.
        reconnect_max_seconds: longest wait before a reconnect.
        software_version: reported in the status.
        link_status_path: a JSON file the publisher rewrites whenever the state of its
            link to the broker changes (connected, or why not), for the operator on the
            gateway itself: a refused connection cannot be reported over MQTT.
    """

    gateway_id: str
    broker: BrokerSettings
    window_batches: int = DEFAULT_WINDOW_BATCHES
    batch_max_readings: int = DEFAULT_BATCH_MAX_READINGS
    batch_max_bytes: int = MAX_PAYLOAD_BYTES
    status_interval_seconds: float = DEFAULT_STATUS_INTERVAL_SECONDS
    reconnect_min_seconds: float = RECONNECT_MIN_SECONDS
    reconnect_max_seconds: float = RECONNECT_MAX_SECONDS
    software_version: str | None = None
    link_status_path: Path | None = None

    def __post_init__(self) -> None:
        try:
            readings_topic(self.gateway_id)
        except TopicError as exc:
            raise ConfigError("gateway_id", str(exc)) from exc
        if self.window_batches < 1:
            raise ConfigError("window_batches", f"must be at least 1, got {self.window_batches}")
        if not 1 <= self.batch_max_readings <= MAX_READINGS_PER_ENVELOPE:
            raise ConfigError(
                "batch_max_readings",
                f"must be 1..{MAX_READINGS_PER_ENVELOPE}, got {self.batch_max_readings}",
            )
        if not 1024 <= self.batch_max_bytes <= MAX_PAYLOAD_BYTES:
            raise ConfigError(
                "batch_max_bytes", f"must be 1024..{MAX_PAYLOAD_BYTES}, got {self.batch_max_bytes}"
            )
        if self.status_interval_seconds <= 0:
            raise ConfigError(
                "status_interval_seconds",
                f"must be positive, got {self.status_interval_seconds}",
            )
        if not 0 < self.reconnect_min_seconds <= self.reconnect_max_seconds:
            raise ConfigError(
                "reconnect_min_seconds",
                "must be positive and at most reconnect_max_seconds "
                f"(got {self.reconnect_min_seconds} and {self.reconnect_max_seconds})",
            )


class JitterSource(Protocol):
    """The one method of :class:`random.Random` that backoff needs."""

    def uniform(self, a: float, b: float) -> float:
        """A number between ``a`` and ``b``."""


def next_reconnect_delay(
    attempt: int,
    rng: JitterSource,
    *,
    min_seconds: float = RECONNECT_MIN_SECONDS,
    max_seconds: float = RECONNECT_MAX_SECONDS,
) -> float:
    """Seconds to wait before reconnect ``attempt`` (1 for the first after a loss).

    The ceiling doubles from ``min_seconds`` with each attempt up to ``max_seconds``; the
    delay is drawn between half the ceiling and the ceiling ("equal jitter"), and never
    below ``min_seconds``.
    """
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    ceiling = min(max_seconds, min_seconds * 2.0 ** min(attempt - 1, 32))
    return max(min_seconds, rng.uniform(ceiling / 2, ceiling))


_ENVELOPE_PROBE_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)


def readings_budget(gateway_id: str, max_readings: int, max_payload_bytes: int) -> BatchBudget:
    """The batch budget that keeps a whole envelope within ``max_payload_bytes``.

    The envelope's own bytes (version, gateway id, timestamp — fixed width to the
    millisecond) are taken off the payload limit.
    """
    overhead = len(encode_envelope_from_encoded(gateway_id, _ENVELOPE_PROBE_TIME, [b""]))
    return BatchBudget(
        max_count=min(max_readings, MAX_READINGS_PER_ENVELOPE),
        max_bytes=min(max_payload_bytes, MAX_PAYLOAD_BYTES) - overhead,
    )


def build_envelope(gateway_id: str, batch: Batch, sent_at: datetime) -> bytes:
    """The readings payload of a batch, from the bytes encoded at capture."""
    return encode_envelope_from_encoded(gateway_id, sent_at, batch.encoded)


def build_status(
    gateway_id: str,
    stats: OutboxStats,
    devices: Sequence[DeviceStatus],
    now: datetime,
    software_version: str | None,
) -> StatusMessage:
    """The online status from the outbox's stats and the devices' states."""
    oldest_age = None
    if stats.oldest_created_at is not None:
        oldest_age = max(0.0, (now - stats.oldest_created_at).total_seconds())
    return StatusMessage(
        gateway_id=gateway_id,
        state=GatewayState.ONLINE,
        at=now,
        queue_depth=stats.depth,
        oldest_unacked_age_seconds=oldest_age,
        outbox_bytes=stats.used_bytes,
        outbox_quota_bytes=stats.quota_bytes,
        over_quota=stats.over_quota,
        devices=list(devices),
        software_version=software_version,
    )


def offline_status(gateway_id: str, now: datetime, software_version: str | None) -> StatusMessage:
    """The offline status: the will, and the last word of a clean stop."""
    return StatusMessage(
        gateway_id=gateway_id,
        state=GatewayState.OFFLINE,
        at=now,
        software_version=software_version,
    )


@dataclass(frozen=True, slots=True)
class QuotaWatch:
    """What the publisher last knew of the outbox's quota state."""

    over_quota: bool = False
    refusing_clinical: bool = False
    refused_clinical: int = 0


def quota_events(
    watch: QuotaWatch, stats: OutboxStats, gateway_id: str, now: datetime
) -> tuple[QuotaWatch, list[EventMessage]]:
    """Events for the quota transitions between ``watch`` and ``stats``.

    ``outbox_over_quota`` with ``level=quota`` when the quota is reached (telemetry is
    being refused), again with ``level=ceiling`` when clinical readings start being
    refused (the ceiling, or a disk that is really full); ``outbox_below_quota`` when the
    backlog drained below it.
    """
    refusing = stats.full or stats.refused_clinical > watch.refused_clinical
    detail: dict[str, str | int | float | bool] = {
        "outbox_bytes": stats.used_bytes,
        "quota_bytes": stats.quota_bytes,
        "ceiling_bytes": stats.ceiling_bytes,
        "queue_depth": stats.depth,
        "refused_low_value": stats.refused_low_value,
        "refused_clinical": stats.refused_clinical,
    }
    events: list[EventMessage] = []
    if stats.over_quota and not watch.over_quota:
        events.append(
            EventMessage(
                gateway_id=gateway_id,
                at=now,
                event=EventType.OUTBOX_OVER_QUOTA,
                detail={**detail, "level": "quota"},
            )
        )
    if refusing and not watch.refusing_clinical:
        events.append(
            EventMessage(
                gateway_id=gateway_id,
                at=now,
                event=EventType.OUTBOX_OVER_QUOTA,
                detail={**detail, "level": "ceiling"},
            )
        )
    if watch.over_quota and not stats.over_quota:
        events.append(
            EventMessage(
                gateway_id=gateway_id, at=now, event=EventType.OUTBOX_BELOW_QUOTA, detail=detail
            )
        )
    return QuotaWatch(stats.over_quota, refusing, stats.refused_clinical), events


@dataclass(frozen=True, slots=True)
class PublisherCounters:
    """What the publisher did since it was created (for tests, benchmarks, diagnostics)."""

    connects: int = 0
    connect_failures: int = 0
    batches_published: int = 0
    readings_published: int = 0
    readings_republished: int = 0
    readings_marked_sent: int = 0
    readings_acknowledged: int = 0
    acks_received: int = 0
    statuses_published: int = 0
    events_published: int = 0
    events_dropped: int = 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_devices() -> Sequence[DeviceStatus]:
    return ()


CommandHandler = Callable[[str, bytes], None]
"""Receives ``(topic, payload)`` of every command to this gateway (on the worker thread)."""


class LinkState(StrEnum):
    """The publisher's link to the broker, as the gateway reports it locally."""

    STARTING = "starting"
    """Not connected yet since the publisher started."""
    CONNECTED = "connected"
    """The broker accepted the connection."""
    DISCONNECTED = "disconnected"
    """The connection failed or was lost; ``reason`` says why, ``advice`` what to do."""
    STOPPED = "stopped"
    """The publisher stopped."""


@dataclass(frozen=True, slots=True)
class BrokerLink:
    """What the publisher knows of its link to the broker.

    Attributes:
        state: connected or not.
        since: when it entered this state.
        host: the broker host.
        port: the broker port.
        reason: why the last connection attempt failed or the link was lost.
        advice: what the operator can do about it ("" when nothing specific).
        failed_attempts: connection attempts that failed since the last success.
    """

    state: LinkState
    since: datetime
    host: str
    port: int
    reason: str | None = None
    advice: str = ""
    failed_attempts: int = 0

    def to_json(self) -> dict[str, str | int | None]:
        """The JSON document of the link status file."""
        return {
            "state": self.state.value,
            "since": self.since.isoformat(timespec="milliseconds"),
            "host": self.host,
            "port": self.port,
            "reason": self.reason,
            "advice": self.advice,
            "failed_attempts": self.failed_attempts,
        }


def write_link_status(path: Path, link: BrokerLink) -> None:
    """Replace ``path`` atomically with ``link`` as JSON (a reader never sees half)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(link.to_json(), ensure_ascii=False, indent=2) + "\n")
    os.replace(temporary, path)


class _ConnectFailed(Exception):
    def __init__(self, error: MqttConnectError) -> None:
        super().__init__(str(error))
        self.error = error


class _ConnectionLost(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Connection:
    """One client for one connection, and what is in flight on it."""

    def __init__(self, client: MqttClient, receive_maximum: int) -> None:
        self.client = client
        self.connack: ReasonCode | None = None
        self.receive_maximum = receive_maximum
        """QoS 1 messages the broker accepts in flight (from its CONNACK)."""
        self.batches: dict[int, Batch] = {}
        self.events: dict[int, EventMessage] = {}
        self.statuses: set[int] = set()
        self.unrecorded: list[Batch] = []
        """PUBACKed batches whose PUBACK the outbox could not record yet."""
        self.record_retry_at = 0.0
        self.pubacked: list[int] = []
        self.refused: list[tuple[int, ReasonCode]] = []
        self.acks: list[AckMessage] = []
        self.offline_mid: int | None = None
        self.offline_acked = False

    def on_connack(self, reason: ReasonCode, properties: Properties | None) -> None:
        """Record the CONNACK and the broker's Receive Maximum."""
        self.connack = reason
        stated = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        if isinstance(stated, int) and stated > 0:
            self.receive_maximum = stated

    def room(self) -> int:
        """How many more QoS 1 messages may be put in flight."""
        return self.receive_maximum - len(self.batches) - len(self.events) - len(self.statuses)

    def close(self) -> None:
        """Drop the connection (a DISCONNECT if the socket still works) and its sockets."""
        self.client.disconnect()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


class Publisher:
    """Drains an outbox into MQTT; see the module docstring for the guarantees.

    Args:
        settings: what to publish where.
        outbox: the outbox to drain (shared with the device sessions that fill it).
        clock: the current time, timezone-aware (envelopes, status, events).
        device_statuses: the devices' current states, for the status message.
        on_command: receives commands to this gateway; ``None`` to not subscribe.
        rng: jitter source for reconnect delays.
        client_factory: builds the MQTT client of each connection (the adapter's paho
            client; a test passes a fake).
    """

    def __init__(
        self,
        settings: PublisherSettings,
        outbox: Outbox,
        *,
        clock: Clock = _utc_now,
        device_statuses: Callable[[], Sequence[DeviceStatus]] = _no_devices,
        on_command: CommandHandler | None = None,
        rng: JitterSource | None = None,
        client_factory: ClientFactory = DEFAULT_CLIENT_FACTORY,
    ) -> None:
        tls = settings.broker.tls
        if tls is not None:
            for name, path in tls.client_tls().missing_files():
                raise ConfigError(name, f"{path} does not exist or is not a file")
        self.settings = settings
        self._client_factory = client_factory
        self._outbox = outbox
        self._clock = clock
        self._device_statuses = device_statuses
        self._on_command = on_command
        self._rng: JitterSource = rng if rng is not None else random.Random()
        self._gateway_id = settings.gateway_id
        self._readings_topic = readings_topic(settings.gateway_id)
        self._status_topic = status_topic(settings.gateway_id)
        self._events_topic = events_topic(settings.gateway_id)
        self._ack_topic = ack_topic(settings.gateway_id)
        self._command_filter = command_filter(settings.gateway_id)
        self._client_id = settings.broker.client_id or f"vitalgate-gw-{settings.gateway_id}"
        self._client_settings = settings.broker.client_settings(self._client_id)
        self._link_lock = threading.Lock()
        self._link = BrokerLink(
            LinkState.STARTING, clock(), settings.broker.host, settings.broker.port
        )
        self._budget = readings_budget(
            settings.gateway_id, settings.batch_max_readings, settings.batch_max_bytes
        )
        self._stop = threading.Event()
        self._done = threading.Event()
        self._connected = threading.Event()
        self._status_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._events_lock = threading.Lock()
        self._events: deque[EventMessage] = deque()
        self._counters = PublisherCounters()
        self._counters_lock = threading.Lock()
        self._quota_watch = QuotaWatch()
        self._last_check = float("-inf")
        self._last_status = float("-inf")
        self._last_device_check = float("-inf")
        self._last_devices: tuple[tuple[str, str, int | None], ...] = ()

    # -- public API --------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread; returns at once.

        Raises:
            PublisherError: it was started before.
        """
        if self._thread is not None:
            raise PublisherError("the publisher was already started; create a new one")
        self._thread = threading.Thread(
            target=self._run, name=f"publisher-{self._gateway_id}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_seconds: float | None = None) -> None:
        """Publish the offline status, disconnect and end the worker thread.

        Safe to call more than once, and before :meth:`start`.

        Args:
            timeout_seconds: how long to wait for the worker; by default long enough for
                a connection attempt under way (TCP and CONNACK) and the offline status.

        Raises:
            PublisherError: the worker did not end within ``timeout_seconds``.
        """
        if timeout_seconds is None:
            timeout_seconds = 2 * self.settings.broker.connect_timeout_seconds + (
                STOP_FLUSH_SECONDS + 1.0
            )
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout_seconds)
        if thread.is_alive():
            raise PublisherError(f"the publisher's worker did not stop within {timeout_seconds} s")

    async def run(self) -> None:
        """Run until cancelled (then stop cleanly), or until :meth:`stop` is called.

        Raises:
            PublisherError: the worker thread failed (with the failure as its cause).
        """
        self.start()
        try:
            await asyncio.to_thread(self._done.wait)
        finally:
            await asyncio.to_thread(self.stop)
        if self._failure is not None:
            raise PublisherError(f"the publisher failed: {self._failure!r}") from self._failure

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the current connection."""
        return self._connected.is_set()

    def wait_connected(self, timeout_seconds: float) -> bool:
        """Block until connected (True) or the timeout passes (False)."""
        return self._connected.wait(timeout_seconds)

    @property
    def failure(self) -> BaseException | None:
        """Why the worker thread ended, if it ended on an unexpected error."""
        return self._failure

    def link(self) -> BrokerLink:
        """The state of the link to the broker, and why it is down if it is."""
        with self._link_lock:
            return self._link

    def counters(self) -> PublisherCounters:
        """A snapshot of what the publisher did so far."""
        with self._counters_lock:
            return self._counters

    def publish_event(self, event: EventMessage) -> None:
        """Queue an event for ``gw/{id}/events``; thread-safe, never blocks.

        Raises:
            PublisherError: the event names another gateway.
        """
        if event.gateway_id != self._gateway_id:
            raise PublisherError(
                f"event for gateway {event.gateway_id!r} handed to the publisher of "
                f"{self._gateway_id!r}"
            )
        with self._events_lock:
            dropped = self._enqueue_event(event, front=False)
        if dropped:
            logger.warning(
                "event queue full; dropped the oldest event",
                extra={"count": MAX_QUEUED_EVENTS, "event": event.event.value},
            )

    def request_status(self) -> None:
        """Ask for a status publish soon (a device state changed); thread-safe."""
        self._status_requested.set()

    # -- worker ------------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._counters_lock:
            self._counters = replace(
                self._counters,
                **{
                    name: getattr(self._counters, name) + increment
                    for name, increment in increments.items()
                },
            )

    def _enqueue_event(self, event: EventMessage, *, front: bool) -> bool:
        """Queue an event (caller holds the lock); True if an event was dropped."""
        dropped = len(self._events) >= MAX_QUEUED_EVENTS
        if front:
            if dropped:
                self._events.pop()
            self._events.appendleft(event)
        else:
            if dropped:
                self._events.popleft()
            self._events.append(event)
        if dropped:
            self._count(events_dropped=1)
        return dropped

    def _run(self) -> None:
        try:
            attempt = 0
            first = True
            while not self._stop.is_set():
                if not first:
                    attempt += 1
                    delay = next_reconnect_delay(
                        attempt,
                        self._rng,
                        min_seconds=self.settings.reconnect_min_seconds,
                        max_seconds=self.settings.reconnect_max_seconds,
                    )
                    logger.info(
                        "reconnecting after a delay",
                        extra={"attempt": attempt, "delay_seconds": round(delay, 3)},
                    )
                    if self._idle_wait(delay):
                        break
                first = False
                if self._session():
                    attempt = 0
        except BaseException as exc:
            self._failure = exc
            logger.exception("publisher worker failed", extra={"error": type(exc).__name__})
        finally:
            self._connected.clear()
            self._set_link(LinkState.STOPPED)
            self._done.set()

    def _set_link(
        self, state: LinkState, error: MqttConnectError | None = None, reason: str | None = None
    ) -> None:
        """Record the link's state; rewrite the link status file when it changed."""
        with self._link_lock:
            previous = self._link
            failed = previous.failed_attempts + 1 if error is not None else 0
            if state is LinkState.DISCONNECTED and error is None:
                failed = previous.failed_attempts
            link = BrokerLink(
                state,
                self._clock() if state is not previous.state else previous.since,
                previous.host,
                previous.port,
                reason=error.reason if error is not None else reason,
                advice=error.advice if error is not None else "",
                failed_attempts=failed,
            )
            self._link = link
        path = self.settings.link_status_path
        if path is None or (state is previous.state and link.reason == previous.reason):
            return
        try:
            write_link_status(path, link)
        except OSError as exc:
            logger.warning(
                "cannot write the link status file",
                extra={"path": str(path), "reason": f"{type(exc).__name__}: {exc}"},
            )

    def _idle_wait(self, seconds: float) -> bool:
        """Wait offline, still watching the outbox quota; True if stop was requested."""
        deadline = time.monotonic() + seconds
        while True:
            self._check_outbox()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._stop.is_set()
            if self._stop.wait(min(remaining, STATUS_CHECK_SECONDS)):
                return True

    def _new_client(self) -> MqttClient:
        client = self._client_factory(self._client_settings)
        will = offline_status(self._gateway_id, self._clock(), self.settings.software_version)
        client.will_set(self._status_topic, encode_message(will), qos=1, retain=True)
        return client

    def _connect(self) -> _Connection:
        broker = self.settings.broker
        endpoint = self._client_settings.endpoint
        try:
            client = self._new_client()
        except (MqttError, OSError, ValueError) as exc:
            raise _ConnectFailed(
                MqttConnectError(
                    broker.host,
                    broker.port,
                    f"cannot set up the client: {type(exc).__name__}: {exc}",
                    "check the TLS files and the broker settings",
                )
            ) from exc
        v5 = broker.protocol is MqttProtocol.V5
        connection = _Connection(
            client, MQTT5_DEFAULT_RECEIVE_MAXIMUM if v5 else V311_RECEIVE_MAXIMUM
        )
        client.on_connect = lambda _c, _u, _f, reason, props: connection.on_connack(reason, props)
        client.on_publish = lambda _c, _u, mid, reason, _p: self._on_publish(
            connection, mid, reason
        )
        client.on_message = lambda _c, _u, message: self._on_message(connection, message)
        try:
            rc = mqtt_connect(client, self._client_settings)
        except MqttConnectError as exc:
            connection.close()
            raise _ConnectFailed(exc) from exc
        deadline = time.monotonic() + broker.connect_timeout_seconds
        while rc is MQTTErrorCode.MQTT_ERR_SUCCESS and connection.connack is None:
            if time.monotonic() > deadline:
                connection.close()
                raise _ConnectFailed(
                    connect_error(
                        endpoint,
                        "no CONNACK within the connect timeout",
                        socket_error=client.last_socket_error,
                    )
                )
            rc = client.loop(IDLE_POLL_SECONDS)
        if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS or connection.connack is None:
            connection.close()
            raise _ConnectFailed(
                closed_before_connack(
                    self._client_settings,
                    f"connection closed before CONNACK ({mqtt.error_string(rc)})",
                    socket_error=client.last_socket_error,
                )
            )
        if connection.connack.is_failure:
            connection.close()
            raise _ConnectFailed(connect_error(endpoint, connection.connack))
        return connection

    def _session(self) -> bool:
        """Connect and serve until the link is lost or stop is requested.

        Returns True if the broker acknowledged anything (the connection was useful).
        """
        broker = self.settings.broker
        try:
            connection = self._connect()
        except _ConnectFailed as exc:
            self._count(connect_failures=1)
            self._set_link(LinkState.DISCONNECTED, exc.error)
            logger.warning(
                "cannot connect to the broker",
                extra={"host": broker.host, "port": broker.port, "reason": exc.error.describe()},
            )
            return False
        self._count(connects=1)
        logger.info(
            "connected to the broker",
            extra={
                "host": broker.host,
                "port": broker.port,
                "client_id": self._client_id,
                "protocol": broker.protocol.value,
            },
        )
        progressed = False
        try:
            client = connection.client
            self._check_rc(client.subscribe(self._ack_topic, qos=1)[0], "subscribe to acks")
            if self._on_command is not None:
                self._check_rc(
                    client.subscribe(self._command_filter, qos=1)[0], "subscribe to commands"
                )
            # Connected means subscribed: a command sent once we say so is not missed.
            self._connected.set()
            self._set_link(LinkState.CONNECTED)
            self._publish_status(connection, force=True)
            while not self._stop.is_set():
                busy = self._fill_window(connection)
                self._send_events(connection)
                self._check_outbox()
                self._publish_status(connection, force=False)
                self._check_rc(client.loop(0.0 if busy else IDLE_POLL_SECONDS), "network loop")
                progressed = self._settle(connection) or progressed
            self._say_goodbye(connection)
        except _ConnectionLost as exc:
            self._set_link(LinkState.DISCONNECTED, reason=exc.reason)
            logger.warning("connection to the broker lost", extra={"reason": exc.reason})
        except OutboxError as exc:
            logger.error(
                "outbox failed while publishing; reconnecting",
                extra={"path": str(exc.path), "reason": exc.reason},
            )
        finally:
            self._connected.clear()
            if self.link().state is LinkState.CONNECTED:
                self._set_link(LinkState.DISCONNECTED, reason="disconnected")
            self._release(connection)
            connection.close()
        return progressed

    @staticmethod
    def _check_rc(rc: MQTTErrorCode, what: str) -> None:
        if rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise _ConnectionLost(f"{what}: {mqtt.error_string(rc)}")

    def _fill_window(self, connection: _Connection) -> bool:
        """Publish batches until the window is full; True if any was published."""
        published = False
        while (
            len(connection.batches) + len(connection.unrecorded) < self.settings.window_batches
            and connection.room() > 1
        ):
            batch = self._outbox.begin_batch(self._budget.max_count, self._budget.max_bytes)
            if batch is None:
                break
            payload = build_envelope(self._gateway_id, batch, self._clock())
            info = connection.client.publish(self._readings_topic, payload, qos=1)
            if info.rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._outbox.requeue(batch)
                raise _ConnectionLost(f"publish of readings: {mqtt.error_string(info.rc)}")
            connection.batches[info.mid] = batch
            self._count(
                batches_published=1,
                readings_published=len(batch),
                readings_republished=batch.republished,
            )
            published = True
        return published

    def _send_events(self, connection: _Connection) -> None:
        while len(connection.events) < EVENT_WINDOW and connection.room() > 1:
            with self._events_lock:
                if not self._events:
                    return
                event = self._events.popleft()
            info = connection.client.publish(self._events_topic, encode_message(event), qos=1)
            if info.rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
                with self._events_lock:
                    self._enqueue_event(event, front=True)
                raise _ConnectionLost(f"publish of an event: {mqtt.error_string(info.rc)}")
            connection.events[info.mid] = event

    def _check_outbox(self) -> None:
        """Every second: quota transitions become events and a status."""
        now = time.monotonic()
        if now - self._last_check < STATUS_CHECK_SECONDS:
            return
        self._last_check = now
        stats = self._outbox.stats()
        self._quota_watch, events = quota_events(
            self._quota_watch, stats, self._gateway_id, self._clock()
        )
        for event in events:
            logger.warning(
                "outbox quota state changed",
                extra={
                    "event": event.event.value,
                    "bytes": stats.used_bytes,
                    "quota_bytes": stats.quota_bytes,
                    "ceiling_bytes": stats.ceiling_bytes,
                    "refused": stats.refused_low_value + stats.refused_clinical,
                },
            )
            self.publish_event(event)
        if events:
            self._status_requested.set()

    def _devices(self) -> Sequence[DeviceStatus]:
        try:
            return self._device_statuses()
        except Exception as exc:
            logger.exception("device status callback failed", extra={"error": type(exc).__name__})
            return ()

    def _publish_status(self, connection: _Connection, *, force: bool) -> None:
        """Publish the retained status on connect, when due, when asked, or when a device
        changed state (looked at once a second; ``last_contact`` alone is no change)."""
        now = time.monotonic()
        due = now - self._last_status >= self.settings.status_interval_seconds
        requested = self._status_requested.is_set()
        if not (force or due or requested) and now - self._last_device_check < (
            STATUS_CHECK_SECONDS
        ):
            return
        self._last_device_check = now
        devices = self._devices()
        summary = tuple(
            sorted((device.device_id, device.state, device.battery_percent) for device in devices)
        )
        if not (force or due or requested or summary != self._last_devices):
            return
        if connection.room() < 1:
            self._status_requested.set()  # publish once a PUBACK frees a slot
            return
        self._status_requested.clear()
        self._last_status = now
        self._last_devices = summary
        status = build_status(
            self._gateway_id,
            self._outbox.stats(),
            devices,
            self._clock(),
            self.settings.software_version,
        )
        info = connection.client.publish(
            self._status_topic, encode_message(status), qos=1, retain=True
        )
        self._check_rc(info.rc, "publish of the status")
        connection.statuses.add(info.mid)
        self._count(statuses_published=1)

    def _on_publish(self, connection: _Connection, mid: int, reason: ReasonCode) -> None:
        if mid == connection.offline_mid:
            connection.offline_acked = True
        elif reason.is_failure:
            connection.refused.append((mid, reason))
        else:
            connection.pubacked.append(mid)

    def _on_message(self, connection: _Connection, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._ack_topic:
            try:
                ack = decode_message(bytes(message.payload), AckMessage)
            except PayloadError as exc:
                logger.warning(
                    "ignored an invalid acknowledgement",
                    extra={"topic": message.topic, "reason": f"{exc.field}: {exc.problem}"},
                )
                return
            if ack.gateway_id != self._gateway_id:
                logger.warning(
                    "ignored an acknowledgement for another gateway",
                    extra={"topic": message.topic, "gateway_id": ack.gateway_id},
                )
                return
            connection.acks.append(ack)
            return
        if self._on_command is not None:
            try:
                self._on_command(message.topic, bytes(message.payload))
            except Exception as exc:
                logger.exception(
                    "command handler failed",
                    extra={"topic": message.topic, "error": type(exc).__name__},
                )

    def _settle(self, connection: _Connection) -> bool:
        """Apply what the network loop brought; True if the broker acknowledged anything.

        Acknowledgements first: their deletions free space, which recording PUBACKs on a
        full disk may need.
        """
        progressed = bool(connection.pubacked)
        self._apply_acks(connection)
        sent: list[Batch] = []
        for mid in connection.pubacked:
            batch = connection.batches.pop(mid, None)
            if batch is not None:
                sent.append(batch)
            elif connection.events.pop(mid, None) is not None:
                self._count(events_published=1)
            else:
                connection.statuses.discard(mid)
        connection.pubacked.clear()
        if connection.unrecorded:
            connection.unrecorded.extend(sent)
            if time.monotonic() >= connection.record_retry_at:
                sent, connection.unrecorded = connection.unrecorded, []
                self._record_sent(connection, sent)
        elif sent:
            self._record_sent(connection, sent)
        if connection.refused:
            refused = list(connection.refused)
            connection.refused.clear()
            for mid, _reason in refused:
                connection.statuses.discard(mid)
                batch = connection.batches.pop(mid, None)
                if batch is not None:
                    self._outbox.requeue(batch)
                event = connection.events.pop(mid, None)
                if event is not None:
                    with self._events_lock:
                        self._enqueue_event(event, front=True)
            reasons = sorted({str(reason) for _mid, reason in refused})
            raise _ConnectionLost(f"broker refused publishes: {', '.join(reasons)}")
        return progressed

    def _record_sent(self, connection: _Connection, sent: list[Batch]) -> None:
        try:
            self._outbox.mark_sent(*sent)
        except OutboxError as exc:
            # A PUBACK that cannot be recorded (a disk that is really full) stays with the
            # connection: it still takes its place in the window, so nothing is published
            # twice meanwhile, and acknowledgements, which free space, go on being applied.
            connection.unrecorded = sent
            connection.record_retry_at = time.monotonic() + STATUS_CHECK_SECONDS
            logger.error(
                "cannot record PUBACKs; retrying",
                extra={"path": str(exc.path), "reason": exc.reason, "batches": len(sent)},
            )
            return
        self._count(readings_marked_sent=sum(len(batch) for batch in sent))

    def _apply_acks(self, connection: _Connection) -> None:
        if not connection.acks:
            return
        acks = list(connection.acks)
        connection.acks.clear()
        deleted = self._outbox.acknowledge([reading_id for ack in acks for reading_id in ack.ids])
        self._count(acks_received=len(acks), readings_acknowledged=deleted)
        quarantined = [notice.id for ack in acks for notice in ack.quarantined]
        if quarantined:
            logger.warning(
                "ingest kept readings in quarantine",
                extra={"count": len(quarantined), "reading_ids": quarantined},
            )

    def _say_goodbye(self, connection: _Connection) -> None:
        """Clean stop: the offline status replaces the retained online one.

        PUBACKs and acknowledgements arriving meanwhile are still recorded, so fewer
        readings are published twice after the restart.
        """
        deadline = time.monotonic() + STOP_FLUSH_SECONDS
        while connection.room() < 1 and time.monotonic() < deadline:
            self._check_rc(connection.client.loop(IDLE_POLL_SECONDS), "network loop")
            self._settle(connection)
        status = offline_status(self._gateway_id, self._clock(), self.settings.software_version)
        info = connection.client.publish(
            self._status_topic, encode_message(status), qos=1, retain=True
        )
        if info.rc is not MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        connection.offline_mid = info.mid
        while time.monotonic() < deadline and not connection.offline_acked:
            self._check_rc(connection.client.loop(IDLE_POLL_SECONDS), "network loop")
            self._settle(connection)
        logger.info("published the offline status", extra={"gateway_id": self._gateway_id})

    def _release(self, connection: _Connection) -> None:
        """Return whatever was in flight on a closing connection."""
        for batch in [*connection.batches.values(), *connection.unrecorded]:
            self._outbox.requeue(batch)
        with self._events_lock:
            for event in reversed(list(connection.events.values())):
                self._enqueue_event(event, front=True)
        if connection.batches:
            logger.info(
                "requeued batches in flight",
                extra={"batches": len(connection.batches)},
            )
        connection.batches.clear()
        connection.unrecorded.clear()
        connection.events.clear()
