"""The evaluator on MQTT: subscribe to the held partitions, evaluate, then acknowledge.

One persistent MQTT session per worker (fixed client id), manual acknowledgements: a
message is acknowledged only after its findings reached the lifecycle, so a worker killed
mid-batch gets it redelivered (the window's id set makes the second evaluation a no-op
for readings already evaluated). The subscriptions follow the leases: a partition taken
over is subscribed after its catch-up, a partition lost is unsubscribed.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from alerts.evaluator import DEFAULT_TICK, Evaluator
from alerts.metrics import AlertMetrics
from infra.mqtt import ClientSettings, MqttClient, connect, create_client
from readings.errors import TopicError
from readings.topics import accepted_topic, parse_topic

log = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE: Final = 1


@dataclass(frozen=True, slots=True)
class _Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes


class EvaluatorService:
    """Runs an :class:`Evaluator` against a broker until :meth:`stop`."""

    def __init__(
        self,
        evaluator: Evaluator,
        client_settings: ClientSettings,
        *,
        tick: timedelta = DEFAULT_TICK,
        client_factory: Any = create_client,
        metrics: AlertMetrics | None = None,
    ) -> None:
        self.evaluator = evaluator
        self._metrics = metrics
        self._settings = client_settings
        self._tick = tick
        self._client: MqttClient = client_factory(client_settings)
        self._client.on_message = self._on_message
        self._client.on_connect = self._on_connect
        self._inbox: queue.Queue[_Inbound] = queue.Queue()
        self._stop = threading.Event()
        self._subscribed: set[int] = set()
        self._lock = threading.Lock()

    def _topic(self, partition: int) -> str:
        return accepted_topic(partition, self.evaluator.partitions)

    def _on_connect(self, client: Any, userdata: Any, *args: Any) -> None:
        # After a reconnect the persistent session keeps the subscriptions; subscribing
        # again is harmless and covers a broker that lost its state.
        with self._lock:
            for partition in sorted(self._subscribed):
                client.subscribe(self._topic(partition), qos=QOS_AT_LEAST_ONCE)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._inbox.put(_Inbound(message.mid, message.qos, message.topic, bytes(message.payload)))

    def _sync_subscriptions(self) -> None:
        held = set(self.evaluator.held)
        with self._lock:
            for partition in sorted(held - self._subscribed):
                self._client.subscribe(self._topic(partition), qos=QOS_AT_LEAST_ONCE)
            for partition in sorted(self._subscribed - held):
                self._client.unsubscribe(self._topic(partition))
            self._subscribed = held

    def run(self) -> None:
        """Connect and evaluate until :meth:`stop`; release the leases on the way out."""
        connect(self._client, self._settings)
        self._client.loop_start()
        renew_every = self.evaluator.lease_ttl / 3
        try:
            self.evaluator.refresh_leases()
            self._sync_subscriptions()
            next_renew = self.evaluator.clock() + renew_every
            next_tick = self.evaluator.clock() + self._tick
            while not self._stop.is_set():
                try:
                    item = self._inbox.get(timeout=0.2)
                except queue.Empty:
                    item = None
                if item is not None:
                    self._handle(item)
                now = self.evaluator.clock()
                if now >= next_renew:
                    if self.evaluator.outage is not None:
                        # Cut off from the broker, nothing reaches our windows: S1 would
                        # see every CGM go silent. The monitor counts it as an outage.
                        self.evaluator.outage.broker(self._connected(), now)
                    self.evaluator.refresh_leases()
                    self._sync_subscriptions()
                    next_renew = now + renew_every
                    if self._inbox.empty() and self._connected():
                        self.evaluator.mark_caught_up()
                    if self._metrics is not None:
                        self._metrics.observe(self.evaluator)
                if now >= next_tick:
                    self.evaluator.tick()
                    next_tick = now + self._tick
        finally:
            self.evaluator.release()
            self._client.loop_stop()
            self._client.disconnect()

    def _connected(self) -> bool:
        is_connected = getattr(self._client, "is_connected", None)
        return bool(is_connected()) if callable(is_connected) else False

    def _handle(self, item: _Inbound) -> None:
        try:
            partition = parse_topic(item.topic).partition
        except TopicError:
            partition = None  # not ours to read; acknowledged so it is not redelivered
        if partition is not None:
            self.evaluator.handle_accepted(int(partition), item.payload)
        # Acknowledge only after the findings reached the lifecycle.
        if item.qos > 0:
            self._client.ack(item.mid, item.qos)

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()
