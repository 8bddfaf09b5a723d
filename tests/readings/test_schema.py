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


def test_descriptions_do_not_depend_on_how_docstrings_are_indented() -> None:
    import msgspec

    from readings.schema import _normalise_descriptions

    class Indented(msgspec.Struct):
        """First line of the summary
        that wraps.

            More detail, indented further.
        """

        x: int

    class Flush(msgspec.Struct):
        x: int

    # Assigned, not written as a docstring: the formatter would re-indent a docstring.
    Flush.__doc__ = "First line of the summary\nthat wraps.\n\nMore detail, indented further.\n"

    rendered = []
    for cls in (Indented, Flush):
        schema = msgspec.json.schema(cls)
        _normalise_descriptions(schema)
        rendered.append(schema["$defs"][cls.__name__]["description"])
    assert (
        rendered[0]
        == rendered[1]
        == ("First line of the summary that wraps.\n\nMore detail, indented further.")
    )


def test_published_descriptions_are_already_normalised() -> None:
    from readings.schema import normalise_description

    def walk(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [v for k, v in node.items() if k == "description" and isinstance(v, str)]
            return found + [d for v in node.values() for d in walk(v)]
        if isinstance(node, list):
            return [d for v in node for d in walk(v)]
        return []

    for path in SCHEMA_DIR.glob("*.schema.json"):
        for description in walk(json.loads(path.read_text())):
            assert description == normalise_description(description), path.name
