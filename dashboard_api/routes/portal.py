"""The portal's own patient routes: what to do now, report a symptom, notification settings.

* ``GET …/what-to-do`` (``read_patient``): the patient's open P1/P2 alerts (only for callers
  who may ``read_alerts``) and any P1/P2 condition her latest readings meet right now (only
  for callers who may ``read_readings``), each with the advice in words
  (:mod:`alerts.advice`, the words the SMS uses), whether it is an emergency (call 120 if
  nobody answers) and whether her doctor has been told. Rule, severity and advice only: no
  staff note, no assignee, no event history.
* ``POST …/symptoms`` (``report_symptom``): records the report and opens the symptom rule's
  alert through the lifecycle (:func:`registry.symptoms.report_symptom`), so it reaches the
  doctor's inbox and escalates like any alert. At most :data:`SYMPTOM_REPORTS_PER_HOUR`
  per patient per hour (429 after).
* ``GET``/``PUT …/notification-preferences`` (``manage_notifications``): channel for
  non-urgent messages and quiet hours (P3/P4 only), and the SMS on the morning of a visit.

Every route passes the one patient gate (its audit row); the writes add their own.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from functools import cache
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.advice import NO_ANSWER, advice_key, advice_words
from alerts.model import FindingStatus, Severity
from alerts.rules.engine import evaluate
from alerts.rules.loader import default_rules
from alerts.rules.model import RuleSet
from alerts.symptoms import MAX_NOTE_LENGTH
from alerts.window import reading_from_stored
from dashboard_api.authz import Action, Verdict, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.schemas import ErrorBody, RequestModel
from readings.files import PatientProfile
from registry.alert_models import AlertRow, EscalationStep, StepStatus
from registry.audit import AuditOutcome
from registry.care_models import PatientConditionRow
from registry.errors import InvalidRegistryInput
from registry.models import Patient
from registry.notification_prefs import NotificationPrefs, NotificationPrefsRepository
from registry.notification_prefs_models import NonUrgentChannel
from registry.symptoms import RATE_WINDOW, report_symptom, reports_since
from registry.visit_reminders import set_sms_opt_in, sms_opt_in

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["portal"])

ReadPatient = Annotated[PatientGrant, Depends(patient_access(Action.READ_PATIENT))]
ReportSymptom = Annotated[PatientGrant, Depends(patient_access(Action.REPORT_SYMPTOM))]
ManageNotifications = Annotated[PatientGrant, Depends(patient_access(Action.MANAGE_NOTIFICATIONS))]

URGENT: Final = frozenset({Severity.P1, Severity.P2})
"""The tiers the "what to do now" box is for (P3/P4 are the doctor's follow-up)."""
LATEST_WINDOW: Final = timedelta(hours=2)
"""A latest reading older than this is not "now": G1/B1/O1 treat readings arriving later
than 2 h as late (review, never a page), and so does the box."""
SYMPTOM_REPORTS_PER_HOUR: Final = 6
"""Enough for a patient to report several symptoms as they come; more in an hour is a
stuck button or a script, and each report may page the care team."""
_TOO_MANY: Final[dict[int | str, dict[str, Any]]] = {
    429: {"model": ErrorBody, "description": "Too many symptom reports in the last hour"}
}


@cache
def _rules() -> RuleSet:
    # The packaged rule set: the one the alert worker runs unless given another file.
    return default_rules()


class AdviceItem(BaseModel):
    """One thing to do now, in words per language."""

    source: Literal["alert", "reading"]
    """An open alert, or a condition the latest reading meets (not yet an alert)."""
    rule_id: str
    severity: str
    metric: str
    advice_key: str | None
    advice: dict[str, str]
    """The advice per language (``zh-CN``, ``en``); empty when the rule has none."""
    emergency: dict[str, str]
    """For P1: "if nobody answers or you feel unwell, call 120", per language; else empty."""
    doctor_notified: bool
    """The alert reached the doctor (a delivered doctor step, or a doctor acknowledged it)."""
    at: datetime


class WhatToDo(BaseModel):
    """The patient's urgent items, most urgent first (empty: nothing to do now)."""

    items: list[AdviceItem]


def _notified(session: Session, alert_ids: list[int]) -> set[int]:
    rows = session.execute(
        select(EscalationStep.alert_id, EscalationStep.audience).where(
            EscalationStep.alert_id.in_(alert_ids),
            EscalationStep.status == StepStatus.DONE.value,
        )
    ).all()
    return {
        alert_id
        for alert_id, audience in rows
        if {"doctor", "duty_doctor"} & set(audience.split(","))
    }


def _item(
    source: Literal["alert", "reading"],
    rule_id: str,
    severity: Severity,
    metric: str,
    at: datetime,
    *,
    symptom: str | None,
    notified: bool,
) -> AdviceItem:
    key = advice_key(rule_id, symptom)
    return AdviceItem(
        source=source,
        rule_id=rule_id,
        severity=severity.value,
        metric=metric,
        advice_key=key,
        advice=dict(advice_words(key)) if key else {},
        emergency=dict(NO_ANSWER["patient"]) if severity is Severity.P1 else {},
        doctor_notified=notified,
        at=at,
    )


def _profile(session: Session, patient_id: str) -> PatientProfile:
    patient = session.get_one(Patient, patient_id)
    conditions = frozenset(
        session.scalars(
            select(PatientConditionRow.condition).where(
                PatientConditionRow.patient_id == patient_id
            )
        )
    )
    return PatientProfile(patient_id, conditions, ZoneInfo(patient.time_zone))


@router.get("/{patient_id}/what-to-do", response_model=WhatToDo)
def what_to_do(grant: ReadPatient, context: ContextDep) -> WhatToDo:
    """What the patient should do now: her open P1/P2 alerts and her latest readings'.

    Each part only for a caller who may see it: a relative whose consent covers readings
    only is told what the readings call for, never what the alerts say, and the reverse.
    """
    now = context.clock()
    may_alerts = decide(grant.facts, Action.READ_ALERTS).verdict is Verdict.ALLOW
    may_readings = decide(grant.facts, Action.READ_READINGS).verdict is Verdict.ALLOW
    with context.read() as session:
        rows = (
            session.scalars(
                select(AlertRow)
                .where(
                    AlertRow.patient_id == grant.patient_id,
                    AlertRow.resolved_at.is_(None),
                    AlertRow.severity.in_([s.value for s in URGENT]),
                )
                .order_by(AlertRow.id)
            ).all()
            if may_alerts
            else []
        )
        notified = _notified(session, [row.id for row in rows])
        profile = _profile(session, grant.patient_id)
    items = [
        _item(
            "alert",
            row.rule_id,
            Severity(row.severity),
            row.metric,
            row.opened_at,
            symptom=json.loads(row.explanation_params).get("symptom"),
            notified=row.id in notified or row.acknowledged_at is not None,
        )
        for row in rows
    ]
    covered = {row.rule_id for row in rows}
    latest = context.store.last_readings(grant.patient_id) if may_readings else {}
    recent = [
        reading_from_stored(r) for r in latest.values() if now - r.measured_at <= LATEST_WINDOW
    ]
    if recent:
        # The rules on the latest readings alone: a condition met is pending (awaiting a
        # re-test) or firing; either way the patient should act on it now.
        for finding in evaluate(recent, profile, _rules(), now):
            if (
                finding.status is FindingStatus.CLEAR
                or finding.severity not in URGENT
                or finding.rule_id in covered
            ):
                continue
            covered.add(finding.rule_id)
            items.append(
                _item(
                    "reading",
                    finding.rule_id,
                    finding.severity,
                    finding.metric.value,
                    now,
                    symptom=None,
                    notified=False,
                )
            )
    items.sort(key=lambda item: (Severity(item.severity).rank, item.rule_id))
    return WhatToDo(items=items)


SymptomCode = Literal[
    "dizziness", "chest_tightness", "palpitations", "shortness_of_breath", "leg_swelling", "other"
]


class SymptomCreate(RequestModel):
    """A symptom from the portal's list and, optionally (required for "other"), in words."""

    symptom: SymptomCode
    note: str = Field(default="", max_length=MAX_NOTE_LENGTH)


class SymptomReported(BaseModel):
    """The report as recorded: its rule and tier, and what to do now."""

    report_id: int
    symptom: str
    rule_id: str
    severity: str
    alert_opened: bool
    """A new alert was opened (False: the rule's alert was already open and the report
    joined it, or monitoring is paused)."""
    advice: dict[str, str]
    emergency: dict[str, str]


@router.post(
    "/{patient_id}/symptoms", response_model=SymptomReported, status_code=201, responses=_TOO_MANY
)
def post_symptom(body: SymptomCreate, grant: ReportSymptom, context: ContextDep) -> SymptomReported:
    """Tell the doctor of a symptom: recorded, and an alert opened in her inbox."""
    now = context.clock()
    actor = grant.caller.actor.username
    try:
        with context.write() as session:
            if (
                reports_since(session, grant.patient_id, now - RATE_WINDOW)
                >= SYMPTOM_REPORTS_PER_HOUR
            ):
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    detail="too many symptom reports in the last hour: phone your doctor or 120",
                    headers={"Retry-After": "600"},
                )
            reported = report_symptom(
                session, _rules(), grant.patient_id, body.symptom, body.note, by=actor, now=now
            )
    except InvalidRegistryInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    context.audit(
        actor=actor,
        actor_role=grant.basis.value,
        action="symptom.report",
        target=f"symptom_report:{reported.report_id}",
        outcome=AuditOutcome.OK,
        patient_ids=[grant.patient_id],
        detail={
            "symptom": body.symptom,
            "rule_id": reported.rule_id,
            "alert_id": reported.alert_id,
        },
    )
    severity = Severity(reported.severity)
    key = advice_key(reported.rule_id, body.symptom)
    return SymptomReported(
        report_id=reported.report_id,
        symptom=body.symptom,
        rule_id=reported.rule_id,
        severity=reported.severity,
        alert_opened=reported.opened,
        advice=dict(advice_words(key)) if key else {},
        emergency=dict(NO_ANSWER["patient"]) if severity is Severity.P1 else {},
    )


class NotificationPrefsPublic(BaseModel):
    """How the patient is told of non-urgent (P3/P4) news; urgent alerts always come."""

    channel: Literal["sms", "wechat", "none"]
    quiet_start: time | None
    quiet_end: time | None
    """Local times in the patient's zone; quiet hours may span midnight (22:00–07:00)."""
    urgent_always: bool = True
    """P1, P2 and device alerts ignore both settings (always true: said on the page)."""
    visit_reminder_sms: bool = False
    """An SMS on the morning of a nurse's visit (off until chosen: a text tells whoever
    holds the phone that a nurse is coming)."""
    updated_at: datetime | None
    updated_by: str | None


class NotificationPrefsUpdate(RequestModel):
    """The new preferences (both quiet-hour ends or neither)."""

    channel: Literal["sms", "wechat", "none"]
    quiet_start: time | None = None
    quiet_end: time | None = None
    visit_reminder_sms: bool | None = None
    """None: leave the visit-reminder choice as it is."""


def _prefs_public(prefs: NotificationPrefs, visit_sms: bool) -> NotificationPrefsPublic:
    return NotificationPrefsPublic(
        channel=prefs.channel.value,
        quiet_start=prefs.quiet_start,
        quiet_end=prefs.quiet_end,
        visit_reminder_sms=visit_sms,
        updated_at=prefs.updated_at,
        updated_by=prefs.updated_by,
    )


@router.get("/{patient_id}/notification-preferences", response_model=NotificationPrefsPublic)
def get_prefs(grant: ManageNotifications, context: ContextDep) -> NotificationPrefsPublic:
    """The patient's notification preferences (SMS and no quiet hours until set)."""
    with context.read() as session:
        return _prefs_public(
            NotificationPrefsRepository(session).get(grant.patient_id),
            sms_opt_in(session, grant.patient_id),
        )


@router.put("/{patient_id}/notification-preferences", response_model=NotificationPrefsPublic)
def put_prefs(
    body: NotificationPrefsUpdate, grant: ManageNotifications, context: ContextDep
) -> NotificationPrefsPublic:
    """Change the channel and quiet hours for non-urgent messages."""
    actor = grant.caller.actor.username
    try:
        with context.write() as session:
            prefs = NotificationPrefsRepository(session, clock=context.clock).set(
                grant.patient_id,
                channel=NonUrgentChannel(body.channel),
                quiet_start=_minute(body.quiet_start),
                quiet_end=_minute(body.quiet_end),
                by=actor,
            )
            if body.visit_reminder_sms is not None:
                # Re-plans the reminders of her open visits in the same transaction.
                set_sms_opt_in(
                    session,
                    grant.patient_id,
                    body.visit_reminder_sms,
                    actor=actor,
                    now=context.clock(),
                )
            visit_sms = sms_opt_in(session, grant.patient_id)
    except InvalidRegistryInput as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    context.audit(
        actor=actor,
        actor_role=grant.basis.value,
        action="notification_prefs.set",
        target="notification_preferences",
        outcome=AuditOutcome.OK,
        patient_ids=[grant.patient_id],
        detail={
            "channel": body.channel,
            "quiet_hours": int(body.quiet_start is not None),
            "visit_reminder_sms": int(visit_sms),
        },
    )
    return _prefs_public(prefs, visit_sms)


def _minute(value: time | None) -> time | None:
    # Quiet hours are set to the minute; seconds and zones from a client are dropped.
    return None if value is None else time(value.hour, value.minute)
