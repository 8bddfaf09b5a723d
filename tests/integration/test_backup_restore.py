"""Backup → restore into a fresh deployment finds every reading and registry row.

Real databases throughout: SQLite files, a real InfluxDB 1.x (its own ``influxd backup``
and ``restore`` over the RPC port) and PostgreSQL where one is reachable (``pg_dump`` and
``pg_restore``). After the restore, ``verify`` compares every registry table's rows and
every reading id with the manifest and re-verifies the audit chain; the tests also break
a restored copy to see that verify notices.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ingest.stores import open_store
from readings.model import BloodPressureValues, GlucoseValues, new_reading
from tests.harness.services import InfluxDBFactory, find_postgres, postgres_driver
from vitalgate.backup import BackupError, create_backup, restore_backup, verify_backup
from vitalgate.cli import app

pytestmark = pytest.mark.integration

runner = CliRunner()
DEVICE = "OMRON-HEM_7361T-20031234"
START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
READINGS = 300


def _cli(*arguments: str) -> dict[str, Any]:
    result = runner.invoke(app, list(arguments))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1]) if result.output.strip() else {}


def seed(registry_url: str, store_url: str) -> set[str]:
    """A small deployment: gateway, patient, device binding, audit rows, readings."""
    reg = ["registry", "--registry", registry_url, "--actor", "it.zhao"]
    _cli(*reg, "init")
    _cli(*reg, "gateway", "add", "gw-0001", "--label", "Wang household")
    _cli(*reg, "patient", "add", "patient-0001", "--name", "Wang")
    _cli(*reg, "device", "bind", DEVICE, "--gateway", "gw-0001", "--patient", "patient-0001")
    store = open_store(store_url)
    readings = []
    for i in range(READINGS):
        at = START + timedelta(minutes=37 * i)
        values = (
            GlucoseValues(glucose=4.0 + (i % 40) / 10)
            if i % 2
            else BloodPressureValues(systolic=120 + i % 30, diastolic=80)
        )
        readings.append(
            new_reading(
                values=values,
                source_unit="mmol/L" if i % 2 else "mm[Hg]",
                measured_at=at,
                received_at=at,
                device_id=DEVICE,
                patient_id="patient-0001",
                gateway_id="gw-0001",
                seq=i,
            )
        )
    try:
        store.write(readings)
        return store.ids()
    finally:
        store.close()


def _round_trip(
    tmp_path: Path, source: tuple[str, str], target: tuple[str, str], **kw: Any
) -> None:
    ids = seed(*source)
    assert len(ids) == READINGS
    backup = tmp_path / "backup"
    state = create_backup(*source, backup, **kw)
    assert state.readings == READINGS
    assert state.tables["audit_log"].rows >= 4
    problems = restore_backup(backup, *target, **kw)
    assert problems == []
    restored = open_store(target[1])
    try:
        assert restored.ids() == ids
    finally:
        restored.close()
    # The restored deployment still passes the audit chain check through the CLI.
    result = runner.invoke(app, ["audit", "verify", "--registry", target[0]])
    assert result.exit_code == 0, result.output


def test_sqlite_deployment_round_trip(tmp_path: Path) -> None:
    source = (f"sqlite:///{tmp_path / 'a' / 'registry.db'}", f"sqlite:///{tmp_path / 'a' / 'r.db'}")
    target = (f"sqlite:///{tmp_path / 'b' / 'registry.db'}", f"sqlite:///{tmp_path / 'b' / 'r.db'}")
    _round_trip(tmp_path, source, target)


def test_verify_names_a_lost_reading_a_changed_row_and_a_broken_chain(tmp_path: Path) -> None:
    source = (f"sqlite:///{tmp_path / 'a' / 'registry.db'}", f"sqlite:///{tmp_path / 'a' / 'r.db'}")
    target = (f"sqlite:///{tmp_path / 'b' / 'registry.db'}", f"sqlite:///{tmp_path / 'b' / 'r.db'}")
    seed(*source)
    create_backup(*source, tmp_path / "backup")
    assert restore_backup(tmp_path / "backup", *target) == []
    with sqlite3.connect(tmp_path / "b" / "r.db") as db:
        (table,) = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if name.startswith("reading")
        ]
        db.execute(f"DELETE FROM {table} WHERE rowid = (SELECT min(rowid) FROM {table})")
    with sqlite3.connect(tmp_path / "b" / "registry.db") as db:
        db.execute("UPDATE gateways SET label = 'changed'")
        # The audit table refuses UPDATE by trigger; tampering drops the trigger first.
        db.execute("DROP TRIGGER audit_log_append_only_update")
        db.execute("UPDATE audit_log SET action = 'registry.forged' WHERE seq = 2")
    problems = verify_backup(tmp_path / "backup", *target)
    text = "\n".join(problems)
    assert f"readings: {READINGS - 1} now, {READINGS} in the backup" in text
    assert "table gateways: 1 rows now, 1 in the backup (same count, different content)" in text
    assert "audit:" in text
    result = runner.invoke(
        app,
        ["backup", "verify", "--from", str(tmp_path / "backup"), "--registry", target[0],
         "--store", target[1]],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "DIFFERS readings" in result.output


def test_restore_refuses_to_overwrite(tmp_path: Path) -> None:
    source = (f"sqlite:///{tmp_path / 'a' / 'registry.db'}", f"sqlite:///{tmp_path / 'a' / 'r.db'}")
    seed(*source)
    create_backup(*source, tmp_path / "backup")
    with pytest.raises(BackupError, match="exists; restore into a new file"):
        restore_backup(tmp_path / "backup", *source)
    with pytest.raises(BackupError, match="not empty"):
        create_backup(*source, tmp_path / "backup")


def test_influxdb_store_round_trip(tmp_path: Path, influxdb_factory: InfluxDBFactory) -> None:
    old, new = influxdb_factory(), influxdb_factory()
    old.create_database("vitalgate")
    source = (
        f"sqlite:///{tmp_path / 'a' / 'registry.db'}",
        f"influxdb-v1://127.0.0.1:{old.port}/vitalgate",
    )
    target = (
        f"sqlite:///{tmp_path / 'b' / 'registry.db'}",
        f"influxdb-v1://127.0.0.1:{new.port}/vitalgate",
    )
    ids = seed(*source)
    backup = tmp_path / "backup"
    create_backup(*source, backup, influx_rpc=f"127.0.0.1:{old.rpc_port}")
    assert restore_backup(backup, *target, influx_rpc=f"127.0.0.1:{new.rpc_port}") == []
    restored = open_store(target[1])
    try:
        assert restored.ids() == ids
    finally:
        restored.close()


@pytest.fixture
def two_postgres_databases() -> Iterator[tuple[str, str]]:
    driver = postgres_driver()
    if driver is None:
        pytest.skip("PostgreSQL tests need psycopg (v3) or psycopg2; neither is installed")
    try:
        databases = [find_postgres(), find_postgres()]
    except Exception as error:  # PostgresUnavailable: no server here
        pytest.skip(str(error))
    for database in databases:
        database.create()
    try:
        yield databases[0].sqlalchemy_url(driver), databases[1].sqlalchemy_url(driver)
    finally:
        for database in databases:
            database.drop()


def test_postgresql_registry_round_trip(
    tmp_path: Path, two_postgres_databases: tuple[str, str]
) -> None:
    old, new = two_postgres_databases
    source = (old, f"sqlite:///{tmp_path / 'a' / 'r.db'}")
    target = (new, f"sqlite:///{tmp_path / 'b' / 'r.db'}")
    _round_trip(tmp_path, source, target)
