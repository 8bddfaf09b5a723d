"""``/api/v1/audit``: query the audit log and verify its chain (admins).

Both depend on :func:`dashboard_api.deps.system_access` (``read_audit``: role ``admin``).
Querying the log is itself an access, recorded with its filters (the patient filtered on
in the row's patient ids); the rows returned name patients and who looked at them but hold
no health values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from dashboard_api.admin_schemas import AuditPage, AuditRowPublic
from dashboard_api.authz import SystemAction
from dashboard_api.config import API_PREFIX
from dashboard_api.deps import ContextDep, SystemGrant, audit_system, system_access
from dashboard_api.schemas import AuditVerifyPublic
from registry.audit import AuditOutcome, chain_head, verify_audit_log
from registry.audit_query import AuditQuery, find_audit
from registry.errors import InvalidRegistryInput

router = APIRouter(prefix=f"{API_PREFIX}/audit", tags=["audit"])

MAX_PAGE: Final = 500
"""An auditor pages through a day's rows; more per page is an export's job."""

AuditDep = Annotated[SystemGrant, Depends(system_access(SystemAction.READ_AUDIT))]


@router.get("", response_model=AuditPage)
def query(
    request: Request,
    grant: AuditDep,
    context: ContextDep,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None,
        Query(max_length=64, description="e.g. `GET /api/v1/patients/{patient_id}`"),
    ] = None,
    outcome: AuditOutcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_seq: Annotated[
        int | None,
        Query(ge=1, description="Only rows before this seq: page with `next_before_seq`."),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    """Rows matching every filter given, newest first.

    The log grows while it is read (this very query adds a row), so page with
    ``before_seq=next_before_seq``; ``offset`` pages shift as rows arrive.
    """
    try:
        criteria = AuditQuery(
            actor=actor,
            patient_id=patient_id,
            action=action,
            outcome=outcome,
            since=since,
            until=until,
            before_seq=before_seq,
        )
    except InvalidRegistryInput as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    with context.read() as session:
        rows = find_audit(session, criteria, offset=offset, limit=limit + 1)
    page = rows[:limit]
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        patient_ids=[patient_id] if patient_id else [],
        detail={
            "actor": actor,
            "filter_action": action,
            "outcome": outcome.value if outcome else None,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "before_seq": before_seq,
            "returned": len(page),
        },
    )
    return AuditPage(
        data=[
            AuditRowPublic(
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                actor_role=row.actor_role,
                action=row.action,
                target=row.target,
                patient_ids=list(row.patient_ids),
                outcome=row.outcome.value,
                detail=row.detail,
            )
            for row in page
        ],
        offset=offset,
        limit=limit,
        next_offset=offset + limit if len(rows) > limit else None,
        next_before_seq=page[-1].seq if len(rows) > limit else None,
    )


@router.get("/verify", response_model=AuditVerifyPublic)
def verify(request: Request, grant: AuditDep, context: ContextDep) -> AuditVerifyPublic:
    """Check every row of the chain; list what was changed, removed or inserted."""
    with context.read() as session:
        problems = verify_audit_log(session)
        head = chain_head(session)
    audit_system(context, request, grant, status_code=200, detail={"problems": len(problems)})
    return AuditVerifyPublic(
        intact=not problems,
        rows=head.seq if head else 0,
        head_hash=head.row_hash if head else None,
        problems=[str(problem) for problem in problems],
        first_broken_seq=min((problem.seq for problem in problems), default=None),
    )
