"""Escalation chains per rule and severity, from CLINICAL table (a) (design proposals).

A chain is a tuple of :class:`Step` values, each due ``after`` the alert fired if nobody has
acknowledged it by then. When the chain has more than one step its last step repeats every
``repeat_every`` until someone acknowledges (Grafana OnCall's ``repeat_escalation``); a
chain without ``repeat_every`` (P3, P4, SYS, B2, H1) notifies once and relies on the repeat
interval of the lifecycle.

The patient's notification preferences shape only the *non-urgent* messages to the patient
and family (P3/P4 on SMS, WeChat or voice): :func:`dispatch` decides, at the moment a step
runs, whether it goes now, on which channel, or waits for the end of the patient's quiet
hours. The doctors' steps and every P1, P2 and SYS step (urgent stale CGM among them) keep
the policy's channel and go at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

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
_NON_URGENT_MESSAGE: Final = Step(_NOW, (Audience.PATIENT,), Channel.SMS)
"""The patient's own message of a P3/P4 alert (what to do, e.g. book the follow-up). SMS is
only the default: the patient's non-urgent channel replaces it when the step runs, and their
quiet hours may hold it back (:func:`dispatch`). Family are not messaged for P3/P4: like P2,
which reaches family only after 30 min unacknowledged, follow-up tiers stay with the patient.
It is the last step of its chains, so its skip ("none", no phone) or its wait moves no other
step's deadline."""
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
            _NON_URGENT_MESSAGE,
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
    # P3/P4: the doctor's inbox at once, whatever the hour; the patient's message may wait.
    Severity.P3: Chain((Step(_NOW, (Audience.DOCTOR,), Channel.INBOX), _NON_URGENT_MESSAGE), None),
    Severity.P4: Chain((Step(_NOW, (Audience.DOCTOR,), Channel.INBOX), _NON_URGENT_MESSAGE), None),
    Severity.SYS: Chain((Step(_NOW, (Audience.PATIENT, Audience.OPS), Channel.INBOX),), None),
}


def chain_for(rule_id: str, severity: Severity) -> Chain:
    """The chain of an alert: P1 always takes the P1 chain (an upgraded B1 pages like G1)."""
    if severity is Severity.P1:
        return _P1
    return CHAINS.get(rule_id, BY_SEVERITY[severity])


NON_URGENT_SEVERITIES: Final = frozenset({Severity.P3, Severity.P4})
"""Tiers whose patient/family messages follow the patient's preferences. P1, P2 and SYS —
S1's urgent stale CGM among them — always go at once on the policy's channel."""

PATIENT_SIDE: Final = frozenset({Audience.PATIENT.value, Audience.FAMILY.value})
"""Whose night quiet hours protect: the patient's, and the family's messages about them."""

MESSAGE_CHANNELS: Final = frozenset({Channel.SMS.value, Channel.WECHAT.value, Channel.VOICE.value})
"""Channels that reach a phone. The in-app inbox is read when the app is opened, so it is
never held back and never replaced."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """The patient's quiet hours in their own zone, e.g. 22:00–07:00 Asia/Shanghai.

    The start is inside, the end is not; a start after the end spans midnight.
    """

    start: time
    end: time
    zone: str

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls inside the quiet hours (they may span midnight)."""
        local = now.astimezone(ZoneInfo(self.zone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def hold_until(self, now: datetime) -> datetime | None:
        """The end (aware UTC) of the quiet hours ``now`` falls in; None outside them."""
        if not self.contains(now):
            return None
        zone = ZoneInfo(self.zone)
        local = now.astimezone(zone)
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)  # 23:00 of a 22:00–07:00 night ends tomorrow morning
        # A local end that a DST change skips or repeats still maps to one instant outside
        # the quiet hours (fold 0), so a held message is never held twice.
        return datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class MessagePrefs:
    """The patient's preferences for non-urgent messages, as the escalation needs them."""

    channel: Channel | None
    """SMS or WeChat; None: the patient wants no non-urgent message (the portal still shows
    the alert, and the doctor's inbox is told as always)."""
    quiet_hours: QuietHours | None


DEFAULT_MESSAGE_PREFS: Final = MessagePrefs(Channel.SMS, None)
"""A patient who set nothing (``registry.notification_prefs.DEFAULT_CHANNEL``)."""


class Dispatch(StrEnum):
    """What a due step does now."""

    SEND = "send"
    DEFER = "defer"
    """Wait: due again at ``until`` (the end of the patient's quiet hours)."""
    SKIP = "skip"
    """The patient chose no non-urgent messages: finished without a send."""


@dataclass(frozen=True, slots=True)
class StepDispatch:
    """The decision for one due step: what, on which channel, until when."""

    action: Dispatch
    channel: str
    until: datetime | None = None
    reason: str = ""


def follows_patient_prefs(severity: Severity, audiences: Collection[str], channel: str) -> bool:
    """Whether a step is a non-urgent message to the patient side (prefs apply to it)."""
    return (
        severity in NON_URGENT_SEVERITIES
        and bool(audiences)
        and set(audiences) <= PATIENT_SIDE
        and channel in MESSAGE_CHANNELS
    )


def dispatch(
    severity: Severity,
    audiences: Collection[str],
    channel: str,
    prefs: MessagePrefs | None,
    now: datetime,
) -> StepDispatch:
    """How a step of an alert of ``severity`` goes out at ``now``, given the patient's prefs.

    Only a non-urgent message to the patient side (:func:`follows_patient_prefs`) is shaped:
    skipped when the patient chose no channel, held to the end of their quiet hours, else
    sent on their channel. Everything else — the doctor's inbox, every P1/P2/SYS step — is
    sent now on the policy's ``channel``. ``prefs`` None: nothing known, the policy's way.
    """
    if prefs is None or not follows_patient_prefs(severity, audiences, channel):
        return StepDispatch(Dispatch.SEND, channel)
    if prefs.channel is None:
        return StepDispatch(Dispatch.SKIP, channel, reason="patient chose no non-urgent messages")
    until = None if prefs.quiet_hours is None else prefs.quiet_hours.hold_until(now)
    if until is not None:
        return StepDispatch(Dispatch.DEFER, prefs.channel.value, until, "quiet hours")
    return StepDispatch(Dispatch.SEND, prefs.channel.value)
