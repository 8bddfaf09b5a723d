"""``vitalgate report`` and ``vitalgate export`` on a real SQLite registry and store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from ingest.stores import open_store
from registry.db import create_engine_for, session_scope
from registry.models import AuditRecord
from tests.reports.seed import fortnight
from vitalgate.cli import app

runner = CliRunner()
PERIOD = ["--from", "2026-03-01", "--to", "2026-03-14"]


def _setup(tmp_path: Path) -> tuple[str, str]:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    store_url = f"sqlite:///{tmp_path / 'readings.db'}"
    assert runner.invoke(app, ["registry", "--registry", registry, "init"]).exit_code == 0
    added = runner.invoke(
        app, ["registry", "--registry", registry, "patient", "add", "p-1", "--name", "张三"]
    )
    assert added.exit_code == 0, added.output
    store = open_store(store_url)
    store.write(fortnight(days=14))
    store.close()
    return registry, store_url


def _audit_actions(registry: str) -> list[str]:
    engine = create_engine_for(registry)
    with session_scope(engine, write=False) as session:
        actions = list(session.scalars(select(AuditRecord.action)))
    engine.dispose()
    return actions


def test_report_export_and_audit(tmp_path: Path) -> None:
    registry, store = _setup(tmp_path)
    common = ["--store", store, "--patient", "p-1", *PERIOD]
    pdf = tmp_path / "r.pdf"
    result = runner.invoke(
        app, ["report", "--registry", registry, *common, "--lang", "en", "--out", str(pdf)]
    )
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
    bundle = tmp_path / "b.json"
    result = runner.invoke(
        app, ["export", "--registry", registry, "fhir", *common, "--out", str(bundle)]
    )
    assert result.exit_code == 0, result.output
    observations = [
        e
        for e in json.loads(bundle.read_text())["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    assert len(observations) == 14 * (96 + 2 + 1 + 1)
    rows_file = tmp_path / "r.csv"
    result = runner.invoke(
        app, ["export", "--registry", registry, "csv", *common, "--out", str(rows_file)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(rows_file.read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == 14 * (96 + 2 + 1 + 1)
    actions = _audit_actions(registry)
    for action in ("report.pdf", "export.fhir", "export.csv.readings"):
        assert action in actions


def test_unknown_patient_exits_2(tmp_path: Path) -> None:
    registry, store = _setup(tmp_path)
    result = runner.invoke(
        app,
        [
            "report",
            "--registry",
            registry,
            "--store",
            store,
            "--patient",
            "nobody",
            "--out",
            str(tmp_path / "x.pdf"),
        ],
    )
    assert result.exit_code == 2
    assert not (tmp_path / "x.pdf").exists()
