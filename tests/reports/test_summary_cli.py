"""``vitalgate summary``: the JSON shape of issue 13 item 6, the table, and bad input."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from readings.codec import encode_reading
from reports.errors import InvalidPeriod, InvalidTarget
from reports.summaries import Period, Targets
from tests.reports.builders import T0, bp, cgm, meter, weight
from vitalgate.cli import app

runner = CliRunner()


def _files(tmp_path: Path) -> tuple[Path, Path]:
    readings = [cgm(6.0 + (i % 3), T0 + timedelta(minutes=5 * i)) for i in range(14 * 288)]
    readings += [meter(v, T0 + timedelta(days=i, hours=7)) for i, v in enumerate([5.0, 3.5])]
    readings += [weight(70.0 + 0.5 * d, T0 + timedelta(days=d, hours=7)) for d in range(14)]
    readings += [bp(140, 90, T0 + timedelta(days=d, hours=7)) for d in range(7, 14)]
    (tmp_path / "r.jsonl").write_bytes(b"\n".join(encode_reading(r) for r in readings) + b"\n")
    (tmp_path / "p.yaml").write_text(
        "- patient_id: p-1\n  time_zone: Asia/Shanghai\n"
        "  overrides: {target.glucose_low_mmol_l: 4.4}\n"
        "- patient_id: p-2\n",
        encoding="utf-8",
    )
    return tmp_path / "r.jsonl", tmp_path / "p.yaml"


def _run(tmp_path: Path, *extra: str) -> object:
    readings, patients = _files(tmp_path)
    return runner.invoke(
        app,
        [
            "summary",
            "--readings",
            str(readings),
            "--patients",
            str(patients),
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-15",
            *extra,
        ],
    )


def test_json_has_the_issues_shape(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    document = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert list(document) == ["patients"]
    first, second = document["patients"]
    assert list(first) == ["patient_id", "cgm", "bgm", "bp", "weight"]
    assert first["patient_id"] == "p-1"
    assert list(first["cgm"]) == [
        "mean_mmol_l",
        "gmi_percent",
        "cv_percent",
        "active_percent",
        "time_in_ranges_percent",
    ]
    assert first["cgm"]["mean_mmol_l"] == 7.0
    assert first["cgm"]["gmi_percent"] == round(3.31 + 0.02392 * 7.0 * 18.0156, 2)
    assert first["cgm"]["active_percent"] == 100.0
    assert first["cgm"]["time_in_ranges_percent"] == {
        "very_low": 0.0,
        "low": 0.0,
        "target": 100.0,
        "high": 0.0,
        "very_high": 0.0,
    }
    assert list(first["bgm"]) == [
        "readings",
        "readings_per_day",
        "mean_mmol_l",
        "sd_mmol_l",
        "in_target_percent",
        "below_3_0",
        "below_3_9",
    ]
    assert first["bgm"]["readings"] == 2
    assert first["bgm"]["readings_per_day"] == round(2 / 14, 2)
    assert first["bgm"]["mean_mmol_l"] == {
        "insufficient": "fewer than 10 meter readings",
        "have": 2,
        "need": 10,
    }
    assert (first["bgm"]["below_3_0"], first["bgm"]["below_3_9"]) == (0, 1)
    assert first["bp"] == {
        "home_mean_systolic": {
            "insufficient": "fewer than 12 home readings in the last 7 days after the first day",
            "have": 6,
            "need": 12,
        },
        "home_mean_diastolic": {
            "insufficient": "fewer than 12 home readings in the last 7 days after the first day",
            "have": 6,
            "need": 12,
        },
        "readings_used": 6,
    }
    assert first["weight"] == {"change_3d_kg": 1.5, "change_7d_kg": 3.5}
    assert second == {"patient_id": "p-2", "cgm": None, "bgm": None, "bp": None, "weight": None}


def test_table_says_insufficient_instead_of_a_number(tmp_path: Path) -> None:
    result = _run(tmp_path, "--format", "table")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    text = result.stdout  # type: ignore[attr-defined]
    assert "patient p-1" in text
    assert "GMI" in text
    assert "insufficient: fewer than 10 meter readings (2 of 10)" in text
    assert "patient p-2" in text
    assert "no readings" in text


def test_bad_time_exits_2(tmp_path: Path) -> None:
    readings, patients = _files(tmp_path)
    result = runner.invoke(
        app,
        [
            "summary",
            "--readings",
            str(readings),
            "--patients",
            str(patients),
            "--from",
            "yesterday",
            "--to",
            "2026-03-15",
        ],
    )
    assert result.exit_code == 2
    assert "--from: 'yesterday' is not an ISO 8601" in result.stderr


def test_reversed_period_exits_2(tmp_path: Path) -> None:
    readings, patients = _files(tmp_path)
    result = runner.invoke(
        app,
        [
            "summary",
            "--readings",
            str(readings),
            "--patients",
            str(patients),
            "--from",
            "2026-03-15",
            "--to",
            "2026-03-01",
        ],
    )
    assert result.exit_code == 2
    assert "empty or reversed" in result.stderr


def test_an_aware_time_is_one_instant_for_every_zone() -> None:
    from readings.files import PatientProfile
    from vitalgate.commands.summary import parse_time, period_for

    profile = PatientProfile("p-1")
    local = period_for(
        profile, parse_time("2026-03-01", "--from"), parse_time("2026-03-02", "--to")
    )
    assert local.start.utcoffset() == timedelta(hours=8)
    aware = period_for(
        profile,
        parse_time("2026-03-01T00:00:00+00:00", "--from"),
        parse_time("2026-03-02T00:00:00Z", "--to"),
    )
    assert aware.start - local.start == timedelta(hours=8)


def test_targets_from_overrides_refuse_non_numbers() -> None:
    with pytest.raises(InvalidTarget, match=r"target\.spo2_low_percent"):
        Targets.from_overrides({"target.spo2_low_percent": "94"})
    with pytest.raises(InvalidTarget, match="below"):
        Targets.from_overrides({"target.glucose_low_mmol_l": 11.0})
    assert Targets.from_overrides({"G1.below": 3.0}, frozenset({"copd"})).spo2_low_percent == 88.0
    bounds = Targets.from_bounds({"glucose": (4.4, 7.0), "systolic": (None, 130.0)})
    assert (bounds.glucose_low_mmol_l, bounds.glucose_high_mmol_l) == (4.4, 7.0)
    assert (bounds.systolic_high_mmhg, bounds.diastolic_high_mmhg) == (130.0, 85.0)


def test_a_naive_period_is_refused() -> None:
    with pytest.raises(InvalidPeriod):
        Period(T0.replace(tzinfo=None), T0.replace(tzinfo=None) + timedelta(days=1), T0.tzinfo)  # type: ignore[arg-type]


def test_summarise_patient_keeps_to_the_patient_and_its_sections() -> None:
    from reports.summaries import summarise_patient, summary_json

    period = Period(T0, T0 + timedelta(days=14), T0.tzinfo)  # type: ignore[arg-type]
    readings = [cgm(6.0, T0 + timedelta(minutes=5 * i)) for i in range(14 * 288)]
    readings += [meter(3.0, T0 + timedelta(hours=1)), weight(70.0, T0)]
    other = [meter(2.0, T0 + timedelta(hours=2), patient="p-9")]
    summary = summarise_patient("p-1", readings + other, period, Targets())
    assert summary.meter is not None
    assert summary.meter.readings == 1
    assert summary.cgm is not None
    assert summary.blood_pressure is None
    assert summary.spo2 is None
    assert summary.heart_rate is None
    cgm_only = summary_json(summarise_patient("p-1", readings[:-2], period, Targets()))
    assert cgm_only["bgm"] is None
    assert cgm_only["weight"] is None
    assert cgm_only["cgm"]["mean_mmol_l"] == 6.0
