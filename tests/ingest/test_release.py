"""Releasing quarantined entries: the decision rule for readings before a binding."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ingest.examine import examine_message
from ingest.release import DecisionRequired, envelope_for, reexamine, release
from ingest.stores import open_store
from ingest.validate import DEFAULT_LIMITS
from readings.codec import decode_readings_partial, encode_envelope
from readings.model import GlucoseValues, Reading, new_reading
from readings.topics import readings_topic
from readings.units import Unit
from registry.db import create_engine_for, upgrade
from registry.quarantine import (
    QuarantineFilter,
    QuarantineReason,
    QuarantineRecord,
    QuarantineStore,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BEFORE_BINDING = QuarantineReason.BEFORE_BINDING.value


class Answers:
    """The registry's ownership answer, fed."""

    def __init__(self, verdict: str) -> None:
        self.verdict = verdict

    def check(self, gateway_id: str, device_id: str, patient_id: str, at: datetime) -> str:
        return self.verdict


def old_reading(seq: int = 1) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=5.8),
        source_unit=Unit.MMOL_PER_L,
        measured_at=NOW - timedelta(days=200),
        received_at=NOW - timedelta(minutes=1),
        device_id="Acme-Meter-0001",
        patient_id="p1",
        gateway_id="gw1",
        seq=seq,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    registry = create_engine_for(url)
    yield registry
    registry.dispose()


def quarantined(engine: Engine, reading: Reading) -> QuarantineRecord:
    examination = examine_message(
        readings_topic("gw1"),
        encode_envelope("gw1", NOW, [reading]),
        ownership=Answers(BEFORE_BINDING),
        limits=DEFAULT_LIMITS,
        now=NOW,
    )
    entries = [d.entry for d in examination.refused if d.entry is not None]
    assert [entry.reason for entry in entries] == [BEFORE_BINDING]
    QuarantineStore(engine).add_many(entries)
    (record,) = QuarantineStore(engine).find(QuarantineFilter())
    return record


def test_the_reading_is_examined_again_in_its_gateways_envelope(engine: Engine) -> None:
    reading = old_reading()
    record = quarantined(engine, reading)
    assert decode_readings_partial(envelope_for(record, NOW)).readings == [reading]
    again = reexamine(record, ownership=Answers(BEFORE_BINDING), limits=DEFAULT_LIMITS, now=NOW)
    assert [d.verdict.value for d in again.decisions] == [BEFORE_BINDING]
    decided = reexamine(
        record, ownership=Answers(BEFORE_BINDING), limits=DEFAULT_LIMITS, now=NOW, decided_by="dr"
    )
    assert [d.reading for d in decided.to_store] == [reading]


def test_before_binding_needs_who_decided(engine: Engine, tmp_path: Path) -> None:
    record = quarantined(engine, old_reading())
    with closing(open_store(f"sqlite:///{tmp_path / 'readings.db'}")) as store:
        with pytest.raises(DecisionRequired) as caught:
            release(
                [record],
                engine=engine,
                store=store,
                ownership=Answers(BEFORE_BINDING),
                limits=DEFAULT_LIMITS,
                clock=lambda: NOW,
                actor="op.wang",
                reason="bought new",
            )
        assert caught.value.entry_id == record.id
        assert store.ids("p1") == set()


def test_a_decided_release_is_stored_and_records_who_decided(
    engine: Engine, tmp_path: Path
) -> None:
    reading = old_reading()
    record = quarantined(engine, reading)
    with closing(open_store(f"sqlite:///{tmp_path / 'readings.db'}")) as store:
        (outcome,) = release(
            [record],
            engine=engine,
            store=store,
            ownership=Answers(BEFORE_BINDING),
            limits=DEFAULT_LIMITS,
            clock=lambda: NOW,
            actor="op.wang",
            reason="meter bought new; the readings are hers",
            decided_by="dr.li",
        )
        assert store.ids("p1") == {reading.id}
    assert outcome.released
    assert outcome.stored_ids == (reading.id,)
    released = QuarantineStore(engine).get(record.id)
    assert released.released_by == "op.wang"
    assert released.release_reason == "decided by dr.li: meter bought new; the readings are hers"


def test_a_decision_does_not_release_what_another_check_refuses(
    engine: Engine, tmp_path: Path
) -> None:
    record = quarantined(engine, old_reading())
    with closing(open_store(f"sqlite:///{tmp_path / 'readings.db'}")) as store:
        (outcome,) = release(
            [record],
            engine=engine,
            store=store,
            ownership=Answers("wrong_patient"),
            limits=DEFAULT_LIMITS,
            clock=lambda: NOW,
            actor="op.wang",
            reason="decided",
            decided_by="dr.li",
        )
        assert store.ids("p1") == set()
    assert not outcome.released
    assert outcome.refusals == ("ownership: wrong_patient",)
    assert not QuarantineStore(engine).get(record.id).released


def test_a_second_hand_meters_old_records_wait_for_a_person_with_the_real_registry(
    engine: Engine, tmp_path: Path
) -> None:
    """The whole path with the registry's own ownership check, no fed answer: bound today
    without history, the meter's 200-day-old record is held as before_binding (no security
    event); once a doctor decides, the release stores it."""
    from registry.db import session_scope
    from registry.ownership import OwnershipChecker
    from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository

    with session_scope(engine) as session:
        GatewayRepository(session, clock=lambda: NOW).add("gw1")
        PatientRepository(session, clock=lambda: NOW).add("p1")
        DeviceRepository(session, clock=lambda: NOW).bind("Acme-Meter-0001", "gw1", "p1")
    ownership = OwnershipChecker(engine, clock=lambda: NOW)
    reading = old_reading()
    examination = examine_message(
        readings_topic("gw1"),
        encode_envelope("gw1", NOW, [reading]),
        ownership=ownership,
        limits=DEFAULT_LIMITS,
        now=NOW,
    )
    entries = [d.entry for d in examination.refused if d.entry is not None]
    assert [(e.reason, e.security_event) for e in entries] == [(BEFORE_BINDING, False)]
    QuarantineStore(engine).add_many(entries)
    (record,) = QuarantineStore(engine).find(QuarantineFilter())
    with closing(open_store(f"sqlite:///{tmp_path / 'readings.db'}")) as store:
        (outcome,) = release(
            [record],
            engine=engine,
            store=store,
            ownership=ownership,
            limits=DEFAULT_LIMITS,
            clock=lambda: NOW,
            actor="op.wang",
            reason="the meter was bought new by the patient",
            decided_by="dr.li",
        )
        assert store.ids("p1") == {reading.id}
    assert outcome.released
