"""docs/operations.md documents every metric ingest registers, with its type and labels."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.metrics import IngestMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_ROW = re.compile(r"^\| `(vitalgate_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|")


def documented_metrics(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """``name -> (type, label names)`` from the metrics table of the page."""
    found = {}
    for line in text.splitlines():
        row = _ROW.match(line)
        if row is not None:
            labels = frozenset(re.findall(r"`([a-z_]+)`", row.group(3)))
            found[row.group(1)] = (row.group(2), labels)
    return found


def registered_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """``name -> (type, label names)`` of everything an ingest worker exposes."""
    metrics = IngestMetrics()
    types = {family.name: family.type for family in metrics.registry.collect()}
    labels: dict[str, frozenset[str]] = {}
    for collector in vars(metrics).values():
        name = getattr(collector, "_name", None)
        if isinstance(name, str):
            labels[name] = frozenset(getattr(collector, "_labelnames", ()))
    assert set(labels) == set(types), "every registered collector is an IngestMetrics field"
    return {name: (kind, labels[name]) for name, kind in types.items()}


def test_every_registered_metric_is_documented_with_its_type_and_labels() -> None:
    documented = documented_metrics(DOC.read_text(encoding="utf-8"))
    registered = registered_metrics()
    assert set(registered) - set(documented) == set(), "undocumented metrics"
    assert set(documented) - set(registered) == set(), "documented metrics that do not exist"
    for name, (kind, labels) in registered.items():
        assert documented[name] == (kind, labels), name


def test_the_table_reader_sees_types_and_labels() -> None:
    text = "| `vitalgate_x_total` | counter | `reason` | what |\n| other | row |"
    assert documented_metrics(text) == {"vitalgate_x_total": ("counter", frozenset({"reason"}))}
