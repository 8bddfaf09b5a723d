"""``vitalgate summary``: the summaries of every patient of a file, from files.

For people checking the numbers and for tests, in the same form as the alert backtest::

    vitalgate summary --readings readings.jsonl --patients patients.yaml \\
        --from 2026-03-01 --to 2026-03-15 --format json

``--from``/``--to`` are ISO 8601: a date or a time without an offset is read in each
patient's own time zone (the patient file's ``time_zone``), a time with an offset is the
same instant for everyone. The period is ``[from, to)``. Targets come from the patient
file's ``overrides`` (``target.glucose_low_mmol_l`` …, see ``docs/summaries.md``).

The JSON document is ``{"patients": [...]}`` with one entry per patient of the patient
file, in file order; a section is ``null`` when the patient has no such readings, and a
figure without sufficient data is ``{"insufficient": reason, "have": n, "need": m}``.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo

import typer

from readings.errors import ContractError
from readings.files import PatientProfile, load_patient_profiles, load_readings_jsonl
from readings.model import Reading
from reports.errors import ReportsError
from reports.summaries import Period, Targets, summarise_patient, summary_json
from vitalgate.errors import VitalgateError

EXIT_BAD_INPUT: Final = 2
"""The CLI convention for input the command cannot use (as ``vitalgate decode``)."""


class OutputFormat(StrEnum):
    """What ``--format`` prints."""

    JSON = "json"
    TABLE = "table"


class BadTime(VitalgateError):
    """``--from``/``--to`` is not an ISO 8601 date or time."""


app = typer.Typer(
    help="Summaries (CGM, meter glucose, BP, weight) of every patient of a file.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def parse_time(text: str, option: str) -> date | datetime:
    """An ISO 8601 date, naive time (both local to each patient) or aware time.

    Raises:
        BadTime: naming the option.
    """
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        raise BadTime(f"{option}: {text!r} is not an ISO 8601 date or date-time") from None


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return datetime.combine(value, time(), tzinfo=zone)


def period_for(profile: PatientProfile, start: date | datetime, end: date | datetime) -> Period:
    """The patient's period: local bounds read in the patient's zone."""
    zone = profile.time_zone
    return Period(_instant(start, zone), _instant(end, zone), zone)


def summaries_document(
    readings: list[Reading],
    profiles: list[PatientProfile],
    start: date | datetime,
    end: date | datetime,
) -> dict[str, Any]:
    """The JSON document of the command (pure: what the tests call)."""
    by_patient: dict[str, list[Reading]] = {}
    for reading in readings:
        by_patient.setdefault(reading.patient_id, []).append(reading)
    entries = []
    for profile in profiles:
        summary = summarise_patient(
            profile.patient_id,
            by_patient.get(profile.patient_id, []),
            period_for(profile, start, end),
            Targets.from_overrides(profile.overrides, profile.conditions),
        )
        entries.append(summary_json(summary))
    return {"patients": entries}


def _cell(value: Any, unit: str) -> str:
    if isinstance(value, dict):
        return f"insufficient: {value['insufficient']} ({value['have']:g} of {value['need']:g})"
    return f"{value:g} {unit}".rstrip()


_TABLE_ROWS: Final = {
    "cgm": [
        ("mean_mmol_l", "mean", "mmol/L"),
        ("gmi_percent", "GMI", "%"),
        ("cv_percent", "CV", "%"),
        ("active_percent", "time active", "%"),
    ],
    "bgm": [
        ("readings", "readings", ""),
        ("readings_per_day", "readings per day", ""),
        ("mean_mmol_l", "mean", "mmol/L"),
        ("sd_mmol_l", "SD", "mmol/L"),
        ("in_target_percent", "in target", "%"),
        ("below_3_9", "events < 3.9", ""),
        ("below_3_0", "events < 3.0", ""),
    ],
    "bp": [
        ("home_mean_systolic", "home mean systolic", "mmHg"),
        ("home_mean_diastolic", "home mean diastolic", "mmHg"),
        ("readings_used", "readings used", ""),
    ],
    "weight": [("change_3d_kg", "3-day change", "kg"), ("change_7d_kg", "7-day change", "kg")],
}


def table_text(document: dict[str, Any]) -> str:
    """The document as aligned text, one block per patient (``--format table``)."""
    lines: list[str] = []
    for entry in document["patients"]:
        lines.append(f"patient {entry['patient_id']}")
        for section, rows in _TABLE_ROWS.items():
            data = entry[section]
            if data is None:
                lines.append(f"  {section:<7} no readings")
                continue
            for key, label, unit in rows:
                lines.append(f"  {section:<7} {label:<22} {_cell(data[key], unit)}")
            if section == "cgm":
                for name, value in data["time_in_ranges_percent"].items():
                    lines.append(f"  {section:<7} {'time ' + name:<22} {_cell(value, '%')}")
        lines.append("")
    return "\n".join(lines)


@app.callback(invoke_without_command=True)
def summary(
    readings: Annotated[
        Path, typer.Option("--readings", help="Readings, JSON Lines in the wire contract's form.")
    ],
    patients: Annotated[Path, typer.Option("--patients", help="Patients, YAML or JSON.")],
    start: Annotated[
        str, typer.Option("--from", help="Start (inclusive), ISO 8601; local if no offset.")
    ],
    end: Annotated[
        str, typer.Option("--to", help="End (exclusive), ISO 8601; local if no offset.")
    ],
    output: Annotated[
        OutputFormat, typer.Option("--format", help="json (for programs) or table (for people).")
    ] = OutputFormat.JSON,
) -> None:
    """Print the summaries of every patient of --patients over [--from, --to)."""
    try:
        document = summaries_document(
            load_readings_jsonl(readings),
            load_patient_profiles(patients),
            parse_time(start, "--from"),
            parse_time(end, "--to"),
        )
    except (ContractError, ReportsError, VitalgateError) as error:
        typer.echo(f"vitalgate summary: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        typer.echo(table_text(document))
