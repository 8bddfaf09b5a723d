"""``vitalgate alerts backtest`` over files: the clock, deadlines, stale data, S4, the output."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from alerts.backtest import run_backtest
from alerts.rules.model import RuleSet
from readings.codec import encode_reading
from readings.files import PatientProfile
from readings.model import GlucoseValues, Reading, new_reading
from readings.units import Unit
from tests.alerts.builders import T0, cgm, glucose, minutes
from vitalgate.cli import app

runner = CliRunner()


def _files(tmp_path: Path, readings: list[Reading], patients: str) -> tuple[Path, Path]:
    readings_path = tmp_path / "r.jsonl"
    readings_path.write_bytes(b"\n".join(encode_reading(r) for r in readings) + b"\n")
    patients_path = tmp_path / "p.yaml"
    patients_path.write_text(patients, encoding="utf-8")
    return readings_path, patients_path


def _implausible() -> Reading:
    # 40 mmol/L: no home meter reports above 600 mg/dL (ingest quarantines it).
    return new_reading(
        values=GlucoseValues(glucose=40.0),
        source_unit=Unit.MMOL_PER_L,
        measured_at=T0 + timedelta(hours=30),
        received_at=T0 + timedelta(hours=30),
        device_id="acme-meter-0001",
        patient_id="p-1",
        gateway_id="gw-1",
        seq=999_999,
    )


def _run(tmp_path: Path, *extra: str) -> dict[str, Any]:
    readings = [
        glucose(600, Unit.MG_PER_DL, flags=("result_high",)),  # HI, no re-test
        glucose(7.0, at=T0 + timedelta(hours=3)),
        glucose(300, Unit.MG_PER_DL, at=T0 + timedelta(hours=5)),
        glucose(300, Unit.MG_PER_DL, at=T0 + timedelta(hours=7)),
        glucose(6.0, at=T0 + timedelta(hours=9)),
        _implausible(),
        *[cgm(6.0, T0 + minutes(5 * i)) for i in range(6)],
    ]
    for_cgm = [r for r in readings if r.kind.value == "cgm_glucose"]
    readings = [r for r in readings if r not in for_cgm] + [_patient(r, "p-2") for r in for_cgm]
    paths = _files(
        tmp_path,
        readings,
        "- patient_id: p-1\n  conditions: [diabetes_type2]\n"
        "- patient_id: p-2\n  conditions: [diabetes_type1]\n",
    )
    result = runner.invoke(
        app,
        ["alerts", "backtest", "--readings", str(paths[0]), "--patients", str(paths[1]), *extra],
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def _patient(reading: Reading, patient: str) -> Reading:
    return new_reading(
        values=reading.values,
        source_unit=reading.source_unit,
        measured_at=reading.measured_at,
        received_at=reading.received_at,
        device_id="acme-cgm-0001",
        patient_id=patient,
        gateway_id="gw-2",
        seq=reading.seq,
    )


def _iso(delta: timedelta) -> str:
    return (T0 + delta).isoformat().replace("+00:00", "Z")


def test_backtest_json_over_files(tmp_path: Path) -> None:
    document = _run(tmp_path, "--format", "json")
    alerts = {(a["patient_id"], a["rule_id"]): a for a in document["alerts"]}
    g4 = alerts[("p-1", "G4")]
    assert g4["fired_at"] == _iso(minutes(15))  # the deadline, no re-test
    assert g4["confirmed"] is False
    assert g4["severity"] == "P1"
    assert g4["resolved_at"] == _iso(timedelta(hours=3))
    g3 = alerts[("p-1", "G3")]
    assert g3["fired_at"] == _iso(timedelta(hours=7))
    assert g3["resolved_at"] == _iso(timedelta(hours=9))
    assert len(g3["reading_ids"]) == 2
    s1 = alerts[("p-2", "S1")]
    assert s1["fired_at"] == _iso(minutes(25 + 15))  # last CGM reading at 25 min
    assert s1["resolved_at"] is None
    assert document["per_rule"]["S4"] == {
        "alerts": 0,
        "per_patient_week": 0.0,
        "unconfirmed": 0,
        "late": 0,
        "dropped_readings": 1,
    }
    assert document["per_rule"]["G4"]["unconfirmed"] == 1
    # until defaults to the last (plausible) reading, at 9 h, + 1 day; both patients start at T0
    assert document["patient_weeks"] == round(2 * (33 / 24) / 7, 2)
    assert set(document) == {"alerts", "per_rule", "patient_weeks"}


def test_backtest_until_and_table(tmp_path: Path) -> None:
    document = _run(tmp_path, "--until", _iso(timedelta(hours=8)))
    assert ("p-1", "S2") not in {(a["patient_id"], a["rule_id"]) for a in document["alerts"]}
    g3 = next(a for a in document["alerts"] if a["rule_id"] == "G3")
    assert g3["resolved_at"] is None  # the clock stopped before the 6.0
    result = runner.invoke(
        app,
        [
            "alerts",
            "backtest",
            "--readings",
            str(tmp_path / "r.jsonl"),
            "--patients",
            str(tmp_path / "p.yaml"),
            "--format",
            "table",
        ],
    )
    assert result.exit_code == 0
    assert "G4    P1" in result.output
    assert "unconfirmed" in result.output


def test_backtest_refuses_bad_input(tmp_path: Path) -> None:
    readings, patients = _files(tmp_path, [glucose(5.0)], "- patient_id: p-9\n")
    base = ["alerts", "backtest", "--readings", str(readings), "--patients", str(patients)]
    unknown = runner.invoke(app, base)
    assert unknown.exit_code == 2
    assert "patient 'p-1' is not in the patients file" in unknown.output
    bad_until = runner.invoke(app, [*base, "--until", "tomorrow"])
    assert bad_until.exit_code == 2
    patients.write_text("- patient_id: p-1\n  overrides: {G1.enabled: false}\n", encoding="utf-8")
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2
    assert "cannot be disabled" in refused.output


def test_a_g1_fires_once_and_resolves_when_glucose_recovers(rules: RuleSet) -> None:
    readings = [glucose(2.5), glucose(2.8, at=T0 + minutes(15)), glucose(5.5, at=T0 + minutes(30))]
    result = run_backtest(readings, [PatientProfile("p-1", frozenset({"diabetes_type1"}))], rules)
    g1 = [a for a in result.alerts if a.rule_id == "G1"]
    assert len(g1) == 1
    assert (g1[0].fired_at, g1[0].resolved_at) == (T0, T0 + minutes(30))
    assert len(g1[0].reading_ids) == 2


def test_backtest_wakes_at_a_deadline_no_other_rule_would(rules: RuleSet) -> None:
    from tests.alerts.builders import spo2

    # O1's P1 deadline is 10 min; no stale or missing rule wakes the clock then.
    result = run_backtest([spo2(86)], [PatientProfile("p-1")], rules)
    o1 = next(a for a in result.alerts if a.rule_id == "O1")
    assert (o1.fired_at, o1.confirmed, o1.severity.value) == (T0 + minutes(10), False, "P1")


def test_on_findings_sees_every_evaluation_in_clock_order() -> None:
    from alerts.model import FindingStatus
    from alerts.rules.loader import default_rules

    profile = PatientProfile("p-1", frozenset({"diabetes_type2"}))
    readings = [glucose(2.5, at=T0), glucose(5.0, at=T0 + minutes(15))]
    seen: list[tuple[str, Any, list[Any]]] = []
    result = run_backtest(
        readings,
        [profile],
        default_rules(),
        on_findings=lambda p, now, findings: seen.append((p, now, findings)),
    )
    assert len(seen) == result.evaluations > 2
    times = [now for _, now, _ in seen]
    assert times == sorted(times)
    assert times[0] == T0
    g1 = [f for f in seen[0][2] if f.rule_id == "G1"]
    assert [f.status for f in g1] == [FindingStatus.FIRING]
    assert {p for p, _, _ in seen} == {"p-1"}
