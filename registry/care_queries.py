"""Read-only listings of the care model for administration screens.

The repositories in :mod:`registry.care` change the care model one decision at a time;
these functions list it, a page at a time (``offset``/``limit``, in a stable order), in the
caller's transaction. They return the same frozen records as the repositories, so an
administration route and ``vitalgate care`` speak of the same things. Who may call them is
decided by the API's authorization, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from registry.accounts import AccountRecord
from registry.care_lookup import find_team
from registry.care_models import (
    AccountKind,
    CareContract,
    CareTeam,
    DutyShift,
    FamilyLink,
    Role,
    TeamMembership,
    UserAccount,
    UserRole,
)
from registry.clock import aware_utc
from registry.errors import NotFound
from registry.teams import ContractRecord, ShiftRecord


@dataclass(frozen=True, slots=True)
class TeamRecord:
    """A family-doctor team."""

    code: str
    name: str
    organisation: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    """A staff member's place in a team over a period (``valid_to`` ``None``: still)."""

    team_code: str
    username: str
    position: str
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True, slots=True)
class FamilyLinkRecord:
    """A family account linked to a patient (access needs the patient's consent too)."""

    patient_id: str
    username: str
    relationship: str
    created_at: datetime


def list_accounts(
    session: Session,
    *,
    kind: AccountKind | None = None,
    role: Role | None = None,
    active: bool | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[AccountRecord]:
    """Accounts matching every criterion given, by username."""
    query = select(UserAccount).order_by(UserAccount.username)
    if kind is not None:
        query = query.where(UserAccount.kind == kind.value)
    if active is not None:
        query = query.where(UserAccount.active.is_(active))
    if role is not None:
        query = query.where(
            UserAccount.id.in_(select(UserRole.user_id).where(UserRole.role == role.value))
        )
    rows = session.scalars(query.offset(offset).limit(limit)).all()
    roles: dict[int, set[Role]] = {row.id: set() for row in rows}
    if rows:
        for user_id, value in session.execute(
            select(UserRole.user_id, UserRole.role).where(UserRole.user_id.in_(list(roles)))
        ):
            roles[user_id].add(Role(value))
    return [
        AccountRecord(
            id=row.id,
            username=row.username,
            display_name=row.display_name,
            kind=AccountKind(row.kind),
            roles=frozenset(roles[row.id]),
            phone=row.phone,
            patient_id=row.patient_id,
            custodial=row.custodial,
            active=row.active,
            has_password=row.password_hash is not None,
            totp_enrolled=row.totp_secret is not None,
            session_version=row.session_version,
        )
        for row in rows
    ]


def list_teams(session: Session, *, offset: int = 0, limit: int = 100) -> list[TeamRecord]:
    """Every team, by code."""
    rows = session.scalars(select(CareTeam).order_by(CareTeam.code).offset(offset).limit(limit))
    return [
        TeamRecord(
            code=row.code, name=row.name, organisation=row.organisation, created_at=row.created_at
        )
        for row in rows
    ]


def team_members(
    session: Session, team_code: str, *, include_past: bool = False
) -> list[MembershipRecord]:
    """The team's memberships (current ones only unless ``include_past``), oldest first.

    Raises:
        NotFound: no such team.
    """
    team = find_team(session, team_code)
    query = (
        select(TeamMembership, UserAccount.username)
        .join(UserAccount, UserAccount.id == TeamMembership.user_id)
        .where(TeamMembership.team_id == team.id)
        .order_by(TeamMembership.valid_from, TeamMembership.id)
    )
    if not include_past:
        query = query.where(TeamMembership.valid_to.is_(None))
    return [
        MembershipRecord(
            team_code=team.code,
            username=username,
            position=row.position,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
        )
        for row, username in session.execute(query)
    ]


def _contract(row: CareContract, team_code: str) -> ContractRecord:
    return ContractRecord(
        id=row.id,
        patient_id=row.patient_id,
        team_code=team_code,
        service_package=row.service_package,
        starts_on=row.starts_on,
        ends_on=row.ends_on,
        end_reason=row.end_reason,
    )


def list_contracts(
    session: Session,
    *,
    patient_id: str | None = None,
    team_code: str | None = None,
    open_only: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> list[ContractRecord]:
    """Contracts matching every criterion given, by patient then start (history included
    unless ``open_only``)."""
    query = (
        select(CareContract, CareTeam.code)
        .join(CareTeam, CareTeam.id == CareContract.team_id)
        .order_by(CareContract.patient_id, CareContract.starts_on, CareContract.id)
    )
    if patient_id is not None:
        query = query.where(CareContract.patient_id == patient_id)
    if team_code is not None:
        query = query.where(CareTeam.code == team_code)
    if open_only:
        query = query.where(CareContract.ends_on.is_(None))
    return [
        _contract(row, code) for row, code in session.execute(query.offset(offset).limit(limit))
    ]


def contract_by_id(session: Session, contract_id: int) -> ContractRecord:
    """The contract with row id ``contract_id``.

    Raises:
        NotFound: there is none.
    """
    row = session.execute(
        select(CareContract, CareTeam.code)
        .join(CareTeam, CareTeam.id == CareContract.team_id)
        .where(CareContract.id == contract_id)
    ).first()
    if row is None:
        raise NotFound("contract", str(contract_id))
    return _contract(row[0], row[1])


def list_shifts(
    session: Session,
    *,
    team_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 100,
) -> list[ShiftRecord]:
    """Duty shifts overlapping ``[since, until)`` (either end open), by start."""
    doctor = aliased(UserAccount)
    covered = aliased(UserAccount)
    query = (
        select(DutyShift, CareTeam.code, doctor.username, covered.username)
        .join(CareTeam, CareTeam.id == DutyShift.team_id)
        .join(doctor, doctor.id == DutyShift.doctor_user_id)
        .outerjoin(covered, covered.id == DutyShift.covers_user_id)
        .order_by(DutyShift.starts_at, DutyShift.id)
    )
    if team_code is not None:
        query = query.where(CareTeam.code == team_code)
    if since is not None:
        query = query.where(DutyShift.ends_at > aware_utc(since, "since"))
    if until is not None:
        query = query.where(DutyShift.starts_at < aware_utc(until, "until"))
    return [
        ShiftRecord(
            id=row.id,
            team_code=code,
            doctor_username=doctor_name,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            covers_username=covered_name,
        )
        for row, code, doctor_name, covered_name in session.execute(
            query.offset(offset).limit(limit)
        )
    ]


def family_links(
    session: Session, *, patient_id: str | None = None, offset: int = 0, limit: int = 100
) -> list[FamilyLinkRecord]:
    """Family links (of one patient, or all), by patient then username."""
    query = (
        select(FamilyLink, UserAccount.username)
        .join(UserAccount, UserAccount.id == FamilyLink.user_id)
        .order_by(FamilyLink.patient_id, UserAccount.username)
    )
    if patient_id is not None:
        query = query.where(FamilyLink.patient_id == patient_id)
    return [
        FamilyLinkRecord(
            patient_id=row.patient_id,
            username=username,
            relationship=row.relationship,
            created_at=row.created_at,
        )
        for row, username in session.execute(query.offset(offset).limit(limit))
    ]
