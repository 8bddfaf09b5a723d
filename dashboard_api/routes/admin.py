"""``/api/v1/admin``: teams and members, contracts, the on-call rota, family links (accounts:
:mod:`dashboard_api.routes.admin_accounts`), and the helpers both modules use.

Every route depends on :func:`dashboard_api.deps.system_access` (role ``admin``, see
``ROLE_MATRIX`` in :mod:`dashboard_api.authz`); anyone else gets 403 whatever the ids in
the path. Changes go through the repositories of :mod:`registry.care` — the same ones
``vitalgate users`` and ``vitalgate care`` use — and each change is written in one
transaction with its audit row; a refused change (unknown id 404, conflict 409, bad input
422) is audited too. Audit rows carry ids only: never a name, a phone or a password.

Contracts and family links name patients (by their opaque id) and a contract's service
package can reveal a condition (``diabetes``), so the audit row of those listings names
every patient id returned, as for any access to patient data. Names, readings, conditions
and targets are never returned here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Final, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlalchemy.orm import Session

from dashboard_api.admin_schemas import (
    ContractCreate,
    ContractEnd,
    ContractPublic,
    ContractsPublic,
    FamilyConsentPublic,
    FamilyLinkPublic,
    FamilyLinksPublic,
    MemberCreate,
    MemberPublic,
    MembershipEnded,
    ShiftCreate,
    ShiftPublic,
    ShiftsPublic,
    TeamCreate,
    TeamPublic,
    TeamsPublic,
)
from dashboard_api.authz import SystemAction
from dashboard_api.config import API_PREFIX
from dashboard_api.context import ApiContext
from dashboard_api.deps import (
    ContextDep,
    SystemGrant,
    audit_system,
    route_template,
    system_access,
)
from registry.audit import AuditDetail, AuditOutcome, record_audit
from registry.care import (
    ContractRecord,
    ContractRepository,
    FamilyRepository,
    RotaRepository,
    ShiftRecord,
    TeamRepository,
)
from registry.care_lookup import find_team
from registry.care_models import TeamPosition
from registry.care_queries import (
    contract_by_id,
    family_links,
    list_contracts,
    list_shifts,
    list_teams,
    team_members,
)
from registry.errors import AlreadyExists, InvalidRegistryInput, NotFound

router = APIRouter(prefix=f"{API_PREFIX}/admin", tags=["admin"])

MAX_PAGE: Final = 200
"""Listings are for screens; a page beyond 200 rows is an export's job (OWASP API4)."""

Teams = Annotated[SystemGrant, Depends(system_access(SystemAction.MANAGE_TEAMS))]
Contracts = Annotated[SystemGrant, Depends(system_access(SystemAction.MANAGE_CONTRACTS))]
Family = Annotated[SystemGrant, Depends(system_access(SystemAction.VIEW_FAMILY_LINKS))]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]

T = TypeVar("T")


def _status_of(exc: NotFound | AlreadyExists | InvalidRegistryInput) -> int:
    if isinstance(exc, NotFound):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, AlreadyExists):
        return status.HTTP_409_CONFLICT
    return status.HTTP_422_UNPROCESSABLE_CONTENT


def change(
    context: ApiContext,
    request: Request,
    grant: SystemGrant,
    operation: Callable[[Session], T],
    *,
    status_code: int,
    detail: AuditDetail,
    patient_ids: Sequence[str] = (),
) -> T:
    """Run ``operation`` and its audit row in one transaction; audit and answer a refusal."""
    template = route_template(request)
    try:
        with context.write() as session:
            result = operation(session)
            record_audit(
                session,
                at=context.clock(),
                actor=grant.caller.actor.username,
                actor_role=grant.role.value,
                action=template,
                target=template,
                outcome=AuditOutcome.OK,
                patient_ids=patient_ids,
                detail={"action": grant.action.value, **detail, "status": status_code},
            )
    except (NotFound, AlreadyExists, InvalidRegistryInput) as exc:
        code = _status_of(exc)
        audit_system(
            context,
            request,
            grant,
            status_code=code,
            outcome=AuditOutcome.REJECTED,
            patient_ids=patient_ids,
            detail=detail,
        )
        raise HTTPException(code, detail=str(exc)) from exc
    return result


def next_offset_of(offset: int, limit: int, returned: int) -> int | None:
    """The offset of the next page, when ``limit + 1`` rows were asked and more came back."""
    return offset + limit if returned > limit else None


@router.get("/teams", response_model=TeamsPublic)
def teams(
    request: Request, grant: Teams, context: ContextDep, offset: Offset = 0, limit: Limit = 50
) -> TeamsPublic:
    """Every family-doctor team, by code."""
    with context.read() as session:
        rows = list_teams(session, offset=offset, limit=limit + 1)
    page = rows[:limit]
    audit_system(context, request, grant, status_code=200, detail={"returned": len(page)})
    return TeamsPublic(
        data=[
            TeamPublic(
                code=r.code, name=r.name, organisation=r.organisation, created_at=r.created_at
            )
            for r in page
        ],
        offset=offset,
        limit=limit,
        next_offset=next_offset_of(offset, limit, len(rows)),
    )


@router.post("/teams", response_model=TeamPublic, status_code=201)
def create_team(
    body: TeamCreate, request: Request, grant: Teams, context: ContextDep
) -> TeamPublic:
    """Create a family-doctor team."""

    def operation(session: Session) -> TeamPublic:
        TeamRepository(session, clock=context.clock).add(
            body.code, name=body.name, organisation=body.organisation
        )
        team = find_team(session, body.code)
        return TeamPublic(
            code=team.code,
            name=team.name,
            organisation=team.organisation,
            created_at=team.created_at,
        )

    return change(context, request, grant, operation, status_code=201, detail={"team": body.code})


def _members(context: ApiContext, team_code: str, include_past: bool) -> list[MemberPublic]:
    with context.read() as session:
        rows = team_members(session, team_code, include_past=include_past)
    return [
        MemberPublic(
            username=r.username, position=r.position, valid_from=r.valid_from, valid_to=r.valid_to
        )
        for r in rows
    ]


@router.get("/teams/{team_code}/members", response_model=list[MemberPublic])
def members(
    team_code: str,
    request: Request,
    grant: Teams,
    context: ContextDep,
    include_past: bool = False,
) -> list[MemberPublic]:
    """The team's members (and, with ``include_past``, who was a member when)."""
    try:
        rows = _members(context, team_code, include_past)
    except NotFound as exc:
        audit_system(
            context,
            request,
            grant,
            status_code=404,
            outcome=AuditOutcome.REJECTED,
            detail={"team": team_code},
        )
        raise HTTPException(404, detail=str(exc)) from exc
    audit_system(context, request, grant, status_code=200, detail={"team": team_code})
    return rows


@router.post("/teams/{team_code}/members", response_model=MemberPublic, status_code=201)
def add_member(
    team_code: str, body: MemberCreate, request: Request, grant: Teams, context: ContextDep
) -> MemberPublic:
    """Make a staff member a doctor, nurse or lead of the team from ``since`` (default now).

    The position needs the matching role (``family_doctor``, ``nurse``, ``team_lead``).
    """
    position = TeamPosition(body.position)
    change(
        context,
        request,
        grant,
        lambda session: TeamRepository(session, clock=context.clock).add_member(
            team_code, body.username, position, since=body.since
        ),
        status_code=201,
        detail={"team": team_code, "username": body.username, "position": position.value},
    )
    return next(
        m
        for m in reversed(_members(context, team_code, False))
        if m.username == body.username and m.position == position.value
    )


@router.delete("/teams/{team_code}/members/{username}", response_model=MembershipEnded)
def end_member(
    team_code: str,
    username: str,
    request: Request,
    grant: Teams,
    context: ContextDep,
    at: Annotated[datetime | None, Query(description="When it ends (default: now).")] = None,
) -> MembershipEnded:
    """End every current membership of ``username`` in the team (kept as history)."""
    ended = change(
        context,
        request,
        grant,
        lambda session: TeamRepository(session, clock=context.clock).end_member(
            team_code, username, at=at
        ),
        status_code=200,
        detail={"team": team_code, "username": username},
    )
    return MembershipEnded(ended=ended)


def _contract(record: ContractRecord) -> ContractPublic:
    return ContractPublic(
        id=record.id,
        patient_id=record.patient_id,
        team_code=record.team_code,
        service_package=record.service_package,
        starts_on=record.starts_on,
        ends_on=record.ends_on,
        end_reason=record.end_reason,
    )


@router.get("/contracts", response_model=ContractsPublic)
def contracts(
    request: Request,
    grant: Contracts,
    context: ContextDep,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    team_code: Annotated[str | None, Query(max_length=64)] = None,
    open_only: bool = False,
    offset: Offset = 0,
    limit: Limit = 50,
) -> ContractsPublic:
    """Contracts with their history, by patient id then start; the audit names every
    patient id returned."""
    with context.read() as session:
        rows = list_contracts(
            session,
            patient_id=patient_id,
            team_code=team_code,
            open_only=open_only,
            offset=offset,
            limit=limit + 1,
        )
    page = rows[:limit]
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        patient_ids=sorted({r.patient_id for r in page} | ({patient_id} if patient_id else set())),
        detail={"team": team_code, "returned": len(page)},
    )
    return ContractsPublic(
        data=[_contract(r) for r in page],
        offset=offset,
        limit=limit,
        next_offset=next_offset_of(offset, limit, len(rows)),
    )


@router.post("/contracts", response_model=ContractPublic, status_code=201)
def sign_contract(
    body: ContractCreate, request: Request, grant: Contracts, context: ContextDep
) -> ContractPublic:
    """Contract a patient with a team (a patient has at most one open contract: 409)."""
    record = change(
        context,
        request,
        grant,
        lambda session: ContractRepository(session, clock=context.clock).sign(
            body.patient_id,
            body.team_code,
            service_package=body.service_package,
            starts_on=body.starts_on,
        ),
        status_code=201,
        detail={"team": body.team_code, "package": body.service_package},
        patient_ids=[body.patient_id],
    )
    return _contract(record)


@router.post("/contracts/{contract_id}/end", response_model=ContractPublic)
def end_contract(
    contract_id: int, body: ContractEnd, request: Request, grant: Contracts, context: ContextDep
) -> ContractPublic:
    """End an open contract on ``ends_on`` (exclusive) with the reason; it stays as history.

    An ended contract cannot be ended again (409).
    """

    def operation(session: Session) -> ContractRecord:
        found = contract_by_id(session, contract_id)
        if found.ends_on is not None:
            raise AlreadyExists("end of contract", str(contract_id), "the contract has ended")
        return ContractRepository(session, clock=context.clock).end(
            found.patient_id, ends_on=body.ends_on, reason=body.reason
        )

    with context.read() as session:
        try:
            patient = [contract_by_id(session, contract_id).patient_id]
        except NotFound:
            patient = []
    record = change(
        context,
        request,
        grant,
        operation,
        status_code=200,
        detail={"contract": contract_id, "ends_on": body.ends_on.isoformat()},
        patient_ids=patient,
    )
    return _contract(record)


def _shift(record: ShiftRecord) -> ShiftPublic:
    return ShiftPublic(
        id=record.id,
        team_code=record.team_code,
        doctor=record.doctor_username,
        starts_at=record.starts_at,
        ends_at=record.ends_at,
        covers=record.covers_username,
    )


@router.get("/rota", response_model=ShiftsPublic)
def rota(
    request: Request,
    grant: Teams,
    context: ContextDep,
    team_code: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> ShiftsPublic:
    """Duty shifts overlapping ``[since, until)``, by start (cover shifts name whom)."""
    try:
        with context.read() as session:
            rows = list_shifts(
                session,
                team_code=team_code,
                since=since,
                until=until,
                offset=offset,
                limit=limit + 1,
            )
    except InvalidRegistryInput as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    page = rows[:limit]
    audit_system(
        context, request, grant, status_code=200, detail={"team": team_code, "returned": len(page)}
    )
    return ShiftsPublic(
        data=[_shift(r) for r in page],
        offset=offset,
        limit=limit,
        next_offset=next_offset_of(offset, limit, len(rows)),
    )


@router.post("/rota", response_model=ShiftPublic, status_code=201)
def add_shift(
    body: ShiftCreate, request: Request, grant: Teams, context: ContextDep
) -> ShiftPublic:
    """Put an active family doctor on duty for a team; ``covers`` names the doctor on leave."""
    record = change(
        context,
        request,
        grant,
        lambda session: RotaRepository(session).add_shift(
            body.team_code,
            body.doctor,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            covers=body.covers,
        ),
        status_code=201,
        detail={"team": body.team_code, "doctor": body.doctor, "covers": body.covers},
    )
    return _shift(record)


@router.get("/family-links", response_model=FamilyLinksPublic)
def links(
    request: Request,
    grant: Family,
    context: ContextDep,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> FamilyLinksPublic:
    """Family accounts linked to patients, each with every consent the patient gave it.

    Read-only: granting and revoking is the patient's (``/patients/{patient_id}/consents``).
    """
    now = context.clock()
    with context.read() as session:
        rows = family_links(session, patient_id=patient_id, offset=offset, limit=limit + 1)
        page = rows[:limit]
        family = FamilyRepository(session, clock=context.clock)
        consents = {pid: family.consents(pid) for pid in {r.patient_id for r in page}}
    data = [
        FamilyLinkPublic(
            patient_id=r.patient_id,
            username=r.username,
            relationship=r.relationship,
            linked_at=r.created_at,
            consents=[
                FamilyConsentPublic(
                    scopes=sorted(scope.value for scope in c.scopes),
                    granted_at=c.granted_at,
                    expires_at=c.expires_at,
                    revoked_at=c.revoked_at,
                    in_force=c.in_force(now),
                )
                for c in consents[r.patient_id]
                if c.family_username == r.username
            ],
        )
        for r in page
    ]
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        patient_ids=sorted({r.patient_id for r in page} | ({patient_id} if patient_id else set())),
        detail={"returned": len(page)},
    )
    return FamilyLinksPublic(
        data=data, offset=offset, limit=limit, next_offset=next_offset_of(offset, limit, len(rows))
    )
