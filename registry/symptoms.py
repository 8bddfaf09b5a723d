"""Recording symptom reports and opening their alert through the lifecycle.

:func:`report_symptom` is one transaction: the report row, then
:func:`alerts.lifecycle.decide` with the patient's open alerts, silences and monitoring
status, recorded by :class:`registry.alerts_repo.AlertRepository` — the alert row, its
event, audit link and escalation chain, exactly as an evaluated reading's finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.lifecycle import TransitionKind, decide
from alerts.rules.model import RuleSet
from alerts.symptoms import MAX_NOTE_LENGTH, SYMPTOMS, symptom_finding
from registry.alerts_repo import AlertRepository
from registry.care_lookup import find_patient
from registry.errors import InvalidRegistryInput
from registry.symptom_models import SymptomReport


@dataclass(frozen=True, slots=True)
class ReportedSymptom:
    """A recorded report and the alert it opened or joined."""

    report_id: int
    symptom: str
    rule_id: str
    severity: str
    alert_id: int | None
    opened: bool
    """A new alert was opened (False: it joined the rule's alert already open)."""


def reports_since(session: Session, patient_id: str, since: datetime) -> int:
    """How many symptoms were reported for the patient since ``since``."""
    count = session.scalar(
        select(func.count())
        .select_from(SymptomReport)
        .where(SymptomReport.patient_id == patient_id, SymptomReport.reported_at >= since)
    )
    return int(count or 0)


def report_symptom(
    session: Session,
    rules: RuleSet,
    patient_id: str,
    symptom: str,
    note: str,
    *,
    by: str,
    now: datetime,
) -> ReportedSymptom:
    """Record the report and open (or join) the alert of its symptom rule.

    Raises:
        NotFound: no such patient.
        InvalidRegistryInput: an unknown symptom, a note too long, or "other" without words.
    """
    find_patient(session, patient_id)
    if symptom not in SYMPTOMS:
        raise InvalidRegistryInput("symptom", f"unknown symptom {symptom!r}")
    words = note.strip()
    if len(words) > MAX_NOTE_LENGTH:
        raise InvalidRegistryInput("note", f"at most {MAX_NOTE_LENGTH} characters")
    if symptom == "other" and not words:
        raise InvalidRegistryInput("note", "say in words what the symptom is")
    row = SymptomReport(
        patient_id=patient_id,
        symptom=symptom,
        note=words,
        reported_at=now,
        reported_by=by,
        alert_id=None,
    )
    session.add(row)
    session.flush()
    finding = symptom_finding(rules, patient_id, symptom, at=now, report_id=row.id, note=words)
    repo = AlertRepository(session)
    open_alerts = repo.open_alerts(patient_id)
    decision = decide(
        patient_id,
        [finding],
        open_alerts,
        silences=repo.silences(patient_id, now),
        status=repo.monitoring_status(patient_id, now),
        now=now,
    )
    touched = repo.record(decision) if decision.transitions else []
    opened = any(t.kind is TransitionKind.FIRE for t in decision.transitions)
    already = next((a for a in open_alerts if a.rule_id == finding.rule_id), None)
    alert_id = touched[0] if touched else (int(already.alert_id) if already else None)
    row.alert_id = alert_id
    session.flush()
    return ReportedSymptom(
        report_id=row.id,
        symptom=symptom,
        rule_id=finding.rule_id,
        severity=finding.severity.value,
        alert_id=alert_id,
        opened=opened,
    )


RATE_WINDOW = timedelta(hours=1)
"""The rate limit's window (see dashboard_api.routes.portal)."""
