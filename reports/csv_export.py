"""CSV export of a patient's readings, alerts and nurse visits, safe to open in a spreadsheet.

Every header carries its unit (``glucose_mmol_l``, ``systolic_mmhg``), because a CSV has
no other place for it and a receiving clinician must never guess mmol/L from mg/dL.

Formula injection (CWE-1236, OWASP "CSV Injection"): a spreadsheet runs a cell that starts
with ``=``, ``+``, ``-`` or ``@`` as a formula, and a tab, carriage return or NUL lets a
cell start one after the spreadsheet splits or strips it. Any such cell is written with a leading
apostrophe, which spreadsheets show as text. This applies to every text cell, including
device ids, flags and context that came from a device; numbers are written by this module
and never start with a formula character except a negative sign, so negative numbers
(a weight change, a CGM trend) are escaped too: a reader must strip the apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Final

from readings.model import Reading
from registry.alert_models import AlertRow
from reports.visits import VisitLine

FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r", "\0")
"""Cell starts that a spreadsheet may evaluate: OWASP CSV Injection's list (``=``, ``+``,
``-``, ``@``, tab, CR) and the NUL that OWASP ASVS 5.0 requirement 1.2.10 adds."""

FLAG_CLOCK_CORRECTED: Final = "clock_corrected"
"""The gateway's flag for a reading whose time it corrected (``gateway.clock``)."""

CellValue = str | int | float | bool | datetime | None


def escape_cell(value: CellValue) -> str:
    """One cell as text, with a leading apostrophe if it could start a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def write_csv(header: Sequence[str], rows: Iterable[Sequence[CellValue]]) -> str:
    """A CSV document (RFC 4180, CRLF line ends) with every cell escaped."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row])
    return buffer.getvalue()


def _value(field: str) -> Callable[[Reading], CellValue]:
    def get(reading: Reading) -> CellValue:
        value = getattr(reading.values, field, None)
        if isinstance(value, tuple):
            return " ".join(str(v) for v in value)
        return value

    return get


READING_COLUMNS: Final[tuple[tuple[str, Callable[[Reading], CellValue]], ...]] = (
    ("reading_id", lambda r: r.id),
    ("patient_id", lambda r: r.patient_id),
    ("kind", lambda r: r.kind.value),
    ("measured_at_utc", lambda r: r.measured_at),
    ("device_time_local_uncorrected", lambda r: r.device_time),
    ("received_at_utc", lambda r: r.received_at),
    ("device_id", lambda r: r.device_id),
    ("gateway_id", lambda r: r.gateway_id),
    ("source_unit", lambda r: r.source_unit),
    ("glucose_mmol_l", _value("glucose")),
    ("glucose_trend_mmol_l_per_min", _value("trend")),
    ("cgm_quality_percent", _value("quality")),
    ("systolic_mmhg", _value("systolic")),
    ("diastolic_mmhg", _value("diastolic")),
    ("mean_arterial_mmhg", _value("mean_arterial")),
    ("pulse_per_min", _value("pulse")),
    ("heart_rate_per_min", _value("heart_rate")),
    ("rr_intervals_s", _value("rr_intervals")),
    ("energy_expended_kj", _value("energy_expended")),
    ("spo2_percent", _value("spo2")),
    ("weight_kg", _value("weight")),
    ("bmi_kg_m2", _value("bmi")),
    ("height_m", _value("height")),
    ("temperature_cel", _value("temperature")),
    ("seq", lambda r: r.seq),
    ("clock_corrected", lambda r: FLAG_CLOCK_CORRECTED in r.flags),
    ("flags", lambda r: " ".join(r.flags)),
    ("context_json", lambda r: json.dumps(r.context, sort_keys=True) if r.context else None),
)
"""Readings: one row per reading, values in the canonical unit named in the header;
``source_unit`` is the unit the device sent, ``device_time`` its raw clock."""


def readings_csv(readings: Iterable[Reading]) -> str:
    """The readings as CSV, in time order (then id, for a stable file)."""
    ordered = sorted(readings, key=lambda r: (r.measured_at, r.id))
    return write_csv(
        [name for name, _ in READING_COLUMNS],
        ([get(r) for _, get in READING_COLUMNS] for r in ordered),
    )


ALERT_COLUMNS: Final = (
    "alert_id",
    "patient_id",
    "rule_id",
    "rule_version",
    "metric",
    "severity",
    "state",
    "confirmed",
    "late",
    "opened_at_utc",
    "fired_at_utc",
    "acknowledged_at_utc",
    "acknowledged_by",
    "resolved_at_utc",
    "assignee",
    "muted_by",
    "explanation_key",
    "thresholds_json_units_in_keys",
    "reading_ids_json",
)
"""Alerts: thresholds keep the JSON the rule recorded, whose keys name their unit."""


def alerts_csv(alerts: Iterable[AlertRow]) -> str:
    """The registry's alert rows as CSV, oldest first."""
    ordered = sorted(alerts, key=lambda a: (a.opened_at, a.id))
    return write_csv(
        ALERT_COLUMNS,
        (
            (
                a.id,
                a.patient_id,
                a.rule_id,
                a.rule_version,
                a.metric,
                a.severity,
                a.state,
                a.confirmed,
                a.late,
                a.opened_at,
                a.fired_at,
                a.acknowledged_at,
                a.acknowledged_by,
                a.resolved_at,
                a.assignee,
                a.muted_by,
                a.explanation_key,
                a.thresholds,
                a.reading_ids,
            )
            for a in ordered
        ),
    )


VISIT_COLUMNS: Final[tuple[tuple[str, Callable[[VisitLine], CellValue]], ...]] = (
    ("visit_task_id", lambda v: v.task_id),
    ("visit_code", lambda v: v.code),
    ("patient_id", lambda v: v.patient_id),
    ("kind_home_visit_phone_clinic", lambda v: v.kind),
    ("status", lambda v: v.status),
    ("reason_kind", lambda v: v.reason_kind),
    ("rule_id", lambda v: v.rule_id),
    ("alert_id", lambda v: v.alert_id),
    ("priority_1_most_urgent_to_3", lambda v: v.priority),
    ("request_note_text", lambda v: v.note),
    ("due_earliest_utc", lambda v: v.earliest),
    ("due_latest_utc", lambda v: v.latest),
    ("scheduled_at_utc", lambda v: v.scheduled_at),
    ("assignee", lambda v: v.assignee),
    ("requested_at_utc", lambda v: v.created_at),
    ("requested_by", lambda v: v.created_by),
    ("closed_at_utc", lambda v: v.closed_at),
    ("closing_reason_text", lambda v: v.closing_reason),
    ("check_in_at_utc", lambda v: v.check_in_at),
    ("check_out_at_utc", lambda v: v.check_out_at),
    ("consent_true_false", lambda v: v.consent),
    ("programme", lambda v: v.programme),
    ("follow_up_classification", lambda v: v.classification),
    ("assessment_text", lambda v: v.assessment),
    ("recorded_by", lambda v: v.recorded_by),
    ("reading_ids_json", lambda v: json.dumps(list(v.reading_ids)) if v.reading_ids else None),
    ("next_task_id", lambda v: v.next_task_id),
)
"""Visits: times in UTC (ISO 8601), staff free text in the ``*_text`` columns; the vitals
measured at a visit are readings (``reading_ids_json``) and are in the readings CSV."""


def visits_csv(visits: Iterable[VisitLine]) -> str:
    """The visit tasks as CSV, in the order of their :attr:`VisitLine.when` (then id).

    The staff's free text (request note, closing reason, assessment) goes through the same
    formula-injection escaping as every other cell.
    """
    ordered = sorted(visits, key=lambda v: (v.when, v.task_id))
    return write_csv(
        [name for name, _ in VISIT_COLUMNS],
        ([get(v) for _, get in VISIT_COLUMNS] for v in ordered),
    )
