"""Readings and patient profiles from files: the input of backtests, summaries and tests.

Rule authors and people checking the numbers run the alert backtest and the summaries over
files instead of a deployment:

* **readings** as JSON Lines, one reading per line in the wire contract's reading form
  (``docs/wire-protocol.md``); blank lines and lines starting with ``#`` are skipped;
* **patients** as YAML or JSON: a list of
  ``{patient_id, conditions: [...], time_zone, overrides: {...}}`` with the condition
  names of the care model.

Errors name the file and the line (readings) or the entry and key (patients), and nothing
is half-loaded: a file with one bad line raises instead of returning the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from readings.errors import ContractError
from readings.model import AnyReading, Reading

CONDITION_NAMES: Final[frozenset[str]] = frozenset(
    {
        "diabetes_type1",
        "diabetes_type2",
        "gestational_diabetes",
        "hypertension",
        "heart_failure",
        "copd",
        "chronic_kidney_disease",
        "frail_elderly",
    }
)
"""The chronic conditions of the care model (``registry.care_models.Condition``; a test
keeps the two equal). They select rule profiles and default targets."""

DEFAULT_TIME_ZONE: Final = "Asia/Shanghai"
"""The care model's default: the programme this serves runs on China Standard Time."""


class InputFileError(ContractError):
    """A readings or patients file cannot be used; the message names the file and place."""


@dataclass(frozen=True, slots=True)
class PatientProfile:
    """What rules and summaries need to know about a patient besides the readings."""

    patient_id: str
    conditions: frozenset[str] = frozenset()
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIME_ZONE))
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Per-patient settings by name (rule thresholds, targets), as the file gives them; the
    consumer (alert rules, summaries) validates the keys it knows."""


_READING_DECODER: Final = msgspec.json.Decoder(AnyReading)


def load_readings_jsonl(path: Path) -> list[Reading]:
    """All readings of a JSON Lines file, in file order.

    Raises:
        InputFileError: the file cannot be read, or a line is not a valid reading (the
            message gives the line number and the contract's complaint).
    """
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    readings: list[Reading] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        try:
            readings.append(_READING_DECODER.decode(stripped))
        except (msgspec.DecodeError, ContractError) as exc:
            raise InputFileError(f"{path}:{number}: not a reading: {exc}") from exc
    return readings


def load_patient_profiles(path: Path) -> list[PatientProfile]:
    """The patient list of a YAML or JSON file (JSON is YAML).

    Raises:
        InputFileError: unreadable file, not a list, a missing ``patient_id``, an unknown
            condition, an unknown time zone, an unknown key, or a patient listed twice.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InputFileError(f"{path}: not YAML or JSON: {exc}") from exc
    if not isinstance(document, list):
        raise InputFileError(f"{path}: expected a list of patients, got {_kind(document)}")
    profiles: list[PatientProfile] = []
    seen: set[str] = set()
    for index, entry in enumerate(document):
        profile = _profile(path, index, entry)
        if profile.patient_id in seen:
            raise InputFileError(f"{path}: [{index}]: patient {profile.patient_id!r} twice")
        seen.add(profile.patient_id)
        profiles.append(profile)
    return profiles


_PROFILE_KEYS: Final = frozenset({"patient_id", "conditions", "time_zone", "overrides"})


def _profile(path: Path, index: int, entry: object) -> PatientProfile:
    where = f"{path}: [{index}]"
    if not isinstance(entry, dict):
        raise InputFileError(f"{where}: expected a mapping, got {_kind(entry)}")
    unknown = sorted(str(key) for key in entry if key not in _PROFILE_KEYS)
    if unknown:
        raise InputFileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    patient_id = entry.get("patient_id")
    if not isinstance(patient_id, str) or not patient_id:
        raise InputFileError(f"{where}.patient_id: required, a non-empty string")
    conditions = entry.get("conditions") or []
    if not isinstance(conditions, list) or not all(isinstance(c, str) for c in conditions):
        raise InputFileError(f"{where}.conditions: expected a list of condition names")
    unknown_conditions = sorted(set(conditions) - CONDITION_NAMES)
    if unknown_conditions:
        raise InputFileError(
            f"{where}.conditions: unknown {', '.join(unknown_conditions)}; "
            f"known: {', '.join(sorted(CONDITION_NAMES))}"
        )
    zone_name = entry.get("time_zone") or DEFAULT_TIME_ZONE
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputFileError(f"{where}.time_zone: unknown time zone {zone_name!r}") from exc
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise InputFileError(f"{where}.overrides: expected a mapping, got {_kind(overrides)}")
    return PatientProfile(
        patient_id=patient_id,
        conditions=frozenset(conditions),
        time_zone=zone,
        overrides=dict(overrides),
    )


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
