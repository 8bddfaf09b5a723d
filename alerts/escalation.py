"""The escalation worker: claims due steps from the registry and notifies, restart-safe.

The registry holds the truth (``registry.escalation_repo``); APScheduler — or a test —
only calls :meth:`EscalationWorker.run_once` on a tick. One step runs like this:

1. claim it with a lease (commit): a worker killed from here on loses the lease and the
   step is claimed again — never lost;
2. an alert acknowledged or resolved meanwhile: the step is cancelled;
   a P3/P4 message to the patient or family follows the patient's preferences read now
   (:func:`alerts.escalation_policy.dispatch`): during their quiet hours the step is given
   back, due again at the end of them (a committed due time, so a restart neither loses nor
   repeats it); with "none" it is skipped; else it goes on the patient's chosen channel.
   The doctor's inbox and every P1/P2/SYS step go at once on the policy's channel;
3. resolve the step's audiences to people at this moment (the duty doctor of the rota now;
   family only with a ``receive_alerts`` consent in force); nobody reachable: the step is
   skipped at once and the next step is due now;
4. per recipient: the notification row of its idempotency key is created or found (commit),
   the notifier sends under that key with retries, the receipt is recorded (commit) — a
   crash between send and record re-sends under the same key: delivered at least once,
   recorded once;
5. a permanent failure fails the step, makes the next due now and opens a SYS alert;
   recoverable failures that outlast the retries release the step for the next tick;
6. the step is finished (audited); the last step of a multi-step chain repeats while the
   alert stays unacknowledged. A family member's "seen" is not an acknowledgement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts.delivery import DeliveryAudit, DeliveryOutcome, deliver_once
from alerts.escalation_policy import Dispatch, MessagePrefs, dispatch, follows_patient_prefs
from alerts.lifecycle import AlertState, Decision, Transition, TransitionKind
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from alerts.notify.base import Message, Notifier
from alerts.notify.texts import render
from registry.alert_models import NotificationRow, StepStatus
from registry.alerts_repo import AlertRepository
from registry.audit import record_audit
from registry.db import session_scope
from registry.escalation_repo import (
    ClaimedStep,
    alert_still_open_unacked,
    claim_due,
    defer_step,
    finish_step,
    release_step,
)

NOTIFY_FAILED_RULE = "SYS-NOTIFY"
"""The SYS alert a permanent notifier failure opens on the patient (one open at a time)."""

DEFAULT_LEASE = timedelta(minutes=2)
"""How long a claimed step is this worker's: longer than a step's sends with their retries
(4 attempts, back-off ≤ 8 s each, 10 s timeouts), short enough that a P1 step is retried
well inside its 10-minute deadline after a crash."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person to reach: their id for the record, their address for the channel only."""

    recipient_id: str
    address: str


class Recipients(Protocol):
    """Resolves an audience of a patient to people at a moment."""

    def __call__(
        self, session: Session, patient_id: str, audience: str, channel: str, at: datetime
    ) -> Sequence[Recipient]:
        """The reachable recipients (empty: nobody reachable on this channel)."""
        ...


class MessagePrefsSource(Protocol):
    """Loads a patient's preferences for non-urgent messages (channel, quiet hours)."""

    def __call__(self, session: Session, patient_id: str) -> MessagePrefs:
        """The patient's preferences in force (the defaults when they set none)."""
        ...


class EscalationWorker:
    """Runs due escalation steps; safe to run in several processes at once."""

    def __init__(
        self,
        engine: Engine,
        *,
        notifiers: Mapping[str, Notifier],
        recipients: Recipients,
        clock: Callable[[], datetime],
        worker_id: str,
        lease: timedelta = DEFAULT_LEASE,
        sleep: Callable[[float], None] | None = None,
        message_prefs: MessagePrefsSource | None = None,
    ) -> None:
        """``message_prefs`` None: non-urgent patient messages take the policy's channel and
        no quiet hours (tests of the chains alone); the worker wiring passes the registry's."""
        self._engine = engine
        self._notifiers = notifiers
        self._recipients = recipients
        self._clock = clock
        self._worker = worker_id
        self._lease = lease
        self._sleep = sleep
        self._message_prefs = message_prefs

    def run_once(self) -> int:
        """Claim and run the steps due now; how many were claimed."""
        steps = claim_due(self._engine, worker=self._worker, now=self._clock(), lease=self._lease)
        for step in steps:
            self._run(step)
        return len(steps)

    def _run(self, step: ClaimedStep) -> None:
        with session_scope(self._engine) as session:
            if not alert_still_open_unacked(session, step.alert_id):
                self._finish(session, step, StepStatus.CANCELLED, "alert closed")
                return
            # Read only for a step they can shape: the doctor's and urgent steps need no query.
            shaped = follows_patient_prefs(step.severity, step.audiences, step.channel)
            prefs = (
                self._message_prefs(session, step.patient_id)
                if shaped and self._message_prefs is not None
                else None
            )
            plan = dispatch(step.severity, step.audiences, step.channel, prefs, self._clock())
            if plan.action is Dispatch.DEFER:
                assert plan.until is not None
                self._defer(session, step, plan.until, plan.reason)
                return
            if plan.action is Dispatch.SKIP:
                self._finish(session, step, StepStatus.SKIPPED, plan.reason)
                return
            channel = plan.channel
            people = [
                (audience, person)
                for audience in step.audiences
                for person in self._recipients(
                    session, step.patient_id, audience, channel, self._clock()
                )
            ]
            notifier = self._notifiers.get(channel)
            if not people or notifier is None:
                self._finish(session, step, StepStatus.SKIPPED, "no reachable recipient")
                return
        failed: list[str] = []
        for audience, person in people:
            outcome = self._notify(step, notifier, channel, audience, person)
            if outcome == "recoverable":
                self._release(step)
                return
            if outcome == "permanent":
                failed.append(person.recipient_id)
        with session_scope(self._engine) as session:
            if failed:
                self._finish(session, step, StepStatus.FAILED, f"permanent failure: {len(failed)}")
                self._raise_sys(session, step, channel)
            else:
                self._finish(session, step, StepStatus.DONE, f"notified {len(people)}")

    def _notify(
        self, step: ClaimedStep, notifier: Notifier, channel: str, audience: str, person: Recipient
    ) -> DeliveryOutcome:
        message = Message(
            # The channel the patient's preference chose for her message, else the step's.
            idempotency_key=f"{step.idempotency_key}:{channel}:{person.recipient_id}",
            recipient=person.recipient_id,
            address=person.address,
            subject=f"VitalGate {step.severity.value} {step.rule_id}",
            body=render(rule_id=step.rule_id, severity=step.severity.value, audience=audience),
            patient_id=step.patient_id,
            alert_id=step.alert_id,
        )
        return deliver_once(
            self._engine,
            NotificationRow,
            notifier=notifier,
            message=message,
            channel=channel,
            owner={"alert_id": step.alert_id, "step_id": step.step_id},
            audit=DeliveryAudit(
                actor=self._worker,
                delivered_action="alert.notify",
                failed_action="alert.notify_failed",
                target=f"alert:{step.alert_id}",
                patient_id=step.patient_id,
            ),
            clock=self._clock,
            sleep=self._sleep,
        )

    def _release(self, step: ClaimedStep) -> None:
        """Give a step back for the next tick (recoverable failures outlasted the retries)."""
        with session_scope(self._engine) as session:
            release_step(session, step, worker=self._worker)

    def _defer(self, session: Session, step: ClaimedStep, until: datetime, why: str) -> None:
        """Give a step back due at ``until`` (committed with the caller's transaction)."""
        if defer_step(session, step, until=until, outcome=f"deferred: {why}"):
            record_audit(
                session,
                at=self._clock(),
                actor=self._worker,
                action="alert.step_deferred",
                target=f"alert:{step.alert_id}",
                detail={"step": step.idempotency_key, "until": until.isoformat()},
                patient_ids=[step.patient_id],
            )

    def _finish(self, session: Session, step: ClaimedStep, status: StepStatus, why: str) -> None:
        now = self._clock()
        if finish_step(session, step, status=status, outcome=why, now=now):
            record_audit(
                session,
                at=now,
                actor=self._worker,
                action=f"alert.step_{status.value}",
                target=f"alert:{step.alert_id}",
                detail={"step": step.idempotency_key},
                patient_ids=[step.patient_id],
            )

    def _raise_sys(self, session: Session, step: ClaimedStep, channel: str) -> None:
        repo = AlertRepository(session)
        now = self._clock()
        if any(a.rule_id == NOTIFY_FAILED_RULE for a in repo.open_alerts(step.patient_id)):
            return
        finding = Finding(
            patient_id=step.patient_id,
            rule_id=NOTIFY_FAILED_RULE,
            rule_version=1,
            metric=Metric.SYSTEM,
            severity=Severity.SYS,
            status=FindingStatus.FIRING,
            at=now,
            reading_ids=(),
            thresholds={},
            explanation=Explanation("system.notify_failed", {"channel": channel}),
        )
        repo.record(
            Decision(
                step.patient_id,
                (
                    Transition(
                        TransitionKind.FIRE,
                        patient_id=step.patient_id,
                        rule_id=NOTIFY_FAILED_RULE,
                        at=now,
                        reason=f"permanent {channel} failure on alert {step.alert_id}",
                        alert_id=None,
                        from_state=None,
                        to_state=AlertState.FIRING,
                        severity=Severity.SYS,
                        notify=True,
                        finding=finding,
                    ),
                ),
            )
        )
