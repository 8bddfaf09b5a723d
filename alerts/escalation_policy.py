"""Escalation chains per rule and severity, from CLINICAL table (a) (design proposals).

A chain is a tuple of :class:`Step` values, each due ``after`` the alert fired if nobody has
acknowledged it by then. When the chain has more than one step its last step repeats every
``repeat_every`` until someone acknowledges (Grafana OnCall's ``repeat_escalation``); a
one-step chain (P3, P4, SYS) notifies once and relies on the repeat interval of the
lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from alerts.model import Severity


class Audience(StrEnum):
    """Who a step reaches; resolved to people at the moment the step runs."""

    PATIENT = "patient"
    FAMILY = "family"
    """Family members with a consent in force that includes ``receive_alerts``."""
    DOCTOR = "doctor"
    """The patient's contracted team (in-app inbox)."""
    DUTY_DOCTOR = "duty_doctor"
    """The team's duty doctor from the rota at the moment of the page (cover first)."""
    TEAM_LEAD = "team_lead"
    OPS = "ops"


class Channel(StrEnum):
    """How a step reaches them."""

    INBOX = "inbox"
    SMS = "sms"
    WECHAT = "wechat"
    VOICE = "voice"
    EMAIL = "email"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class Step:
    """Reach ``audiences`` on ``channel`` once the alert is ``after`` old and unacknowledged."""

    after: timedelta
    audiences: tuple[Audience, ...]
    channel: Channel


@dataclass(frozen=True, slots=True)
class Chain:
    """An escalation chain and how often its last step repeats (None: never)."""

    steps: tuple[Step, ...]
    repeat_every: timedelta | None


_NOW = timedelta(0)
_P1: Final = Chain(
    (
        Step(_NOW, (Audience.PATIENT, Audience.FAMILY, Audience.DOCTOR), Channel.INBOX),
        Step(_NOW, (Audience.PATIENT, Audience.FAMILY), Channel.SMS),
        # Table (a) G1/G4: unacknowledged 10 min → phone the family; 20 min → duty doctor.
        Step(timedelta(minutes=10), (Audience.FAMILY,), Channel.VOICE),
        Step(timedelta(minutes=20), (Audience.DUTY_DOCTOR,), Channel.VOICE),
    ),
    # Keep paging the duty doctor every 10 min: a P1 must not go quiet while unacknowledged.
    timedelta(minutes=10),
)
_FIRST_P2: Final = Step(_NOW, (Audience.PATIENT, Audience.DOCTOR), Channel.INBOX)

CHAINS: Final[dict[str, Chain]] = {
    # G2: 30 min unacknowledged → family (table (a)).
    "G2": Chain((_FIRST_P2, Step(timedelta(minutes=30), (Audience.FAMILY,), Channel.SMS)), None),
    # G3: 2 h → duty doctor.
    "G3": Chain(
        (_FIRST_P2, Step(timedelta(hours=2), (Audience.DUTY_DOCTOR,), Channel.SMS)),
        timedelta(hours=2),
    ),
    # G6: forecast low, patient/family; repeats every 15 min.
    "G6": Chain(
        (Step(_NOW, (Audience.PATIENT, Audience.FAMILY), Channel.INBOX),),
        timedelta(minutes=15),
    ),
    # B2: 72 h → team lead; H1: 24 h → team lead.
    "B2": Chain(
        (
            Step(_NOW, (Audience.DOCTOR,), Channel.INBOX),
            Step(timedelta(hours=72), (Audience.TEAM_LEAD,), Channel.INBOX),
        ),
        None,
    ),
    "H1": Chain(
        (
            Step(_NOW, (Audience.DOCTOR,), Channel.INBOX),
            Step(timedelta(hours=24), (Audience.TEAM_LEAD,), Channel.INBOX),
        ),
        None,
    ),
}
"""Rule-specific chains; other rules take their severity's chain."""

BY_SEVERITY: Final[dict[Severity, Chain]] = {
    Severity.P1: _P1,
    # B1, B3, R1, O1 at P2: 1 h unacknowledged → duty doctor (table (a)); T1: 2 h.
    Severity.P2: Chain(
        (_FIRST_P2, Step(timedelta(hours=1), (Audience.DUTY_DOCTOR,), Channel.SMS)),
        timedelta(hours=1),
    ),
    Severity.P3: Chain((Step(_NOW, (Audience.DOCTOR,), Channel.INBOX),), None),
    Severity.P4: Chain((Step(_NOW, (Audience.DOCTOR,), Channel.INBOX),), None),
    Severity.SYS: Chain((Step(_NOW, (Audience.PATIENT, Audience.OPS), Channel.INBOX),), None),
}


def chain_for(rule_id: str, severity: Severity) -> Chain:
    """The chain of an alert: P1 always takes the P1 chain (an upgraded B1 pages like G1)."""
    if severity is Severity.P1:
        return _P1
    return CHAINS.get(rule_id, BY_SEVERITY[severity])
