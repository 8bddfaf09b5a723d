"""Escalation steps and notifications in the registry: scheduled, claimed, finished once.

A step is a row with its due time, a status and a unique idempotency key
(``alert:<id>:step:<n>:<repeat>``). Workers claim due steps atomically — ``SELECT … FOR
UPDATE SKIP LOCKED`` on PostgreSQL, a conditional ``UPDATE … WHERE status = 'due'`` on SQLite
(one writer at a time) — with a lease: a worker killed mid-step loses its lease and another
(or the restarted one) claims the step again (:mod:`registry.leases`, shared with the visit
reminders). Notifications are keyed too (:mod:`registry.delivery_log`), so the re-run sends
again under the same key and the row is recorded once: at least once delivered, exactly once
recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts.escalation_policy import chain_for
from alerts.model import Severity
from registry.alert_models import (
    AlertRow,
    EscalationStep,
    StepStatus,
)
from registry.db import session_scope
from registry.leases import claim_leased, finish_leased, release_leased


@dataclass(frozen=True, slots=True)
class ClaimedStep:
    """A step this worker holds until ``lease_until``."""

    step_id: int
    alert_id: int
    patient_id: str
    rule_id: str
    severity: Severity
    step_no: int
    repeat_no: int
    audiences: tuple[str, ...]
    channel: str
    idempotency_key: str
    lease_until: datetime


def step_key(alert_id: int, step_no: int, repeat_no: int) -> str:
    """The idempotency key of a step."""
    return f"alert:{alert_id}:step:{step_no}:{repeat_no}"


def schedule_chain(session: Session, alert: AlertRow, fired_at: datetime) -> None:
    """Insert the alert's chain as due steps (once: existing keys are left as they are)."""
    chain = chain_for(alert.rule_id, Severity(alert.severity))
    existing = set(
        session.scalars(
            select(EscalationStep.idempotency_key).where(EscalationStep.alert_id == alert.id)
        )
    )
    for number, step in enumerate(chain.steps):
        key = step_key(alert.id, number, 0)
        if key in existing:
            continue
        session.add(
            EscalationStep(
                alert_id=alert.id,
                step_no=number,
                repeat_no=0,
                audience=",".join(a.value for a in step.audiences),
                channel=step.channel.value,
                due_at=fired_at + step.after,
                status=StepStatus.DUE.value,
                idempotency_key=key,
            )
        )
    session.flush()


def cancel_steps(session: Session, alert_id: int, at: datetime) -> None:
    """Cancel the alert's steps not yet done (acknowledged or resolved)."""
    session.execute(
        update(EscalationStep)
        .where(
            EscalationStep.alert_id == alert_id,
            EscalationStep.status.in_([StepStatus.DUE.value, StepStatus.CLAIMED.value]),
        )
        .values(status=StepStatus.CANCELLED.value, done_at=at, outcome="alert closed")
    )


def claim_due(
    engine: Engine, *, worker: str, now: datetime, lease: timedelta, limit: int = 20
) -> list[ClaimedStep]:
    """Claim up to ``limit`` due steps (or steps whose claimer's lease ran out), oldest first."""
    claimed: list[ClaimedStep] = []
    with session_scope(engine) as session:
        rows = claim_leased(
            session, EscalationStep, worker=worker, now=now, lease=lease, limit=limit
        )
        for step in rows:
            alert = session.get_one(AlertRow, step.alert_id)
            claimed.append(
                ClaimedStep(
                    step_id=step.id,
                    alert_id=alert.id,
                    patient_id=alert.patient_id,
                    rule_id=alert.rule_id,
                    severity=Severity(alert.severity),
                    step_no=step.step_no,
                    repeat_no=step.repeat_no,
                    audiences=tuple(step.audience.split(",")),
                    channel=step.channel,
                    idempotency_key=step.idempotency_key,
                    lease_until=now + lease,
                )
            )
    return claimed


def alert_still_open_unacked(session: Session, alert_id: int) -> bool:
    """Whether the alert still needs escalating (firing: neither acknowledged nor resolved)."""
    row = session.get_one(AlertRow, alert_id)
    return row.state == "firing"


def finish_step(
    session: Session,
    step: ClaimedStep,
    *,
    status: StepStatus,
    outcome: str,
    now: datetime,
) -> bool:
    """Close a claimed step; on skip/failure the next step is due now; the last step repeats.

    Returns False when this worker no longer holds the step (its lease ran out and another
    worker took it): then nothing is changed.
    """
    if not finish_leased(
        session,
        EscalationStep,
        step.step_id,
        lease_until=step.lease_until,
        status=status.value,
        outcome=outcome,
        now=now,
    ):
        return False
    if status in (StepStatus.SKIPPED, StepStatus.FAILED):
        # Nobody reached: don't wait for the next step's deadline.
        session.execute(
            update(EscalationStep)
            .where(
                EscalationStep.alert_id == step.alert_id,
                EscalationStep.step_no > step.step_no,
                EscalationStep.status == StepStatus.DUE.value,
                EscalationStep.due_at > now,
            )
            .values(due_at=now)
        )
    chain = chain_for(step.rule_id, step.severity)
    last = len(chain.steps) - 1
    if (
        step.step_no == last
        and chain.repeat_every is not None
        and len(chain.steps) > 1
        and alert_still_open_unacked(session, step.alert_id)
    ):
        key = step_key(step.alert_id, last, step.repeat_no + 1)
        exists = session.scalars(
            select(EscalationStep.id).where(EscalationStep.idempotency_key == key)
        ).first()
        if exists is None:
            template = session.get_one(EscalationStep, step.step_id)
            session.add(
                EscalationStep(
                    alert_id=step.alert_id,
                    step_no=last,
                    repeat_no=step.repeat_no + 1,
                    audience=template.audience,
                    channel=template.channel,
                    due_at=now + chain.repeat_every,
                    status=StepStatus.DUE.value,
                    idempotency_key=key,
                )
            )
    return True


def defer_step(session: Session, step: ClaimedStep, *, until: datetime, outcome: str) -> bool:
    """Give a claimed step back, due again at ``until`` (the end of the patient's quiet hours).

    Same row, same idempotency key: whichever worker claims it at ``until`` sends it once.
    Returns False when this worker no longer holds the step (then nothing is changed).
    """
    done = session.execute(
        update(EscalationStep)
        .where(
            EscalationStep.id == step.step_id,
            EscalationStep.status == StepStatus.CLAIMED.value,
            EscalationStep.lease_until == step.lease_until,
        )
        .values(
            status=StepStatus.DUE.value,
            claimed_by=None,
            lease_until=None,
            due_at=until,
            outcome=outcome,
        )
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def release_step(session: Session, step: ClaimedStep, *, worker: str) -> None:
    """Give a step back for the next tick (recoverable failures outlasted the retries)."""
    release_leased(
        session, EscalationStep, step.step_id, worker=worker, lease_until=step.lease_until
    )
