"""The triage loader: its fast reading conversion equals the validated one, and the facts
it gathers (periods, targets, fleet, latest reading) from a real registry and store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.window import reading_from_stored
from ingest.stores import open_store
from readings.model import (
    BloodPressureValues,
    CgmGlucoseValues,
    GlucoseValues,
    Kind,
    Reading,
    new_reading,
)
from registry.care import PatientCareRepository
from registry.db import create_engine_for, session_scope, upgrade
from registry.repositories import DeviceRepository, GatewayRepository, PatientRepository
from reports.triage.loading import load_triage_facts, periods, readings_of
from tests.fakes import ManualClock

NOW = datetime(2026, 3, 30, 2, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _reading(
    values: Any, unit: str, at: datetime, device: str, seq: int | None, **kw: Any
) -> Reading:
    return new_reading(
        values=values,
        source_unit=unit,
        measured_at=at,
        received_at=at + timedelta(seconds=30),
        device_id=device,
        patient_id="p-1",
        gateway_id="gw-1",
        seq=seq,
        **kw,
    )


def test_fast_conversion_equals_the_validated_one(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    written = [
        _reading(GlucoseValues(glucose=5.0 + i / 10), "mmol/L", NOW - timedelta(hours=i),
                 "Acme-Meter-1", i, context={"meal": "fasting"} if i % 2 else None,
                 flags=("result_low",) if i == 3 else ())
        for i in range(6)
    ] + [
        _reading(GlucoseValues(glucose=110.0 / 18.0156), "mg/dL", NOW - timedelta(hours=i),
                 "Other-Meter-2", None, device_time=datetime(2026, 3, 30, 9, i))
        for i in range(3)
    ] + [
        _reading(CgmGlucoseValues(glucose=6.0, trend=0.1), "mmol/L",
                 NOW - timedelta(minutes=5 * i), "Acme-Cgm-3", i)
        for i in range(5)
    ]  # fmt: skip
    store.write(written)
    try:
        for kind in (Kind.GLUCOSE, Kind.CGM_GLUCOSE):
            stored = store.readings("p-1", kind, NOW - timedelta(days=1), NOW + timedelta(1))
            assert stored
            assert readings_of(stored) == [reading_from_stored(s) for s in stored]
    finally:
        store.close()


def test_periods_are_local_days_ending_today() -> None:
    current, previous = periods(date(2026, 3, 30), 14, SHANGHAI)
    assert current.start == datetime(2026, 3, 17, tzinfo=SHANGHAI)
    assert current.end == datetime(2026, 3, 31, tzinfo=SHANGHAI)
    assert (previous.start, previous.end) == (datetime(2026, 3, 3, tzinfo=SHANGHAI), current.start)


def test_facts_from_registry_and_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    clock = ManualClock(NOW - timedelta(days=60))
    with session_scope(engine) as session:
        PatientRepository(session, clock=clock).add("p-1", display_name="王一")
        PatientRepository(session, clock=clock).add("p-2")
        GatewayRepository(session, clock=clock).add("gw-1")
        DeviceRepository(session, clock=clock).bind("Acme-Cuff-1", "gw-1", "p-1")
        care = PatientCareRepository(session, clock=clock)
        care.set_target("p-1", "systolic", low=None, high=130.0, unit="mm[Hg]",
                        set_by="dr", reason="diabetic")  # fmt: skip
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    store.write(
        [
            _reading(BloodPressureValues(systolic=150.0 - d, diastolic=90.0), "mm[Hg]",
                     NOW - timedelta(days=d, hours=h), "Acme-Cuff-1", 100 * d + h)
            for d in range(28)
            for h in (1, 12)
        ]
    )  # fmt: skip
    try:
        with session_scope(engine, write=False) as session:
            facts = load_triage_facts(
                session,
                store,
                ["p-2", "p-1", "p-none"],
                teams={"p-1": frozenset({"team-a"})},
                reviews={},
                period_days=14,
                now=NOW,
            )
    finally:
        store.close()
        engine.dispose()
    first, second = facts
    assert [f.patient_id for f in facts] == ["p-1", "p-2"]  # unknown ids are left out
    assert first.current.targets.systolic_high_mmhg == 130.0
    assert first.teams == frozenset({"team-a"})
    assert first.last_measured == NOW - timedelta(hours=1)
    assert [g.gateway_id for g in first.gateways] == ["gw-1"]
    assert first.gateways[0].state == "unknown"
    assert first.current.blood_pressure is not None
    assert first.previous is not None
    assert first.previous.blood_pressure is not None
    # 14 local days from 17 March 00:00 Beijing time (16 March 16:00 UTC): day 13's 14:00 UTC
    # reading falls before it.
    assert first.current.blood_pressure.readings == 27
    assert (second.last_measured, second.current.blood_pressure) == (None, None)
