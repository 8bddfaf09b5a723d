"""What the embedded store promises beyond the contract: durability settings and its schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.stores.sqlite_store import SCHEMA_VERSION, SqliteReadingStore
from readings.model import GlucoseValues, new_reading
from readings.units import Unit

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_the_file_is_in_wal_mode_with_the_schema_and_index(tmp_path: Path) -> None:
    path = tmp_path / "readings.db"
    SqliteReadingStore(path).close()

    with closing(sqlite3.connect(path)) as connection:
        journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        indexes = {row[1]: row[2] for row in connection.execute("PRAGMA index_list(readings)")}
        index_columns = [
            row[2] for row in connection.execute("PRAGMA index_info(readings_by_patient_kind_time)")
        ]

    assert journal_mode == "wal"
    assert version == SCHEMA_VERSION
    # The UNIQUE constraint on id is what makes INSERT OR IGNORE idempotent.
    assert any(unique for name, unique in indexes.items() if name.startswith("sqlite_autoindex"))
    assert index_columns == ["patient_id", "kind", "time_ns"]


def test_a_committed_batch_is_visible_to_another_connection_at_once(tmp_path: Path) -> None:
    path = tmp_path / "readings.db"
    reading = new_reading(
        values=GlucoseValues(glucose=5.6),
        source_unit=Unit.MMOL_PER_L,
        measured_at=T0,
        received_at=T0 + timedelta(seconds=30),
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=1,
    )
    with closing(SqliteReadingStore(path)) as store:
        store.write([reading])

        with closing(sqlite3.connect(path)) as other:
            rows = other.execute("SELECT id, values_json FROM readings").fetchall()

    assert rows == [(reading.id, '{"glucose":5.6}')]


def test_reopening_keeps_the_readings(tmp_path: Path) -> None:
    path = tmp_path / "readings.db"
    reading = new_reading(
        values=GlucoseValues(glucose=5.6),
        source_unit=Unit.MMOL_PER_L,
        measured_at=T0,
        received_at=T0,
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=1,
    )
    with closing(SqliteReadingStore(path)) as store:
        store.write([reading])

    with closing(SqliteReadingStore(path)) as reopened:
        assert reopened.ids() == {reading.id}
        reopened.ping()
