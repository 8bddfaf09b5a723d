"""Who an escalation step reaches, from the care model at the moment the step runs.

* ``patient``: the patient's own account;
* ``family``: linked family members with a consent in force that includes
  ``receive_alerts`` — nobody else, whatever the step says;
* ``doctor``: the doctors of the team the patient is contracted to;
* ``duty_doctor``: the team's duty doctor in the rota at this moment (cover first);
* ``team_lead`` / ``ops``: not modelled in the care model yet, so nobody: the step is skipped
  at once and the next one is due (documented in docs/alerts.md).

A clinic-side outage (SYS incident, :mod:`alerts.incidents`) belongs to no patient: it goes
to :func:`incident_recipients`, the active accounts holding the ``it_operator`` or ``admin``
role — the people who can restart ingest or the broker, not the doctors.

Inbox messages go to the account (its username); SMS, WeChat and voice need a phone on the
account — without one the person is not reachable on that channel.

:func:`registry_message_prefs` loads the patient's notification preferences (channel, quiet
hours in their zone) for the escalation worker; the policy decides with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.escalation import Recipient
from alerts.escalation_policy import MessagePrefs
from registry.care_models import (
    CareContract,
    CareTeam,
    ConsentScope,
    Role,
    TeamMembership,
    TeamPosition,
    UserAccount,
    UserRole,
)
from registry.family import FamilyRepository
from registry.notification_prefs import NotificationPrefsRepository
from registry.teams import RotaRepository

_PHONE_CHANNELS = frozenset({"sms", "voice", "wechat"})


def _reach(account: UserAccount, channel: str) -> Recipient | None:
    if not account.active:
        return None
    if channel in _PHONE_CHANNELS:
        if not account.phone:
            return None
        return Recipient(f"user:{account.id}", account.phone)
    return Recipient(f"user:{account.id}", account.username)


def _team(session: Session, patient_id: str) -> CareTeam | None:
    return session.scalars(
        select(CareTeam)
        .join(CareContract, CareContract.team_id == CareTeam.id)
        .where(CareContract.patient_id == patient_id, CareContract.ends_on.is_(None))
    ).first()


def registry_recipients(
    session: Session, patient_id: str, audience: str, channel: str, at: datetime
) -> Sequence[Recipient]:
    """The reachable recipients of ``audience`` for ``patient_id`` at ``at``."""
    accounts: list[UserAccount] = []
    if audience == "patient":
        accounts = list(
            session.scalars(select(UserAccount).where(UserAccount.patient_id == patient_id))
        )
    elif audience == "family":
        for consent in FamilyRepository(session).consents(patient_id):
            if consent.in_force(at) and ConsentScope.RECEIVE_ALERTS in consent.scopes:
                accounts += session.scalars(
                    select(UserAccount).where(UserAccount.username == consent.family_username)
                )
    elif audience in ("doctor", "duty_doctor"):
        team = _team(session, patient_id)
        if team is None:
            return ()
        if audience == "duty_doctor":
            shift = RotaRepository(session).duty_doctor(team.code, at)
            if shift is not None:
                accounts += session.scalars(
                    select(UserAccount).where(UserAccount.username == shift.doctor_username)
                )
        else:
            accounts += session.scalars(
                select(UserAccount)
                .join(TeamMembership, TeamMembership.user_id == UserAccount.id)
                .where(
                    TeamMembership.team_id == team.id,
                    TeamMembership.position == TeamPosition.DOCTOR.value,
                    TeamMembership.valid_from <= at,
                    (TeamMembership.valid_to.is_(None)) | (TeamMembership.valid_to > at),
                )
            )
    reached = [_reach(account, channel) for account in accounts]
    return [r for r in reached if r is not None]


def registry_message_prefs(session: Session, patient_id: str) -> MessagePrefs:
    """The patient's non-urgent channel and quiet hours now (the defaults when unset)."""
    return NotificationPrefsRepository(session).message_prefs(patient_id)


INCIDENT_ROLES = frozenset({Role.IT_OPERATOR.value, Role.ADMIN.value})
"""Who is told of a clinic-side outage: IT first, the centre's administrators too."""


def incident_recipients(session: Session, channel: str) -> Sequence[Recipient]:
    """The reachable IT operators and administrators on ``channel`` (SYS incidents)."""
    accounts = session.scalars(
        select(UserAccount)
        .join(UserRole, UserRole.user_id == UserAccount.id)
        .where(UserRole.role.in_(sorted(INCIDENT_ROLES)))
        .order_by(UserAccount.id)
        .distinct()
    )
    reached = [_reach(account, channel) for account in accounts]
    return [r for r in reached if r is not None]
