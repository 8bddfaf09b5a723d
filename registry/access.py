"""What ties a person to a patient at a moment: the facts the API's authorization decides on.

:func:`access_facts` reads the care model for one (account, patient, moment) and returns a
frozen :class:`AccessFacts`; :func:`visible_patient_ids` gives, for lists, every patient an
account is related to at a moment. Neither decides anything: the role × relationship ×
action matrix is one pure function in the API, fed these facts, so it can be tested as a
table without a database.

Relationships, each judged at the moment of the request:

* ``self`` — the patient's own account;
* ``team_doctor`` / ``team_nurse`` / ``team_lead`` — a current member of the team holding a
  contract with the patient that covers the day (in the patient's time zone);
* ``duty_doctor`` — on a duty shift of that team that covers the moment;
* ``family`` — linked, with a consent in force (its scopes come along);
* ``escalation`` / ``break_glass`` — an access grant in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from registry.care_models import (
    AccessGrant,
    CareContract,
    CareTeam,
    ConsentScope,
    DutyShift,
    FamilyConsent,
    FamilyLink,
    Role,
    TeamMembership,
    TeamPosition,
    UserAccount,
    UserRole,
)
from registry.clock import aware_utc
from registry.models import Patient


class Relationship(StrEnum):
    """How an account is related to a patient at a moment."""

    SELF = "self"
    TEAM_DOCTOR = "team_doctor"
    TEAM_NURSE = "team_nurse"
    TEAM_LEAD = "team_lead"
    DUTY_DOCTOR = "duty_doctor"
    FAMILY = "family"
    ESCALATION = "escalation"
    BREAK_GLASS = "break_glass"


_POSITION_RELATIONSHIP = {
    TeamPosition.DOCTOR.value: Relationship.TEAM_DOCTOR,
    TeamPosition.NURSE.value: Relationship.TEAM_NURSE,
    TeamPosition.LEAD.value: Relationship.TEAM_LEAD,
}


@dataclass(frozen=True, slots=True)
class Actor:
    """The account making a request, as the authorization sees it."""

    user_id: int
    username: str
    roles: frozenset[Role]
    active: bool
    patient_id: str | None
    """Set for a patient's own account."""


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """Everything that relates ``actor`` to ``patient_id`` at ``at``.

    ``patient_exists`` is False for an unknown id: the API answers it exactly like a patient
    that exists but is not the actor's (404), so ids cannot be probed.
    """

    actor: Actor
    patient_id: str
    at: datetime
    patient_exists: bool
    relationships: frozenset[Relationship]
    consent_scopes: frozenset[ConsentScope]
    team_codes: frozenset[str]
    """The teams under whose contract the relationship holds (for escalation and audit)."""


def load_actor(session: Session, user_id: int) -> Actor | None:
    """The account with its roles; ``None`` if it does not exist."""
    account = session.get(UserAccount, user_id)
    if account is None:
        return None
    roles = session.scalars(select(UserRole.role).where(UserRole.user_id == user_id))
    return Actor(
        user_id=account.id,
        username=account.username,
        roles=frozenset(Role(role) for role in roles),
        active=account.active,
        patient_id=account.patient_id,
    )


def _local_day(at: datetime, time_zone: str) -> date:
    return at.astimezone(ZoneInfo(time_zone)).date()


def _contract_covers(day: date) -> ColumnElement[bool]:
    return and_(
        CareContract.starts_on <= day,
        or_(CareContract.ends_on.is_(None), CareContract.ends_on > day),
    )


def access_facts(session: Session, actor: Actor, patient_id: str, at: datetime) -> AccessFacts:
    """The relationships of ``actor`` to ``patient_id`` at ``at`` (see the module docstring)."""
    moment = aware_utc(at, "at")
    patient = session.get(Patient, patient_id)
    if patient is None or not actor.active:
        return AccessFacts(
            actor=actor,
            patient_id=patient_id,
            at=moment,
            patient_exists=patient is not None,
            relationships=frozenset(),
            consent_scopes=frozenset(),
            team_codes=frozenset(),
        )
    relationships: set[Relationship] = set()
    if actor.patient_id == patient_id:
        relationships.add(Relationship.SELF)

    day = _local_day(moment, patient.time_zone)
    contract_teams = set(
        session.scalars(
            select(CareContract.team_id).where(
                CareContract.patient_id == patient_id, _contract_covers(day)
            )
        )
    )
    teams: set[str] = set()
    if contract_teams:
        positions = session.execute(
            select(TeamMembership.position, TeamMembership.team_id).where(
                TeamMembership.user_id == actor.user_id,
                TeamMembership.team_id.in_(contract_teams),
                TeamMembership.valid_from <= moment,
                or_(TeamMembership.valid_to.is_(None), TeamMembership.valid_to > moment),
            )
        ).all()
        for position, team_id in positions:
            relationships.add(_POSITION_RELATIONSHIP[position])
            teams.add(_team_code(session, team_id))
        shifts = session.scalars(
            select(DutyShift.team_id).where(
                DutyShift.doctor_user_id == actor.user_id,
                DutyShift.team_id.in_(contract_teams),
                DutyShift.starts_at <= moment,
                DutyShift.ends_at > moment,
            )
        ).all()
        if shifts:
            relationships.add(Relationship.DUTY_DOCTOR)
            teams.update(_team_code(session, team_id) for team_id in shifts)

    scopes: set[ConsentScope] = set()
    consents = session.scalars(
        select(FamilyConsent.scopes)
        .join(FamilyLink, FamilyLink.id == FamilyConsent.link_id)
        .where(
            FamilyLink.patient_id == patient_id,
            FamilyLink.user_id == actor.user_id,
            FamilyConsent.granted_at <= moment,
            or_(FamilyConsent.expires_at.is_(None), FamilyConsent.expires_at > moment),
            or_(FamilyConsent.revoked_at.is_(None), FamilyConsent.revoked_at > moment),
        )
    ).all()
    for scope_list in consents:
        scopes.update(ConsentScope(scope) for scope in scope_list.split(","))
    if scopes:
        relationships.add(Relationship.FAMILY)

    grants = session.scalars(
        select(AccessGrant.kind).where(
            AccessGrant.user_id == actor.user_id,
            AccessGrant.patient_id == patient_id,
            AccessGrant.starts_at <= moment,
            AccessGrant.ends_at > moment,
            or_(AccessGrant.revoked_at.is_(None), AccessGrant.revoked_at > moment),
        )
    ).all()
    relationships.update(Relationship(kind) for kind in grants)
    return AccessFacts(
        actor=actor,
        patient_id=patient_id,
        at=moment,
        patient_exists=True,
        relationships=frozenset(relationships),
        consent_scopes=frozenset(scopes),
        team_codes=frozenset(teams),
    )


def visible_patient_ids(session: Session, actor: Actor, at: datetime) -> set[str]:
    """Every patient ``actor`` has some relationship with at ``at`` (for lists and streams).

    Contracts are judged by the UTC day here and then confirmed per patient in its own zone
    by :func:`access_facts`, which the caller applies to what it returns.
    """
    moment = aware_utc(at, "at")
    if not actor.active:
        return set()
    found: set[str] = set()
    if actor.patient_id is not None:
        found.add(actor.patient_id)
    member_teams = select(TeamMembership.team_id).where(
        TeamMembership.user_id == actor.user_id,
        TeamMembership.valid_from <= moment,
        or_(TeamMembership.valid_to.is_(None), TeamMembership.valid_to > moment),
    )
    duty_teams = select(DutyShift.team_id).where(
        DutyShift.doctor_user_id == actor.user_id,
        DutyShift.starts_at <= moment,
        DutyShift.ends_at > moment,
    )
    # A contract's civil dates differ from UTC's by at most a day either side.
    candidates = session.scalars(
        select(CareContract.patient_id).where(
            CareContract.team_id.in_(member_teams.union(duty_teams).scalar_subquery()),
            or_(CareContract.ends_on.is_(None), CareContract.ends_on >= moment.date()),
        )
    ).all()
    found.update(candidates)
    found.update(
        session.scalars(
            select(FamilyLink.patient_id).where(FamilyLink.user_id == actor.user_id)
        ).all()
    )
    found.update(
        session.scalars(
            select(AccessGrant.patient_id).where(
                AccessGrant.user_id == actor.user_id,
                AccessGrant.starts_at <= moment,
                AccessGrant.ends_at > moment,
                AccessGrant.revoked_at.is_(None),
            )
        ).all()
    )
    return {
        patient_id
        for patient_id in found
        if access_facts(session, actor, patient_id, moment).relationships
    }


def _team_code(session: Session, team_id: int) -> str:
    team = session.get(CareTeam, team_id)
    assert team is not None
    return team.code
