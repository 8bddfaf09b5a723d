"""The authorization matrix: relationship × action → allowed, in one pure function.

The caller's relationships to the patient come from :func:`registry.access.access_facts`.
Routes about the deployment rather than one patient (accounts, teams, the quarantine, the
audit log) are decided by role alone: :data:`ROLE_MATRIX` (role × :class:`SystemAction`),
applied by :func:`role_allows`.

The rule that keeps ids from being probed: with **no** relationship (or no such patient)
the answer is :attr:`Verdict.NOT_FOUND`; with a relationship that does not allow the action
it is :attr:`Verdict.FORBIDDEN`. The matrix is written out in ``docs/authorization.md``; a
test checks that document against :data:`MATRIX`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from registry.access import AccessFacts, Relationship
from registry.care_models import ConsentScope, Role


class Action(StrEnum):
    """What a request does with a patient's data."""

    READ_PATIENT = "read_patient"
    """Profile, conditions, latest readings."""
    READ_READINGS = "read_readings"
    READ_DEVICES = "read_devices"
    """Devices, pairing history, gateway status."""
    PAIR_DEVICE = "pair_device"
    ENTER_READING = "enter_reading"
    """A reading typed in by hand (a cuff without Bluetooth)."""
    READ_ALERTS = "read_alerts"
    ACT_ON_ALERT = "act_on_alert"
    """Acknowledge, resolve, snooze, assign."""
    EDIT_TARGETS = "edit_targets"
    MANAGE_CONSENTS = "manage_consents"
    """Invite family, grant and revoke consent."""
    EXPORT = "export"
    """Reports and exports (PDF, FHIR, CSV)."""
    READ_VISITS = "read_visits"
    """The patient's visit tasks: kind, due window, status, scheduled time."""
    MANAGE_VISITS = "manage_visits"
    """Request, schedule, complete, cancel or mark missed a visit task."""
    REVIEW_TRIAGE = "review_triage"
    """Be listed on the caller's triage view, and mark the patient reviewed (or undo it):
    the contracted team's work list, not the duty doctor's or a break-glass reader's."""
    REPORT_SYMPTOM = "report_symptom"
    """Tell the doctor of a symptom from the portal (it opens an alert)."""
    MANAGE_NOTIFICATIONS = "manage_notifications"
    """Read and change the patient's notification preferences (channel, quiet hours)."""


class Verdict(StrEnum):
    """The decision on one request."""

    ALLOW = "allow"
    NOT_FOUND = "not_found"
    """No relationship to the patient (or no such patient): answered 404."""
    FORBIDDEN = "forbidden"
    """A relationship that does not allow this action: answered 403."""


_READ: Final = frozenset({Action.READ_PATIENT, Action.READ_READINGS, Action.READ_DEVICES})
_CLINICAL_READ: Final = _READ | {Action.READ_ALERTS}

MATRIX: Final[Mapping[Relationship, frozenset[Action]]] = {
    Relationship.SELF: _CLINICAL_READ
    | {
        Action.PAIR_DEVICE,
        Action.ENTER_READING,
        Action.MANAGE_CONSENTS,
        Action.EXPORT,
        Action.READ_VISITS,
        Action.REPORT_SYMPTOM,
        Action.MANAGE_NOTIFICATIONS,
    },
    Relationship.TEAM_DOCTOR: _CLINICAL_READ
    | {
        Action.PAIR_DEVICE,
        Action.ENTER_READING,
        Action.ACT_ON_ALERT,
        Action.EDIT_TARGETS,
        Action.EXPORT,
        Action.READ_VISITS,
        Action.MANAGE_VISITS,
        Action.REVIEW_TRIAGE,
    },
    Relationship.TEAM_LEAD: _CLINICAL_READ
    | {
        Action.PAIR_DEVICE,
        Action.ENTER_READING,
        Action.ACT_ON_ALERT,
        Action.EDIT_TARGETS,
        Action.EXPORT,
        Action.READ_VISITS,
        Action.MANAGE_VISITS,
        Action.REVIEW_TRIAGE,
    },
    Relationship.TEAM_NURSE: _CLINICAL_READ
    | {
        Action.PAIR_DEVICE,
        Action.ENTER_READING,
        Action.ACT_ON_ALERT,
        Action.READ_VISITS,
        Action.MANAGE_VISITS,
        Action.REVIEW_TRIAGE,
    },
    # The duty doctor sees whether a nurse is on her way; planning visits is the team's.
    Relationship.DUTY_DOCTOR: _CLINICAL_READ | {Action.ACT_ON_ALERT, Action.READ_VISITS},
    Relationship.ESCALATION: _CLINICAL_READ | {Action.ACT_ON_ALERT},
    Relationship.BREAK_GLASS: _CLINICAL_READ,
    # Family members: what their consent's scopes give (FAMILY_SCOPES), nothing by itself.
    Relationship.FAMILY: frozenset(),
}
"""What each relationship allows by itself."""

FAMILY_SCOPES: Final[Mapping[ConsentScope, frozenset[Action]]] = {
    ConsentScope.VIEW_READINGS: _READ,
    ConsentScope.RECEIVE_ALERTS: frozenset({Action.READ_PATIENT, Action.READ_ALERTS}),
    # Acting for the patient includes knowing when the nurse comes (someone must open the door).
    # Acting for the patient includes telling the doctor how she feels and choosing how she
    # is told of non-urgent news (ConsentScope.ACT_FOR_PATIENT).
    ConsentScope.ACT_FOR_PATIENT: _READ
    | {
        Action.PAIR_DEVICE,
        Action.ENTER_READING,
        Action.READ_VISITS,
        Action.REPORT_SYMPTOM,
        Action.MANAGE_NOTIFICATIONS,
    },
}
"""What a family member may do, per consented scope."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict and the relationship it rests on (recorded in the audit row)."""

    verdict: Verdict
    basis: Relationship | None


# Which relationship to name as the basis when several allow: the most ordinary first, so
# that break-glass is recorded only when nothing else would have allowed the access.
_BASIS_ORDER: Final = (
    Relationship.SELF,
    Relationship.TEAM_DOCTOR,
    Relationship.TEAM_LEAD,
    Relationship.TEAM_NURSE,
    Relationship.FAMILY,
    Relationship.DUTY_DOCTOR,
    Relationship.ESCALATION,
    Relationship.BREAK_GLASS,
)


def allowed_actions(facts: AccessFacts) -> frozenset[Action]:
    """Every action the facts allow."""
    actions: set[Action] = set()
    for relationship in facts.relationships:
        actions |= MATRIX[relationship]
    if Relationship.FAMILY in facts.relationships:
        for scope in facts.consent_scopes:
            actions |= FAMILY_SCOPES[scope]
    return frozenset(actions)


def decide(facts: AccessFacts, action: Action) -> Decision:
    """May the actor of ``facts`` do ``action`` on the patient of ``facts`` now?"""
    if not facts.patient_exists or not facts.relationships:
        return Decision(Verdict.NOT_FOUND, None)
    for relationship in _BASIS_ORDER:
        if relationship not in facts.relationships:
            continue
        granted = MATRIX[relationship]
        if relationship is Relationship.FAMILY:
            granted = frozenset().union(*(FAMILY_SCOPES[s] for s in facts.consent_scopes))
        if action in granted:
            return Decision(Verdict.ALLOW, relationship)
    return Decision(Verdict.FORBIDDEN, None)


class SystemAction(StrEnum):
    """What a request does with the deployment itself (no single patient in the path)."""

    MANAGE_ACCOUNTS = "manage_accounts"
    """List, create, disable and enable accounts; reset a staff password."""
    MANAGE_TEAMS = "manage_teams"
    """Teams, their members and the on-call rota."""
    MANAGE_CONTRACTS = "manage_contracts"
    """Contracts (签约) between patients and teams, with history."""
    VIEW_FAMILY_LINKS = "view_family_links"
    """Which family accounts are linked to which patient, and their consents."""
    READ_AUDIT = "read_audit"
    """Query the audit log and verify its chain."""
    READ_QUARANTINE = "read_quarantine"
    """List quarantine entries (metadata only) and security events."""
    INSPECT_QUARANTINE = "inspect_quarantine"
    """One entry's raw payload, which carries health values: audited as health data."""
    RELEASE_QUARANTINE = "release_quarantine"
    """Run an entry through ingest again once its cause was fixed."""


ROLE_MATRIX: Final[Mapping[Role, frozenset[SystemAction]]] = {
    Role.ADMIN: frozenset(
        {
            SystemAction.MANAGE_ACCOUNTS,
            SystemAction.MANAGE_TEAMS,
            SystemAction.MANAGE_CONTRACTS,
            SystemAction.VIEW_FAMILY_LINKS,
            SystemAction.READ_AUDIT,
        }
    ),
    Role.IT_OPERATOR: frozenset(
        {
            SystemAction.READ_QUARANTINE,
            SystemAction.INSPECT_QUARANTINE,
            SystemAction.RELEASE_QUARANTINE,
        }
    ),
    Role.FAMILY_DOCTOR: frozenset(),
    Role.NURSE: frozenset(),
    Role.TEAM_LEAD: frozenset(),
    Role.PUBLIC_HEALTH: frozenset(),
    Role.PATIENT: frozenset(),
    Role.FAMILY: frozenset(),
}
"""What each role may do with the deployment. Administration and the quarantine are kept
apart (MLPS level 3 asks for separate system, security and audit duties): an admin never
sees a raw payload, an IT operator never changes who cares for whom."""


def role_allows(roles: frozenset[Role], action: SystemAction) -> bool:
    """Whether any of ``roles`` allows ``action``."""
    return any(action in ROLE_MATRIX[role] for role in roles)
