"""``GET /api/v1/stream``: Server-Sent Events of new readings and alert changes for the
caller's patients.

Each event is checked against the caller's relationships at the moment it is sent (see
:mod:`dashboard_api.live`): revoking a consent ends the flow of that patient's readings on
streams already open. Opening a stream writes one audit row listing the patients visible
then; every event sent adds nothing to the audit (the subscription is the access).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Final

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from dashboard_api.authz import Action, Verdict, decide
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import CallerDep, ContextDep, route_template
from dashboard_api.live import LiveAlert, LiveEvent
from registry.access import Actor, access_facts, visible_patient_ids
from registry.audit import AuditOutcome

router = APIRouter(prefix=API_PREFIX, tags=["stream"])

HEARTBEAT_SECONDS: Final = 15.0
"""A comment line this often keeps proxies from closing an idle stream (nginx: 60 s)."""


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `reading` and `alert` events, comment heartbeats",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def stream(request: Request, caller: CallerDep, context: ContextDep) -> StreamingResponse:
    """New readings and alert changes of the patients the caller may see, as
    ``text/event-stream``; an ``alert`` event carries ids, rule, severity and state only —
    the page asks the alert API for the rest."""
    hub = context.live
    if hub is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="no live feed here")
    actor = caller.actor

    def visible_now() -> list[str]:
        with context.read() as session:
            return sorted(visible_patient_ids(session, actor, context.clock()))

    patients = await run_in_threadpool(visible_now)
    template = route_template(request)
    await run_in_threadpool(
        lambda: context.audit(
            actor=actor.username,
            actor_role=caller.primary_role,
            action=template,
            target=template,
            outcome=AuditOutcome.OK,
            patient_ids=patients,
            detail={"status": 200, "stream": 1},
        )
    )
    subscription = hub.subscribe()

    def may(patient_id: str, who: Actor, action: Action) -> bool:
        with context.read() as session:
            facts = access_facts(session, who, patient_id, context.clock())
        return decide(facts, action).verdict is Verdict.ALLOW

    async def events() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            reported_lag = 0
            while not await request.is_disconnected():
                try:
                    event: LiveEvent = await asyncio.wait_for(
                        subscription.queue.get(), HEARTBEAT_SECONDS
                    )
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if subscription.lagged != reported_lag:
                    reported_lag = subscription.lagged
                    yield _event("lagged", {"dropped": reported_lag})
                alert = isinstance(event, LiveAlert)
                needed = Action.READ_ALERTS if alert else Action.READ_READINGS
                if not await run_in_threadpool(may, event.patient_id, actor, needed):
                    continue
                yield _event(*_payload(event))
        finally:
            hub.unsubscribe(subscription)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _payload(event: LiveEvent) -> tuple[str, dict[str, object]]:
    """The SSE event name and data of one live event."""
    if isinstance(event, LiveAlert):
        return "alert", {
            "alert_id": event.alert_id,
            "patient_id": event.patient_id,
            "rule_id": event.rule_id,
            "severity": event.severity,
            "kind": event.kind,
            "state": event.state,
            "at": event.at.isoformat(),
        }
    return "reading", {
        "id": event.id,
        "patient_id": event.patient_id,
        "kind": event.kind,
        "measured_at": event.measured_at.isoformat(),
        "values": event.values,
        "unit": event.unit,
        "flags": list(event.flags),
    }
