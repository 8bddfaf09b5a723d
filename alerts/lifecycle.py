"""The alert lifecycle as a pure function: findings in, transitions out.

:func:`decide` is given one patient's :class:`~alerts.model.Finding` values from one
evaluation, the patient's open alerts, the silences in force, the patient's monitoring status
and ``now``, and answers with frozen :class:`Transition` values; the registry
records them (``registry.alerts_repo``) and the escalation worker notifies. Nothing here reads
a clock, a database or a broker, so the rules below are tested exhaustively
(``tests/alerts/test_lifecycle_stateful.py``).

States: pending → firing → acknowledged → resolved. The rules, in the order they apply:

* a patient whose monitoring status is not ``active`` (hospitalised, deceased …) gets no
  alert; each suppressed finding is a recorded ``suppressed`` transition so the pause is
  visible, and open alerts resolve with the pause as the reason (no escalation runs on);
* one open alert per patient + rule: a finding updates the open alert, never opens a second;
* findings are taken most urgent first, so a P1 raised in the same evaluation already mutes
  the P2/P3 of its metric (grouping per patient: one :class:`Decision` per evaluation);
* inhibition (CLINICAL table (a)): an open P1 mutes P2/P3 of the same metric; stale data
  (S1, S3) mutes the missing-reading reminder (S2); an acknowledged G1 mutes G2 and G6 for
  30 minutes. Muted alerts are still opened and recorded; only their notification waits;
* a silence (snooze) names patient, metric, tier, author, reason and expiry and mutes
  findings of that tier or a lower one — a higher tier breaks through;
* quiet hours are not a mute here: the alert fires and the doctor's inbox is told at once;
  only the P3/P4 messages to the patient and family wait for the end of the patient's quiet
  hours, decided when their escalation step runs (:func:`alerts.escalation_policy.dispatch`);
* a firing alert not muted is notified again after its severity's repeat interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from alerts.model import Finding, FindingStatus, Metric, Severity


class LifecycleError(Exception):
    """Root of the alert lifecycle's errors: a request the safety rules refuse."""


class AlertState(StrEnum):
    """Where an alert is in its life."""

    PENDING = "pending"
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN_STATES: Final = frozenset({AlertState.PENDING, AlertState.FIRING, AlertState.ACKNOWLEDGED})


class TransitionKind(StrEnum):
    """What a transition does; each becomes one append-only alert event."""

    OPEN_PENDING = "open_pending"
    FIRE = "fire"
    UPGRADE = "upgrade"
    """A firing alert's finding became more urgent (B1 with symptoms: P2 → P1)."""
    RENOTIFY = "renotify"
    RESOLVE = "resolve"
    ACKNOWLEDGE = "acknowledge"
    SUPPRESS = "suppress"
    """A finding dropped because monitoring is paused: recorded so the pause is visible."""


REPEAT_INTERVAL: Final[dict[Severity, timedelta]] = {
    # P1 repeats every 15 min like Nightscout's urgent-low re-alarm (CLINICAL table (a) G6
    # "repeat every 15 min"); escalation steps page further people on their own deadlines.
    Severity.P1: timedelta(minutes=15),
    # P2 is "urgent, same day": once an hour keeps it visible without crying wolf.
    Severity.P2: timedelta(hours=1),
    # P3 is follow-up within two weeks, P4 a review: a daily / weekly reminder is enough.
    Severity.P3: timedelta(days=1),
    Severity.P4: timedelta(days=7),
    # SYS: Alertmanager's default repeat_interval (4 h), CLINICAL §3.
    Severity.SYS: timedelta(hours=4),
}
"""How long after its last notification a still-firing, unacknowledged alert notifies again."""

MAX_P1_SILENCE: Final = timedelta(hours=2)
"""Longest silence on a P1 tier (design choice: covers a home visit or a clinic stay of the
patient; longer means the patient is not at home and their status should say so)."""

MAX_SILENCE: Final = timedelta(days=14)
"""Longest silence on any tier: P3's follow-up horizon (CLINICAL table (a))."""

ACKED_G1_MUTES: Final = frozenset({"G2", "G6"})
ACKED_G1_FOR: Final = timedelta(minutes=30)
"""CLINICAL table (a): an acknowledged G1 mutes G2/G6 for 30 min (the treated low is
expected to read low-ish and forecast low while the sugar acts)."""

STALE_RULES: Final = frozenset({"S1", "S3"})
MISSING_READING_RULES: Final = frozenset({"S2"})
"""Stale data (CGM silent, gateway offline) explains a missing reading: S1/S3 mute S2."""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert of the patient not yet resolved, as the lifecycle needs it."""

    alert_id: str
    patient_id: str
    rule_id: str
    metric: Metric
    severity: Severity
    state: AlertState
    opened_at: datetime
    acknowledged_at: datetime | None = None
    last_notified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """A snooze: mutes the patient's findings on ``metric`` at ``severity`` or a lower tier."""

    silence_id: str
    patient_id: str
    metric: Metric
    severity: Severity
    author: str
    reason: str
    starts_at: datetime
    ends_at: datetime

    def covers(self, finding: Finding, now: datetime) -> bool:
        """Whether this silence mutes ``finding`` at ``now`` (a higher tier breaks through)."""
        return (
            self.patient_id == finding.patient_id
            and self.metric == finding.metric
            and self.starts_at <= now < self.ends_at
            and finding.severity.rank >= self.severity.rank
        )


def make_silence(
    *,
    silence_id: str,
    patient_id: str,
    metric: Metric,
    severity: Severity,
    author: str,
    reason: str,
    starts_at: datetime,
    ends_at: datetime,
) -> Silence:
    """A validated silence: author and reason required, expiry required and capped.

    Raises:
        LifecycleError: no author or reason, an end not after the start, or longer than
            :data:`MAX_P1_SILENCE` on P1 (:data:`MAX_SILENCE` otherwise).
    """
    if not author.strip() or not reason.strip():
        raise LifecycleError("a silence needs an author and a reason")
    if ends_at <= starts_at:
        raise LifecycleError("a silence must end after it starts")
    cap = MAX_P1_SILENCE if severity is Severity.P1 else MAX_SILENCE
    if ends_at - starts_at > cap:
        raise LifecycleError(f"a {severity.value} silence may last at most {cap}")
    return Silence(silence_id, patient_id, metric, severity, author, reason, starts_at, ends_at)


def refuse_disable(severity: Severity) -> None:
    """Raise when a rule of ``severity`` may not be switched off for a patient (P1)."""
    if severity is Severity.P1:
        raise LifecycleError("P1 rules cannot be disabled for a patient; silence them instead")


@dataclass(frozen=True, slots=True)
class MonitoringStatus:
    """The patient's monitoring status in force (``registry.care_models.PatientStatus``)."""

    status: str
    since: datetime | None = None

    @property
    def paused(self) -> bool:
        """Anything but ``active`` pauses alerting."""
        return self.status != "active"


ACTIVE: Final = MonitoringStatus("active")


@dataclass(frozen=True, slots=True)
class Transition:
    """One change to one alert, with who (the engine) and why."""

    kind: TransitionKind
    patient_id: str
    rule_id: str
    at: datetime
    reason: str
    alert_id: str | None
    """None for an alert this transition opens (the registry assigns the id)."""
    from_state: AlertState | None
    to_state: AlertState | None
    severity: Severity
    notify: bool = False
    """Whether a notification (and the escalation chain) goes out now."""
    muted_by: str | None = None
    """What held the notification back: ``inhibited:<rule>`` or ``silence:<id>``."""
    finding: Finding | None = None
    actor: str = "engine"
    since: datetime | None = None
    """For a suppression: when the cause began (a clinic-side outage's start); None: the
    patient's monitoring status's own ``since``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The transitions of one patient's evaluation; notifications are grouped per patient."""

    patient_id: str
    transitions: tuple[Transition, ...]

    @property
    def to_notify(self) -> tuple[Transition, ...]:
        """The transitions that go out in this patient's one grouped notification."""
        return tuple(t for t in self.transitions if t.notify)


def _inhibitor(finding: Finding, open_alerts: Sequence[OpenAlert], now: datetime) -> str | None:
    for alert in open_alerts:
        if alert.patient_id != finding.patient_id or alert.rule_id == finding.rule_id:
            continue
        if (
            alert.severity is Severity.P1
            and alert.metric == finding.metric
            and finding.severity in (Severity.P2, Severity.P3)
            and alert.state in (AlertState.FIRING, AlertState.ACKNOWLEDGED)
        ):
            return f"inhibited:{alert.rule_id}"
        if alert.rule_id in STALE_RULES and finding.rule_id in MISSING_READING_RULES:
            return f"inhibited:{alert.rule_id}"
        if (
            alert.rule_id == "G1"
            and finding.rule_id in ACKED_G1_MUTES
            and alert.acknowledged_at is not None
            and now < alert.acknowledged_at + ACKED_G1_FOR
        ):
            return f"inhibited:{alert.rule_id}"
    return None


def mute_reason(
    finding: Finding,
    open_alerts: Sequence[OpenAlert],
    silences: Sequence[Silence],
    now: datetime,
) -> str | None:
    """What mutes ``finding``'s notification at ``now``, or None when it may go out.

    Quiet hours are deliberately not a reason: a mute holds back the whole notification —
    the doctor's inbox too — and a muted fire schedules no escalation, so nothing would ever
    deliver it afterwards. They shape the patient's own messages instead
    (:func:`alerts.escalation_policy.dispatch`).
    """
    inhibitor = _inhibitor(finding, open_alerts, now)
    if inhibitor is not None:
        return inhibitor
    for silence in silences:
        if silence.covers(finding, now):
            return f"silence:{silence.silence_id}"
    return None


def _due_again(alert: OpenAlert, now: datetime) -> bool:
    if alert.state is not AlertState.FIRING:
        return False
    if alert.last_notified_at is None:
        return True
    return now >= alert.last_notified_at + REPEAT_INTERVAL[alert.severity]


def _one(
    finding: Finding,
    alert: OpenAlert | None,
    mute: str | None,
    now: datetime,
) -> Transition | None:
    base = {
        "patient_id": finding.patient_id,
        "rule_id": finding.rule_id,
        "at": now,
        "severity": finding.severity,
        "finding": finding,
        "muted_by": mute,
    }
    if finding.status is FindingStatus.CLEAR:
        if alert is None:
            return None
        reason = "cleared before confirming" if alert.state is AlertState.PENDING else "all clear"
        return Transition(
            TransitionKind.RESOLVE,
            reason=reason,
            alert_id=alert.alert_id,
            from_state=alert.state,
            to_state=AlertState.RESOLVED,
            **base,  # type: ignore[arg-type]
        )
    if finding.status is FindingStatus.PENDING:
        if alert is not None:
            return None
        return Transition(
            TransitionKind.OPEN_PENDING,
            reason="awaiting confirmation",
            alert_id=None,
            from_state=None,
            to_state=AlertState.PENDING,
            **base,  # type: ignore[arg-type]
        )
    notify = mute is None
    if alert is None or alert.state is AlertState.PENDING:
        reason = "confirmed" if finding.confirmed else "confirmation deadline passed: unconfirmed"
        return Transition(
            TransitionKind.FIRE,
            reason=reason,
            alert_id=None if alert is None else alert.alert_id,
            from_state=None if alert is None else alert.state,
            to_state=AlertState.FIRING,
            notify=notify,
            **base,  # type: ignore[arg-type]
        )
    if finding.severity.rank < alert.severity.rank:
        return Transition(
            TransitionKind.UPGRADE,
            reason=f"more urgent: {alert.severity.value} → {finding.severity.value}",
            alert_id=alert.alert_id,
            from_state=alert.state,
            to_state=AlertState.FIRING,
            notify=notify,
            **base,  # type: ignore[arg-type]
        )
    if notify and _due_again(alert, now):
        return Transition(
            TransitionKind.RENOTIFY,
            reason="still firing: repeat interval passed",
            alert_id=alert.alert_id,
            from_state=alert.state,
            to_state=alert.state,
            notify=True,
            **base,  # type: ignore[arg-type]
        )
    return None


def _suppress(finding: Finding, status: MonitoringStatus, now: datetime) -> Transition:
    return Transition(
        TransitionKind.SUPPRESS,
        patient_id=finding.patient_id,
        rule_id=finding.rule_id,
        at=now,
        reason=f"monitoring paused: {status.status}",
        alert_id=None,
        from_state=None,
        to_state=None,
        severity=finding.severity,
        finding=finding,
    )


OUTAGE_REASON: Final = "clinic-side outage"
"""The reason recorded for S1–S3 held back during the clinic's own downtime."""


def outage_suppression(finding: Finding, *, outage_start: datetime, now: datetime) -> Transition:
    """A stale/missing-data finding held back because the clinic itself was down.

    Recorded like a paused patient's finding (one ``alert_suppressions`` row per patient,
    rule and outage, counted), so the pages can say "S3 held back during the outage"; the
    patient's open alerts are left as they are — the outage says nothing about them.
    """
    return Transition(
        TransitionKind.SUPPRESS,
        patient_id=finding.patient_id,
        rule_id=finding.rule_id,
        at=now,
        reason=OUTAGE_REASON,
        alert_id=None,
        from_state=None,
        to_state=None,
        severity=finding.severity,
        finding=finding,
        since=outage_start,
    )


def decide(
    patient_id: str,
    findings: Sequence[Finding],
    open_alerts: Sequence[OpenAlert],
    *,
    silences: Sequence[Silence] = (),
    status: MonitoringStatus = ACTIVE,
    now: datetime,
) -> Decision:
    """The transitions one evaluation of one patient causes.

    Args:
        patient_id: the patient; findings and alerts of other patients are ignored.
        findings: this evaluation's findings (any order; urgent ones are taken first).
        open_alerts: the patient's alerts not yet resolved (at most one per rule).
        silences: silences of this patient (expired ones are ignored).
        status: the monitoring status in force at ``now``.
        now: the evaluation instant, aware UTC.

    Returns:
        The transitions, in the order they are to be recorded.
    """
    mine = [f for f in findings if f.patient_id == patient_id]
    # One finding per rule: the latest of an evaluation wins, urgent rules decided first.
    by_rule: dict[str, Finding] = {}
    for finding in mine:
        by_rule[finding.rule_id] = finding
    ordered = sorted(by_rule.values(), key=lambda f: (f.severity.rank, f.rule_id))
    current = {a.rule_id: a for a in open_alerts if a.patient_id == patient_id}
    out: list[Transition] = []
    if status.paused:
        for finding in ordered:
            if finding.status is not FindingStatus.CLEAR:
                out.append(_suppress(finding, status, now))
        for paused in sorted(current.values(), key=lambda a: a.rule_id):
            out.append(
                Transition(
                    TransitionKind.RESOLVE,
                    patient_id=patient_id,
                    rule_id=paused.rule_id,
                    at=now,
                    reason=f"monitoring paused: {status.status}",
                    alert_id=paused.alert_id,
                    from_state=paused.state,
                    to_state=AlertState.RESOLVED,
                    severity=paused.severity,
                )
            )
        return Decision(patient_id, tuple(out))
    for finding in ordered:
        alert = current.get(finding.rule_id)
        mute = mute_reason(finding, list(current.values()), silences, now)
        transition = _one(finding, alert, mute, now)
        if transition is None:
            continue
        out.append(transition)
        current = _apply(current, transition, alert)
    return Decision(patient_id, tuple(out))


def _apply(
    current: dict[str, OpenAlert], transition: Transition, alert: OpenAlert | None
) -> dict[str, OpenAlert]:
    """The open alerts after ``transition`` (so later findings see a P1 opened just now)."""
    updated = dict(current)
    if transition.to_state is AlertState.RESOLVED:
        updated.pop(transition.rule_id, None)
        return updated
    assert transition.finding is not None
    assert transition.to_state is not None
    finding = transition.finding
    if alert is None:
        updated[transition.rule_id] = OpenAlert(
            alert_id=f"new:{transition.rule_id}",
            patient_id=transition.patient_id,
            rule_id=transition.rule_id,
            metric=finding.metric,
            severity=finding.severity,
            state=transition.to_state,
            opened_at=transition.at,
            last_notified_at=transition.at if transition.notify else None,
        )
    else:
        updated[transition.rule_id] = replace(
            alert,
            state=transition.to_state,
            severity=min(alert.severity, finding.severity, key=lambda s: s.rank),
            last_notified_at=transition.at if transition.notify else alert.last_notified_at,
        )
    return updated


def acknowledge(alert: OpenAlert, *, actor: str, note: str, now: datetime) -> Transition:
    """A person acknowledges a firing alert: escalation stops, G1's 30-minute mute starts.

    Raises:
        LifecycleError: the alert is not firing (pending alerts have nothing to acknowledge
            yet; acknowledged and resolved ones are done).
    """
    if alert.state is not AlertState.FIRING:
        raise LifecycleError(f"only a firing alert can be acknowledged (it is {alert.state})")
    if not actor.strip():
        raise LifecycleError("an acknowledgement needs the person who made it")
    return Transition(
        TransitionKind.ACKNOWLEDGE,
        patient_id=alert.patient_id,
        rule_id=alert.rule_id,
        at=now,
        reason=note,
        alert_id=alert.alert_id,
        from_state=alert.state,
        to_state=AlertState.ACKNOWLEDGED,
        severity=alert.severity,
        actor=actor,
    )


def resolve_by_hand(alert: OpenAlert, *, actor: str, note: str, now: datetime) -> Transition:
    """A doctor closes an open alert with a note (e.g. "seen at home visit")."""
    if not actor.strip() or not note.strip():
        raise LifecycleError("resolving by hand needs the person and a note")
    return Transition(
        TransitionKind.RESOLVE,
        patient_id=alert.patient_id,
        rule_id=alert.rule_id,
        at=now,
        reason=note,
        alert_id=alert.alert_id,
        from_state=alert.state,
        to_state=AlertState.RESOLVED,
        severity=alert.severity,
        actor=actor,
    )
