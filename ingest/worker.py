"""The ingest worker: MQTT → contract → ownership → plausibility → store → acknowledgements.

Delivery (``docs/wire-protocol.md``, "Delivery"; the pattern of Telegraf's MQTT consumer,
which acks the broker only once its outputs hold the data): the worker holds a
persistent MQTT 5 session (fixed client id, clean start off, session expiry) on a shared
subscription at QoS 1 with manual acknowledgements. A message is acknowledged to the
broker only once each of its readings is durable somewhere: in the reading store, or in
quarantine with its reason and raw bytes. Until then nothing is acknowledged, and MQTT 5
flow control (receive maximum) makes the broker keep the rest of the backlog.

Per batch, in order:

1. examine each message (:func:`ingest.examine.examine_message`: decode, ownership,
   plausibility — a pure decision); the gateway is the one in the topic, which the
   broker's ACL ties to the gateway's credential;
2. write the good readings in one store call, retrying while the store is unavailable;
3. write every quarantine entry in one transaction (same retry); the quarantine is
   idempotent, so a redelivered message adds no entry and no security event;
4. count what was new (each quarantined reading and security event once, however often
   its message was delivered or its batch retried);
5. republish the stored readings on ``accepted/{partition}`` for the alert engine;
6. acknowledge the MQTT messages;
7. publish the end-to-end acknowledgements to ``gw/{id}/ack``: the ids now stored or
   quarantined, which the gateway may delete from its outbox — one per gateway and batch
   for messages stored whole, one per message that has quarantine notices (a notice's
   ``index`` is a position in its own envelope).

Step 5 comes before 6 so that a crash in between re-delivers the message and republishes
the readings (the alert engine ignores a reading id it has seen), instead of losing them
for the alerts. A crash anywhere re-delivers unacknowledged messages; the store and the
alert engine absorb the duplicates by reading id.

A payload that cannot be decoded at all is quarantined whole (reason ``envelope``) and
acknowledged: redelivering poison forever would block the session.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from infra.mqtt import (
    DEFAULT_CLIENT_FACTORY,
    ClientFactory,
    ClientSettings,
    MqttClient,
    MqttConnectError,
    MqttError,
    MqttProtocol,
    TlsSettings,
    closed_before_connack,
    connect_error,
)
from infra.mqtt import connect as mqtt_connect
from ingest.config import IngestSettings
from ingest.errors import IngestError as IngestError  # the package's root, re-exported
from ingest.examine import Decision, Examination, OwnershipCheck, examine_message, refuse_stored
from ingest.metrics import IngestMetrics
from ingest.stores.base import ReadingStore, StoreUnavailable
from ingest.stores.retry import retry_delay_for
from readings.codec import (
    MAX_IDS_PER_ACK,
    MAX_READINGS_PER_ENVELOPE,
    AckMessage,
    QuarantineNotice,
    encode_envelope_from_encoded,
    encode_message,
    encode_reading,
)
from readings.model import Reading
from readings.topics import (
    ALL_READINGS_FILTER,
    accepted_topic,
    ack_topic,
    partition_for,
    shared_subscription,
)
from registry.errors import RegistryUnavailable
from registry.quarantine import QuarantineEntry

logger = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE: Final = 1
CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""How long :meth:`IngestWorker.start` waits for the broker's CONNACK; a local broker
answers in milliseconds, a remote one over TLS in well under a second."""
RECONNECT_MIN_DELAY_SECONDS: Final = 1
RECONNECT_MAX_DELAY_SECONDS: Final = 30
"""After a broker restart, hundreds of workers and gateways reconnect; doubling up to 30 s
spreads them out while keeping an ingest outage short."""
INBOX_POLL_SECONDS: Final = 0.2
"""How often an idle processing thread checks whether it was asked to stop."""
INBOX_SLACK_FACTOR: Final = 2
EXAMINED_SLOTS: Final = 1
"""Batches examined ahead of the writer (see ``IngestWorker._examined``)."""
"""The inbox holds up to twice the receive maximum: after a reconnect the broker resends
the unacknowledged messages while their first copies may still wait here."""

TRANSIENT_ERRORS: Final = (StoreUnavailable, RegistryUnavailable)
"""Failures that end by themselves: the batch is retried whole, nothing acknowledged."""


class IngestConnectError(IngestError):
    """The broker could not be reached or refused the connection.

    Attributes:
        host: the broker host.
        port: the broker port.
        problem: what went wrong (refusal reason or socket error) and, where known, what
            the operator can do about it.
    """

    def __init__(self, host: str, port: int, problem: str) -> None:
        super().__init__(f"cannot connect to the MQTT broker at {host}:{port}: {problem}")
        self.host = host
        self.port = port
        self.problem = problem

    @classmethod
    def from_mqtt(cls, error: MqttConnectError) -> IngestConnectError:
        """The worker's form of the adapter's connection error (reason and advice)."""
        return cls(error.host, error.port, error.describe())


class IngestWorkerFailed(IngestError):
    """The processing thread stopped on an error it cannot recover from.

    The messages of the batch it was working on stay unacknowledged; the broker
    redelivers them to the next worker of the group.
    """


class Companion(Protocol):
    """Something that runs alongside a worker (the heartbeat, ``ingest.heartbeat``)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class QuarantineSink(Protocol):
    """What the worker needs of :class:`registry.quarantine.QuarantineStore`."""

    def add_many(self, entries: Sequence[QuarantineEntry]) -> Sequence[QuarantineEntry]:
        """Keep the entries not kept yet durably, in one transaction; return those."""
        ...


def utc_now() -> datetime:
    """The current time, UTC (the default clock)."""
    return datetime.now(UTC)


def retry_delay_seconds(error: Exception, attempt: int) -> float:
    """Delay before retry number ``attempt`` after ``error`` (one of :data:`TRANSIENT_ERRORS`).

    The store's policy (:func:`ingest.stores.retry.retry_delay_for`: ``Retry-After``, else
    doubling up to a cap) applies to the registry as well, which has no ``Retry-After``.
    """
    as_store_error = error if isinstance(error, StoreUnavailable) else StoreUnavailable(str(error))
    delay = retry_delay_for(as_store_error, attempt)
    assert delay is not None  # StoreUnavailable is always retryable
    return delay


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """An MQTT message as the processing thread sees it."""

    mid: int
    qos: int
    topic: str
    payload: bytes


@dataclass(slots=True)
class _Outcome:
    """What one message turned into once its batch was written (built afresh per attempt,
    so a retried attempt cannot add to what a failed one left behind)."""

    message: InboundMessage
    examination: Examination
    readings: list[Reading] = field(default_factory=list)
    """Readings now in the store."""
    received: list[bytes | msgspec.Raw] = field(default_factory=list)
    """Their JSON as received, aligned with ``readings`` (forwarded on ``accepted/``)."""
    entries: list[QuarantineEntry] = field(default_factory=list)
    """What this message puts in quarantine (examination and store refusals)."""
    notices: list[QuarantineNotice] = field(default_factory=list)
    handled_ids: list[str] = field(default_factory=list)
    """Ids stored or quarantined: what the end-to-end acknowledgement lists."""

    @property
    def gateway_id(self) -> str | None:
        return self.examination.gateway_id

    def refuse(self, decision: Decision) -> None:
        assert decision.entry is not None
        self.entries.append(decision.entry)
        notice = decision.notice
        if notice is not None:
            self.notices.append(notice)
        if decision.reading_id is not None:
            self.handled_ids.append(decision.reading_id)


@dataclass(frozen=True, slots=True)
class _Examined:
    """A batch decoded and checked, waiting for the writer."""

    messages: Sequence[InboundMessage]
    examinations: list[Examination]


class IngestWorker:
    """One ingest worker: an MQTT session, a thread that decodes and checks batches, and
    a writer thread that stores and acknowledges them in order.

    Args:
        settings: validated configuration.
        store: where good readings go.
        ownership: the registry's pairing check.
        quarantine: where refused readings and payloads go.
        metrics: counters to update (a fresh set if omitted).
        clock: current time, UTC; injected so tests control "now".
        on_close: called once the worker has stopped (to close what it was opened with).
        client_factory: builds the MQTT client (the adapter's paho client; a test
            passes a fake).
    """

    def __init__(
        self,
        settings: IngestSettings,
        *,
        store: ReadingStore,
        ownership: OwnershipCheck,
        quarantine: QuarantineSink,
        metrics: IngestMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
        on_close: Sequence[Callable[[], None]] = (),
        client_factory: ClientFactory = DEFAULT_CLIENT_FACTORY,
    ) -> None:
        self.settings = settings
        self._on_close = tuple(on_close)
        self.companions: list[Companion] = []
        """Started after the worker connected, stopped when it closes (the heartbeat)."""
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self._store = store
        self._ownership = ownership
        self._quarantine = quarantine
        self._clock = clock
        self._inbox: queue.Queue[InboundMessage] = queue.Queue(
            maxsize=settings.receive_maximum * INBOX_SLACK_FACTOR
        )
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._connack = threading.Event()
        self._link_up = threading.Event()
        self._connect_failure: str | None = None
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        # Examined batches waiting for the writer. One slot: the next batch is decoded and
        # checked while the current one waits for the store's answer (≈ 40 % of a batch's
        # wall time is that wait), and at most one batch is held beyond the one in hand.
        self._examined: queue.Queue[_Examined | None] = queue.Queue(maxsize=EXAMINED_SLOTS)
        self._client_settings = self._make_client_settings()
        self._client = self._make_client(client_factory)

    # -- MQTT ---------------------------------------------------------------------------

    @property
    def _mqtt5(self) -> bool:
        return self.settings.mqtt_protocol == "5"

    @property
    def subscription(self) -> str:
        """The shared subscription this worker's group reads from (the plain readings
        filter on MQTT 3.1.1, which has no shared subscriptions)."""
        if not self._mqtt5:
            return ALL_READINGS_FILTER
        return shared_subscription(self.settings.group, ALL_READINGS_FILTER)

    def _make_client_settings(self) -> ClientSettings:
        """A persistent session with manual acknowledgements; on MQTT 5 the receive
        maximum bounds what the broker sends unacknowledged."""
        settings = self.settings
        return ClientSettings(
            endpoint=settings.mqtt_endpoint,
            client_id=settings.mqtt_client_id,
            protocol=MqttProtocol(settings.mqtt_protocol),
            tls=TlsSettings(
                ca_file=settings.mqtt_ca_file,
                cert_file=settings.mqtt_cert_file,
                key_file=settings.mqtt_key_file,
                crl_file=settings.mqtt_crl_file,
            ),
            keepalive_seconds=settings.mqtt_keepalive_seconds,
            persistent_session=True,
            session_expiry_seconds=settings.session_expiry_seconds,
            receive_maximum=settings.receive_maximum,
            manual_ack=True,
            connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS,
            reconnect_delay_seconds=(RECONNECT_MIN_DELAY_SECONDS, RECONNECT_MAX_DELAY_SECONDS),
        )

    def _make_client(self, factory: ClientFactory) -> MqttClient:
        endpoint = self._client_settings.endpoint
        try:
            client = factory(self._client_settings)
        except MqttError as exc:
            raise IngestConnectError(endpoint.host, endpoint.port, str(exc)) from exc
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            error = connect_error(self._client_settings.endpoint, reason_code)
            self._connect_failure = error.describe()
            logger.error("%s", error)
            self._connack.set()
            return
        self._connect_failure = None
        self.metrics.connected.set(1)
        self._link_up.set()
        logger.info(
            "connected as %s (session %s)",
            self.settings.mqtt_client_id,
            "resumed" if flags.session_present else "new",
        )
        # Subscribing again on a resumed session is harmless and covers a session the
        # broker expired or lost (a broker restart without persistence).
        client.subscribe(self.subscription, qos=QOS_AT_LEAST_ONCE)
        self._connack.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.metrics.connected.set(0)
        self._link_up.clear()
        if not self._connack.is_set():
            # Closed before the CONNACK: a broker refusing the client's certificate after
            # a TLS 1.3 handshake does this; paho's last socket error says why.
            error = closed_before_connack(
                self._client_settings,
                f"connection closed before CONNACK ({reason_code})",
                socket_error=self._client.last_socket_error,
            )
            self._connect_failure = error.describe()
            self._connack.set()
            return
        if not self._stopping.is_set():
            logger.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        for code in reason_codes:
            if code.is_failure:
                logger.error("broker refused the subscription %s: %s", self.subscription, code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.metrics.messages_received.inc()
        self.metrics.backlog.inc()
        # Receive maximum bounds what the broker sends unacknowledged, so this put does
        # not block in practice; if it ever did, blocking paho's thread is the right
        # back-pressure (TCP then holds the broker back).
        self._inbox.put(
            InboundMessage(message.mid, message.qos, message.topic, bytes(message.payload))
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, subscribe and start processing.

        Raises:
            IngestConnectError: the broker is unreachable or refused the connection.
        """
        endpoint = self._client_settings.endpoint
        try:
            mqtt_connect(self._client, self._client_settings)
        except MqttConnectError as exc:
            raise IngestConnectError.from_mqtt(exc) from None
        self._client.loop_start()
        if not self._connack.wait(CONNECT_TIMEOUT_SECONDS) or self._connect_failure:
            problem = self._connect_failure or f"no CONNACK within {CONNECT_TIMEOUT_SECONDS:g} s"
            self._client.loop_stop()
            raise IngestConnectError(endpoint.host, endpoint.port, problem)
        self._writer = threading.Thread(
            target=self._run_writer,
            name=f"ingest-writer-{self.settings.mqtt_client_id}",
            daemon=True,
        )
        self._writer.start()
        self._thread = threading.Thread(
            target=self._run, name=f"ingest-{self.settings.mqtt_client_id}", daemon=True
        )
        self._thread.start()
        for companion in self.companions:
            companion.start()

    def stop(self) -> None:
        """Ask the worker to stop: the current batch is finished (within the grace period)
        and acknowledged; messages not yet started stay with the broker."""
        if not self._stopping.is_set():
            self._stop_deadline = time.monotonic() + self.settings.shutdown_grace_seconds
            self._stopping.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the processing thread to end; True if it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in (self._thread, self._writer):
            if thread is None:
                continue
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return True

    def close(self) -> None:
        """Stop, wait for the current batch, disconnect (the session stays with the broker).

        Raises:
            IngestWorkerFailed: the processing thread had died on an error.
        """
        self.stop()
        for companion in self.companions:
            companion.stop()
        self.wait()
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()
        self.metrics.connected.set(0)
        for close in self._on_close:
            close()
        self._on_close = ()
        if self._failure is not None:
            raise IngestWorkerFailed(str(self._failure)) from self._failure

    @property
    def connected(self) -> bool:
        """Connected to the broker and working: what the heartbeat vouches for."""
        if self._stopping.is_set() or self._failure is not None:
            return False
        return self._link_up.is_set()

    @property
    def failed(self) -> BaseException | None:
        """The error the processing thread died of, if it did."""
        return self._failure

    # -- processing -----------------------------------------------------------------------

    def _run(self) -> None:
        """Collect and examine batches, and hand them to the writer in order."""
        try:
            while not self._stopping.is_set():
                batch = self._collect()
                if not batch:
                    continue
                examinations = self._examine_with_retry(batch)
                if examinations is None:
                    return
                self._hand_over(_Examined(batch, examinations))
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._hand_over(None)

    def _hand_over(self, examined: _Examined | None) -> None:
        """Queue a batch for the writer, waiting for its slot unless the writer is gone."""
        while True:
            try:
                self._examined.put(examined, timeout=INBOX_POLL_SECONDS)
                return
            except queue.Full:
                if self._writer is None or not self._writer.is_alive():
                    return

    def _run_writer(self) -> None:
        """Store, quarantine and acknowledge examined batches, one at a time, in order:
        PUBACKs go out in the order the broker sent the messages."""
        try:
            while True:
                try:
                    examined = self._examined.get(timeout=INBOX_POLL_SECONDS)
                except queue.Empty:
                    if self._thread is not None and not self._thread.is_alive():
                        return
                    continue
                if examined is None:
                    return
                if not self._process(examined):
                    return
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        logger.error("ingest processing stopped on an unrecoverable error", exc_info=exc)
        if self._failure is None:
            self._failure = exc
        self._stopping.set()

    def _examine_with_retry(self, batch: Sequence[InboundMessage]) -> list[Examination] | None:
        """The batch's examinations; None when stopping while the registry is unreachable."""
        attempt = 0
        while True:
            try:
                return [self._examine(message) for message in batch]
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                if not self._wait_to_retry(batch, exc, attempt):
                    return None

    def _collect(self) -> list[InboundMessage]:
        """Up to ``batch_max_messages``, waiting at most ``batch_max_delay_seconds`` after
        the first: flushing on size OR time, so a quiet hour still moves every reading."""
        try:
            first = self._inbox.get(timeout=INBOX_POLL_SECONDS)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_max_delay_seconds
        while len(batch) < self.settings.batch_max_messages:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._inbox.get_nowait()
                    if remaining <= 0
                    else self._inbox.get(timeout=remaining)
                )
            except queue.Empty:
                break
        return batch

    def _process(self, examined: _Examined) -> bool:
        """Make a batch durable and acknowledge it; False when stopping left it unacked."""
        batch = examined.messages
        attempt = 0
        while True:
            try:
                # The examinations are immutable: a retry starts from them again, so
                # nothing a failed attempt did is counted or quarantined twice.
                outcomes, new_entries = self._store_and_quarantine(batch, examined.examinations)
                break
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                if not self._wait_to_retry(batch, exc, attempt):
                    return False
        self.metrics.store_retrying.set(0)
        self._acknowledge(outcomes, new_entries)
        return True

    def _wait_to_retry(self, batch: Sequence[InboundMessage], exc: Exception, attempt: int) -> bool:
        """Count and log a failed attempt and sleep before the next; False once a stop's
        grace period is used up (the batch then stays unacknowledged for redelivery)."""
        self.metrics.store_retries.inc()
        self.metrics.store_retrying.set(1)
        delay = retry_delay_seconds(exc, attempt)
        logger.warning(
            "batch of %d messages not stored (%s); retry %d in %.1f s, nothing acked",
            len(batch),
            exc,
            attempt,
            delay,
        )
        if self._sleep_before_retry(delay):
            return True
        logger.warning("stopping: %d messages left unacknowledged for redelivery", len(batch))
        self.metrics.store_retrying.set(0)
        return False

    def _sleep_before_retry(self, delay: float) -> bool:
        """Sleep before a retry; False once a stop's grace period is used up."""
        if not self._stopping.is_set():
            self._stopping.wait(delay)
        if self._stopping.is_set():
            remaining = self._stop_deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
        return True

    def _examine(self, message: InboundMessage) -> Examination:
        """Sort one message's readings into "store" and "quarantine" (a pure decision)."""
        return examine_message(
            message.topic,
            message.payload,
            ownership=self._ownership,
            limits=self.settings.plausibility,
            now=self._clock(),
        )

    def _store_and_quarantine(
        self, batch: Sequence[InboundMessage], examinations: Sequence[Examination]
    ) -> tuple[list[_Outcome], Sequence[QuarantineEntry]]:
        """Make every reading of the batch durable: stored, or quarantined with its reason.

        Returns:
            Each message's outcome, and the quarantine entries that were new (not there
            from an earlier delivery of the same message).

        Raises:
            StoreUnavailable, RegistryUnavailable: nothing may be acknowledged; retry.
        """
        unique: dict[str, Reading] = {}
        for examination in examinations:
            for decision in examination.to_store:
                assert decision.reading is not None
                unique.setdefault(decision.reading.id, decision.reading)
        stored: set[str] = set()
        refused: dict[str, str] = {}
        pending = list(unique.values())
        chunk_size = self.settings.batch_max_readings
        for start in range(0, len(pending), chunk_size):
            chunk = pending[start : start + chunk_size]
            began = time.perf_counter()
            result = self._store.write(chunk)
            self.metrics.store_write_seconds.observe(time.perf_counter() - began)
            stored.update(result.stored)
            refused.update((point.reading_id, point.reason) for point in result.rejected)
        now = self._clock()
        outcomes = []
        for message, examination in zip(batch, examinations, strict=True):
            outcome = _Outcome(message, examination)
            for decision in examination.decisions:
                if decision.entry is not None:
                    outcome.refuse(decision)
                    continue
                reading = decision.reading
                assert reading is not None
                if reading.id in refused:
                    outcome.refuse(
                        refuse_stored(
                            decision, refused[reading.id], now=now, topic=examination.topic
                        )
                    )
                elif reading.id in stored:
                    outcome.readings.append(reading)
                    outcome.received.append(
                        decision.received
                        if decision.received is not None
                        else encode_reading(reading)
                    )
                    outcome.handled_ids.append(reading.id)
                # A reading neither stored nor refused (a store breaking its contract) is
                # left out of the end-to-end ack: the gateway sends it again.
            outcomes.append(outcome)
        entries = [entry for outcome in outcomes for entry in outcome.entries]
        new_entries = self._quarantine.add_many(entries) if entries else []
        return outcomes, new_entries

    def _acknowledge(
        self, outcomes: Sequence[_Outcome], new_entries: Sequence[QuarantineEntry]
    ) -> None:
        """Everything is durable: tell the alert engine, the broker and the gateways."""
        self._publish_accepted(outcomes)
        acked: set[int] = set()
        for outcome in outcomes:
            message = outcome.message
            if message.qos > 0 and message.mid not in acked:
                acked.add(message.mid)
                self._client.ack(message.mid, message.qos)
        self.metrics.messages_acked.inc(len(outcomes))
        self.metrics.backlog.dec(len(outcomes))
        self._count(outcomes, new_entries)
        acked_at = self._clock()
        # One end-to-end ack per gateway and batch for the messages stored whole; a message
        # with quarantine notices keeps its own ack, because a notice's ``index`` is a
        # position in that message's envelope.
        merged: dict[str, list[str]] = {}
        for outcome in outcomes:
            gateway_id = outcome.gateway_id
            if gateway_id is None:
                continue
            if outcome.notices:
                self._publish_e2e_ack(gateway_id, outcome.handled_ids, outcome.notices, acked_at)
            elif outcome.handled_ids:
                merged.setdefault(gateway_id, []).extend(outcome.handled_ids)
        for gateway_id, ids in merged.items():
            self._publish_e2e_ack(gateway_id, ids, [], acked_at)

    def _count(self, outcomes: Sequence[_Outcome], new_entries: Sequence[QuarantineEntry]) -> None:
        """Count readings per delivery, quarantine entries and security events once each."""
        for outcome in outcomes:
            self.metrics.readings_received.inc(outcome.examination.readings_received)
            self.metrics.readings_stored.inc(len(outcome.readings))
        for entry in new_entries:
            self.metrics.readings_quarantined.labels(reason=entry.reason).inc()
            if entry.security_event:
                self.metrics.security_events.labels(reason=entry.detail).inc()

    def _publish_e2e_ack(
        self,
        gateway_id: str,
        handled_ids: Sequence[str],
        notices: Sequence[QuarantineNotice],
        acked_at: datetime,
    ) -> None:
        ids = list(dict.fromkeys(handled_ids))
        topic = ack_topic(gateway_id)
        for start in range(0, max(len(ids), 1), MAX_IDS_PER_ACK):
            message = AckMessage(
                gateway_id=gateway_id,
                acked_at=acked_at,
                ids=ids[start : start + MAX_IDS_PER_ACK],
                quarantined=list(notices) if start == 0 else [],
            )
            self._client.publish(topic, encode_message(message), qos=QOS_AT_LEAST_ONCE)
            self.metrics.e2e_acks_published.inc()

    def _publish_accepted(self, outcomes: Sequence[_Outcome]) -> None:
        """Forward the stored readings, as received, in envelopes per gateway and partition
        (``docs/wire-protocol.md``, "Consuming accepted/"): each reading's bytes are the
        slice of the gateway's envelope, never re-encoded."""
        partitions = self.settings.partitions
        groups: dict[tuple[str, int], dict[str, bytes | msgspec.Raw]] = {}
        # Patients repeat within a batch (a gateway's readings are a few patients'): the
        # partition hash is computed once per patient.
        partition_of: dict[str, int] = {}
        for outcome in outcomes:
            for reading, raw in zip(outcome.readings, outcome.received, strict=True):
                patient = reading.patient_id
                partition = partition_of.get(patient)
                if partition is None:
                    partition = partition_of[patient] = partition_for(patient, partitions)
                groups.setdefault((reading.gateway_id, partition), {})[reading.id] = raw
        sent_at = self._clock()
        for (gateway_id, partition), by_id in groups.items():
            raws = list(by_id.values())
            for start in range(0, len(raws), MAX_READINGS_PER_ENVELOPE):
                chunk = raws[start : start + MAX_READINGS_PER_ENVELOPE]
                self._client.publish(
                    accepted_topic(partition, partitions),
                    encode_envelope_from_encoded(gateway_id, sent_at, chunk),
                    qos=QOS_AT_LEAST_ONCE,
                )
                self.metrics.accepted_published.inc(len(chunk))


def open_worker(
    settings: IngestSettings,
    *,
    metrics: IngestMetrics | None = None,
    clock: Callable[[], datetime] = utc_now,
    client_factory: ClientFactory = DEFAULT_CLIENT_FACTORY,
) -> IngestWorker:
    """A worker wired to the store and registry named in ``settings``.

    Raises:
        StoreConfigError: the store URL is unusable.
        RegistryError: the registry URL is unusable or its schema is not current.
        IngestConnectError: the MQTT client cannot be built (a TLS file is unusable).
    """
    from ingest.heartbeat import IngestHeartbeat
    from ingest.stores import open_store
    from registry.db import check_schema, create_engine_for
    from registry.ownership import OwnershipChecker as RegistryOwnershipChecker
    from registry.quarantine import QuarantineStore

    engine = create_engine_for(settings.registry_url)
    try:
        check_schema(engine)
        store = open_store(settings.store_url)
    except BaseException:
        engine.dispose()
        raise
    try:
        worker = IngestWorker(
            settings,
            store=store,
            ownership=RegistryOwnershipChecker(engine),
            quarantine=QuarantineStore(engine),
            metrics=metrics,
            clock=clock,
            on_close=(store.close, engine.dispose),
            client_factory=client_factory,
        )
        # The evaluator reads the heartbeat to tell a clinic-side outage from quiet homes.
        worker.companions.append(
            IngestHeartbeat(
                engine,
                instance=settings.mqtt_client_id,
                connected=lambda: worker.connected,
                clock=clock,
            )
        )
        return worker
    except BaseException:
        # The client could not be built (a TLS file): close what was opened for it.
        store.close()
        engine.dispose()
        raise
