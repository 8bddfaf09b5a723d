"""Visit tasks in the registry: open, assign, schedule, complete, cancel, miss — each change
one append-only :class:`~registry.visit_models.VisitTaskEvent` with who and why.

:class:`VisitRepository` works inside the caller's transaction. One open task per patient +
reason: :meth:`VisitRepository.open` returns the open task when there is one (``created`` is
False), and the database's partial unique index settles a race between two writers (the
loser gets the winner's task). An alert that resolves leaves its task alone: whether a
scheduled visit is still needed is the nurse's decision, not the rule's. Every change of
status or time re-plans the task's reminder rows (:mod:`registry.visit_reminders`) in the
same transaction, so no task is ever scheduled without its reminders.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.access import Relationship, access_facts, load_actor
from registry.care_lookup import find_account, find_patient
from registry.clock import Clock, aware_utc, utc_now
from registry.errors import InvalidRegistryInput, NotFound, RegistryError
from registry.visit_models import (
    OPEN_STATUSES,
    ReasonKind,
    VisitKind,
    VisitRecord,
    VisitStatus,
    VisitTask,
    VisitTaskEvent,
)
from registry.visit_policy import FollowUpClass, Programme, may_move, next_follow_up
from registry.visit_reminders import sync_task

MAX_NOTE_LENGTH = 2000
"""A request note or reason is a sentence or two; a page of text belongs in the record."""


class VisitStateError(RegistryError):
    """The task is not in a status that allows the change (e.g. completing a cancelled task).

    Attributes:
        task_id: the task.
        status: its current status.
        wanted: the status the change would move it to.
    """

    def __init__(self, task_id: int, status: str, wanted: str) -> None:
        super().__init__(f"visit task {task_id} is {status}: it cannot become {wanted}")
        self.task_id = task_id
        self.status = status
        self.wanted = wanted


def new_visit_code() -> str:
    """A fresh pseudonymous visit code: ``V-`` and 10 base-32 characters (50 random bits)."""
    return "V-" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:10]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a task exists, and what makes two tasks "for the same reason"."""

    kind: ReasonKind
    key: str
    alert_id: int | None = None
    rule_id: str | None = None
    note: str = ""

    @classmethod
    def alert(
        cls, alert_id: int, rule_id: str, *, by_doctor: bool = False, note: str = ""
    ) -> Reason:
        """For an alert: opened by its rule, or by a doctor from it (the same reason key)."""
        kind = ReasonKind.DOCTOR_REQUEST if by_doctor else ReasonKind.ALERT
        return cls(kind, f"rule:{rule_id}", alert_id, rule_id, note)

    @classmethod
    def doctor_request(cls, kind: VisitKind, note: str) -> Reason:
        """A doctor's request not tied to an alert; one open per patient and visit kind."""
        return cls(ReasonKind.DOCTOR_REQUEST, f"request:{kind.value}", note=note)

    @classmethod
    def routine(cls, key: str, note: str = "") -> Reason:
        """A follow-up of the service package (``routine:hypertension``, ``referral:…``)."""
        return cls(ReasonKind.ROUTINE, key, note=note)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A visit task as stored."""

    id: int
    code: str
    patient_id: str
    reason_kind: ReasonKind
    reason_key: str
    alert_id: int | None
    rule_id: str | None
    note: str
    kind: VisitKind
    priority: int
    earliest: datetime
    latest: datetime
    assignee: str | None
    status: VisitStatus
    scheduled_at: datetime | None
    created_at: datetime
    created_by: str
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class TaskEventRecord:
    """One change of a task."""

    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    actor: str
    reason: str
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class Opened:
    """What :meth:`VisitRepository.open` did: the task, and whether it is new."""

    task: TaskRecord
    created: bool


@dataclass(frozen=True, slots=True)
class VisitInput:
    """What the nurse records when completing a task (the vitals are already stored)."""

    check_in_at: datetime
    check_out_at: datetime
    consent: bool
    assessment: str
    reading_ids: Sequence[str] = ()
    programme: Programme | None = None
    classification: FollowUpClass | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """A completed task, and the follow-up task its classification opened (if any)."""

    task: TaskRecord
    next_task: TaskRecord | None
    referral: bool = False


def _record(row: VisitTask) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        code=row.code,
        patient_id=row.patient_id,
        reason_kind=ReasonKind(row.reason_kind),
        reason_key=row.reason_key,
        alert_id=row.alert_id,
        rule_id=row.rule_id,
        note=row.note,
        kind=VisitKind(row.kind),
        priority=row.priority,
        earliest=row.earliest,
        latest=row.latest,
        assignee=row.assignee,
        status=VisitStatus(row.status),
        scheduled_at=row.scheduled_at,
        created_at=row.created_at,
        created_by=row.created_by,
        closed_at=row.closed_at,
    )


def _text(value: str, field_name: str, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidRegistryInput(field_name, "say why (it goes into the task's history)")
    if len(value) > MAX_NOTE_LENGTH:
        raise InvalidRegistryInput(field_name, f"at most {MAX_NOTE_LENGTH} characters")
    return value


_OPEN = tuple(status.value for status in OPEN_STATUSES)


class VisitRepository:
    """Visit tasks of the registry, inside one transaction."""

    def __init__(
        self,
        session: Session,
        *,
        clock: Clock = utc_now,
        code_factory: Callable[[], str] = new_visit_code,
    ) -> None:
        self._session = session
        self._clock = clock
        self._code = code_factory

    # -- reading ------------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord:
        """The task ``task_id``.

        Raises:
            NotFound: no such task.
        """
        return _record(self._row(task_id))

    def open_task(self, patient_id: str, reason_key: str) -> TaskRecord | None:
        """The patient's open task for ``reason_key``, if any."""
        row = self._open_row(patient_id, reason_key)
        return None if row is None else _record(row)

    def tasks_of_patient(self, patient_id: str) -> list[TaskRecord]:
        """Every task of the patient, newest first."""
        rows = self._session.scalars(
            select(VisitTask)
            .where(VisitTask.patient_id == patient_id)
            .order_by(VisitTask.id.desc())
        )
        return [_record(row) for row in rows]

    def tasks_of_alert(self, alert_id: int) -> list[TaskRecord]:
        """The tasks opened for an alert (so the doctor sees each alert's task and outcome)."""
        rows = self._session.scalars(
            select(VisitTask).where(VisitTask.alert_id == alert_id).order_by(VisitTask.id)
        )
        return [_record(row) for row in rows]

    def queue(self, patient_ids: Collection[str]) -> list[TaskRecord]:
        """The open tasks of ``patient_ids``: most urgent first, then the earliest deadline."""
        if not patient_ids:
            return []
        rows = self._session.scalars(
            select(VisitTask)
            .where(VisitTask.patient_id.in_(list(patient_ids)), VisitTask.status.in_(_OPEN))
            .order_by(VisitTask.priority, VisitTask.latest, VisitTask.id)
        )
        return [_record(row) for row in rows]

    def scheduled_for(self, assignee: str, start: datetime, end: datetime) -> list[TaskRecord]:
        """``assignee``'s scheduled tasks with a time in ``[start, end)``, in time order."""
        rows = self._session.scalars(
            select(VisitTask)
            .where(
                VisitTask.assignee == assignee,
                VisitTask.status == VisitStatus.SCHEDULED.value,
                VisitTask.scheduled_at >= aware_utc(start, "start"),
                VisitTask.scheduled_at < aware_utc(end, "end"),
            )
            .order_by(VisitTask.scheduled_at, VisitTask.id)
        )
        return [_record(row) for row in rows]

    def history(self, task_id: int) -> list[TaskEventRecord]:
        """Every change of the task, oldest first."""
        self._row(task_id)
        rows = self._session.scalars(
            select(VisitTaskEvent)
            .where(VisitTaskEvent.task_id == task_id)
            .order_by(VisitTaskEvent.id)
        )
        return [
            TaskEventRecord(
                r.at, r.kind, r.from_status, r.to_status, r.actor, r.reason, json.loads(r.details)
            )
            for r in rows
        ]

    def record_of(self, task_id: int) -> VisitRecord | None:
        """The visit record of a completed task."""
        return self._session.get(VisitRecord, task_id)

    # -- changing -----------------------------------------------------------------------

    def open(
        self,
        patient_id: str,
        reason: Reason,
        *,
        kind: VisitKind,
        priority: int,
        earliest: datetime,
        latest: datetime,
        actor: str,
        assignee: str | None = None,
    ) -> Opened:
        """Open a task, or return the patient's open task for the same reason.

        Raises:
            NotFound: unknown patient.
            InvalidRegistryInput: an empty window, a priority outside 1–3, an assignee who is
                not a nurse of the patient's team.
        """
        find_patient(self._session, patient_id)
        earliest = aware_utc(earliest, "earliest")
        latest = aware_utc(latest, "latest")
        if latest <= earliest:
            raise InvalidRegistryInput("latest", "the due window ends before it starts")
        if priority not in (1, 2, 3):
            raise InvalidRegistryInput("priority", "1 (most urgent), 2 or 3")
        note = _text(reason.note, "note", required=False)
        existing = self._open_row(patient_id, reason.key)
        if existing is not None:
            return Opened(_record(existing), created=False)
        now = self._clock()
        if assignee is not None:
            self._require_team_nurse(patient_id, assignee, now)
        row = VisitTask(
            code=self._code(),
            patient_id=patient_id,
            reason_kind=reason.kind.value,
            reason_key=reason.key,
            alert_id=reason.alert_id,
            rule_id=reason.rule_id,
            note=note,
            kind=kind.value,
            priority=priority,
            earliest=earliest,
            latest=latest,
            assignee=assignee,
            status=VisitStatus.REQUESTED.value,
            scheduled_at=None,
            created_at=now,
            created_by=actor,
            closed_at=None,
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
                self._session.flush()
        except IntegrityError:
            winner = self._open_row(patient_id, reason.key)
            if winner is None:
                raise
            return Opened(_record(winner), created=False)
        details: dict[str, object] = {"reason_key": reason.key, "kind": kind.value}
        if assignee is not None:
            details["assignee"] = assignee
        self._event(row, "opened", None, VisitStatus.REQUESTED, actor, note, details, now)
        sync_task(self._session, row, now)
        return Opened(_record(row), created=True)

    def assign(self, task_id: int, nurse: str, *, actor: str, reason: str) -> TaskRecord:
        """Give an open task to ``nurse`` (a nurse of the patient's team)."""
        row = self._open_task_row(task_id, "assigned")
        now = self._clock()
        self._require_team_nurse(row.patient_id, nurse, now)
        before = row.assignee
        row.assignee = nurse
        status = VisitStatus(row.status)
        self._event(
            row,
            "assigned",
            status,
            status,
            actor,
            _text(reason, "reason", required=False),
            {"from": before, "to": nurse},
            now,
        )
        return _record(row)

    def schedule(
        self, task_id: int, at: datetime, *, actor: str, reason: str, assignee: str | None = None
    ) -> TaskRecord:
        """Schedule (or reschedule) the visit at ``at``; a reschedule needs a reason.

        The time may fall outside the due window (the patient may only be home later); the
        queue shows such a task as late, and the history says why.
        """
        at = aware_utc(at, "at")
        row = self._row(task_id)
        current = VisitStatus(row.status)
        self._require_move(row, VisitStatus.SCHEDULED)
        rescheduling = current is VisitStatus.SCHEDULED
        why = _text(reason, "reason", required=rescheduling)
        now = self._clock()
        if assignee is not None:
            self._require_team_nurse(row.patient_id, assignee, now)
            row.assignee = assignee
        if row.assignee is None:
            raise InvalidRegistryInput("assignee", "schedule the visit for a nurse of the team")
        details: dict[str, object] = {
            "scheduled_at": at.isoformat(),
            "assignee": row.assignee,
        }
        if row.scheduled_at is not None:
            details["previous"] = row.scheduled_at.isoformat()
        row.status = VisitStatus.SCHEDULED.value
        row.scheduled_at = at
        kind = "rescheduled" if rescheduling else "scheduled"
        self._event(row, kind, current, VisitStatus.SCHEDULED, actor, why, details, now)
        sync_task(self._session, row, now)
        return _record(row)

    def cancel(self, task_id: int, *, actor: str, reason: str) -> TaskRecord:
        """Cancel an open task, with a reason."""
        return self._close(task_id, VisitStatus.CANCELLED, actor, reason)

    def miss(self, task_id: int, *, actor: str, reason: str) -> TaskRecord:
        """Record a scheduled visit that did not happen (patient not home, refused …)."""
        return self._close(task_id, VisitStatus.MISSED, actor, reason)

    def complete(self, task_id: int, visit: VisitInput, *, actor: str) -> Completion:
        """Close a scheduled task with its visit record; a 基本公卫 follow-up opens the next.

        Raises:
            VisitStateError: the task is not scheduled.
            InvalidRegistryInput: check-out before check-in, a classification without a
                programme (or the other way round), no consent to the visit.
        """
        row = self._row(task_id)
        self._require_move(row, VisitStatus.COMPLETED)
        check_in = aware_utc(visit.check_in_at, "check_in_at")
        check_out = aware_utc(visit.check_out_at, "check_out_at")
        if check_out < check_in:
            raise InvalidRegistryInput("check_out_at", "check-out is before check-in")
        if (visit.programme is None) != (visit.classification is None):
            raise InvalidRegistryInput(
                "classification", "a follow-up classification needs its programme, and back"
            )
        if not visit.consent:
            raise InvalidRegistryInput(
                "consent", "without the patient's consent record the visit as missed instead"
            )
        assessment = _text(visit.assessment, "assessment", required=False)
        now = self._clock()
        previous = (
            self._previous_classification(row.patient_id, visit.programme)
            if visit.programme is not None
            else None
        )
        row.status = VisitStatus.COMPLETED.value
        row.closed_at = now
        self._session.flush()
        sync_task(self._session, row, now)
        record = VisitRecord(
            task_id=row.id,
            patient_id=row.patient_id,
            check_in_at=check_in,
            check_out_at=check_out,
            consent=visit.consent,
            assessment=assessment,
            programme=None if visit.programme is None else visit.programme.value,
            classification=None if visit.classification is None else visit.classification.value,
            reading_ids=json.dumps(list(visit.reading_ids)),
            next_task_id=None,
            recorded_by=actor,
            recorded_at=now,
        )
        self._session.add(record)
        self._session.flush()
        next_task: TaskRecord | None = None
        referral = False
        details: dict[str, object] = {"readings": len(visit.reading_ids)}
        if visit.programme is not None and visit.classification is not None:
            follow = next_follow_up(
                visit.programme,
                visit.classification,
                previous=previous,
                kind=VisitKind(row.kind),
                at=check_out,
            )
            opened = self.open(
                row.patient_id,
                Reason.routine(follow.reason_key, note=f"follow-up of {row.code}"),
                kind=follow.kind,
                priority=follow.priority,
                earliest=follow.earliest,
                latest=follow.latest,
                actor=actor,
                assignee=self._still_team_nurse(row.patient_id, row.assignee, now),
            )
            next_task = opened.task
            referral = follow.referral
            record.next_task_id = next_task.id
            details.update(
                classification=visit.classification.value,
                next_task=next_task.code,
                referral=referral,
            )
        self._event(
            row,
            "completed",
            VisitStatus.SCHEDULED,
            VisitStatus.COMPLETED,
            actor,
            assessment,
            details,
            now,
        )
        return Completion(_record(row), next_task, referral)

    # -- internals ----------------------------------------------------------------------

    def _row(self, task_id: int) -> VisitTask:
        row = self._session.get(VisitTask, task_id)
        if row is None:
            raise NotFound("visit task", str(task_id))
        return row

    def _open_row(self, patient_id: str, reason_key: str) -> VisitTask | None:
        return self._session.scalars(
            select(VisitTask).where(
                VisitTask.patient_id == patient_id,
                VisitTask.reason_key == reason_key,
                VisitTask.status.in_(_OPEN),
            )
        ).first()

    def _open_task_row(self, task_id: int, wanted: str) -> VisitTask:
        row = self._row(task_id)
        if VisitStatus(row.status) not in OPEN_STATUSES:
            raise VisitStateError(task_id, row.status, wanted)
        return row

    def _require_move(self, row: VisitTask, target: VisitStatus) -> None:
        if not may_move(VisitStatus(row.status), target):
            raise VisitStateError(row.id, row.status, target.value)

    def _close(self, task_id: int, target: VisitStatus, actor: str, reason: str) -> TaskRecord:
        row = self._row(task_id)
        current = VisitStatus(row.status)
        self._require_move(row, target)
        why = _text(reason, "reason", required=True)
        now = self._clock()
        row.status = target.value
        row.closed_at = now
        self._event(row, target.value, current, target, actor, why, {}, now)
        sync_task(self._session, row, now)
        return _record(row)

    def _previous_classification(
        self, patient_id: str, programme: Programme
    ) -> FollowUpClass | None:
        value = self._session.scalars(
            select(VisitRecord.classification)
            .where(VisitRecord.patient_id == patient_id, VisitRecord.programme == programme.value)
            .order_by(VisitRecord.check_out_at.desc(), VisitRecord.task_id.desc())
            .limit(1)
        ).first()
        return None if value is None else FollowUpClass(value)

    def _is_team_nurse(self, patient_id: str, username: str, at: datetime) -> bool:
        account = find_account(self._session, username)
        actor = load_actor(self._session, account.id)
        if actor is None:
            return False
        facts = access_facts(self._session, actor, patient_id, at)
        return Relationship.TEAM_NURSE in facts.relationships

    def _require_team_nurse(self, patient_id: str, username: str, at: datetime) -> None:
        try:
            ok = self._is_team_nurse(patient_id, username, at)
        except NotFound:
            ok = False
        if not ok:
            raise InvalidRegistryInput("assignee", "not a nurse of the patient's team")

    def _still_team_nurse(self, patient_id: str, username: str | None, at: datetime) -> str | None:
        if username is None:
            return None
        try:
            return username if self._is_team_nurse(patient_id, username, at) else None
        except NotFound:
            return None

    def _event(
        self,
        row: VisitTask,
        kind: str,
        from_status: VisitStatus | None,
        to_status: VisitStatus | None,
        actor: str,
        reason: str,
        details: dict[str, object],
        at: datetime,
    ) -> None:
        self._session.add(
            VisitTaskEvent(
                task_id=row.id,
                at=at,
                kind=kind,
                from_status=None if from_status is None else from_status.value,
                to_status=None if to_status is None else to_status.value,
                actor=actor,
                reason=reason,
                details=json.dumps(details, ensure_ascii=False, sort_keys=True),
            )
        )
        self._session.flush()
