"""Nurse visits through the one patient gate: list, request, schedule, complete, cancel, miss;
and the nurse's queue across her team's patients.

Reading needs ``read_visits``; every change needs ``manage_visits`` (docs/authorization.md:
the team's doctors, nurses and lead). An unknown task id, or a task of another patient,
answers like an unknown patient (404) and is audited as denied. The vitals of a visit record
are readings like any other — written through the reading store with the ``manual_entry``
flag and the nurse as their source — so they appear on the patient page with their
provenance. Patients and family see their tasks without the staff's note or the rule.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from alerts.lifecycle import LifecycleError
from alerts.model import Severity
from alerts.visit_tasks import SAME_DAY, template_for
from dashboard_api.accepted import announce_stored
from dashboard_api.authz import Action, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import CallerDep, ContextDep, PatientGrant, patient_access
from dashboard_api.schemas import ErrorBody
from ingest.stores.base import StoreError
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    GlucoseValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit
from registry.access import Relationship, related_facts
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.audit import AuditOutcome
from registry.errors import InvalidRegistryInput, NotFound
from registry.models import Patient
from registry.visit_models import VisitKind
from registry.visit_policy import FollowUpClass, Programme
from registry.visits import (
    Reason,
    TaskRecord,
    VisitInput,
    VisitRepository,
    VisitStateError,
)

router = APIRouter(prefix=API_PREFIX, tags=["visits"])

ReadVisits = Annotated[PatientGrant, Depends(patient_access(Action.READ_VISITS))]
ManageVisits = Annotated[PatientGrant, Depends(patient_access(Action.MANAGE_VISITS))]

MANUAL_FLAG: Final = "manual_entry"
"""The flag of a reading typed in by a person (the patient page shows it as such)."""

VISIT_GATEWAY: Final = "nurse-visit"
"""The gateway id of readings measured at a visit: no gateway carried them."""

_CONFLICT: Final[dict[int | str, dict[str, object]]] = {
    409: {"model": ErrorBody, "description": "The task's status does not allow this change"}
}

_STAFF_BASES: Final = frozenset(
    {Relationship.TEAM_DOCTOR, Relationship.TEAM_NURSE, Relationship.TEAM_LEAD,
     Relationship.DUTY_DOCTOR}
)  # fmt: skip


class VisitPublic(BaseModel):
    """A visit task as the pages show it; ``note`` and ``rule_id`` only to staff."""

    id: int
    code: str
    reason_kind: str
    alert_id: int | None
    rule_id: str | None
    note: str | None
    kind: str
    priority: int
    earliest: datetime
    latest: datetime
    assignee: str | None
    status: str
    scheduled_at: datetime | None
    created_at: datetime
    closed_at: datetime | None


class VisitCreate(BaseModel):
    """A doctor's (or nurse's) request: from an alert of the patient, or on its own."""

    alert_id: int | None = None
    kind: VisitKind | None = None
    """Defaults to what the alert's rule asks for (a phone call without an alert)."""
    priority: int | None = Field(default=None, ge=1, le=3)
    within_hours: int | None = Field(default=None, ge=1, le=24 * 92)
    """The due window's length from now; defaults to the rule's (same day without one)."""
    note: str = Field(default="", max_length=2000)
    assignee: str | None = Field(default=None, max_length=64)


class VisitCreated(BaseModel):
    """The task, and whether it is new (False: the open task for the same reason)."""

    created: bool
    task: VisitPublic


class Schedule(BaseModel):
    """When the visit will be; a reschedule needs a reason."""

    at: datetime
    reason: str = Field(default="", max_length=2000)
    assignee: str | None = Field(default=None, max_length=64)


class Closing(BaseModel):
    """Why a task is cancelled or was missed."""

    reason: str = Field(min_length=1, max_length=2000)


Meal = Literal["fasting", "preprandial", "postprandial", "bedtime", "casual"]
"""The meal context of a glucose value, in the names the meters' drivers use (GATT 0x2A34)."""


class Vitals(BaseModel):
    """What the nurse measured, in canonical units (mmHg, mmol/L, kg, %, °C)."""

    systolic_mmhg: float | None = Field(default=None, gt=0, le=300)
    diastolic_mmhg: float | None = Field(default=None, gt=0, le=250)
    pulse_per_min: float | None = Field(default=None, gt=0, le=300)
    glucose_mmol_l: float | None = Field(default=None, gt=0, le=40)
    glucose_meal: Meal | None = None
    """Stored as the glucose reading's ``meal`` context, as a meter would report it."""
    weight_kg: float | None = Field(default=None, gt=0, le=400)
    spo2_percent: float | None = Field(default=None, ge=0, le=100)
    temperature_c: float | None = Field(default=None, ge=25, le=45)
    """The ingest plausibility bounds (ingest.validate: below 25 °C or above 45 °C is not a
    living body's temperature)."""


class VisitForm(BaseModel):
    """The visit record."""

    check_in_at: datetime
    check_out_at: datetime
    consent: bool
    assessment: str = Field(default="", max_length=2000)
    vitals: Vitals = Field(default_factory=Vitals)
    programme: Programme | None = None
    classification: FollowUpClass | None = None
    resolve_alert: bool = False
    """Resolve the task's alert, with ``resolve_note`` (else the assessment) as the note."""
    resolve_note: str = Field(default="", max_length=1000)


class VisitDone(BaseModel):
    """The completed task, the readings stored, and the follow-up task it opened."""

    task: VisitPublic
    reading_ids: list[str]
    next_task: VisitPublic | None
    referral: bool
    alert_resolved: bool


class QueueItem(VisitPublic):
    """A task in the queue, with whose it is (the queue spans patients) and why in a key."""

    patient_id: str
    patient_name: str | None
    time_zone: str
    """The patient's zone: the page shows the task's times in it, whatever the tablet's is."""
    reason_key: str
    """``rule:B2``, ``request:home_visit``, ``routine:hypertension``, ``referral:…``."""


class Queue(BaseModel):
    """The caller's queue: open tasks of the patients she may manage visits for."""

    data: list[QueueItem]
    count: int


def _public(task: TaskRecord, *, staff: bool) -> VisitPublic:
    return VisitPublic(
        id=task.id,
        code=task.code,
        reason_kind=task.reason_kind.value,
        alert_id=task.alert_id if staff else None,
        rule_id=task.rule_id if staff else None,
        note=task.note if staff else None,
        kind=task.kind.value,
        priority=task.priority,
        earliest=task.earliest,
        latest=task.latest,
        assignee=task.assignee,
        status=task.status.value,
        scheduled_at=task.scheduled_at,
        created_at=task.created_at,
        closed_at=task.closed_at,
    )


def _not_found(grant: PatientGrant, context: ContextDep, action: str, target: str) -> HTTPException:
    # Probing task or alert ids of a patient one may see is recorded like any other probe.
    context.audit(
        actor=grant.caller.actor.username,
        actor_role=grant.basis.value,
        action=action,
        target=target,
        outcome=AuditOutcome.DENIED,
        patient_ids=[grant.patient_id],
        detail={"status": 404},
    )
    return HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found")


def _task_of(grant: PatientGrant, context: ContextDep, task_id: int, action: str) -> TaskRecord:
    with context.read() as session:
        try:
            task = VisitRepository(session).get(task_id)
        except NotFound:
            task = None
    if task is None or task.patient_id != grant.patient_id:
        raise _not_found(grant, context, action, f"visit:{task_id}")
    return task


def _conflict(exc: Exception) -> HTTPException:
    if isinstance(exc, VisitStateError):
        return HTTPException(status.HTTP_409_CONFLICT, detail=f"visit task is {exc.status}")
    if isinstance(exc, InvalidRegistryInput):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))
    raise exc


@router.get("/visits/queue", response_model=Queue)
def visit_queue(caller: CallerDep, context: ContextDep) -> Queue:
    """Open tasks of the caller's team patients, most urgent first, then by deadline."""
    now = context.clock()
    with context.read() as session:
        facts = related_facts(session, caller.actor, now)
        allowed = sorted(
            pid for pid, each in facts.items() if decide(each, Action.MANAGE_VISITS).basis
        )
        tasks = VisitRepository(session).queue(allowed)
        wanted = sorted({t.patient_id for t in tasks})
        found_patients = session.execute(
            select(Patient.id, Patient.display_name, Patient.time_zone).where(
                Patient.id.in_(wanted)
            )
        ).all()
        names: dict[str, str | None] = {found.id: found.display_name for found in found_patients}
        zones = {found.id: found.time_zone for found in found_patients}
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action="GET /api/v1/visits/queue",
        target="GET /api/v1/visits/queue",
        outcome=AuditOutcome.OK,
        patient_ids=sorted({t.patient_id for t in tasks}),
        detail={"status": 200, "count": len(tasks)},
    )
    data = [
        QueueItem(
            **_public(t, staff=True).model_dump(),
            patient_id=t.patient_id,
            patient_name=names.get(t.patient_id),
            time_zone=zones[t.patient_id],
            reason_key=t.reason_key,
        )
        for t in tasks
    ]
    return Queue(data=data, count=len(data))


@router.get("/patients/{patient_id}/visits", response_model=list[VisitPublic])
def list_visits(grant: ReadVisits, context: ContextDep) -> list[VisitPublic]:
    """The patient's visit tasks, newest first."""
    staff = grant.basis in _STAFF_BASES
    with context.read() as session:
        tasks = VisitRepository(session).tasks_of_patient(grant.patient_id)
    return [_public(t, staff=staff) for t in tasks]


@router.post("/patients/{patient_id}/visits", response_model=VisitCreated, status_code=201)
def create_visit(grant: ManageVisits, body: VisitCreate, context: ContextDep) -> VisitCreated:
    """Request a visit: "create visit" on an alert, or a request of one's own.

    One open task per patient + reason: asking again returns the open task with
    ``created`` false (the doctor sees it is already planned).
    """
    now = context.clock()
    kind = body.kind or VisitKind.PHONE
    priority = body.priority or 2
    window = SAME_DAY
    if body.alert_id is not None:
        with context.read() as session:
            alert = session.get(AlertRow, body.alert_id)
            found = (
                None
                if alert is None or alert.patient_id != grant.patient_id
                else (alert.rule_id, Severity(alert.severity))
            )
        if found is None:
            raise _not_found(grant, context, "visit.create", f"alert:{body.alert_id}")
        rule_id, severity = found
        template = template_for(rule_id, severity, now)
        if template is not None:
            kind = body.kind or template.kind
            priority = body.priority or template.priority
            window = template.latest - template.earliest
        reason = Reason.alert(body.alert_id, rule_id, by_doctor=True, note=body.note)
    else:
        reason = Reason.doctor_request(kind, body.note)
    if body.within_hours is not None:
        window = timedelta(hours=body.within_hours)
    with context.write() as session:
        try:
            opened = VisitRepository(session, clock=context.clock).open(
                grant.patient_id,
                reason,
                kind=kind,
                priority=priority,
                earliest=now,
                latest=now + window,
                actor=grant.caller.actor.username,
                assignee=body.assignee,
            )
        except InvalidRegistryInput as exc:
            raise _conflict(exc) from exc
    return VisitCreated(created=opened.created, task=_public(opened.task, staff=True))


@router.post(
    "/patients/{patient_id}/visits/{task_id}/schedule",
    response_model=VisitPublic,
    responses=_CONFLICT,
)
def schedule_visit(
    grant: ManageVisits, task_id: int, body: Schedule, context: ContextDep
) -> VisitPublic:
    """Schedule or reschedule the visit (for its nurse, or the one named)."""
    _task_of(grant, context, task_id, "visit.schedule")
    with context.write() as session:
        try:
            task = VisitRepository(session, clock=context.clock).schedule(
                task_id,
                body.at,
                actor=grant.caller.actor.username,
                reason=body.reason,
                assignee=body.assignee,
            )
        except (VisitStateError, InvalidRegistryInput) as exc:
            raise _conflict(exc) from exc
    return _public(task, staff=True)


@router.post(
    "/patients/{patient_id}/visits/{task_id}/cancel",
    response_model=VisitPublic,
    responses=_CONFLICT,
)
def cancel_visit(
    grant: ManageVisits, task_id: int, body: Closing, context: ContextDep
) -> VisitPublic:
    """Cancel an open task, with a reason."""
    _task_of(grant, context, task_id, "visit.cancel")
    with context.write() as session:
        try:
            task = VisitRepository(session, clock=context.clock).cancel(
                task_id, actor=grant.caller.actor.username, reason=body.reason
            )
        except (VisitStateError, InvalidRegistryInput) as exc:
            raise _conflict(exc) from exc
    return _public(task, staff=True)


@router.post(
    "/patients/{patient_id}/visits/{task_id}/missed",
    response_model=VisitPublic,
    responses=_CONFLICT,
)
def miss_visit(
    grant: ManageVisits, task_id: int, body: Closing, context: ContextDep
) -> VisitPublic:
    """Record that a scheduled visit did not happen, with a reason."""
    _task_of(grant, context, task_id, "visit.missed")
    with context.write() as session:
        try:
            task = VisitRepository(session, clock=context.clock).miss(
                task_id, actor=grant.caller.actor.username, reason=body.reason
            )
        except (VisitStateError, InvalidRegistryInput) as exc:
            raise _conflict(exc) from exc
    return _public(task, staff=True)


def _visit_device(code: str) -> str:
    # manufacturer-model-serial: the visit code is the serial, so each visit's readings are
    # told apart from the patient's own devices and from other visits.
    return "VitalGate-NurseVisit-" + re.sub(r"[^A-Za-z0-9]", "", code)


def _vital_readings(
    task: TaskRecord, vitals: Vitals, *, nurse: str, measured_at: datetime, now: datetime
) -> list[Reading]:
    values: list[tuple[Values, Unit]] = []
    if (vitals.systolic_mmhg is None) != (vitals.diastolic_mmhg is None):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail="blood pressure needs both numbers"
        )
    if vitals.systolic_mmhg is not None and vitals.diastolic_mmhg is not None:
        values.append(
            (
                BloodPressureValues(
                    systolic=vitals.systolic_mmhg,
                    diastolic=vitals.diastolic_mmhg,
                    pulse=vitals.pulse_per_min,
                ),
                Unit.MMHG,
            )
        )
    if vitals.glucose_mmol_l is not None:
        values.append((GlucoseValues(glucose=vitals.glucose_mmol_l), Unit.MMOL_PER_L))
    if vitals.weight_kg is not None:
        values.append((WeightValues(weight=vitals.weight_kg), Unit.KG))
    if vitals.spo2_percent is not None:
        values.append((Spo2Values(spo2=vitals.spo2_percent), Unit.PERCENT))
    if vitals.temperature_c is not None:
        values.append((BodyTemperatureValues(temperature=vitals.temperature_c), Unit.CELSIUS))
    context: dict[str, str] = {"entered_by": nurse, "visit_code": task.code}

    def context_of(value: Values) -> dict[str, str]:
        if isinstance(value, GlucoseValues) and vitals.glucose_meal is not None:
            return {**context, "meal": vitals.glucose_meal}
        return context

    # The record key must survive the store, which keeps seq but not received_at: each
    # visit is its own pseudo device, so the vital's place in the form is a unique seq.
    return [
        new_reading(
            values=value,
            source_unit=unit,
            measured_at=measured_at,
            received_at=now,
            device_id=_visit_device(task.code),
            patient_id=task.patient_id,
            gateway_id=VISIT_GATEWAY,
            context=context_of(value),
            flags=(MANUAL_FLAG,),
            seq=index,
        )
        for index, (value, unit) in enumerate(values, start=1)
    ]


@router.post(
    "/patients/{patient_id}/visits/{task_id}/complete",
    response_model=VisitDone,
    responses=_CONFLICT,
)
def complete_visit(
    grant: ManageVisits, task_id: int, body: VisitForm, context: ContextDep
) -> VisitDone:
    """Close a scheduled task with its visit record; vitals become readings.

    The readings are written first (the store is idempotent per reading id); if the task
    then cannot be completed the answer is 409 and the readings stay, as measured.
    """
    task = _task_of(grant, context, task_id, "visit.complete")
    nurse = grant.caller.actor.username
    now = context.clock()
    readings = _vital_readings(
        task, body.vitals, nurse=nurse, measured_at=body.check_in_at, now=now
    )
    stored: list[str] = []
    if readings:
        try:
            result = context.store.write(readings)
        except StoreError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail="reading store unavailable"
            ) from exc
        if result.rejected:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, detail="a vital was refused by the store"
            )
        stored = list(result.stored)
    resolved = False
    with context.write() as session:
        try:
            done = VisitRepository(session, clock=context.clock).complete(
                task_id,
                VisitInput(
                    check_in_at=body.check_in_at,
                    check_out_at=body.check_out_at,
                    consent=body.consent,
                    assessment=body.assessment,
                    reading_ids=stored,
                    programme=body.programme,
                    classification=body.classification,
                ),
                actor=nurse,
            )
        except (VisitStateError, InvalidRegistryInput) as exc:
            raise _conflict(exc) from exc
        if body.resolve_alert and task.alert_id is not None:
            alert = session.get(AlertRow, task.alert_id)
            if alert is not None and alert.resolved_at is None:
                try:
                    AlertRepository(session).resolve(
                        task.alert_id,
                        actor=nurse,
                        note=(
                            body.resolve_note.strip()
                            or body.assessment[:1000]
                            or f"visit {task.code} completed"
                        ),
                        now=now,
                    )
                    resolved = True
                except LifecycleError:
                    resolved = False
    # Stored, then announced as ingest would: the pages show them live, and the alert worker
    # judges them like any reading (a crisis measured at the visit still pages).
    announced = [r for r in readings if r.id in set(stored)]
    if context.live is not None:
        context.live.publish(announced)
    announce_stored(context.commands, announced, now=now)
    return VisitDone(
        task=_public(done.task, staff=True),
        reading_ids=stored,
        next_task=None if done.next_task is None else _public(done.next_task, staff=True),
        referral=done.referral,
        alert_resolved=resolved,
    )
