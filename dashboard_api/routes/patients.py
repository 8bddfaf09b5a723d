"""``/api/v1/patients``: the caller's patients, one patient, readings for charts, targets.

Every route with ``{patient_id}`` depends on :func:`dashboard_api.deps.patient_access`.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlalchemy import select

from dashboard_api.authz import Action, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import (
    CallerDep,
    ContextDep,
    PatientGrant,
    patient_access,
    route_template,
)
from dashboard_api.schemas import (
    BreakGlassPublic,
    BreakGlassRequest,
    LatestReading,
    PatientPublic,
    PatientsPublic,
    ReadingPoint,
    ReadingSeries,
    TargetCreate,
    TargetPublic,
)
from ingest.stores.base import InvalidQuery, StoredReading, StoreError
from readings.model import READING_CLASSES, Kind
from readings.units import mmol_per_l_to_mg_per_dl
from registry.access import related_facts
from registry.audit import AuditOutcome
from registry.care import PatientCareRepository, StatusRecord, TargetRecord
from registry.care_models import Condition, GrantKind, Role
from registry.errors import InvalidRegistryInput
from registry.models import Patient

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["patients"])

MAX_RANGE_DAYS: Final = 400
"""A chart or table spans at most a bit over a year; longer is an export's job."""
MAX_POINTS: Final = 5_000
"""A chart needs a few hundred points; the cap keeps one request from pulling millions."""
DEFAULT_POINTS: Final = 500
_IDS_PER_QUERY: Final = 500
"""Ids per ``IN (…)`` list when a list's patients are read in batches."""

CHART_FIELDS: Final[dict[Kind, tuple[str, ...]]] = {
    Kind.GLUCOSE: ("glucose",),
    Kind.CGM_GLUCOSE: ("glucose",),
    Kind.BLOOD_PRESSURE: ("systolic", "diastolic"),
    Kind.HEART_RATE: ("heart_rate",),
    Kind.SPO2: ("spo2",),
    Kind.WEIGHT: ("weight",),
    Kind.BODY_TEMPERATURE: ("temperature",),
}
"""The fields a downsampled series summarises, per kind."""

_GLUCOSE_KINDS: Final = frozenset({Kind.GLUCOSE, Kind.CGM_GLUCOSE})
_MANUAL_FLAG: Final = "manual_entry"
_CLOCK_FLAG: Final = "clock_corrected"

GlucoseUnit = Literal["mmol/L", "mg/dL"]


def _store_unavailable(exc: StoreError) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="reading store unavailable")


def _numbers(values: dict[str, object]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def _convert(kind: Kind, values: dict[str, float], unit: GlucoseUnit) -> dict[str, float]:
    if unit == "mg/dL" and kind in _GLUCOSE_KINDS:
        return {
            name: mmol_per_l_to_mg_per_dl(value) if name.startswith("glucose") else value
            for name, value in values.items()
        }
    return values


def _units(kind: Kind, unit: GlucoseUnit) -> dict[str, str]:
    reading_class = READING_CLASSES[kind]
    values_class = next(
        field.type for field in msgspec.structs.fields(reading_class) if field.name == "values"
    )
    units = {name: str(value) for name, value in values_class.UNITS.items()}
    if unit == "mg/dL" and kind in _GLUCOSE_KINDS:
        units["glucose"] = "mg/dL"
    return units


def _summary(
    grant_relationship: str,
    row: Patient,
    conditions: frozenset[Condition],
    current: StatusRecord,
    latest: dict[Kind, StoredReading],
) -> PatientPublic:
    readings = [
        LatestReading(
            kind=kind.value,
            measured_at=stored.measured_at,
            values=_numbers(dict(stored.values)),
            unit=stored.source_unit,
            flags=list(stored.flags),
        )
        for kind, stored in sorted(latest.items())
    ]
    return PatientPublic(
        id=row.id,
        display_name=row.display_name,
        time_zone=row.time_zone,
        conditions=sorted(condition.value for condition in conditions),
        status=current.status.value,
        status_reason=current.reason,
        latest=readings,
        last_contact=max((r.measured_at for r in readings), default=None),
        relationship=grant_relationship,
    )


def _summaries(bases: dict[str, str], context: ContextDep) -> list[PatientPublic]:
    """Summaries of the patients in ``bases`` (id → relationship), id order: a fixed number
    of registry queries and one batched store query, however many patients."""
    now = context.clock()
    ids = sorted(bases)
    with context.read() as session:
        rows: dict[str, Patient] = {}
        for first in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[first : first + _IDS_PER_QUERY]
            rows.update(
                (row.id, row)
                for row in session.scalars(select(Patient).where(Patient.id.in_(chunk)))
            )
        care = PatientCareRepository(session, clock=context.clock)
        conditions = care.conditions_of(ids)
        statuses = care.statuses_at(ids, now)
    try:
        latest = context.store.last_readings_of(ids)
    except StoreError as exc:
        raise _store_unavailable(exc) from exc
    return [
        _summary(
            bases[patient_id],
            rows[patient_id],
            conditions[patient_id],
            statuses[patient_id],
            latest[patient_id],
        )
        for patient_id in ids
        if patient_id in rows
    ]


@router.get("", response_model=PatientsPublic)
def list_patients(request: Request, caller: CallerDep, context: ContextDep) -> PatientsPublic:
    """The caller's patients (team's contracted patients, own record, consented family…)."""
    now = context.clock()
    with context.read() as session:
        facts = related_facts(session, caller.actor, now)
    bases = {}
    for patient_id, each in facts.items():
        decision = decide(each, Action.READ_PATIENT)
        if decision.basis is not None:
            bases[patient_id] = decision.basis.value
    allowed = sorted(bases)
    template = route_template(request)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action=template,
        target=template,
        outcome=AuditOutcome.OK,
        patient_ids=allowed,
        detail={"status": 200, "count": len(allowed)},
    )
    data = _summaries(bases, context)
    return PatientsPublic(data=data, count=len(data))


ReadPatient = Annotated[PatientGrant, Depends(patient_access(Action.READ_PATIENT))]
ReadReadings = Annotated[PatientGrant, Depends(patient_access(Action.READ_READINGS))]
EditTargets = Annotated[PatientGrant, Depends(patient_access(Action.EDIT_TARGETS))]


@router.get("/{patient_id}", response_model=PatientPublic)
def get_patient(grant: ReadPatient, context: ContextDep) -> PatientPublic:
    """One patient, with the latest reading of each kind."""
    (summary,) = _summaries({grant.patient_id: grant.basis.value}, context)
    return summary


@router.get("/{patient_id}/readings", response_model=ReadingSeries)
def get_readings(
    grant: ReadReadings,
    context: ContextDep,
    kind: Kind,
    start: datetime,
    end: datetime,
    points: Annotated[int, Query(ge=10, le=MAX_POINTS)] = DEFAULT_POINTS,
    glucose_unit: GlucoseUnit = "mmol/L",
) -> ReadingSeries:
    """Readings of one kind over ``[start, end)``: raw when they fit in ``points``, else
    per-window mean, min and max (windows of equal length, aligned to the epoch)."""
    if start.utcoffset() is None or end.utcoffset() is None:
        raise HTTPException(422, detail="start and end need a UTC offset")
    if not start < end or end - start > timedelta(days=MAX_RANGE_DAYS):
        raise HTTPException(422, detail=f"need start < end, at most {MAX_RANGE_DAYS} days apart")
    patient_id = grant.patient_id
    try:
        total = context.store.count(patient_id=patient_id, kind=kind, start=start, end=end)
        if total <= points:
            stored = context.store.readings(patient_id, kind, start, end)
            series = [_raw_point(kind, reading, glucose_unit) for reading in stored]
            window: float | None = None
        else:
            every_ms = math.ceil((end - start) / timedelta(milliseconds=1) / points)
            every = timedelta(milliseconds=every_ms)
            series = _windows(context, patient_id, kind, start, end, every, glucose_unit)
            window = every.total_seconds()
    except InvalidQuery as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    except StoreError as exc:
        raise _store_unavailable(exc) from exc
    return ReadingSeries(
        patient_id=patient_id,
        kind=kind.value,
        start=start,
        end=end,
        units=_units(kind, glucose_unit),
        downsampled=window is not None,
        window_seconds=window,
        total=total,
        points=series,
    )


def _raw_point(kind: Kind, reading: StoredReading, unit: GlucoseUnit) -> ReadingPoint:
    return ReadingPoint(
        t=reading.measured_at,
        values=_convert(kind, _numbers(dict(reading.values)), unit),
        id=reading.id,
        device_id=reading.device_id,
        flags=list(reading.flags),
        clock_corrected=_CLOCK_FLAG in reading.flags,
        manual=_MANUAL_FLAG in reading.flags,
    )


def _windows(
    context: ContextDep,
    patient_id: str,
    kind: Kind,
    start: datetime,
    end: datetime,
    every: timedelta,
    unit: GlucoseUnit,
) -> list[ReadingPoint]:
    by_window: dict[datetime, dict[str, float]] = {}
    counts: dict[datetime, int] = {}
    for name in CHART_FIELDS[kind]:
        for aggregate in context.store.aggregates(patient_id, kind, name, start, end, every):
            values = by_window.setdefault(aggregate.window_start, {})
            values[name] = aggregate.mean
            values[f"{name}_min"] = aggregate.min
            values[f"{name}_max"] = aggregate.max
            counts[aggregate.window_start] = max(
                counts.get(aggregate.window_start, 0), aggregate.count
            )
    return [
        ReadingPoint(t=t, values=_convert(kind, values, unit), count=counts[t])
        for t, values in sorted(by_window.items())
    ]


@router.get("/{patient_id}/targets", response_model=list[TargetPublic])
def get_targets(grant: ReadPatient, context: ContextDep) -> list[TargetPublic]:
    """The targets in force now, one per metric."""
    now = context.clock()
    with context.read() as session:
        care = PatientCareRepository(session, clock=context.clock)
        found = [
            care.target_at(grant.patient_id, metric, now)
            for metric in ("glucose", "systolic", "diastolic", "weight", "spo2")
        ]
    return [_target_public(t) for t in found if t is not None]


@router.post("/{patient_id}/targets", response_model=TargetPublic, status_code=201)
def set_target(body: TargetCreate, grant: EditTargets, context: ContextDep) -> TargetPublic:
    """Set a personal target from ``effective_from`` (default now); history is kept."""
    try:
        with context.write() as session:
            target = PatientCareRepository(session, clock=context.clock).set_target(
                grant.patient_id,
                body.metric,
                low=body.low,
                high=body.high,
                unit=body.unit,
                set_by=grant.caller.actor.username,
                reason=body.reason,
                effective_from=body.effective_from,
            )
    except InvalidRegistryInput as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    return _target_public(target)


def _target_public(target: TargetRecord) -> TargetPublic:
    fields = asdict(target)
    del fields["patient_id"]
    return TargetPublic.model_validate(fields)


@router.post("/{patient_id}/break-glass", response_model=BreakGlassPublic, status_code=201)
def break_glass(
    patient_id: str,
    body: BreakGlassRequest,
    request: Request,
    caller: CallerDep,
    context: ContextDep,
) -> BreakGlassPublic:
    """Emergency access for any family doctor, time-limited, with a reason; prominent in the
    audit. A caller who is not a doctor gets 403, a doctor naming an unknown patient 404."""
    template = route_template(request)
    is_doctor = Role.FAMILY_DOCTOR in caller.actor.roles
    exists = False
    if is_doctor:
        with context.read() as session:
            exists = session.get(Patient, patient_id) is not None
    if not (is_doctor and exists):
        # Who is not a doctor learns nothing about the id: 403 whether or not it exists.
        code = 404 if is_doctor else 403
        context.audit(
            actor=caller.actor.username,
            actor_role=caller.primary_role,
            action=template,
            target=template,
            outcome=AuditOutcome.DENIED,
            patient_ids=[patient_id],
            detail={"status": code, "break_glass": 1},
        )
        if code == 404:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found")
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="only doctors may break the glass")
    ends_at = context.clock() + timedelta(minutes=body.minutes)
    with context.write() as session:
        PatientCareRepository(session, clock=context.clock).grant_access(
            caller.actor.username,
            patient_id,
            kind=GrantKind.BREAK_GLASS,
            reason=body.reason,
            ends_at=ends_at,
        )
    context.audit(
        actor=caller.actor.username,
        actor_role=Role.FAMILY_DOCTOR.value,
        action="break_glass.open",
        target=template,
        outcome=AuditOutcome.OK,
        patient_ids=[patient_id],
        detail={"status": 201, "break_glass": 1, "minutes": body.minutes},
    )
    return BreakGlassPublic(patient_id=patient_id, ends_at=ends_at)
