"""JSON Schema of the wire contract, generated from the models.

``docs/schema/*.schema.json`` are written by ``vitalgate wire schema`` and compared with
this output by a test, so the published schema cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from readings.codec import (
    AckMessage,
    Envelope,
    EventMessage,
    PairCommand,
    ReloadConfigCommand,
    StatusMessage,
    SyncTimeCommand,
    UnpairCommand,
)
from readings.model import READING_CLASSES, Values

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE: Final = "urn:vitalgate:wire:v1:"
DEVICE_TIME_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"

_MESSAGES: Final[Mapping[str, tuple[type[msgspec.Struct], str]]] = {
    "readings-envelope": (Envelope, "vitalgate/v1/gw/{gateway_id}/readings"),
    "ack": (AckMessage, "vitalgate/v1/gw/{gateway_id}/ack"),
    "status": (StatusMessage, "vitalgate/v1/gw/{gateway_id}/status"),
    "event": (EventMessage, "vitalgate/v1/gw/{gateway_id}/events"),
    "command-pair": (PairCommand, "vitalgate/v1/gw/{gateway_id}/cmd/pair"),
    "command-unpair": (UnpairCommand, "vitalgate/v1/gw/{gateway_id}/cmd/unpair"),
    "command-sync-time": (SyncTimeCommand, "vitalgate/v1/gw/{gateway_id}/cmd/sync_time"),
    "command-reload-config": (
        ReloadConfigCommand,
        "vitalgate/v1/gw/{gateway_id}/cmd/reload_config",
    ),
}


def _annotate_readings(defs: dict[str, Any]) -> None:
    """Add what msgspec cannot infer: allowed units per kind, units of each value field."""
    for reading_class in READING_CLASSES.values():
        definition = defs.get(reading_class.__name__)
        if definition is None:
            continue
        properties = definition["properties"]
        properties["source_unit"] = {
            "enum": sorted(str(unit) for unit in reading_class.UNITS_ALLOWED),
            "description": "The unit the device sent the primary value in (UCUM code).",
        }
        properties["device_time"] = {
            "anyOf": [{"type": "string", "pattern": DEVICE_TIME_PATTERN}, {"type": "null"}],
            "default": None,
            "description": "The device's raw wall-clock time, no offset (devices have no zone).",
        }
        values_class: type[Values] = next(
            field.type for field in msgspec.structs.fields(reading_class) if field.name == "values"
        )
        values_definition = defs[values_class.__name__]
        for name, unit in values_class.UNITS.items():
            values_definition["properties"][name]["x-unit"] = unit.value


_WHITESPACE_RUN: Final = re.compile(r"\s+")


def normalise_description(text: str) -> str:
    """One canonical rendering of a docstring-derived description.

    msgspec copies class docstrings into ``description``, and releases differ in whether they
    dedent them (0.23 does, 0.18 did not). The published schema must not change when an
    upstream changes how it renders whitespace, so descriptions are reduced to paragraphs of
    single-spaced words: common indentation, line wrapping and trailing blanks never matter.
    """
    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(
        _WHITESPACE_RUN.sub(" ", paragraph).strip() for paragraph in paragraphs if paragraph.strip()
    )


def _normalise_descriptions(node: Any) -> None:
    """Apply :func:`normalise_description` to every ``description`` in a schema tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = normalise_description(value)
            else:
                _normalise_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _normalise_descriptions(item)


def _with_version_constant(definition: dict[str, Any]) -> None:
    definition["properties"]["v"] = {"const": 1, "description": "Payload version."}


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema of one message of the contract, by file stem (e.g. ``ack``)."""
    message_type, topic = _MESSAGES[name]
    generated = msgspec.json.schema(message_type)
    defs: dict[str, Any] = generated["$defs"]
    _annotate_readings(defs)
    _with_version_constant(defs[message_type.__name__])
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_ID_BASE}{name}",
        "title": f"VitalGate wire contract v1: {name}",
        "description": f"Payload of MQTT topic {topic}. See docs/wire-protocol.md.",
        "$ref": generated["$ref"],
        "$defs": defs,
    }
    # Plain JSON types only (tuples and enums as msgspec emitted them become lists and
    # strings), so the result compares equal to the published file.
    plain: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(schema))
    _normalise_descriptions(plain)
    return plain


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema of the contract, by file name (``<name>.v1.schema.json``)."""
    return {f"{name}.v1.schema.json": schema_for(name) for name in _MESSAGES}
