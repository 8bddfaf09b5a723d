"""Visit reminders in the registry: planned from the task, claimed, finished once.

:func:`plan` is the pure decision — which reminders a task in its current state should have:

* a scheduled visit: the nurse's reminder at 18:00 local time the day before and at 07:30
  local time on the day (each only if it falls before the visit), and the patient's SMS at
  07:30 if the patient opted in (:class:`~registry.visit_reminder_models.VisitReminderPreference`);
* an open task (requested or scheduled): one overdue reminder to the team lead at the end of
  its due window;
* a closed task: none.

:func:`sync_task` makes the rows match the plan inside the caller's transaction (the visit
repository calls it on every change of status or time): pending rows no longer planned are
superseded (a reschedule) or cancelled (a closed task), planned rows missing are inserted,
rows already done are never touched — a reminder that went out does not go out again, even
when the visit is moved back to its first time.

Workers claim due rows with the escalation steps' code (:mod:`registry.leases`):
``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional ``UPDATE`` on SQLite, with a
lease that a killed worker loses. Deliveries are logged with theirs too
(:mod:`registry.delivery_log`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from registry.db import session_scope
from registry.leases import claim_leased, finish_leased, release_leased
from registry.models import Patient
from registry.visit_models import OPEN_STATUSES, VisitStatus, VisitTask
from registry.visit_reminder_models import (
    PENDING_STATUSES,
    ReminderAudience,
    ReminderKind,
    ReminderStatus,
    VisitReminder,
    VisitReminderDelivery,
    VisitReminderPreference,
)

DAY_BEFORE_AT: Final = time(18, 0)
"""Local time of the day-before reminder: after the day's visits, while the nurse plans
tomorrow's route (and before the patient would need to be told of a change)."""
MORNING_OF_AT: Final = time(7, 30)
"""Local time of the morning reminder: before home visits start (community health centres
open at 08:00) and late enough not to wake an elderly patient."""

INBOX: Final = "inbox"
SMS: Final = "sms"


@dataclass(frozen=True, slots=True)
class TaskState:
    """What the plan needs of a task: its status, times and the patient's zone and opt-in."""

    task_id: int
    status: VisitStatus
    scheduled_at: datetime | None
    latest: datetime
    time_zone: str
    patient_sms_opt_in: bool


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    """One reminder a task should have."""

    kind: ReminderKind
    audience: ReminderAudience
    channel: str
    anchor_at: datetime
    due_at: datetime
    idempotency_key: str


def reminder_key(
    task_id: int, kind: ReminderKind, audience: ReminderAudience, anchor: datetime
) -> str:
    """The idempotency key: task, kind, audience and the time it is about (UTC)."""
    stamp = anchor.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%MZ")
    return f"visit:{task_id}:{kind.value}:{audience.value}:{stamp}"


def _local_at(day: datetime, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day.date(), at, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def _planned(
    task_id: int, kind: ReminderKind, audience: ReminderAudience, channel: str, anchor: datetime,
    due: datetime,
) -> PlannedReminder:  # fmt: skip
    return PlannedReminder(
        kind, audience, channel, anchor, due, reminder_key(task_id, kind, audience, anchor)
    )


def plan(state: TaskState) -> list[PlannedReminder]:
    """The reminders ``state`` calls for (pure; times in UTC, computed in the patient's zone)."""
    if state.status not in OPEN_STATUSES:
        return []
    planned = [
        _planned(
            state.task_id, ReminderKind.OVERDUE, ReminderAudience.TEAM_LEAD, INBOX,
            state.latest, state.latest,
        )
    ]  # fmt: skip
    at = state.scheduled_at
    if state.status is VisitStatus.SCHEDULED and at is not None:
        zone = ZoneInfo(state.time_zone)
        local = at.astimezone(zone)
        day_before = _local_at(local - timedelta(days=1), DAY_BEFORE_AT, zone)
        morning = _local_at(local, MORNING_OF_AT, zone)
        if day_before < at:
            planned.append(
                _planned(
                    state.task_id, ReminderKind.DAY_BEFORE, ReminderAudience.NURSE, INBOX, at,
                    day_before,
                )
            )  # fmt: skip
        if morning < at:
            planned.append(
                _planned(
                    state.task_id, ReminderKind.MORNING_OF, ReminderAudience.NURSE, INBOX, at,
                    morning,
                )
            )  # fmt: skip
            if state.patient_sms_opt_in:
                planned.append(
                    _planned(
                        state.task_id, ReminderKind.MORNING_OF, ReminderAudience.PATIENT, SMS,
                        at, morning,
                    )
                )  # fmt: skip
    return planned


# -- the patient's opt-in -------------------------------------------------------------------


def sms_opt_in(session: Session, patient_id: str) -> bool:
    """Whether the patient wants an SMS on the morning of a visit (default: no)."""
    row = session.get(VisitReminderPreference, patient_id)
    return bool(row is not None and row.sms_opt_in)


def set_sms_opt_in(
    session: Session, patient_id: str, opted_in: bool, *, actor: str, now: datetime
) -> None:
    """Record the patient's choice, and re-plan the reminders of the patient's open tasks."""
    row = session.get(VisitReminderPreference, patient_id)
    if row is None:
        session.add(
            VisitReminderPreference(
                patient_id=patient_id, sms_opt_in=opted_in, updated_at=now, updated_by=actor
            )
        )
    else:
        row.sms_opt_in = opted_in
        row.updated_at = now
        row.updated_by = actor
    session.flush()
    open_ids = session.scalars(
        select(VisitTask.id).where(
            VisitTask.patient_id == patient_id,
            VisitTask.status.in_([s.value for s in OPEN_STATUSES]),
        )
    )
    for task_id in list(open_ids):
        sync_task(session, session.get_one(VisitTask, task_id), now)


# -- rows follow the task -------------------------------------------------------------------


def task_state(session: Session, task: VisitTask) -> TaskState:
    """The plan's input for ``task`` as it is in this transaction."""
    patient = session.get_one(Patient, task.patient_id)
    return TaskState(
        task_id=task.id,
        status=VisitStatus(task.status),
        scheduled_at=task.scheduled_at,
        latest=task.latest,
        time_zone=patient.time_zone,
        patient_sms_opt_in=sms_opt_in(session, task.patient_id),
    )


def sync_task(session: Session, task: VisitTask, now: datetime) -> None:
    """Make the task's reminder rows match :func:`plan` (idempotent).

    A planned reminder whose time has already passed when it is first planned (a visit
    scheduled at 20:00 for the next morning has no day-before reminder) is not created; one
    planned earlier and not yet run (the worker was down) stays due and runs late.
    """
    wanted = {p.idempotency_key: p for p in plan(task_state(session, task))}
    closed = VisitStatus(task.status) not in OPEN_STATUSES
    pending = [s.value for s in PENDING_STATUSES]
    rows = {r.idempotency_key: r for r in session.scalars(
        select(VisitReminder).where(VisitReminder.task_id == task.id)
    )}  # fmt: skip
    for key, row in rows.items():
        if key in wanted:
            if row.status in (ReminderStatus.SUPERSEDED.value, ReminderStatus.CANCELLED.value):
                # Moved back to a time whose reminders had been superseded, not yet sent.
                row.status = ReminderStatus.DUE.value
                row.claimed_by = row.lease_until = row.done_at = row.outcome = None
            continue
        if row.status in pending:
            row.status = (ReminderStatus.CANCELLED if closed else ReminderStatus.SUPERSEDED).value
            row.done_at = now
            row.outcome = f"task {task.status}" if closed else "rescheduled"
            row.claimed_by = row.lease_until = None
    for key, planned in wanted.items():
        if key in rows:
            continue
        if planned.kind is not ReminderKind.OVERDUE and planned.due_at <= now:
            continue
        session.add(
            VisitReminder(
                task_id=task.id,
                kind=planned.kind.value,
                audience=planned.audience.value,
                channel=planned.channel,
                anchor_at=planned.anchor_at,
                due_at=planned.due_at,
                status=ReminderStatus.DUE.value,
                idempotency_key=key,
            )
        )
    session.flush()


def reminders_of(session: Session, task_id: int) -> list[VisitReminder]:
    """Every reminder row of a task, by due time."""
    return list(
        session.scalars(
            select(VisitReminder)
            .where(VisitReminder.task_id == task_id)
            .order_by(VisitReminder.due_at, VisitReminder.id)
        )
    )


# -- claiming and finishing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimedReminder:
    """A reminder this worker holds until ``lease_until``."""

    reminder_id: int
    task_id: int
    patient_id: str
    kind: ReminderKind
    audience: ReminderAudience
    channel: str
    anchor_at: datetime
    idempotency_key: str
    lease_until: datetime


def claim_due(
    engine: Engine, *, worker: str, now: datetime, lease: timedelta, limit: int = 20
) -> list[ClaimedReminder]:
    """Claim up to ``limit`` due reminders (or ones whose claimer's lease ran out), oldest first."""
    claimed: list[ClaimedReminder] = []
    with session_scope(engine) as session:
        rows = claim_leased(
            session, VisitReminder, worker=worker, now=now, lease=lease, limit=limit
        )
        for row in rows:
            task = session.get_one(VisitTask, row.task_id)
            claimed.append(
                ClaimedReminder(
                    reminder_id=row.id,
                    task_id=task.id,
                    patient_id=task.patient_id,
                    kind=ReminderKind(row.kind),
                    audience=ReminderAudience(row.audience),
                    channel=row.channel,
                    anchor_at=row.anchor_at,
                    idempotency_key=row.idempotency_key,
                    lease_until=now + lease,
                )
            )
    return claimed


def still_wanted(session: Session, reminder: ClaimedReminder) -> bool:
    """Whether the task still needs this reminder (not closed, not moved meanwhile)."""
    task = session.get_one(VisitTask, reminder.task_id)
    status = VisitStatus(task.status)
    if status not in OPEN_STATUSES:
        return False
    if reminder.kind is ReminderKind.OVERDUE:
        return task.latest == reminder.anchor_at
    return status is VisitStatus.SCHEDULED and task.scheduled_at == reminder.anchor_at


def finish(
    session: Session,
    reminder: ClaimedReminder,
    *,
    status: ReminderStatus,
    outcome: str,
    now: datetime,
) -> bool:
    """Close a claimed reminder; False when this worker no longer holds it (nothing changed)."""
    return finish_leased(
        session,
        VisitReminder,
        reminder.reminder_id,
        lease_until=reminder.lease_until,
        status=status.value,
        outcome=outcome,
        now=now,
    )


def release(session: Session, reminder: ClaimedReminder, *, worker: str) -> None:
    """Give a reminder back for the next tick (recoverable failures outlasted the retries)."""
    release_leased(
        session,
        VisitReminder,
        reminder.reminder_id,
        worker=worker,
        lease_until=reminder.lease_until,
    )


# -- the delivery log (:mod:`registry.delivery_log`) -----------------------------------------


def deliveries(session: Session) -> Sequence[VisitReminderDelivery]:
    """The whole delivery log, oldest first (operators, tests)."""
    return list(session.scalars(select(VisitReminderDelivery).order_by(VisitReminderDelivery.id)))
