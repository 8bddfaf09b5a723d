"""Prometheus metrics of the ingest worker.

Each worker owns its own :class:`~prometheus_client.CollectorRegistry` (not the global
one), so several workers can run in one process (tests, the embedded demo) without
clashing. Labels are machine codes with a small, fixed set of values: never a patient,
device or reading id.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

NAMESPACE: Final = "vitalgate_ingest"
STORE_WRITE_BUCKETS_SECONDS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""A healthy local InfluxDB answers a batch in 1–50 ms; seconds mean trouble, and a write
that ends in a timeout lands in the top buckets."""


class IngestMetrics:
    """The ingest worker's counters, gauges and histogram, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.messages_received = Counter(
            "messages_received", "MQTT messages received", namespace=NAMESPACE, registry=reg
        )
        self.messages_acked = Counter(
            "messages_acked",
            "MQTT messages acknowledged to the broker (after their readings were durable)",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.readings_received = Counter(
            "readings_received",
            "Readings received, valid or not",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.readings_stored = Counter(
            "readings_stored",
            "Readings durably written to the reading store",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.readings_quarantined = Counter(
            "readings_quarantined",
            "Readings (or whole payloads, reason=envelope) newly kept in quarantine, by reason "
            "(a redelivered message adds nothing)",
            ["reason"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.security_events = Counter(
            "security_events",
            "Readings refused because the gateway does not own the device or patient, by the "
            "check that failed; each refused reading once, however often it arrives",
            ["reason"],
            namespace=NAMESPACE,
            registry=reg,
        )
        self.e2e_acks_published = Counter(
            "e2e_acks_published",
            "End-to-end acknowledgements published to gateways",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.accepted_published = Counter(
            "accepted_published",
            "Readings republished on accepted/{partition} for the alert engine",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.store_write_seconds = Histogram(
            "store_write_seconds",
            "Duration of one successful batch write to the reading store",
            namespace=NAMESPACE,
            registry=reg,
            buckets=STORE_WRITE_BUCKETS_SECONDS,
        )
        self.store_retries = Counter(
            "store_retries",
            "Failed attempts to write a batch (store or quarantine unavailable)",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.backlog = Gauge(
            "backlog_messages",
            "MQTT messages received but not yet acknowledged to the broker",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.store_retrying = Gauge(
            "store_retrying",
            "1 while a batch waits for the store or the quarantine to come back",
            namespace=NAMESPACE,
            registry=reg,
        )
        self.connected = Gauge(
            "mqtt_connected",
            "1 while connected to the broker",
            namespace=NAMESPACE,
            registry=reg,
        )


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint."""

    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        """The port it listens on (the real one when 0 was asked for)."""
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = self.server.server_address[0]
        host_text = host.decode() if isinstance(host, bytes) else host
        return f"http://{host_text}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start_metrics_server(
    metrics: IngestMetrics, port: int, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``metrics`` on ``http://addr:port/metrics`` from a daemon thread.

    Loopback by default: the endpoint is unauthenticated, so exposing it is a deployment
    decision (a Prometheus on another host, behind the site's firewall).
    """
    server, thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return MetricsServer(server, thread)
