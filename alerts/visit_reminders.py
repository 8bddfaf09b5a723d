"""The visit-reminder worker: claims due reminder rows from the registry and notifies, once.

The registry holds every reminder (:mod:`registry.visit_reminders`); APScheduler — or a
test — only calls :meth:`VisitReminderWorker.run_once`. One reminder runs like the
escalation worker's step (:mod:`alerts.escalation`):

1. claim it with a lease (commit): a worker killed from here on loses the lease and the
   reminder is claimed again — never lost;
2. the task closed or moved meanwhile: the reminder is cancelled (the rows of the new time
   carry the reminder now);
3. resolve the audience now: the task's assignee (in-app inbox), the team lead(s) of the
   patient's team (inbox), the patient (SMS, only with the opt-in still on and a phone);
   nobody reachable: skipped;
4. per recipient: the delivery row of its key is created or found (commit), the notifier
   sends under that key with retries, the receipt is recorded (commit) — a crash between
   send and record re-sends under the same key: delivered at least once, recorded once;
5. the reminder is finished and audited.

Texts carry the least data: the pseudonymous visit code, the kind of visit, the local time
and the community — never a name, an address, a diagnosis or the reason for the visit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.delivery import DeliveryAudit, DeliveryOutcome, deliver_once
from alerts.escalation import DEFAULT_LEASE, Recipient
from alerts.notify.base import Message, Notifier
from registry.audit import record_audit
from registry.care_models import (
    CareContract,
    Role,
    TeamMembership,
    TeamPosition,
    UserAccount,
    UserRole,
)
from registry.db import session_scope
from registry.models import Patient
from registry.visit_models import VisitKind, VisitTask
from registry.visit_reminder_models import (
    ReminderAudience,
    ReminderKind,
    ReminderStatus,
    VisitReminderDelivery,
)
from registry.visit_reminders import (
    ClaimedReminder,
    claim_due,
    finish,
    release,
    sms_opt_in,
    still_wanted,
)

KIND_LABELS: Final[dict[VisitKind, str]] = {
    # The calendar feed's words (dashboard_api/routes/calendar.py): one name per kind.
    VisitKind.HOME_VISIT: "上门随访",
    VisitKind.PHONE: "电话随访",
    VisitKind.CLINIC: "门诊随访",
}


def local_time_label(at: datetime, time_zone: str) -> str:
    """``12月4日 09:30`` in the patient's zone (where the visit happens)."""
    local = at.astimezone(ZoneInfo(time_zone))
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def reminder_text(
    kind: ReminderKind,
    audience: ReminderAudience,
    *,
    code: str,
    visit_kind: VisitKind,
    when: str,
    community: str | None,
) -> tuple[str, str]:
    """Subject and body (zh-CN) of a reminder: code, kind of visit, time, community only."""
    label = KIND_LABELS[visit_kind]
    place = f"，{community}" if community else ""
    if kind is ReminderKind.OVERDUE:
        return (
            f"访视逾期 {code}",
            f"【VitalGate】访视任务 {code}（{label}{place}）已过截止时间 {when}，"
            "仍未完成。请安排或改派。",
        )
    if audience is ReminderAudience.PATIENT:
        return (
            f"访视提醒 {code}",
            f"【VitalGate】您的家庭医生团队将于 {when} 为您进行{label}（编号 {code}）。"
            "如需改期，请联系您的家庭医生团队。",
        )
    day = "明日" if kind is ReminderKind.DAY_BEFORE else "今日"
    return (
        f"{day}访视 {code}",
        f"【VitalGate】{day}访视提醒：{code}，{label}，{when}{place}。请在应用中查看任务。",
    )


def _active(accounts: Sequence[UserAccount]) -> list[UserAccount]:
    return [a for a in accounts if a.active]


def team_leads(session: Session, patient_id: str, at: datetime) -> list[UserAccount]:
    """The leads of the patient's team at ``at``: members in the lead position, or members
    holding the team-lead role (a centre may record either)."""
    team_id = session.scalars(
        select(CareContract.team_id).where(
            CareContract.patient_id == patient_id, CareContract.ends_on.is_(None)
        )
    ).first()
    if team_id is None:
        return []
    in_team = (
        select(UserAccount)
        .join(TeamMembership, TeamMembership.user_id == UserAccount.id)
        .where(
            TeamMembership.team_id == team_id,
            TeamMembership.valid_from <= at,
            (TeamMembership.valid_to.is_(None)) | (TeamMembership.valid_to > at),
        )
    )
    by_position = session.scalars(
        in_team.where(TeamMembership.position == TeamPosition.LEAD.value)
    ).all()
    by_role = session.scalars(
        in_team.join(UserRole, UserRole.user_id == UserAccount.id).where(
            UserRole.role == Role.TEAM_LEAD.value
        )
    ).all()
    unique = {a.id: a for a in [*by_position, *by_role]}
    return _active([unique[k] for k in sorted(unique)])


def reminder_recipients(
    session: Session, reminder: ClaimedReminder, at: datetime
) -> list[Recipient]:
    """Who ``reminder`` reaches now (empty: nobody reachable)."""
    task = session.get_one(VisitTask, reminder.task_id)
    if reminder.audience is ReminderAudience.NURSE:
        if task.assignee is None:
            return []
        nurses = session.scalars(
            select(UserAccount).where(UserAccount.username == task.assignee)
        ).all()
        return [Recipient(f"user:{a.id}", a.username) for a in _active(nurses)]
    if reminder.audience is ReminderAudience.TEAM_LEAD:
        return [
            Recipient(f"user:{a.id}", a.username) for a in team_leads(session, task.patient_id, at)
        ]
    if not sms_opt_in(session, task.patient_id):
        return []
    account = session.scalars(
        select(UserAccount).where(UserAccount.patient_id == task.patient_id)
    ).first()
    patient = session.get_one(Patient, task.patient_id)
    phone = account.phone if account is not None and account.phone else patient.phone
    return [Recipient(f"patient:{task.patient_id}", phone)] if phone else []


def _message_text(session: Session, reminder: ClaimedReminder) -> tuple[str, str]:
    task = session.get_one(VisitTask, reminder.task_id)
    patient = session.get_one(Patient, task.patient_id)
    return reminder_text(
        reminder.kind,
        reminder.audience,
        code=task.code,
        visit_kind=VisitKind(task.kind),
        when=local_time_label(reminder.anchor_at, patient.time_zone),
        community=patient.community,
    )


class VisitReminderWorker:
    """Runs due visit reminders; safe to run in several processes at once."""

    def __init__(
        self,
        engine: Engine,
        *,
        notifiers: Mapping[str, Notifier],
        clock: Callable[[], datetime],
        worker_id: str,
        lease: timedelta = DEFAULT_LEASE,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._engine = engine
        self._notifiers = notifiers
        self._clock = clock
        self._worker = worker_id
        self._lease = lease
        self._sleep = sleep

    def run_once(self, now: datetime | None = None) -> int:
        """Claim and run the reminders due at ``now`` (default: the clock); how many."""
        at = self._clock() if now is None else now
        reminders = claim_due(self._engine, worker=self._worker, now=at, lease=self._lease)
        for reminder in reminders:
            self._run(reminder, at)
        return len(reminders)

    def _run(self, reminder: ClaimedReminder, at: datetime) -> None:
        with session_scope(self._engine) as session:
            if not still_wanted(session, reminder):
                self._finish(session, reminder, ReminderStatus.CANCELLED, "task changed", at)
                return
            people = reminder_recipients(session, reminder, at)
            notifier = self._notifiers.get(reminder.channel)
            if not people or notifier is None:
                self._finish(session, reminder, ReminderStatus.SKIPPED, "nobody reachable", at)
                return
            subject, body = _message_text(session, reminder)
        failed = 0
        for person in people:
            outcome = self._notify(reminder, notifier, person, subject, body)
            if outcome == "recoverable":
                with session_scope(self._engine) as session:
                    release(session, reminder, worker=self._worker)
                return
            failed += outcome == "permanent"
        with session_scope(self._engine) as session:
            if failed:
                self._finish(
                    session, reminder, ReminderStatus.FAILED, f"permanent failure: {failed}", at
                )
            else:
                self._finish(session, reminder, ReminderStatus.DONE, f"notified {len(people)}", at)

    def _notify(
        self,
        reminder: ClaimedReminder,
        notifier: Notifier,
        person: Recipient,
        subject: str,
        body: str,
    ) -> DeliveryOutcome:
        message = Message(
            idempotency_key=f"{reminder.idempotency_key}:{reminder.channel}:{person.recipient_id}",
            recipient=person.recipient_id,
            address=person.address,
            subject=subject,
            body=body,
            patient_id=reminder.patient_id,
            alert_id=None,
        )
        return deliver_once(
            self._engine,
            VisitReminderDelivery,
            notifier=notifier,
            message=message,
            channel=reminder.channel,
            owner={"reminder_id": reminder.reminder_id},
            audit=DeliveryAudit(
                actor=self._worker,
                delivered_action="visit.remind",
                failed_action="visit.remind_failed",
                target=f"visit:{reminder.task_id}",
                patient_id=reminder.patient_id,
            ),
            clock=self._clock,
            sleep=self._sleep,
        )

    def _finish(
        self,
        session: Session,
        reminder: ClaimedReminder,
        status: ReminderStatus,
        why: str,
        at: datetime,
    ) -> None:
        if finish(session, reminder, status=status, outcome=why, now=at):
            record_audit(
                session,
                at=at,
                actor=self._worker,
                action=f"visit.reminder_{status.value}",
                target=f"visit:{reminder.task_id}",
                detail={"reminder": reminder.idempotency_key},
                patient_ids=[reminder.patient_id],
            )
