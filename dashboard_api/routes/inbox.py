"""The caller's alert inbox: alerts of every patient they may see, and mark all read.

``GET /api/v1/alerts`` has no patient in its path, so the one gate cannot decide it; it
applies the same decision set-based instead: :func:`registry.access.related_facts` for every
patient the caller is related to now (a fixed handful of queries), then
:func:`dashboard_api.authz.decide` with ``read_alerts`` per patient — a family member whose
consent only covers readings sees none of that patient's alerts. Both routes write one
audit row naming every patient whose alerts the answer carried (or marked).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from dashboard_api.authz import Action, Verdict, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.context import ApiContext
from dashboard_api.deps import Caller, CallerDep, ContextDep, route_template
from dashboard_api.routes.alerts import AlertPublic, public
from registry.access import related_facts
from registry.alerts_repo import AlertRepository
from registry.audit import AuditOutcome
from registry.models import Patient

router = APIRouter(prefix=f"{API_PREFIX}/alerts", tags=["alerts"])

INBOX_LIMIT: Final = 200
"""Alerts per answer, newest first: a day of a 300-patient panel's alerts fits many times
over (docs/benchmarks.md counts well under one alert per patient-week per rule)."""


class InboxItem(AlertPublic):
    """An alert in the inbox, with whose it is and whether the caller has read it."""

    patient_name: str | None
    read: bool


class MarkedRead(BaseModel):
    """How many alerts were marked read."""

    marked: int


def _readable(context: ApiContext, caller: Caller) -> set[str]:
    with context.read() as session:
        facts = related_facts(session, caller.actor, context.clock())
    return {
        patient_id
        for patient_id, one in facts.items()
        if decide(one, Action.READ_ALERTS).verdict is Verdict.ALLOW
    }


def _audit(
    context: ApiContext, request: Request, caller: Caller, patient_ids: set[str], **detail: int
) -> None:
    template = route_template(request)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action=template,
        target=template,
        outcome=AuditOutcome.OK,
        patient_ids=sorted(patient_ids),
        detail={"action": Action.READ_ALERTS.value, "status": 200, **detail},
    )


@router.get("", response_model=list[InboxItem])
def inbox(
    request: Request,
    caller: CallerDep,
    context: ContextDep,
    state: Annotated[str | None, Query(max_length=16)] = None,
    severity: Annotated[str | None, Query(max_length=8)] = None,
    unread: bool | None = None,
) -> list[InboxItem]:
    """Alerts of every patient the caller may read alerts of, newest first (at most
    :data:`INBOX_LIMIT`); ``unread=true`` keeps the open ones the caller has not read."""
    patients = _readable(context, caller)
    me = caller.actor.username
    with context.read() as session:
        repo = AlertRepository(session)
        rows = repo.inbox(
            patients, reader=me, state=state, severity=severity, unread=unread, limit=INBOX_LIMIT
        )
        seen = repo.seen_by([row.id for row in rows], me)
        wanted = {row.patient_id for row in rows}
        names: dict[str, str | None] = {
            found.id: found.display_name
            for found in session.execute(
                select(Patient.id, Patient.display_name).where(Patient.id.in_(sorted(wanted)))
            )
        }
    _audit(context, request, caller, wanted, alerts=len(rows))
    return [
        InboxItem(
            **public(row).model_dump(), patient_name=names.get(row.patient_id), read=row.id in seen
        )
        for row in rows
    ]


@router.post("/mark-all-read", response_model=MarkedRead)
def mark_all_read(request: Request, caller: CallerDep, context: ContextDep) -> MarkedRead:
    """Mark read every open alert the caller may see and has not read yet."""
    patients = _readable(context, caller)
    me = caller.actor.username
    now = context.clock()
    with context.write() as session:
        repo = AlertRepository(session)
        rows = repo.inbox(patients, reader=me, unread=True, limit=10_000)
        for row in rows:
            repo.mark_seen(row.id, actor=me, now=now)
        touched = {row.patient_id for row in rows}
    _audit(context, request, caller, touched, marked=len(rows))
    return MarkedRead(marked=len(rows))
