"""The Grafana dashboards shipped in deploy/ query only metrics the code exposes.

A renamed metric, or a dashboard panel written against a metric nobody serves, shows as an
empty panel in production — the operator then trusts a flat line. This test reads every
dashboard and every query and checks each ``vitalgate_*`` series name against the metrics
the processes register.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerts.metrics import AlertMetrics, RegistryCollector
from ingest.metrics import IngestMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
SERIES = re.compile(r"\bvitalgate_[a-z0-9_]+")


# One entry per process kind that serves /metrics: how to build its registry.
def _registry_gauges() -> CollectorRegistry:
    # The registry-derived gauges, described without a database.
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RegistryCollector(engine=None))  # type: ignore[arg-type]
    return registry


METRIC_SOURCES: list[Callable[[], CollectorRegistry]] = [
    lambda: IngestMetrics().registry,
    lambda: AlertMetrics().registry,
    _registry_gauges,
]

# What each metric type exposes in the text format, besides its family name.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


def exposed_series() -> set[str]:
    names: set[str] = set()
    for build in METRIC_SOURCES:
        registry = build()
        # describe() names a collector's families without collecting (no database needed).
        families = [f for c in list(registry._collector_to_names) for f in c.describe()]
        for family in families:
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_there_are_dashboards() -> None:
    assert DASHBOARDS, "deploy/grafana/dashboards holds no dashboard"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_names_an_exposed_metric(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    exposed = exposed_series()
    queries = list(_queries(dashboard))
    assert queries, f"{path.name}: no queries"
    for title, expr in queries:
        named = set(SERIES.findall(expr))
        assert named, f"{path.name} / {title!r}: {expr!r} names no vitalgate metric"
        unknown = named - exposed
        assert not unknown, f"{path.name} / {title!r}: {sorted(unknown)} is not exposed by the code"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "vitalgate.yaml").read_text()
    )["datasources"][0]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
    assert dashboard["uid"].startswith("vitalgate-")
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_a_query_against_an_unknown_metric_is_caught() -> None:
    # The check itself must be able to fail: a typo in a metric name is not "exposed".
    assert "vitalgate_ingest_readings_stored_total" in exposed_series()
    assert "vitalgate_ingest_reading_stored_total" not in exposed_series()
    assert "vitalgate_ingest_readings_stored" not in exposed_series()  # counters need _total
