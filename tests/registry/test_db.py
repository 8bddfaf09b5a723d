"""Engines, migrations and timestamps of the registry, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, column, inspect, select, table, text
from sqlalchemy.exc import IntegrityError, StatementError

from registry.db import (
    alembic_config,
    check_schema,
    create_engine_for,
    current_revision,
    head_revision,
    session_scope,
    upgrade,
)
from registry.errors import InvalidRegistryInput, MigrationError, RegistryUnavailable
from registry.models import Base, DevicePairing, Gateway, UtcDateTime
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository

TABLES = {
    "gateways",
    "patients",
    "devices",
    "device_pairings",
    "quarantine",
    "security_events",
    "audit_log",
}


def test_upgrade_creates_every_table_and_is_idempotent(registry_url: str) -> None:
    assert upgrade(registry_url) == head_revision()
    assert upgrade(registry_url) == head_revision()
    engine = create_engine_for(registry_url)
    try:
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= TABLES
        check_schema(engine)
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_base_and_upgrade_again(engine: Engine) -> None:
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert TABLES.isdisjoint(inspect(engine).get_table_names())
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_two_processes_migrating_at_once_both_succeed(registry_url: str) -> None:
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(registry_url)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = create_engine_for(registry_url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()


def test_check_schema_refuses_an_uninitialised_database(registry_url: str) -> None:
    engine = create_engine_for(registry_url)
    try:
        with pytest.raises(MigrationError, match="registry init") as caught:
            check_schema(engine)
        assert caught.value.revision is None
    finally:
        engine.dispose()


def test_check_schema_refuses_a_revision_this_code_does_not_know(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(MigrationError, match="unknown to this code") as caught:
        check_schema(engine)
    assert caught.value.revision == "ffff"


def test_timestamps_come_back_aware_utc_on_every_backend(engine: Engine) -> None:
    beijing = timezone(timedelta(hours=8))
    created = datetime(2026, 3, 1, 16, 30, 15, 123456, tzinfo=beijing)
    with session_scope(engine) as session:
        GatewayRepository(session, clock=lambda: created).add("gw-1")
    with session_scope(engine, write=False) as session:
        stored = session.scalars(select(Gateway.created_at)).one()
    assert stored == created
    assert stored.tzinfo is UTC
    assert stored.hour == 8


def test_comparisons_in_sql_follow_time_order(engine: Engine) -> None:
    with session_scope(engine) as session:
        GatewayRepository(session).add("gw-1")
        PatientRepository(session).add("p-1")
        DeviceRepository(session).bind(
            "Acme-Meter-1", "gw-1", "p-1", at=datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
        )
    # 2026-01-02 06:00 in Beijing is 2026-01-01 22:00 UTC: before the pairing started.
    before = datetime(2026, 1, 2, 6, 0, tzinfo=timezone(timedelta(hours=8)))
    with session_scope(engine, write=False) as session:
        started = session.scalars(
            select(DevicePairing.id).where(DevicePairing.valid_from <= before)
        ).all()
    assert started == []


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    def add_naive() -> None:
        with session_scope(engine) as session:
            session.add(Gateway(id="gw-1", label="", created_at=datetime(2026, 1, 1), active=True))

    with pytest.raises(StatementError, match="naive datetime"):
        add_naive()


def test_the_database_allows_one_open_pairing_per_device(engine: Engine) -> None:
    with session_scope(engine) as session:
        GatewayRepository(session).add("gw-1")
        PatientRepository(session).add("p-1")
        DeviceRepository(session).bind("Acme-Meter-1", "gw-1", "p-1")
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(
            DevicePairing(
                device_id="Acme-Meter-1",
                gateway_id="gw-1",
                patient_id="p-1",
                valid_from=datetime(2026, 1, 1, tzinfo=UTC),
                valid_to=None,
                history_since=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )


def test_the_database_keeps_history_before_the_pairing_start(engine: Engine) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        GatewayRepository(session).add("gw-1")
        PatientRepository(session).add("p-1")
        DeviceRepository(session).bind("Acme-Meter-1", "gw-1", "p-1", start - timedelta(days=9))
        DeviceRepository(session).unbind("Acme-Meter-1", start - timedelta(days=1))
    with pytest.raises(IntegrityError, match="history_before_start"), session_scope(engine) as s:
        s.add(
            DevicePairing(
                device_id="Acme-Meter-1",
                gateway_id="gw-1",
                patient_id="p-1",
                valid_from=start,
                valid_to=None,
                history_since=start + timedelta(seconds=1),
            )
        )


def test_pairings_made_before_history_since_existed_accept_no_history(
    registry_url: str,
) -> None:
    engine = create_engine_for(registry_url)
    pairings = table(
        "device_pairings",
        column("device_id"),
        column("gateway_id"),
        column("patient_id"),
        column("valid_from", UtcDateTime()),
        column("valid_to", UtcDateTime()),
    )
    start = datetime(2026, 1, 1, 8, 0, 0, 250000, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO gateways (id, label, created_at, active) VALUES "
                    "('gw-1', '', :at, true)"
                ),
                {"at": start},
            )
            connection.execute(
                text(
                    "INSERT INTO patients (id, display_name, time_zone, created_at) VALUES "
                    "('p-1', NULL, 'Asia/Shanghai', :at)"
                ),
                {"at": start},
            )
            connection.execute(
                text(
                    "INSERT INTO devices (id, manufacturer, model, serial, profile, created_at) "
                    "VALUES ('Acme-Meter-1', 'Acme', 'Meter', '1', NULL, :at)"
                ),
                {"at": start},
            )
            connection.execute(
                pairings.insert(),
                [
                    {
                        "device_id": "Acme-Meter-1",
                        "gateway_id": "gw-1",
                        "patient_id": "p-1",
                        "valid_from": start,
                        "valid_to": start + timedelta(days=1),
                    },
                    {
                        "device_id": "Acme-Meter-1",
                        "gateway_id": "gw-1",
                        "patient_id": "p-1",
                        "valid_from": start + timedelta(days=2),
                        "valid_to": None,
                    },
                ],
            )
        upgrade(engine)
        with session_scope(engine, write=False) as session:
            history = DeviceRepository(session).history("Acme-Meter-1")
        assert [(p.valid_from, p.history_since) for p in history] == [
            (start, start),
            (start + timedelta(days=2), start + timedelta(days=2)),
        ]
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0001")
            assert "history_since" not in {
                c["name"] for c in inspect(connection).get_columns("device_pairings")
            }
            assert connection.execute(text("SELECT count(*) FROM device_pairings")).scalar() == 2
    finally:
        engine.dispose()


def test_sqlite_is_configured_for_durability(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_writers_wait_for_each_other_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    errors: list[BaseException] = []

    def add_gateways(prefix: str) -> None:
        try:
            for index in range(20):
                with session_scope(engine) as session:
                    GatewayRepository(session).add(f"{prefix}-{index}")
        except BaseException as error:
            errors.append(error)

    try:
        threads = [threading.Thread(target=add_gateways, args=(f"gw{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM gateways").scalar() == 80
    finally:
        engine.dispose()


def test_upgrade_creates_the_sqlite_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "deeper" / "registry.db"
    upgrade(f"sqlite:///{path}")
    assert path.is_file()


def test_an_in_memory_registry_is_one_shared_database() -> None:
    engine = create_engine_for("sqlite://")
    try:
        upgrade(engine)
        with session_scope(engine) as session:
            GatewayRepository(session).add("gw-1")
        with session_scope(engine, write=False) as session:
            assert GatewayRepository(session).get("gw-1").active
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@db.example/registry", "postgresql+psycopg"),
        ("postgres://u@db.example/registry", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/registry", "postgresql+psycopg"),
        ("sqlite:///registry.db", "sqlite"),
    ],
)
def test_urls_are_normalised_to_the_supported_drivers(url: str, driver: str) -> None:
    engine = create_engine_for(url)
    try:
        assert engine.url.drivername == driver
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u@db/registry", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@db/registry", "driver 'psycopg2' is not supported"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_urls_are_refused_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(InvalidRegistryInput, match=problem) as caught:
        create_engine_for(url)
    assert caught.value.field == "url"


def test_an_unreachable_server_is_reported_as_unavailable() -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    engine = create_engine_for("postgresql://postgres@127.0.0.1:1/registry?connect_timeout=2")
    try:
        with pytest.raises(RegistryUnavailable, match="registry database unavailable"):
            check_schema(engine)
        with pytest.raises(RegistryUnavailable):
            upgrade(engine)
    finally:
        engine.dispose()
