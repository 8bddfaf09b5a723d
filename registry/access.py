"""What ties a person to a patient at a moment: the facts the API's authorization decides on.

:func:`access_facts` reads the care model for one (account, patient, moment) and returns a
frozen :class:`AccessFacts`; :func:`related_facts` gives the same facts, set-based, for every
patient an account is related to at a moment (lists, streams) and
:func:`visible_patient_ids` their ids. None of them decides anything: the role × relationship ×
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

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

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


def related_facts(
    session: Session, actor: Actor, at: datetime, patient_ids: Collection[str] | None = None
) -> dict[str, AccessFacts]:
    """:func:`access_facts` for every patient ``actor`` is related to at ``at``, set-based.

    Four queries however many patients there are (the actor's current teams and shifts,
    their contracts, family consents in force, access grants in force), plus one for the
    own record. Patients with no relationship are left out; ``patient_ids`` narrows the
    answer to those ids. For each patient returned the facts equal :func:`access_facts`'s.
    """
    moment = aware_utc(at, "at")
    if not actor.active:
        return {}
    wanted = None if patient_ids is None else set(patient_ids)
    relationships: dict[str, set[Relationship]] = {}
    scopes: dict[str, set[ConsentScope]] = {}
    teams: dict[str, set[str]] = {}

    def narrowed(column: InstrumentedAttribute[str]) -> list[ColumnElement[bool]]:
        return [] if wanted is None else [column.in_(wanted)]

    own = actor.patient_id
    if (
        own is not None
        and (wanted is None or own in wanted)
        and session.get(Patient, own) is not None
    ):
        relationships.setdefault(own, set()).add(Relationship.SELF)

    memberships = session.execute(
        select(TeamMembership.team_id, TeamMembership.position).where(
            TeamMembership.user_id == actor.user_id,
            TeamMembership.valid_from <= moment,
            or_(TeamMembership.valid_to.is_(None), TeamMembership.valid_to > moment),
        )
    ).all()
    duty_teams = set(
        session.scalars(
            select(DutyShift.team_id).where(
                DutyShift.doctor_user_id == actor.user_id,
                DutyShift.starts_at <= moment,
                DutyShift.ends_at > moment,
            )
        )
    )
    positions: dict[int, set[Relationship]] = {}
    for team_id, position in memberships:
        positions.setdefault(team_id, set()).add(_POSITION_RELATIONSHIP[position])
    for team_id in duty_teams:
        positions.setdefault(team_id, set()).add(Relationship.DUTY_DOCTOR)
    if positions:
        # A contract's civil dates differ from UTC's by at most a day either side: the
        # query takes that margin and each patient's own zone decides below.
        utc_day = moment.date()
        contracts = session.execute(
            select(
                CareContract.patient_id,
                CareContract.starts_on,
                CareContract.ends_on,
                Patient.time_zone,
                CareTeam.code,
                CareContract.team_id,
            )
            .join(Patient, Patient.id == CareContract.patient_id)
            .join(CareTeam, CareTeam.id == CareContract.team_id)
            .where(
                CareContract.team_id.in_(positions),
                CareContract.starts_on <= utc_day + timedelta(days=1),
                or_(
                    CareContract.ends_on.is_(None),
                    CareContract.ends_on > utc_day - timedelta(days=1),
                ),
                *narrowed(CareContract.patient_id),
            )
        ).all()
        days: dict[str, date] = {}
        for patient_id, starts_on, ends_on, time_zone, code, team_id in contracts:
            day = days.get(time_zone)
            if day is None:
                day = days[time_zone] = _local_day(moment, time_zone)
            if starts_on <= day and (ends_on is None or ends_on > day):
                relationships.setdefault(patient_id, set()).update(positions[team_id])
                teams.setdefault(patient_id, set()).add(code)

    consents = session.execute(
        select(FamilyLink.patient_id, FamilyConsent.scopes)
        .join(FamilyLink, FamilyLink.id == FamilyConsent.link_id)
        .join(Patient, Patient.id == FamilyLink.patient_id)
        .where(
            FamilyLink.user_id == actor.user_id,
            FamilyConsent.granted_at <= moment,
            or_(FamilyConsent.expires_at.is_(None), FamilyConsent.expires_at > moment),
            or_(FamilyConsent.revoked_at.is_(None), FamilyConsent.revoked_at > moment),
            *narrowed(FamilyLink.patient_id),
        )
    ).all()
    for patient_id, scope_list in consents:
        granted = {ConsentScope(scope) for scope in scope_list.split(",") if scope}
        if granted:
            scopes.setdefault(patient_id, set()).update(granted)
            relationships.setdefault(patient_id, set()).add(Relationship.FAMILY)

    grants = session.execute(
        select(AccessGrant.patient_id, AccessGrant.kind)
        .join(Patient, Patient.id == AccessGrant.patient_id)
        .where(
            AccessGrant.user_id == actor.user_id,
            AccessGrant.starts_at <= moment,
            AccessGrant.ends_at > moment,
            or_(AccessGrant.revoked_at.is_(None), AccessGrant.revoked_at > moment),
            *narrowed(AccessGrant.patient_id),
        )
    ).all()
    for patient_id, kind in grants:
        relationships.setdefault(patient_id, set()).add(Relationship(kind))

    return {
        patient_id: AccessFacts(
            actor=actor,
            patient_id=patient_id,
            at=moment,
            patient_exists=True,
            relationships=frozenset(found),
            consent_scopes=frozenset(scopes.get(patient_id, ())),
            team_codes=frozenset(teams.get(patient_id, ())),
        )
        for patient_id, found in relationships.items()
        if found
    }


def visible_patient_ids(session: Session, actor: Actor, at: datetime) -> set[str]:
    """Every patient ``actor`` has some relationship with at ``at`` (for lists and streams);
    a fixed handful of queries, see :func:`related_facts`."""
    return set(related_facts(session, actor, at))


def _team_code(session: Session, team_id: int) -> str:
    team = session.get(CareTeam, team_id)
    assert team is not None
    return team.code
