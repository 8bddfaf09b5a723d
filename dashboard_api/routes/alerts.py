"""A patient's alerts through the one patient gate: list them, acknowledge one with a note.

Reading needs ``read_alerts``; acknowledging needs ``act_on_alert`` (docs/authorization.md):
a family member who may only see readings gets 403, someone with no relationship 404. The
gate writes the request's audit row; the acknowledgement itself is an alert event and an
audit link of its own (registry.alerts_repo).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from alerts.lifecycle import LifecycleError
from dashboard_api.authz import Action
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, PatientGrant, patient_access
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.audit import AuditOutcome
from registry.errors import NotFound

router = APIRouter(prefix=f"{API_PREFIX}/patients", tags=["alerts"])

ReadAlerts = Annotated[PatientGrant, Depends(patient_access(Action.READ_ALERTS))]
ActOnAlert = Annotated[PatientGrant, Depends(patient_access(Action.ACT_ON_ALERT))]


class AlertPublic(BaseModel):
    """An alert as the pages show it (ids, rule, state; no reading values)."""

    id: int
    rule_id: str
    rule_version: int
    severity: str
    state: str
    confirmed: bool
    late: bool
    reading_ids: list[str]
    explanation_key: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    muted_by: str | None


class Acknowledgement(BaseModel):
    """What the person who acknowledges says they did."""

    note: str = Field(min_length=1, max_length=1000)


def _public(row: AlertRow) -> AlertPublic:
    return AlertPublic(
        id=row.id,
        rule_id=row.rule_id,
        rule_version=row.rule_version,
        severity=row.severity,
        state=row.state,
        confirmed=row.confirmed,
        late=row.late,
        reading_ids=json.loads(row.reading_ids),
        explanation_key=row.explanation_key,
        opened_at=row.opened_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        muted_by=row.muted_by,
    )


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
    return [_public(row) for row in rows]


@router.post("/{patient_id}/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
def acknowledge_alert(
    grant: ActOnAlert, alert_id: int, body: Acknowledgement, context: ContextDep
) -> AlertPublic:
    """Acknowledge a firing alert of the patient: its escalation stops."""
    with context.read() as session:
        found = session.get(AlertRow, alert_id)
        known = found is not None and found.patient_id == grant.patient_id
    if not known:
        # Probing alert ids of a patient one may act for is recorded like any other probe.
        context.audit(
            actor=grant.caller.actor.username,
            actor_role=grant.basis.value,
            action="alert.acknowledge",
            target=f"alert:{alert_id}",
            outcome=AuditOutcome.DENIED,
            patient_ids=[grant.patient_id],
            detail={"status": 404},
        )
        # The same answer as the gate's 404: an alert id reveals nothing about other patients.
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found")
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
        return _public(row)
