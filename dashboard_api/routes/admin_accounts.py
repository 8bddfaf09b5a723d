"""``/api/v1/admin/users``: accounts of staff, patients and family members (admins).

Every route depends on :func:`dashboard_api.deps.system_access` (``manage_accounts``).
Changes go through :class:`registry.care.AccountRepository`, as ``vitalgate users`` does,
each with its audit row (ids only: never a name, a phone or a password). Listings give
staff names but not the names of patient and family accounts, and never phones or secrets.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Final

import pyotp
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from dashboard_api.admin_schemas import (
    AccountCreate,
    AccountPublic,
    AccountsPublic,
    PasswordReset,
    TotpEnrolment,
)
from dashboard_api.authz import SystemAction
from dashboard_api.config import API_PREFIX
from dashboard_api.context import ApiContext
from dashboard_api.deps import ContextDep, SystemGrant, audit_system, system_access
from dashboard_api.routes.admin import Limit, Offset, change, next_offset_of
from dashboard_api.security import hash_password
from registry.accounts import AccountRecord
from registry.audit import AuditOutcome
from registry.care import AccountRepository
from registry.care_models import AccountKind, Role
from registry.care_queries import list_accounts
from registry.errors import InvalidRegistryInput

router = APIRouter(prefix=f"{API_PREFIX}/admin", tags=["admin"])

TOTP_ISSUER: Final = "VitalGate"
"""The issuer the authenticator app shows next to the code (as ``vitalgate users totp``)."""

RESET_PASSWORD_BYTES: Final = 18
"""24 URL-safe characters (144 bits): far above the 12-character minimum of MLPS level 3."""

Accounts = Annotated[SystemGrant, Depends(system_access(SystemAction.MANAGE_ACCOUNTS))]


def _account(record: AccountRecord) -> AccountPublic:
    return AccountPublic(
        username=record.username,
        kind=record.kind.value,
        roles=sorted(role.value for role in record.roles),
        display_name=record.display_name if record.kind is AccountKind.STAFF else None,
        patient_id=record.patient_id,
        custodial=record.custodial,
        active=record.active,
        has_password=record.has_password,
        totp_enrolled=record.totp_enrolled,
    )


@router.get("/users", response_model=AccountsPublic)
def users(
    request: Request,
    grant: Accounts,
    context: ContextDep,
    kind: Annotated[AccountKind | None, Query()] = None,
    role: Annotated[Role | None, Query()] = None,
    active: Annotated[bool | None, Query()] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> AccountsPublic:
    """Accounts by username (no secrets, no phones; names of staff only)."""
    with context.read() as session:
        rows = list_accounts(
            session, kind=kind, role=role, active=active, offset=offset, limit=limit + 1
        )
    page = rows[:limit]
    audit_system(
        context,
        request,
        grant,
        status_code=200,
        patient_ids=[r.patient_id for r in page if r.patient_id is not None],
        detail={"returned": len(page)},
    )
    return AccountsPublic(
        data=[_account(record) for record in page],
        offset=offset,
        limit=limit,
        next_offset=next_offset_of(offset, limit, len(rows)),
    )


@router.post("/users", response_model=AccountPublic, status_code=201)
def create_user(
    body: AccountCreate, request: Request, grant: Accounts, context: ContextDep
) -> AccountPublic:
    """Create a staff, patient (possibly custodial) or family account.

    Staff then need a password (``…/password-reset``) and a TOTP enrolment (``…/totp``,
    or ``vitalgate users totp``) before they can log in; patients and family log in by SMS link.
    """
    kind = AccountKind(body.kind)
    record = change(
        context,
        request,
        grant,
        lambda session: AccountRepository(session, clock=context.clock).add(
            body.username,
            display_name=body.display_name,
            kind=kind,
            roles=[Role(role) for role in body.roles],
            phone=body.phone,
            patient_id=body.patient_id,
            custodial=body.custodial,
        ),
        status_code=201,
        detail={
            "username": body.username,
            "kind": kind.value,
            "roles": ",".join(sorted(body.roles)),
            "custodial": body.custodial,
        },
        patient_ids=[body.patient_id] if body.patient_id else [],
    )
    return _account(record)


def _set_active(
    username: str, active: bool, request: Request, grant: SystemGrant, context: ApiContext
) -> AccountPublic:
    def operation(session: Session) -> AccountRecord:
        accounts = AccountRepository(session, clock=context.clock)
        accounts.set_active(username, active)
        return accounts.get(username)

    record = change(
        context, request, grant, operation, status_code=200, detail={"username": username}
    )
    return _account(record)


@router.post("/users/{username}/disable", response_model=AccountPublic)
def disable_user(
    username: str, request: Request, grant: Accounts, context: ContextDep
) -> AccountPublic:
    """Disable an account: every session it holds ends on its next request."""
    if username == grant.caller.actor.username:
        audit_system(
            context,
            request,
            grant,
            status_code=422,
            outcome=AuditOutcome.REJECTED,
            detail={"username": username, "problem": "own account"},
        )
        raise HTTPException(422, detail="an administrator cannot disable their own account")
    return _set_active(username, False, request, grant, context)


@router.post("/users/{username}/enable", response_model=AccountPublic)
def enable_user(
    username: str, request: Request, grant: Accounts, context: ContextDep
) -> AccountPublic:
    """Enable a disabled account again (its old sessions stay ended)."""
    return _set_active(username, True, request, grant, context)


@router.post("/users/{username}/password-reset", response_model=PasswordReset)
def reset_password(
    username: str, request: Request, grant: Accounts, context: ContextDep
) -> PasswordReset:
    """Give a staff member a new random password, shown once in this answer only.

    The password is never logged, audited or stored (only its argon2id hash); every
    session of the account ends. Patients and family have no password (422).
    """
    password = secrets.token_urlsafe(RESET_PASSWORD_BYTES)
    password_hash = hash_password(password)
    change(
        context,
        request,
        grant,
        lambda session: AccountRepository(session, clock=context.clock).set_password_hash(
            username, password_hash
        ),
        status_code=200,
        detail={"username": username},
    )
    return PasswordReset(username=username, password=password)


@router.post("/users/{username}/totp", response_model=TotpEnrolment)
def enrol_totp(
    username: str, request: Request, grant: Accounts, context: ContextDep
) -> TotpEnrolment:
    """Enrol a new TOTP second factor for a staff member, shown once in this answer only.

    As ``vitalgate users totp``: the old factor stops working and every session of the
    account ends. The secret is never logged or audited; patients and family log in by SMS
    link and have no second factor here (422).
    """
    secret = pyotp.random_base32()

    def operation(session: Session) -> None:
        accounts = AccountRepository(session, clock=context.clock)
        if accounts.get(username).kind is not AccountKind.STAFF:
            raise InvalidRegistryInput("totp", "patients and family log in by SMS link")
        accounts.set_totp_secret(username, secret)

    change(context, request, grant, operation, status_code=200, detail={"username": username})
    return TotpEnrolment(
        username=username,
        secret=secret,
        otpauth_uri=pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER),
    )
