"""Prometheus metrics of the alert worker, and registry-derived gauges for the operations view.

The worker's own counters (readings evaluated, findings, partitions held, evaluation lag)
live in a registry of their own, as ingest's do. The operations dashboards also need figures
that only the care registry knows — gateways offline, open alerts by severity and state —
so a collector reads them from the registry at each scrape (a few ``GROUP BY`` counts).
Labels are machine codes only: never a patient, device or gateway id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from alerts.evaluator import Evaluator
from registry.alert_models import AlertRow
from registry.db import session_scope
from registry.fleet_models import GatewayStatusRow

NAMESPACE: Final = "vitalgate_alerts"


class AlertMetrics:
    """The alert worker's counters and gauges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.readings_evaluated = Counter(
            "readings_evaluated", "Readings evaluated (arrivals)", namespace=NAMESPACE, registry=reg
        )
        self.findings = Counter(
            "findings", "Rule findings handed to the lifecycle", namespace=NAMESPACE, registry=reg
        )
        self.partitions_held = Gauge(
            "partitions_held", "accepted/ partitions this worker holds", namespace=NAMESPACE,
            registry=reg,
        )  # fmt: skip
        self.evaluation_lag = Gauge(
            "evaluation_lag_seconds",
            "now minus the oldest watermark of the partitions held: how far alerting is behind",
            namespace=NAMESPACE,
            registry=reg,
        )

    def observe(self, evaluator: Evaluator) -> None:
        """Copy the evaluator's state into the gauges and counters (called each loop)."""
        stats = evaluator.stats
        self.readings_evaluated.inc(max(0, stats.readings - self._seen("readings", stats.readings)))
        self.findings.inc(max(0, stats.findings - self._seen("findings", stats.findings)))
        self.partitions_held.set(len(evaluator.held))
        lags = evaluator.lag_seconds()
        self.evaluation_lag.set(max(lags.values()) if lags else 0.0)

    def _seen(self, name: str, now_value: int) -> int:
        previous: int = getattr(self, f"_last_{name}", 0)
        setattr(self, f"_last_{name}", now_value)
        return previous


class RegistryCollector(Collector):
    """Gauges read from the registry at scrape time: the fleet and the open alerts."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gateways = GaugeMetricFamily(
            "vitalgate_fleet_gateways", "Gateways by their last reported state", labels=["state"]
        )
        alerts = GaugeMetricFamily(
            "vitalgate_alerts_open",
            "Alerts not yet resolved, by severity and state",
            labels=["severity", "state"],
        )
        with session_scope(self._engine, write=False) as session:
            for state, count in session.execute(
                select(GatewayStatusRow.state, func.count()).group_by(GatewayStatusRow.state)
            ):
                gateways.add_metric([str(state)], float(count))
            for severity, state, count in session.execute(
                select(AlertRow.severity, AlertRow.state, func.count())
                .where(AlertRow.resolved_at.is_(None))
                .group_by(AlertRow.severity, AlertRow.state)
            ):
                alerts.add_metric([str(severity), str(state)], float(count))
        yield gateways
        yield alerts

    def describe(self) -> list[GaugeMetricFamily]:
        # Describing without reading the registry: registration must not need a database.
        return [
            GaugeMetricFamily("vitalgate_fleet_gateways", "", labels=["state"]),
            GaugeMetricFamily("vitalgate_alerts_open", "", labels=["severity", "state"]),
        ]


def registry_metrics(engine: Engine, registry: CollectorRegistry) -> None:
    """Register the registry-derived gauges in ``registry``."""
    registry.register(RegistryCollector(engine))
