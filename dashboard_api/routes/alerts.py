"""A patient's alerts through the one patient gate: list, detail, and what people do with one.

Reading (list, detail, mark read) needs ``read_alerts``; acknowledging, resolving, snoozing
and assigning need ``act_on_alert`` (docs/authorization.md): a family member who may only
see readings gets 403, someone with no relationship 404. The gate writes the request's audit
row; each action is also an alert event and an audit link of its own
(registry.alerts_repo). An alert id that is not this patient's answers the gate's 404, with
its own denied audit row, so alert ids reveal nothing about other patients.

Mark read uses ``read_alerts``: "read" is the reader's own state (a ``seen`` event under
their name), it changes nothing for the team, so whoever may see an alert may mark it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.lifecycle import LifecycleError
from dashboard_api.authz import Action, Verdict, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.context import ApiContext
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from dashboard_api.explanations import explain
from dashboard_api.schemas import ErrorBody
from registry.access import Relationship
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.audit import AuditOutcome
from registry.care_models import UserAccount
from registry.errors import NotFound
from registry.visit_models import VisitStatus
from registry.visits import TaskRecord, VisitRepository

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["alerts"])

ReadAlerts = Annotated[PatientGrant, Depends(patient_access(Action.READ_ALERTS))]
ActOnAlert = Annotated[PatientGrant, Depends(patient_access(Action.ACT_ON_ALERT))]

_CONFLICT: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorBody, "description": "The alert is not in a state that allows this"}
}

_VISIT_READERS: Final = frozenset(
    {Relationship.TEAM_DOCTOR, Relationship.TEAM_NURSE, Relationship.TEAM_LEAD,
     Relationship.DUTY_DOCTOR}
)  # fmt: skip
"""Who sees an alert's visit tasks in its detail: the staff who read visits. Patients and
family see their visits on their own page, without the staff's reasons for a cancellation."""

MAX_SNOOZE_MINUTES = 14 * 24 * 60
"""The request's own bound (the lifecycle's longest silence, 14 days); the lifecycle caps a
P1 snooze far shorter (2 h) and answers 422 past it."""


class AlertPublic(BaseModel):
    """An alert as the pages show it (ids, rule, state, explanation; no reading values)."""

    id: int
    patient_id: str
    rule_id: str
    rule_version: int
    metric: str
    severity: str
    state: str
    confirmed: bool
    late: bool
    reading_ids: list[str]
    explanation_key: str
    explanation_params: dict[str, str | int | float]
    explanation: dict[str, str]
    """The explanation in words, per language (``zh-CN``, ``en``): dashboard_api.explanations."""
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    muted_by: str | None
    assignee: str | None


class AlertEventPublic(BaseModel):
    """One recorded event of an alert: who did what, when, why."""

    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    muted_by: str | None


class AlertVisitNext(BaseModel):
    """The follow-up task a completed visit opened: its kind and due window."""

    id: int
    code: str
    kind: str
    status: str
    earliest: datetime
    latest: datetime


class AlertVisit(BaseModel):
    """A visit task opened for the alert, and what became of it (no staff note)."""

    id: int
    code: str
    kind: str
    priority: int
    status: str
    earliest: datetime
    latest: datetime
    scheduled_at: datetime | None
    assignee: str | None
    closed_at: datetime | None
    classification: str | None
    """The 基本公卫 classification of the visit record, when the visit was completed."""
    closing_reason: str | None
    """Why it was cancelled or missed."""
    next_task: AlertVisitNext | None


class AlertDetail(AlertPublic):
    """An alert with the thresholds in force when it fired, its whole history, and its
    visit tasks (empty to a caller who may not read the patient's visits)."""

    thresholds: dict[str, str | int | float]
    fired_at: datetime | None
    events: list[AlertEventPublic]
    visits: list[AlertVisit]


class Acknowledgement(BaseModel):
    """What the person who acknowledges says they did."""

    note: str = Field(min_length=1, max_length=1000)


class Resolution(BaseModel):
    """Why a person closes the alert (e.g. "seen at home visit, meter replaced")."""

    note: str = Field(min_length=1, max_length=1000)


class Snooze(BaseModel):
    """Mute the alert's metric at its tier and below for a while, saying why."""

    reason: str = Field(min_length=1, max_length=1000)
    minutes: int = Field(ge=1, le=MAX_SNOOZE_MINUTES)


class Assignment(BaseModel):
    """Give the alert to a team member (by username)."""

    username: str = Field(min_length=1, max_length=128)


def public(row: AlertRow) -> AlertPublic:
    """The page's view of an alert row."""
    params = json.loads(row.explanation_params)
    return AlertPublic(
        id=row.id,
        patient_id=row.patient_id,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        metric=row.metric,
        severity=row.severity,
        state=row.state,
        confirmed=row.confirmed,
        late=row.late,
        reading_ids=json.loads(row.reading_ids),
        explanation_key=row.explanation_key,
        explanation_params=params,
        explanation=explain(
            row.explanation_key,
            params,
            rule_id=row.rule_id,
            metric=row.metric,
            severity=row.severity,
            thresholds=json.loads(row.thresholds),
        ),
        opened_at=row.opened_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        muted_by=row.muted_by,
        assignee=row.assignee,
    )


def _visit(repo: VisitRepository, task: TaskRecord) -> AlertVisit:
    record = repo.record_of(task.id) if task.status is VisitStatus.COMPLETED else None
    following = None
    if record is not None and record.next_task_id is not None:
        nxt = repo.get(record.next_task_id)
        following = AlertVisitNext(
            id=nxt.id,
            code=nxt.code,
            kind=nxt.kind.value,
            status=nxt.status.value,
            earliest=nxt.earliest,
            latest=nxt.latest,
        )
    closing = None
    if task.status in (VisitStatus.CANCELLED, VisitStatus.MISSED):
        closing = next(
            (e.reason for e in reversed(repo.history(task.id)) if e.kind == task.status.value),
            None,
        )
    return AlertVisit(
        id=task.id,
        code=task.code,
        kind=task.kind.value,
        priority=task.priority,
        status=task.status.value,
        earliest=task.earliest,
        latest=task.latest,
        scheduled_at=task.scheduled_at,
        assignee=task.assignee,
        closed_at=task.closed_at,
        classification=None if record is None else record.classification,
        closing_reason=closing,
        next_task=following,
    )


def _detail(session: Session, row: AlertRow, *, with_visits: bool = False) -> AlertDetail:
    events = AlertRepository(session).events(row.id)
    visits: list[AlertVisit] = []
    if with_visits:
        repo = VisitRepository(session)
        visits = [_visit(repo, task) for task in repo.tasks_of_alert(row.id)]
    return AlertDetail(
        **public(row).model_dump(),
        thresholds=json.loads(row.thresholds),
        fired_at=row.fired_at,
        visits=visits,
        events=[
            AlertEventPublic(
                at=e.at,
                kind=e.kind,
                from_state=e.from_state,
                to_state=e.to_state,
                actor=e.actor,
                reason=e.reason,
                muted_by=e.muted_by,
            )
            for e in events
        ],
    )


def _sees_visits(grant: PatientGrant) -> bool:
    decision = decide(grant.facts, Action.READ_VISITS)
    return decision.verdict is Verdict.ALLOW and decision.basis in _VISIT_READERS


def _require_alert(context: ApiContext, grant: PatientGrant, alert_id: int, action: str) -> None:
    """404 (audited) unless ``alert_id`` is an alert of the granted patient."""
    with context.read() as session:
        found = session.get(AlertRow, alert_id)
        known = found is not None and found.patient_id == grant.patient_id
    if known:
        return
    # Probing alert ids of a patient one may see is recorded like any other probe.
    context.audit(
        actor=grant.caller.actor.username,
        actor_role=grant.basis.value,
        action=action,
        target=f"alert:{alert_id}",
        outcome=AuditOutcome.DENIED,
        patient_ids=[grant.patient_id],
        detail={"status": 404},
    )
    # The same answer as the gate's 404: an alert id reveals nothing about other patients.
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found")


def _conflict(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail="alert is not open for that")


@router.get("/{patient_id}/alerts", response_model=list[AlertPublic])
def list_alerts(
    grant: ReadAlerts,
    context: ContextDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    severity: Annotated[str | None, Query(max_length=8)] = None,
) -> list[AlertPublic]:
    """The patient's alerts, newest first, optionally of one state and severity."""
    with context.read() as session:
        rows = AlertRepository(session).alerts_of(grant.patient_id, state=state, severity=severity)
    return [public(row) for row in rows]


@router.get("/{patient_id}/alerts/{alert_id}", response_model=AlertDetail)
def alert_detail(grant: ReadAlerts, alert_id: int, context: ContextDep) -> AlertDetail:
    """One alert: the readings behind it (ids), rule id and version, the thresholds in
    force, the explanation's key and parameters, every event, and its visit tasks with
    their outcome (to those who may read the patient's visits)."""
    _require_alert(context, grant, alert_id, "alert.read")
    with_visits = _sees_visits(grant)
    with context.read() as session:
        return _detail(session, session.get_one(AlertRow, alert_id), with_visits=with_visits)


@router.post(
    "/{patient_id}/alerts/{alert_id}/acknowledge", response_model=AlertPublic, responses=_CONFLICT
)
def acknowledge_alert(
    grant: ActOnAlert, alert_id: int, body: Acknowledgement, context: ContextDep
) -> AlertPublic:
    """Acknowledge a firing alert of the patient: its escalation stops."""
    _require_alert(context, grant, alert_id, "alert.acknowledge")
    with context.write() as session:
        repo = AlertRepository(session)
        row = session.get_one(AlertRow, alert_id)
        try:
            repo.acknowledge(
                alert_id, actor=grant.caller.actor.username, note=body.note, now=context.clock()
            )
        except (LifecycleError, NotFound) as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="alert is not firing") from exc
        session.flush()
        session.refresh(row)
        return public(row)


@router.post(
    "/{patient_id}/alerts/{alert_id}/resolve", response_model=AlertPublic, responses=_CONFLICT
)
def resolve_alert(
    grant: ActOnAlert, alert_id: int, body: Resolution, context: ContextDep
) -> AlertPublic:
    """Close an open alert with a note; its remaining escalation steps are cancelled."""
    _require_alert(context, grant, alert_id, "alert.resolve")
    with context.write() as session:
        row = session.get_one(AlertRow, alert_id)
        try:
            AlertRepository(session).resolve(
                alert_id, actor=grant.caller.actor.username, note=body.note, now=context.clock()
            )
        except (LifecycleError, NotFound) as exc:
            raise _conflict(exc) from exc
        session.flush()
        session.refresh(row)
        return public(row)


@router.post(
    "/{patient_id}/alerts/{alert_id}/snooze", response_model=AlertDetail, responses=_CONFLICT
)
def snooze_alert(
    grant: ActOnAlert, alert_id: int, body: Snooze, context: ContextDep
) -> AlertDetail:
    """Silence the alert's metric at its tier and below for ``minutes``, with a reason.

    A higher tier still breaks through; a P1 snooze longer than the lifecycle's cap (2 h)
    answers 422 and records nothing.
    """
    _require_alert(context, grant, alert_id, "alert.snooze")
    now = context.clock()
    with context.write() as session:
        row = session.get_one(AlertRow, alert_id)
        try:
            AlertRepository(session).snooze(
                alert_id,
                actor=grant.caller.actor.username,
                reason=body.reason,
                now=now,
                ends_at=now + timedelta(minutes=body.minutes),
            )
        except NotFound as exc:
            raise _conflict(exc) from exc
        except LifecycleError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
        session.flush()
        return _detail(session, row, with_visits=_sees_visits(grant))


@router.post(
    "/{patient_id}/alerts/{alert_id}/assign", response_model=AlertPublic, responses=_CONFLICT
)
def assign_alert(
    grant: ActOnAlert, alert_id: int, body: Assignment, context: ContextDep
) -> AlertPublic:
    """Give an open alert to a colleague; an unknown username answers 422."""
    _require_alert(context, grant, alert_id, "alert.assign")
    with context.write() as session:
        known = session.scalar(select(UserAccount.id).where(UserAccount.username == body.username))
        if known is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="unknown username")
        row = session.get_one(AlertRow, alert_id)
        try:
            AlertRepository(session).assign(
                alert_id,
                assignee=body.username,
                actor=grant.caller.actor.username,
                now=context.clock(),
            )
        except NotFound as exc:
            raise _conflict(exc) from exc
        session.flush()
        session.refresh(row)
        return public(row)


@router.post(
    "/{patient_id}/alerts/{alert_id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_CONFLICT,
)
def mark_alert_read(grant: ReadAlerts, alert_id: int, context: ContextDep) -> None:
    """Mark the alert read for the caller (idempotent; a resolved alert answers 409).

    Reading an alert never stops the doctor's escalation steps (a family member's "seen"
    is recorded, nothing more).
    """
    _require_alert(context, grant, alert_id, "alert.seen")
    actor = grant.caller.actor.username
    with context.write() as session:
        repo = AlertRepository(session)
        if alert_id in repo.seen_by([alert_id], actor):
            return
        try:
            repo.mark_seen(alert_id, actor=actor, now=context.clock())
        except NotFound as exc:
            raise _conflict(exc) from exc
