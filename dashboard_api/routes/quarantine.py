"""``/api/v1/quarantine`` and ``/api/v1/security-events``: what ingest refused (IT operators).

Every route depends on :func:`dashboard_api.deps.system_access` (role ``it_operator``, see
``ROLE_MATRIX`` in :mod:`dashboard_api.authz`). The list shows metadata only; a
plausibility refusal's detail quotes the refused value, so the list gives only its field
and rule. **Inspecting** one entry returns its raw payload, which carries health values and
the patient id it claimed: the IT operator needs it to see what a gateway sent, and the
access is audited like any access to health data (the claimed patient ids in the row,
``health_data`` in its detail). Administrators see none of it.

**Release** runs the entry through ingest's examination again (:func:`ingest.release.release`,
as ``vitalgate quarantine release`` does) against the registry as it is now, stores what
passes and reports the outcome: stored, still refused with the reasons, or released before
(releasing twice changes nothing).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from dashboard_api.admin_schemas import (
    QuarantineInspect,
    QuarantineList,
    QuarantineRelease,
    QuarantineSummary,
    ReleaseResult,
    SecurityEventPublic,
    SecurityEventsPublic,
)
from dashboard_api.authz import SystemAction
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, SystemGrant, audit_system, system_access
from ingest.release import DecisionRequired, release
from ingest.stores.base import StoreError
from registry.audit import AuditOutcome
from registry.errors import InvalidRegistryInput, NotFound, RegistryError
from registry.ownership import OwnershipChecker
from registry.quarantine import (
    QuarantineFilter,
    QuarantineReason,
    QuarantineRecord,
    QuarantineStore,
)

router = APIRouter(prefix=API_PREFIX, tags=["quarantine"])

MAX_PAGE: Final = 200
"""Listings are for screens (OWASP API4: no unbounded pages)."""

Read = Annotated[SystemGrant, Depends(system_access(SystemAction.READ_QUARANTINE))]
Inspect = Annotated[SystemGrant, Depends(system_access(SystemAction.INSPECT_QUARANTINE))]
Release = Annotated[SystemGrant, Depends(system_access(SystemAction.RELEASE_QUARANTINE))]


def _summary_detail(record: QuarantineRecord) -> str:
    detail = record.entry.detail
    if record.entry.reason == QuarantineReason.PLAUSIBILITY:
        # ``$.readings[i].field: rule: the value and the bound``: keep path and rule.
        return ": ".join(detail.split(": ", 2)[:2])
    return detail


def _summary(record: QuarantineRecord) -> dict[str, Any]:
    entry = record.entry
    return {
        "id": record.id,
        "received_at": entry.received_at,
        "gateway_id": entry.gateway_id,
        "topic": entry.topic,
        "reason": entry.reason,
        "detail": _summary_detail(record),
        "reading_id": entry.reading_id,
        "security_event": entry.security_event,
        "released_at": record.released_at,
        "released_by": record.released_by,
        "release_reason": record.release_reason,
    }


def claimed_patients(record: QuarantineRecord) -> list[str]:
    """The patient ids the entry's payload claims (a reading, or every reading of a
    message), and its security event's: whose data an inspection or release touches."""
    found = set()
    if record.entry.claimed_patient_id:
        found.add(record.entry.claimed_patient_id)
    try:
        document = json.loads(record.entry.raw)
    except ValueError:
        return sorted(found)
    readings = document.get("readings") if isinstance(document, dict) else None
    candidates = readings if isinstance(readings, list) else [document]
    for item in candidates:
        patient = item.get("patient_id") if isinstance(item, dict) else None
        if isinstance(patient, str) and 0 < len(patient) <= 64:
            found.add(patient)
    return sorted(found)


def _get(
    context: ContextDep, request: Request, grant: SystemGrant, entry_id: int
) -> QuarantineRecord:
    try:
        return QuarantineStore(context.registry).get(entry_id)
    except NotFound as exc:
        audit_system(
            context,
            request,
            grant,
            status_code=404,
            outcome=AuditOutcome.REJECTED,
            detail={"quarantine_id": entry_id},
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such quarantine entry") from exc


@router.get("/quarantine", response_model=QuarantineList)
def list_quarantine(
    request: Request,
    grant: Read,
    context: ContextDep,
    reason: Annotated[QuarantineReason | None, Query()] = None,
    gateway: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    include_released: bool = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> QuarantineList:
    """Entries newest first, unreleased only unless ``include_released`` (no payloads)."""
    try:
        criteria = QuarantineFilter(
            gateway_id=gateway,
            reason=None if reason is None else reason.value,
            since=since,
            include_released=include_released,
        )
        rows = QuarantineStore(context.registry).find(criteria, limit + 1, offset=offset)
    except InvalidRegistryInput as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    except RegistryError as exc:
        raise HTTPException(503, detail="registry unavailable") from exc
    page = rows[:limit]
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        detail={
            "reason": reason.value if reason else None,
            "gateway": gateway,
            "returned": len(page),
        },
    )
    return QuarantineList(
        data=[QuarantineSummary(**_summary(r)) for r in page],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if len(rows) > limit else None,
    )


@router.get("/quarantine/{quarantine_id}", response_model=QuarantineInspect)
def inspect_quarantine(
    quarantine_id: int, request: Request, grant: Inspect, context: ContextDep
) -> QuarantineInspect:
    """One entry with its raw payload (``raw`` as text when UTF-8, ``raw_base64`` exact).

    The payload carries health values: the audit row names the patient ids it claims and
    marks the access ``health_data``.
    """
    record = _get(context, request, grant, quarantine_id)
    raw = record.entry.raw
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        patient_ids=claimed_patients(record),
        detail={"quarantine_id": quarantine_id, "health_data": True},
    )
    return QuarantineInspect(
        **_summary(record),
        full_detail=record.entry.detail,
        raw=text,
        raw_base64=base64.b64encode(raw).decode("ascii"),
        device_id=record.entry.device_id,
        claimed_patient_id=record.entry.claimed_patient_id,
    )


@router.post("/quarantine/{quarantine_id}/release", response_model=ReleaseResult)
def release_quarantine(
    quarantine_id: int,
    body: QuarantineRelease,
    request: Request,
    grant: Release,
    context: ContextDep,
) -> ReleaseResult:
    """Examine the entry again now that its cause is fixed; store what passes.

    200 with the outcome whether it was stored, is still refused (``still_refused`` says
    why) or was released before. A reading measured before its device's binding needs
    ``decided_by`` (the clinician who decided it is the bound patient's): else 422.
    """
    record = _get(context, request, grant, quarantine_id)
    patients = claimed_patients(record)
    try:
        (outcome,) = release(
            [record],
            engine=context.registry,
            store=context.store,
            ownership=OwnershipChecker(context.registry, cache_ttl_seconds=0),
            limits=context.plausibility,
            clock=context.clock,
            actor=grant.caller.actor.username,
            reason=body.reason,
            decided_by=body.decided_by,
        )
    except DecisionRequired as exc:
        audit_system(
            context,
            request,
            grant,
            status_code=422,
            outcome=AuditOutcome.REJECTED,
            patient_ids=patients,
            detail={"quarantine_id": quarantine_id, "problem": "decision required"},
        )
        raise HTTPException(422, detail=str(exc)) from exc
    except StoreError as exc:
        raise HTTPException(503, detail="reading store unavailable") from exc
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        outcome=AuditOutcome.OK if outcome.released else AuditOutcome.REJECTED,
        patient_ids=patients,
        detail={
            "quarantine_id": quarantine_id,
            "released": outcome.released,
            "already_released": outcome.already_released,
            "stored": len(outcome.stored_ids),
            "still_refused": len(outcome.refusals),
        },
    )
    return ReleaseResult(
        id=outcome.entry_id,
        released=outcome.released,
        already_released=outcome.already_released,
        stored_ids=list(outcome.stored_ids),
        still_refused=list(outcome.refusals),
    )


@router.get("/security-events", response_model=SecurityEventsPublic)
def security_events(
    request: Request,
    grant: Read,
    context: ContextDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> SecurityEventsPublic:
    """The newest security events: a gateway sent what it was not entitled to send."""
    try:
        rows = QuarantineStore(context.registry).recent_security_events(limit)
    except RegistryError as exc:
        raise HTTPException(503, detail="registry unavailable") from exc
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        patient_ids=sorted({r.claimed_patient_id for r in rows if r.claimed_patient_id}),
        detail={"returned": len(rows)},
    )
    return SecurityEventsPublic(
        data=[
            SecurityEventPublic(
                at=r.at,
                gateway_id=r.gateway_id,
                device_id=r.device_id,
                claimed_patient_id=r.claimed_patient_id,
                reason=r.reason,
                reading_id=r.reading_id,
            )
            for r in rows
        ]
    )
