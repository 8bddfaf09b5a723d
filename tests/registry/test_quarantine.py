"""The quarantine store's contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine

from registry.db import create_engine_for
from registry.errors import InvalidRegistryInput, RegistryUnavailable
from registry.ownership import OwnershipVerdict
from registry.quarantine import QuarantineEntry, QuarantineReason, QuarantineStore
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
            _entry(),
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
