"""Escalation steps and notifications in the registry: scheduled, claimed, finished once.

A step is a row with its due time, a status and a unique idempotency key
(``alert:<id>:step:<n>:<repeat>``). Workers claim due steps atomically — ``SELECT … FOR
UPDATE SKIP LOCKED`` on PostgreSQL, a conditional ``UPDATE … WHERE status = 'due'`` on SQLite
(one writer at a time) — with a lease: a worker killed mid-step loses its lease and another
(or the restarted one) claims the step again. Notifications are keyed too, so the re-run sends
again under the same key and the row is recorded once: at least once delivered, exactly once
recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from alerts.escalation_policy import chain_for
from alerts.model import Severity
from registry.alert_models import (
    AlertRow,
    EscalationStep,
    NotificationRow,
    NotificationStatus,
    StepStatus,
)
from registry.db import session_scope


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
    claimable = or_(
        EscalationStep.status == StepStatus.DUE.value,
        (EscalationStep.status == StepStatus.CLAIMED.value) & (EscalationStep.lease_until <= now),
    )
    claimed: list[ClaimedStep] = []
    with session_scope(engine) as session:
        query = (
            select(EscalationStep.id)
            .where(claimable, EscalationStep.due_at <= now)
            .order_by(EscalationStep.due_at, EscalationStep.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for step_id in list(session.scalars(query)):
            won = session.execute(
                update(EscalationStep)
                .where(EscalationStep.id == step_id, claimable)
                .values(status=StepStatus.CLAIMED.value, claimed_by=worker, lease_until=now + lease)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                continue
            step = session.get_one(EscalationStep, step_id)
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
    done = session.execute(
        update(EscalationStep)
        .where(
            EscalationStep.id == step.step_id,
            EscalationStep.status == StepStatus.CLAIMED.value,
            EscalationStep.lease_until == step.lease_until,
        )
        .values(status=status.value, done_at=now, outcome=outcome)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
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


def begin_notification(
    session: Session,
    *,
    key: str,
    alert_id: int,
    step_id: int | None,
    channel: str,
    recipient: str,
    now: datetime,
) -> NotificationRow:
    """The notification row of ``key``: created once, its attempt count raised each time."""
    row = session.scalars(
        select(NotificationRow).where(NotificationRow.idempotency_key == key)
    ).first()
    if row is None:
        row = NotificationRow(
            idempotency_key=key,
            alert_id=alert_id,
            step_id=step_id,
            channel=channel,
            recipient=recipient,
            status=NotificationStatus.SENDING.value,
            attempts=0,
            created_at=now,
        )
        session.add(row)
    if row.status != NotificationStatus.DELIVERED.value:
        row.attempts += 1
    session.flush()
    return row


def settle_notification(
    session: Session,
    key: str,
    *,
    delivered: bool,
    receipt: str | None,
    error: str | None,
    now: datetime,
) -> None:
    """Record the outcome of a notification (the channel's receipt, or the error)."""
    session.execute(
        update(NotificationRow)
        .where(NotificationRow.idempotency_key == key)
        .values(
            status=(NotificationStatus.DELIVERED if delivered else NotificationStatus.FAILED).value,
            delivered_at=now if delivered else None,
            receipt=receipt,
            error=error,
        )
    )
