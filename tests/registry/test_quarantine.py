"""The quarantine store's contract, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import Engine, func, insert, select

from registry.audit import os_actor
from registry.db import alembic_config, create_engine_for, session_scope, upgrade, writer
from registry.errors import InvalidRegistryInput, NotFound, RegistryUnavailable
from registry.models import QuarantinedReading, SecurityEvent
from registry.ownership import OwnershipVerdict
from registry.quarantine import (
    QuarantineEntry,
    QuarantineFilter,
    QuarantineReason,
    QuarantineStore,
)
from tests.registry.conftest import T0

READING_ID = "0f6a3c47-1b8e-5d2a-9c4f-7e1d2b3a4c5d"
RAW = b'{"id":"0f6a3c47-1b8e-5d2a-9c4f-7e1d2b3a4c5d","values":{"glucose":5.4}}'


def _entry(**changes: object) -> QuarantineEntry:
    entry = QuarantineEntry(
        received_at=T0,
        gateway_id="gw-1",
        topic="vitalgate/v1/gw/gw-1/readings",
        reason=QuarantineReason.CONTRACT,
        detail="$.readings[0].values.glucose: required field is missing",
        reading_id=READING_ID,
        raw=RAW,
        security_event=False,
    )
    return replace(entry, **changes)  # type: ignore[arg-type]


def _ownership(verdict: OwnershipVerdict, at: datetime = T0) -> QuarantineEntry:
    return QuarantineEntry.ownership_violation(
        verdict,
        received_at=at,
        gateway_id="gw-2",
        topic="vitalgate/v1/gw/gw-2/readings",
        reading_id=READING_ID,
        device_id="Roche-Guide-1",
        claimed_patient_id="p-1",
        raw=RAW,
    )


def test_entries_are_stored_and_read_back_newest_first(engine: Engine) -> None:
    store = QuarantineStore(engine)
    older = _entry(received_at=T0)
    newer = _entry(
        received_at=T0 + timedelta(seconds=1),
        reason=QuarantineReason.ENVELOPE,
        gateway_id=None,
        reading_id=None,
        detail="$.v: unsupported major version 2",
        raw=b"\x00\xff not even json",
    )
    store.add_many([older, newer])
    assert store.recent() == [newer, older]
    assert store.recent(limit=1) == [newer]


def test_entries_are_durable_when_add_many_returns(registry_url: str, engine: Engine) -> None:
    QuarantineStore(engine).add_many([_entry()])
    engine.dispose()
    reopened = create_engine_for(registry_url)
    try:
        assert QuarantineStore(reopened).recent() == [_entry()]
    finally:
        reopened.dispose()


def test_ownership_rejections_are_also_security_events(engine: Engine) -> None:
    store = QuarantineStore(engine)
    wrong_patient = _ownership(OwnershipVerdict.WRONG_PATIENT)
    store.add_many([_entry(), wrong_patient])
    events = store.recent_security_events()
    assert len(events) == 1
    event = events[0]
    assert (event.at, event.gateway_id, event.device_id, event.claimed_patient_id) == (
        T0,
        "gw-2",
        "Roche-Guide-1",
        "p-1",
    )
    assert (event.reason, event.reading_id) == ("wrong_patient", READING_ID)
    assert wrong_patient in store.recent()
    assert wrong_patient.reason == "ownership"
    assert wrong_patient.security_event


def test_count_by_reason(engine: Engine) -> None:
    store = QuarantineStore(engine)
    assert store.count_by_reason() == {}
    store.add_many(
        [
            _entry(),
            _entry(raw=RAW + b" "),
            _entry(reason=QuarantineReason.PLAUSIBILITY),
            _ownership(OwnershipVerdict.UNKNOWN_DEVICE),
        ]
    )
    store.add_many([_entry(reason=QuarantineReason.STORE_REJECTED)])
    assert store.count_by_reason() == {
        "contract": 2,
        "plausibility": 1,
        "ownership": 1,
        "store_rejected": 1,
    }


def test_an_empty_batch_writes_nothing(engine: Engine) -> None:
    store = QuarantineStore(engine)
    store.add_many([])
    assert store.recent() == []


def test_hostile_text_cannot_make_the_write_fail(engine: Engine) -> None:
    store = QuarantineStore(engine)
    hostile = _entry(
        detail="$.device_id: 'evil\x00id' does not match",
        topic="vitalgate/v1/gw/gw\x00/readings",
        gateway_id="gw\x00",
        reading_id="x" * 10_000,
        security_event=True,
        device_id="dev\x00",
        claimed_patient_id="p\x00",
    )
    store.add_many([hostile])
    stored = store.recent()[0]
    assert stored.detail == "$.device_id: 'evil\ufffdid' does not match"
    assert stored.gateway_id == "gw\ufffd"
    assert stored.device_id == "dev\ufffd"
    assert stored.reading_id == "x" * 10_000
    assert stored.raw == RAW


def test_received_at_is_kept_in_utc(engine: Engine) -> None:
    store = QuarantineStore(engine)
    beijing = timezone(timedelta(hours=8))
    store.add_many([_entry(received_at=datetime(2026, 3, 1, 16, 0, tzinfo=beijing))])
    stored = store.recent()[0].received_at
    assert stored == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert stored.tzinfo is UTC


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(InvalidRegistryInput, match="'dropped' is not one of") as caught:
        _entry(reason="dropped")
    assert caught.value.field == "reason"


def test_a_naive_received_at_is_refused() -> None:
    with pytest.raises(InvalidRegistryInput) as caught:
        _entry(received_at=datetime(2026, 3, 1, 8, 0))
    assert caught.value.field == "received_at"


def test_an_accepted_reading_is_not_an_ownership_violation() -> None:
    with pytest.raises(InvalidRegistryInput) as caught:
        _ownership(OwnershipVerdict.OK)
    assert caught.value.field == "verdict"


def test_an_unreachable_registry_is_reported_as_unavailable() -> None:
    engine = create_engine_for("postgresql://postgres@127.0.0.1:1/registry?connect_timeout=2")
    try:
        with pytest.raises(RegistryUnavailable):
            QuarantineStore(engine).add_many([_entry()])
    finally:
        engine.dispose()


# -- idempotence --------------------------------------------------------------------------


def _rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        quarantined = connection.scalar(select(func.count()).select_from(QuarantinedReading))
        events = connection.scalar(select(func.count()).select_from(SecurityEvent))
    return int(quarantined or 0), int(events or 0)


def test_a_redelivered_batch_adds_no_entry_and_no_security_event(engine: Engine) -> None:
    store = QuarantineStore(engine)
    batch = [
        _entry(),
        _entry(reason=QuarantineReason.ENVELOPE, reading_id=None, raw=b"not json"),
        _ownership(OwnershipVerdict.WRONG_PATIENT),
    ]
    assert store.add_many(batch) == batch
    assert _rows(engine) == (3, 1)

    # The broker redelivers after a crash; later the gateway re-publishes (new received_at).
    assert store.add_many(batch) == []
    later = [replace(entry, received_at=T0 + timedelta(minutes=5)) for entry in batch]
    assert store.add_many(later) == []
    assert _rows(engine) == (3, 1)
    assert len(store.recent_security_events()) == 1


def test_a_repeat_within_one_batch_is_stored_once(engine: Engine) -> None:
    store = QuarantineStore(engine)
    wrong_patient = _ownership(OwnershipVerdict.WRONG_PATIENT)
    assert store.add_many([wrong_patient, _entry(), wrong_patient]) == [wrong_patient, _entry()]
    assert _rows(engine) == (2, 1)


def test_identity_is_the_verified_id_else_the_raw_bytes(engine: Engine) -> None:
    store = QuarantineStore(engine)
    verified = _entry(reason=QuarantineReason.PLAUSIBILITY, reading_id_verified=True)
    # The same record downloaded again: same derived id, other bytes (received_at moved).
    redownloaded = replace(verified, raw=RAW + b" ")
    # Two different broken payloads that claim one (unverified) id are two entries.
    claimed_a = _entry()
    claimed_b = _entry(raw=b'{"id":"0f6a3c47-1b8e-5d2a-9c4f-7e1d2b3a4c5d"}')
    assert store.add_many([verified, redownloaded, claimed_a, claimed_b]) == [
        verified,
        claimed_a,
        claimed_b,
    ]


def test_the_same_reading_from_another_gateway_is_its_own_entry(engine: Engine) -> None:
    store = QuarantineStore(engine)
    from_gw2 = _ownership(OwnershipVerdict.DEVICE_NOT_PAIRED_TO_GATEWAY)
    from_gw3 = replace(from_gw2, gateway_id="gw-3", topic="vitalgate/v1/gw/gw-3/readings")
    assert store.add_many([from_gw2]) == [from_gw2]
    assert store.add_many([from_gw3]) == [from_gw3]
    assert _rows(engine) == (2, 2)


def test_the_same_reading_for_another_reason_is_its_own_entry(engine: Engine) -> None:
    store = QuarantineStore(engine)
    plausibility = _entry(reason=QuarantineReason.PLAUSIBILITY, reading_id_verified=True)
    rejected = replace(plausibility, reason=QuarantineReason.STORE_REJECTED)
    store.add_many([plausibility])
    assert store.add_many([rejected]) == [rejected]


def test_two_writers_adding_one_entry_at_once_store_it_once(
    registry_url: str, engine: Engine
) -> None:
    engines = [create_engine_for(registry_url) for _ in range(4)]
    entry = _ownership(OwnershipVerdict.UNKNOWN_DEVICE)
    start = threading.Barrier(len(engines))
    added: list[int] = []
    errors: list[BaseException] = []

    def add(other: Engine) -> None:
        try:
            start.wait()
            added.append(len(QuarantineStore(other).add_many([entry])))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(other,)) for other in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for other in engines:
            other.dispose()
    assert errors == []
    assert sorted(added) == [0, 0, 0, 1]
    assert _rows(engine) == (1, 1)


def test_the_migration_keeps_existing_repeats_and_makes_the_rest_unique(
    registry_url: str,
) -> None:
    migrating = create_engine_for(registry_url)
    try:
        with writer(migrating).begin() as connection:
            command.upgrade(alembic_config(connection), "0001")
        repeat = {
            "received_at": T0,
            "gateway_id": "gw-1",
            "topic": "vitalgate/v1/gw/gw-1/readings",
            "reason": "contract",
            "detail": "$.readings[0].v: bad",
            "reading_id": READING_ID,
            "raw": RAW,
            "security_event": False,
        }
        with migrating.begin() as connection:
            connection.execute(
                insert(QuarantinedReading),
                [repeat, repeat, {**repeat, "raw": b"other", "reason": "envelope"}],
            )
        upgrade(migrating)
        store = QuarantineStore(migrating)
        assert len(store.recent()) == 3, "a row was lost in the migration"
        assert store.add_many([_entry()]) == [], "the migrated row did not get its identity"
        with migrating.connect() as connection:
            identities = connection.scalars(
                select(QuarantinedReading.identity).order_by(QuarantinedReading.id)
            ).all()
        assert identities[0] is not None
        assert identities[1] is None
        assert identities[2] is not None
    finally:
        migrating.dispose()


# -- listing and release --------------------------------------------------------------------


def test_find_filters_by_gateway_reason_and_time(engine: Engine) -> None:
    store = QuarantineStore(engine)
    early = _entry(received_at=T0)
    late = _entry(received_at=T0 + timedelta(hours=2), raw=b"late")
    other_gateway = _entry(gateway_id="gw-9", raw=b"gw9", received_at=T0 + timedelta(hours=1))
    envelope = _entry(reason=QuarantineReason.ENVELOPE, reading_id=None, raw=b"x")
    store.add_many([early, late, other_gateway, envelope])

    def found(**criteria: object) -> list[QuarantineEntry]:
        return [record.entry for record in store.find(QuarantineFilter(**criteria))]  # type: ignore[arg-type]

    assert found(gateway_id="gw-9") == [other_gateway]
    assert found(reason="envelope") == [envelope]
    assert found(since=T0 + timedelta(minutes=30)) == [late, other_gateway]
    assert found(until=T0 + timedelta(minutes=30), reason="contract") == [early]
    with pytest.raises(InvalidRegistryInput):
        QuarantineFilter(reason="everything")


def test_a_released_entry_is_marked_and_kept(engine: Engine) -> None:
    store = QuarantineStore(engine)
    store.add_many([_entry()])
    (record,) = store.find(QuarantineFilter())
    assert not record.released
    with session_scope(engine) as session:
        assert store.mark_released(
            session, record.id, at=T0, by=os_actor(), reason="limit corrected"
        )
    with session_scope(engine) as session:
        assert not store.mark_released(session, record.id, at=T0, by="someone", reason="again")
    assert store.find(QuarantineFilter()) == []
    released = store.get(record.id)
    assert released.released
    assert released.released_at == T0
    assert (released.released_by, released.release_reason) == (os_actor(), "limit corrected")
    assert store.find(QuarantineFilter(include_released=True)) == [released]
    assert store.add_many([_entry()]) == [], "a released entry came back on redelivery"
    with pytest.raises(NotFound):
        store.get(record.id + 1000)
