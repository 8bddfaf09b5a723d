"""Dependencies: the caller, and the one gate every patient route goes through.

* :data:`ContextDep` — the application's :class:`~dashboard_api.context.ApiContext`.
* :data:`CallerDep` — the authenticated account: a ``Bearer`` access token (API clients)
  or the ``vg_access`` HttpOnly cookie (pages), which for unsafe methods also needs the
  ``X-CSRF-Token`` header matching the token's CSRF claim. No valid token → 401, audited.
* :func:`patient_access` — for a route with ``{patient_id}``: reads the caller's
  relationships (:func:`registry.access.access_facts`), applies
  :func:`dashboard_api.authz.decide`, answers 404 (not your patient, or no such patient)
  or 403 (your patient, forbidden action), and writes the request's audit row either way.
  A test enumerates every route with a path parameter from the OpenAPI document and checks
  that each depends on it.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status

from dashboard_api.authz import Action, Decision, SystemAction, Verdict, decide, role_allows
from dashboard_api.context import ApiContext
from dashboard_api.security import InvalidToken, digest
from registry.access import AccessFacts, Actor, Relationship, access_facts, load_actor
from registry.audit import AuditDetail, AuditOutcome
from registry.care_models import Role

ACCESS_COOKIE: Final = "vg_access"
REFRESH_COOKIE: Final = "vg_refresh"
CSRF_COOKIE: Final = "vg_csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
PATIENT_ROUTE_MARKER: Final = "vitalgate_patient_gate"
"""Set on the dependency's function so a test can prove every patient route uses it."""


def get_context(request: Request) -> ApiContext:
    """The application's context."""
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated account of this request."""

    actor: Actor
    via_cookie: bool

    @property
    def primary_role(self) -> str | None:
        """The role named in audit rows when no relationship applies."""
        return min((role.value for role in self.actor.roles), default=None)


def route_template(request: Request) -> str:
    """``GET /api/v1/patients/{patient_id}``: the route, never the values in the URL."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    return f"{request.method} {path}"


def _unauthorized(context: ApiContext, request: Request, problem: str) -> HTTPException:
    context.audit(
        actor="anonymous",
        actor_role=None,
        action="auth.refused",
        target=route_template(request),
        outcome=AuditOutcome.DENIED,
        detail={"problem": problem, "client": request.client.host if request.client else None},
    )
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="not authenticated",
        headers={"WWW-Authenticate": "Bearer"},
    )


def get_caller(request: Request, context: ContextDep) -> Caller:
    """The caller, from a Bearer token or the session cookie (with CSRF for writes)."""
    header = request.headers.get("Authorization", "")
    token: str | None = None
    via_cookie = False
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise _unauthorized(context, request, "malformed Authorization header")
        token = value.strip()
    else:
        token = request.cookies.get(ACCESS_COOKIE)
        via_cookie = token is not None
    if not token:
        raise _unauthorized(context, request, "no token")
    try:
        with context.read() as session:
            claims = context.authenticator.verify_access(session, token)
            actor = load_actor(session, claims.user_id)
    except InvalidToken as exc:
        raise _unauthorized(context, request, exc.problem) from exc
    if actor is None:
        raise _unauthorized(context, request, "unknown account")
    if via_cookie and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(digest(sent), claims.csrf_hash):
            raise _unauthorized(context, request, "missing or wrong CSRF token")
    return Caller(actor=actor, via_cookie=via_cookie)


CallerDep = Annotated[Caller, Depends(get_caller)]


def require_role(*roles: Role):  # type: ignore[no-untyped-def]  # a dependency factory
    """A dependency that admits callers holding one of ``roles`` (else 403, audited)."""

    def check(request: Request, caller: CallerDep, context: ContextDep) -> Caller:
        if caller.actor.roles.isdisjoint(roles):
            context.audit(
                actor=caller.actor.username,
                actor_role=caller.primary_role,
                action=route_template(request),
                target=route_template(request),
                outcome=AuditOutcome.DENIED,
                detail={"status": 403, "needs": ",".join(sorted(roles))},
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="not allowed for your role")
        return caller

    return check


SYSTEM_ROUTE_MARKER: Final = "vitalgate_system_gate"
"""Set on :func:`system_access`'s dependency so a test can list the routes it guards."""


@dataclass(frozen=True, slots=True)
class SystemGrant:
    """An allowed request about the deployment: who, acting in which role, for what."""

    caller: Caller
    action: SystemAction
    role: Role
    """The role that allowed it (recorded in the request's audit row)."""


def system_access(action: SystemAction):  # type: ignore[no-untyped-def]  # a dependency factory
    """The gate of every route about the deployment: :data:`~dashboard_api.authz.ROLE_MATRIX`.

    A caller whose roles do not allow ``action`` gets 403 whatever the ids in the path (so
    a refused caller cannot probe which usernames, teams or entries exist) and an audit row.
    The allowed request's own audit row is the route's to write: it knows what it returned.
    """

    def gate(request: Request, caller: CallerDep, context: ContextDep) -> SystemGrant:
        if not role_allows(caller.actor.roles, action):
            template = route_template(request)
            context.audit(
                actor=caller.actor.username,
                actor_role=caller.primary_role,
                action=template,
                target=template,
                outcome=AuditOutcome.DENIED,
                detail={"status": 403, "action": action.value},
            )
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="not allowed for your role")
        role = min(r for r in caller.actor.roles if role_allows(frozenset({r}), action))
        return SystemGrant(caller=caller, action=action, role=role)

    setattr(gate, SYSTEM_ROUTE_MARKER, action)
    return gate


def audit_system(
    context: ApiContext,
    request: Request,
    grant: SystemGrant,
    *,
    status_code: int,
    outcome: AuditOutcome = AuditOutcome.OK,
    patient_ids: Sequence[str] = (),
    detail: AuditDetail | None = None,
) -> None:
    """The audit row of a request :func:`system_access` let through: the route template,
    every patient id the answer named, the status and the route's own detail (ids only)."""
    template = route_template(request)
    context.audit(
        actor=grant.caller.actor.username,
        actor_role=grant.role.value,
        action=template,
        target=template,
        outcome=outcome,
        patient_ids=patient_ids,
        detail={"action": grant.action.value, **(detail or {}), "status": status_code},
    )


@dataclass(frozen=True, slots=True)
class PatientGrant:
    """An allowed access to one patient: who, on what basis, for what."""

    caller: Caller
    patient_id: str
    action: Action
    facts: AccessFacts
    decision: Decision

    @property
    def basis(self) -> Relationship:
        """The relationship the access rests on."""
        assert self.decision.basis is not None
        return self.decision.basis


def patient_access(action: Action):  # type: ignore[no-untyped-def]  # a dependency factory
    """The gate of every route with ``{patient_id}``: 404, 403 or a :class:`PatientGrant`.

    The audit row of the request is written here, allowed or not; routes that return data
    of other patients too (none today) would record them themselves.
    """

    def gate(
        patient_id: str, request: Request, caller: CallerDep, context: ContextDep
    ) -> PatientGrant:
        now = context.clock()
        with context.read() as session:
            facts = access_facts(session, caller.actor, patient_id, now)
        decision = decide(facts, action)
        template = route_template(request)
        detail: dict[str, str | int | None] = {
            "action": action.value,
            "basis": decision.basis.value if decision.basis else None,
            "relationships": ",".join(sorted(r.value for r in facts.relationships)),
        }
        if decision.verdict is not Verdict.ALLOW:
            code = 404 if decision.verdict is Verdict.NOT_FOUND else 403
            detail["status"] = code
            context.audit(
                actor=caller.actor.username,
                actor_role=caller.primary_role,
                action=template,
                target=template,
                outcome=AuditOutcome.DENIED,
                # An unknown id is recorded too: probing is what the audit must show.
                patient_ids=[patient_id],
                detail=detail,
            )
            if code == 404:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail="patient not found")
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="not allowed for you")
        detail["status"] = 200
        if decision.basis is Relationship.BREAK_GLASS:
            detail["break_glass"] = 1
        context.audit(
            actor=caller.actor.username,
            actor_role=decision.basis.value if decision.basis else caller.primary_role,
            action=template,
            target=template,
            outcome=AuditOutcome.OK,
            patient_ids=[patient_id],
            detail=detail,
        )
        return PatientGrant(
            caller=caller, patient_id=patient_id, action=action, facts=facts, decision=decision
        )

    setattr(gate, PATIENT_ROUTE_MARKER, action)
    return gate
