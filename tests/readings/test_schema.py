"""The published JSON Schema is what the models generate, and it accepts real payloads."""

from __future__ import annotations

import json
from pathlib import Path

from readings.schema import all_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"


def test_published_schema_matches_the_models() -> None:
    generated = all_schemas()
    published = {path.name for path in SCHEMA_DIR.glob("*.schema.json")}
    assert published == set(generated), "run `vitalgate wire schema` and commit docs/schema"
    for name, schema in generated.items():
        on_disk = json.loads((SCHEMA_DIR / name).read_text())
        assert on_disk == schema, f"{name} drifted: run `vitalgate wire schema`"


def test_every_kind_lists_its_units_and_value_units() -> None:
    defs = all_schemas()["readings-envelope.v1.schema.json"]["$defs"]
    assert defs["GlucoseReading"]["properties"]["source_unit"]["enum"] == [
        "kg/L",
        "mg/dL",
        "mmol/L",
        "mol/L",
    ]
    assert defs["BloodPressureValues"]["properties"]["systolic"]["x-unit"] == "mm[Hg]"
    assert defs["WeightValues"]["properties"]["height"]["x-unit"] == "m"
