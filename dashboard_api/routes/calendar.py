"""A nurse's visits as an iCalendar feed her phone subscribes to, behind a secret URL.

Phone calendars sync to their vendors' clouds, so an event carries only the pseudonymous
visit code, the time and the patient's community (社区/村, to plan the day's route) — never
a name, an address, a phone number or why the visit is needed. The token in the URL is the
only credential (a calendar app cannot log in); it is stored hashed and revoked by issuing
a new one or by ``DELETE /api/v1/calendar/token``. An unknown or revoked token answers 404
and is audited as denied.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import Response
from icalendar import Calendar, Event
from pydantic import BaseModel

from dashboard_api.config import API_PREFIX
from dashboard_api.deps import Caller, ContextDep, require_role
from registry.audit import AuditOutcome
from registry.care_models import Role
from registry.models import Patient
from registry.visit_calendar import CalendarTokens
from registry.visit_models import VisitKind
from registry.visits import TaskRecord, VisitRepository

router = APIRouter(prefix=f"{API_PREFIX}/calendar", tags=["visits"])

NurseDep = Annotated[Caller, Depends(require_role(Role.NURSE))]

FEED_PAST: Final = timedelta(days=7)
FEED_FUTURE: Final = timedelta(days=60)
"""The feed covers last week and the next two months: enough to plan, small to sync."""

VISIT_LENGTH: Final = {
    VisitKind.HOME_VISIT: timedelta(minutes=45),
    VisitKind.CLINIC: timedelta(minutes=30),
    VisitKind.PHONE: timedelta(minutes=15),
}
"""How long an event blocks in the calendar (a planning figure, not a measurement)."""

_SUMMARY: Final = {
    VisitKind.HOME_VISIT: "上门随访",
    VisitKind.CLINIC: "门诊随访",
    VisitKind.PHONE: "电话随访",
}


class CalendarTokenIssued(BaseModel):
    """The feed's path, shown once: it cannot be read back."""

    path: str


def feed(tasks: list[TaskRecord], communities: dict[str, str | None], now: datetime) -> bytes:
    """The iCalendar document of ``tasks`` (pure: only codes, times, kinds and communities)."""
    calendar = Calendar()
    calendar.add("prodid", "-//VitalGate//nurse visits//ZH")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "VitalGate 随访")
    for task in tasks:
        assert task.scheduled_at is not None
        event = Event()
        event.add("uid", f"{task.code}@vitalgate")
        event.add("dtstamp", now)
        event.add("dtstart", task.scheduled_at)
        event.add("dtend", task.scheduled_at + VISIT_LENGTH[task.kind])
        event.add("summary", f"{_SUMMARY[task.kind]} {task.code}")
        community = communities.get(task.patient_id)
        if community:
            event.add("location", community)
        calendar.add_component(event)
    document: bytes = calendar.to_ical()
    return document


@router.post("/token", response_model=CalendarTokenIssued, status_code=201)
def issue_token(caller: NurseDep, context: ContextDep) -> CalendarTokenIssued:
    """A new feed URL for the calling nurse; any older one stops working."""
    with context.write() as session:
        token = CalendarTokens(session, clock=context.clock).issue(caller.actor.username)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action="calendar.token.issue",
        target="calendar",
        outcome=AuditOutcome.OK,
        detail={"status": 201},
    )
    return CalendarTokenIssued(path=f"{API_PREFIX}/calendar/{token}.ics")


@router.delete("/token", status_code=204)
def revoke_token(caller: NurseDep, context: ContextDep) -> Response:
    """Revoke the calling nurse's feed URL."""
    with context.write() as session:
        revoked = CalendarTokens(session, clock=context.clock).revoke(caller.actor.username)
    context.audit(
        actor=caller.actor.username,
        actor_role=caller.primary_role,
        action="calendar.token.revoke",
        target="calendar",
        outcome=AuditOutcome.OK,
        detail={"status": 204, "revoked": revoked},
    )
    return Response(status_code=204)


@router.get("/{token}.ics", response_class=Response)
def calendar_feed(token: str, context: ContextDep) -> Response:
    """The nurse's scheduled visits as ``text/calendar``."""
    now = context.clock()
    with context.read() as session:
        owner = CalendarTokens(session).owner(token) if len(token) <= 128 else None
        tasks = (
            []
            if owner is None
            else VisitRepository(session).scheduled_for(owner, now - FEED_PAST, now + FEED_FUTURE)
        )
        communities = {
            t.patient_id: (p.community if (p := session.get(Patient, t.patient_id)) else None)
            for t in tasks
        }
    if owner is None:
        context.audit(
            actor="anonymous",
            actor_role=None,
            action="calendar.feed",
            target="GET /api/v1/calendar/{token}.ics",
            outcome=AuditOutcome.DENIED,
            detail={"status": 404},
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="calendar not found")
    context.audit(
        actor=owner,
        actor_role="calendar",
        action="calendar.feed",
        target="GET /api/v1/calendar/{token}.ics",
        outcome=AuditOutcome.OK,
        patient_ids=sorted(communities),
        detail={"status": 200, "count": len(tasks)},
    )
    return Response(
        feed(tasks, communities, now),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, no-store"},
    )
