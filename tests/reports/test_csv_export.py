"""CSV export: units in headers, provenance columns, formula-injection escaping."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from readings.model import GlucoseValues, new_reading
from registry.alert_models import AlertRow
from reports.csv_export import alerts_csv, escape_cell, readings_csv
from tests.reports.builders import T0, bp, cgm, meter


@pytest.mark.parametrize(
    ("raw", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (5.5, "5.5"),
        (-1.5, "'-1.5"),
        (True, "true"),
    ],
)
def test_escape_cell(raw: object, written: str) -> None:
    assert escape_cell(raw) == written  # type: ignore[arg-type]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_readings_csv_has_units_in_headers_and_provenance() -> None:
    readings = [
        bp(142, 91, T0 + timedelta(hours=8)),
        meter(5.4, T0 + timedelta(hours=7), meal="fasting"),
        cgm(180, T0 + timedelta(hours=9), unit="mg/dL"),
    ]
    text = readings_csv(readings)
    header = text.split("\r\n", 1)[0].split(",")
    for column in (
        "glucose_mmol_l",
        "systolic_mmhg",
        "diastolic_mmhg",
        "spo2_percent",
        "weight_kg",
    ):
        assert column in header
    rows = _rows(text)
    assert [r["kind"] for r in rows] == ["glucose", "blood_pressure", "cgm_glucose"]
    assert rows[0]["glucose_mmol_l"] == "5.4"
    assert json.loads(rows[0]["context_json"]) == {"meal": "fasting"}
    assert rows[1]["systolic_mmhg"] == "142.0"
    assert rows[1]["glucose_mmol_l"] == ""
    assert rows[2]["source_unit"] == "mg/dL"
    assert abs(float(rows[2]["glucose_mmol_l"]) - 180 / 18.0156) < 1e-6
    assert rows[0]["device_id"] == "acme-device-0001"
    assert rows[0]["gateway_id"] == "gw-1"
    assert rows[0]["clock_corrected"] == "false"
    assert rows[0]["reading_id"] == readings[1].id


def test_readings_csv_escapes_device_supplied_text_and_flags_clock_correction() -> None:
    at = T0 + timedelta(hours=1)
    hostile = new_reading(
        values=GlucoseValues(glucose=6.0),
        source_unit="mmol/L",
        measured_at=at,
        received_at=at.astimezone(UTC),
        device_time=datetime(2026, 1, 1, 0, 0),
        device_id="acme-device-0002",
        patient_id="p-1",
        gateway_id="gw-1",
        context={"note": "=cmd|' /C calc'!A0"},
        flags=("clock_corrected",),
        seq=1,
    )
    rows = _rows(readings_csv([hostile]))
    assert rows[0]["clock_corrected"] == "true"
    assert rows[0]["flags"] == "clock_corrected"
    assert rows[0]["device_time_local_uncorrected"] == "2026-01-01T00:00:00"
    # the JSON cell starts with "{", so it is safe; a bare hostile cell would be escaped
    assert rows[0]["context_json"].startswith("{")


def _alert(**changes: object) -> AlertRow:
    fields: dict[str, object] = {
        "id": 7,
        "patient_id": "p-1",
        "rule_id": "G1",
        "rule_version": 1,
        "metric": "glucose",
        "severity": "P1",
        "state": "open",
        "confirmed": True,
        "late": False,
        "reading_ids": "[]",
        "thresholds": '{"below_mmol_l": 3.0}',
        "explanation_key": "alert.g1",
        "explanation_params": "{}",
        "opened_at": datetime(2026, 3, 2, 1, 0, tzinfo=UTC),
        "fired_at": None,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "resolved_at": None,
        "last_notified_at": None,
        "muted_by": None,
        "assignee": None,
    }
    fields.update(changes)
    return AlertRow(**fields)


def test_alerts_csv_escapes_a_hostile_assignee() -> None:
    text = alerts_csv(
        [
            _alert(id=8, opened_at=datetime(2026, 3, 3, tzinfo=UTC), assignee="@evil"),
            _alert(acknowledged_by="=1+1"),
        ]
    )
    rows = _rows(text)
    assert [r["alert_id"] for r in rows] == ["7", "8"]
    assert rows[0]["acknowledged_by"] == "'=1+1"
    assert rows[1]["assignee"] == "'@evil"
    assert json.loads(rows[0]["thresholds_json_units_in_keys"]) == {"below_mmol_l": 3.0}
    assert rows[0]["opened_at_utc"] == "2026-03-02T01:00:00+00:00"
