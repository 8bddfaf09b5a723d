"""Reading and patient files: what loads, and errors that name the place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from readings.codec import encode_reading
from readings.files import (
    CONDITION_NAMES,
    InputFileError,
    load_patient_profiles,
    load_readings_jsonl,
)
from readings.model import GlucoseValues, new_reading
from registry.care_models import Condition

AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _glucose_line(value: float) -> bytes:
    reading = new_reading(
        values=GlucoseValues(glucose=value),
        source_unit="mmol/L",
        measured_at=AT,
        received_at=AT,
        device_id="acme-meter-0001",
        patient_id="p-1",
        gateway_id="gw-1",
    )
    return encode_reading(reading)


def test_condition_names_are_the_care_models() -> None:
    assert {c.value for c in Condition} == CONDITION_NAMES


def test_readings_load_in_file_order_skipping_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"# header\n" + _glucose_line(5.5) + b"\n\n" + _glucose_line(3.1) + b"\n")
    loaded = load_readings_jsonl(path)
    assert [r.values.glucose for r in loaded] == [5.5, 3.1]  # type: ignore[attr-defined]


def test_a_bad_reading_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(_glucose_line(5.5) + b"\n" + b'{"kind": "glucose"}\n')
    with pytest.raises(InputFileError, match=r"r\.jsonl:2: not a reading"):
        load_readings_jsonl(path)


def test_profiles_load_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "- patient_id: p-1\n  conditions: [copd]\n  overrides: {O2.p2_below: 86}\n"
        "- patient_id: p-2\n  time_zone: Europe/Berlin\n",
        encoding="utf-8",
    )
    first, second = load_patient_profiles(path)
    assert first.conditions == {"copd"}
    assert first.time_zone.key == "Asia/Shanghai"
    assert first.overrides == {"O2.p2_below": 86}
    assert second.time_zone.key == "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", "expected a list of patients"),
        ("- conditions: []", r"\[0\]\.patient_id: required"),
        ("- patient_id: a\n  conditions: [diabetes]", r"\[0\]\.conditions: unknown diabetes"),
        ("- patient_id: a\n  time_zone: Mars/Base", r"\[0\]\.time_zone: unknown time zone"),
        ("- patient_id: a\n  colour: red", r"\[0\]: unknown key\(s\) colour"),
        ("- patient_id: a\n- patient_id: a", r"\[1\]: patient 'a' twice"),
        ("- patient_id: a\n  overrides: [1]", r"\[0\]\.overrides: expected a mapping"),
    ],
)
def test_bad_profiles_name_entry_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputFileError, match=message):
        load_patient_profiles(path)
