"""``/api/v1/audit``: verify the audit chain (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from dashboard_api.config import API_PREFIX
from dashboard_api.deps import Caller, ContextDep, require_role, route_template
from dashboard_api.schemas import AuditVerifyPublic
from registry.audit import AuditOutcome, chain_head, verify_audit_log
from registry.care_models import Role

router = APIRouter(prefix=f"{API_PREFIX}/audit", tags=["audit"])

AdminDep = Annotated[Caller, Depends(require_role(Role.ADMIN))]


@router.get("/verify", response_model=AuditVerifyPublic)
def verify(request: Request, caller: AdminDep, context: ContextDep) -> AuditVerifyPublic:
    """Check every row of the chain; list what was changed, removed or inserted."""
    with context.read() as session:
        problems = verify_audit_log(session)
        head = chain_head(session)
    context.audit(
        actor=caller.actor.username,
        actor_role=Role.ADMIN.value,
        action=route_template(request),
        target=route_template(request),
        outcome=AuditOutcome.OK,
        detail={"status": 200, "problems": len(problems)},
    )
    return AuditVerifyPublic(
        intact=not problems,
        rows=head.seq if head else 0,
        head_hash=head.row_hash if head else None,
        problems=[str(problem) for problem in problems],
    )
