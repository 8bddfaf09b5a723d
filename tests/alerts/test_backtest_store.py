"""``vitalgate alerts backtest --store --registry --since``: the stored-history form, over a
real SQLite registry and reading store, gives what the file form gives for the same
patients and readings, and the read is audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.backtest import BacktestError, run_backtest
from alerts.backtest_store import AUDIT_ACTION, backtest_stored, parse_since
from alerts.rules.loader import default_rules
from ingest.stores import open_store
from readings.codec import encode_reading
from readings.files import load_patient_profiles, load_readings_jsonl
from readings.model import BloodPressureValues, GlucoseValues, Reading, new_reading
from readings.units import Unit, to_canonical
from registry.audit import recent_audit
from registry.care_models import Condition
from registry.db import create_engine_for, session_scope
from registry.patient_care import PatientCareRepository
from vitalgate.cli import app

DIABETIC, HYPERTENSIVE = "patient-0001", "patient-0002"


def _reading(patient: str, values: object, unit: str, at: datetime, seq: int) -> Reading:
    return new_reading(
        values=values,  # type: ignore[arg-type]
        source_unit=unit,
        measured_at=at,
        received_at=at,
        device_id=f"dev-{patient}",
        patient_id=patient,
        gateway_id=f"gw-{patient}",
        seq=seq,
    )


def _history(now: datetime) -> list[Reading]:
    """A diabetic with a low (G1), a 300 mg/dL pair (G3) and then silence (S2); a patient
    with hypertension whose home BP runs high (B2)."""
    start = now - timedelta(days=20)
    readings = []
    for day in range(12):
        at = start + timedelta(days=day, hours=1)
        value = {3: 2.6, 7: to_canonical(300, Unit.MG_PER_DL)}.get(day, 6.5)
        unit = Unit.MG_PER_DL if day == 7 else Unit.MMOL_PER_L
        readings.append(_reading(DIABETIC, GlucoseValues(glucose=value), unit, at, day))
        if day == 7:
            again = GlucoseValues(glucose=to_canonical(305, Unit.MG_PER_DL))
            readings.append(_reading(DIABETIC, again, unit, at + timedelta(hours=2), 100))
        for hours in (0, 12):
            bp = BloodPressureValues(systolic=152, diastolic=94, pulse=70)
            at_bp = at + timedelta(hours=hours)
            readings.append(
                _reading(HYPERTENSIVE, bp, Unit.MMHG, at_bp, 200 + 2 * day + hours // 12)
            )
    # Older than --since: must not be read.
    old = GlucoseValues(glucose=2.0)
    readings.append(_reading(DIABETIC, old, Unit.MMOL_PER_L, now - timedelta(days=40), 999))
    return readings


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[str, str, list[Reading], datetime]:
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    store_url = f"sqlite:///{tmp_path / 'readings.db'}"
    runner = CliRunner()
    for args in (["init"], ["patient", "add", DIABETIC], ["patient", "add", HYPERTENSIVE]):
        result = runner.invoke(app, ["registry", "--registry", registry_url, "--actor", "t", *args])
        assert result.exit_code == 0, result.output
    engine = create_engine_for(registry_url)
    with session_scope(engine) as session:
        care = PatientCareRepository(session)
        care.set_conditions(DIABETIC, [Condition.DIABETES_TYPE2])
        care.set_conditions(HYPERTENSIVE, [Condition.HYPERTENSION])
    engine.dispose()
    now = datetime.now(UTC).replace(microsecond=0)
    readings = _history(now)
    store = open_store(store_url)
    assert not store.write(readings).rejected
    store.close()
    return registry_url, store_url, readings, now


def test_the_stored_form_gives_what_the_file_form_gives(
    deployment: tuple[str, str, list[Reading], datetime], tmp_path: Path
) -> None:
    registry_url, store_url, readings, now = deployment
    engine = create_engine_for(registry_url)
    store = open_store(store_url)
    try:
        stored = backtest_stored(
            engine, store, default_rules(), timedelta(days=30), now, actor="dr-test"
        )
    finally:
        store.close()
    recent = [r for r in readings if r.measured_at >= now - timedelta(days=30)]
    readings_path = tmp_path / "r.jsonl"
    readings_path.write_bytes(b"\n".join(encode_reading(r) for r in recent) + b"\n")
    patients_path = tmp_path / "p.yaml"
    patients_path.write_text(
        f"- {{patient_id: {DIABETIC}, conditions: [diabetes_type2]}}\n"
        f"- {{patient_id: {HYPERTENSIVE}, conditions: [hypertension]}}\n",
        encoding="utf-8",
    )
    from_files = run_backtest(
        load_readings_jsonl(readings_path),
        load_patient_profiles(patients_path),
        default_rules(),
        until=now,
    )
    assert stored.to_json() == from_files.to_json()
    fired = {(a.patient_id, a.rule_id) for a in stored.alerts}
    assert {(DIABETIC, "G1"), (DIABETIC, "G3"), (DIABETIC, "S2"), (HYPERTENSIVE, "B2")} <= fired
    # The 40-day-old 2.0 mmol/L is outside --since: one G1 only, from the 2.6.
    assert [a.rule_id for a in stored.alerts if a.patient_id == DIABETIC].count("G1") == 1
    with session_scope(engine, write=False) as session:
        [entry] = [e for e in recent_audit(session) if e.action == AUDIT_ACTION]
    engine.dispose()
    assert entry.actor == "dr-test"
    assert set(entry.patient_ids) == {DIABETIC, HYPERTENSIVE}
    assert entry.detail["readings"] == len(recent)


def test_the_command_over_stored_history(
    deployment: tuple[str, str, list[Reading], datetime],
) -> None:
    registry_url, store_url, _, _ = deployment
    base = ["alerts", "backtest", "--store", store_url, "--registry", registry_url]
    result = CliRunner().invoke(app, [*base, "--since", "30d", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {a["rule_id"] for a in document["alerts"]} >= {"G1", "G3", "S2", "B2"}
    assert document["per_rule"]["B2"]["alerts"] == 1
    table = CliRunner().invoke(app, [*base, "--since", "30d", "--format", "table"])
    assert table.exit_code == 0, table.output
    assert "patient-weeks" in table.stdout
    assert "B2" in table.stdout


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("30x", "--since: '30x' is not a duration like 30d, 12h or 90min"),
        ("0d", "--since: '0d' must be longer than zero"),
        ("400d", "--since: '400d' is longer than 366 days"),
    ],
)
def test_a_bad_since_is_named(
    deployment: tuple[str, str, list[Reading], datetime], since: str, message: str
) -> None:
    registry_url, store_url, _, _ = deployment
    args = ["alerts", "backtest", "--store", store_url, "--registry", registry_url]
    result = CliRunner().invoke(app, [*args, "--since", since])
    assert result.exit_code == 2
    assert message in result.stderr
    with pytest.raises(BacktestError, match="not a duration"):
        parse_since("thirty days")


def test_the_two_forms_do_not_mix(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(
        app,
        ["alerts", "backtest", "--readings", "r.jsonl", "--patients", "p.yaml", "--since", "3d"],
    )
    assert both.exit_code == 2
    assert "either --readings and --patients" in both.stderr
    half = runner.invoke(app, ["alerts", "backtest", "--store", "sqlite:///x.db", "--since", "3d"])
    assert half.exit_code == 2
    assert "the stored-history form needs --registry" in half.stderr
