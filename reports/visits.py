"""Nurse visits as the report and the CSV export show them: one flat, frozen line per task.

:func:`visit_line` flattens a registry task, its visit record (if completed) and the reason
it was closed with (if cancelled or missed); :func:`visits_of_period` picks the lines a
doctor needs for a period. Both are pure; :func:`reports.loading.load_visits` feeds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from registry.visit_models import OPEN_STATUSES, VisitRecord, VisitStatus
from registry.visits import TaskEventRecord, TaskRecord
from reports.summaries import Period


@dataclass(frozen=True, slots=True)
class VisitLine:
    """One visit task with what its nurse recorded.

    Attributes:
        task_id, code: the task and its pseudonymous visit code.
        kind: ``home_visit``, ``phone`` or ``clinic``.
        status: ``requested`` … ``missed``.
        reason_kind: ``alert``, ``doctor_request`` or ``routine``; ``rule_id`` and
            ``alert_id`` when an alert asked for it.
        note: the requester's words (staff free text).
        closing_reason: why it was cancelled or missed (staff free text), else "".
        check_in_at, check_out_at, assessment, programme, classification, consent,
            recorded_by, reading_ids, next_task_id: the visit record of a completed task.
    """

    task_id: int
    code: str
    patient_id: str
    kind: str
    status: str
    reason_kind: str
    rule_id: str | None
    alert_id: int | None
    priority: int
    note: str
    earliest: datetime
    latest: datetime
    scheduled_at: datetime | None
    assignee: str | None
    created_at: datetime
    created_by: str
    closed_at: datetime | None
    closing_reason: str = ""
    check_in_at: datetime | None = None
    check_out_at: datetime | None = None
    consent: bool | None = None
    assessment: str = ""
    programme: str | None = None
    classification: str | None = None
    recorded_by: str | None = None
    reading_ids: tuple[str, ...] = ()
    next_task_id: int | None = None

    @property
    def when(self) -> datetime:
        """The moment that places the task in time: the check-in of a completed visit, the
        closing of a cancelled or missed one, the appointment of a scheduled one, else
        when it was requested."""
        if self.status == VisitStatus.COMPLETED and self.check_in_at is not None:
            return self.check_in_at
        if self.closed_at is not None:
            return self.closed_at
        if self.scheduled_at is not None:
            return self.scheduled_at
        return self.created_at

    @property
    def is_open(self) -> bool:
        """Still to be done (requested or scheduled)."""
        return self.status in {s.value for s in OPEN_STATUSES}


def visit_line(
    task: TaskRecord,
    record: VisitRecord | None = None,
    history: Sequence[TaskEventRecord] = (),
) -> VisitLine:
    """Flatten a task, its visit record and its history into one line.

    The closing reason is the reason of the last event that moved the task to its
    cancelled or missed status.
    """
    closing = ""
    if task.status in (VisitStatus.CANCELLED, VisitStatus.MISSED):
        for event in reversed(history):
            if event.to_status == task.status.value:
                closing = event.reason
                break
    line = VisitLine(
        task_id=task.id,
        code=task.code,
        patient_id=task.patient_id,
        kind=task.kind.value,
        status=task.status.value,
        reason_kind=task.reason_kind.value,
        rule_id=task.rule_id,
        alert_id=task.alert_id,
        priority=task.priority,
        note=task.note,
        earliest=task.earliest,
        latest=task.latest,
        scheduled_at=task.scheduled_at,
        assignee=task.assignee,
        created_at=task.created_at,
        created_by=task.created_by,
        closed_at=task.closed_at,
        closing_reason=closing,
    )
    if record is None:
        return line
    return _with_record(line, record)


def _with_record(line: VisitLine, record: VisitRecord) -> VisitLine:
    ids = json.loads(record.reading_ids) if record.reading_ids else []
    return replace(
        line,
        check_in_at=record.check_in_at,
        check_out_at=record.check_out_at,
        consent=record.consent,
        assessment=record.assessment,
        programme=record.programme,
        classification=record.classification,
        recorded_by=record.recorded_by,
        reading_ids=tuple(str(i) for i in ids),
        next_task_id=record.next_task_id,
    )


def visits_of_period(lines: Iterable[VisitLine], period: Period) -> list[VisitLine]:
    """The visits a doctor reviews for ``period``, oldest first.

    A task belongs to the period when its :attr:`VisitLine.when` falls inside it; a task
    that is still open and was requested before the period ended is included too, because
    a pending visit is what the doctor must know about at a follow-up.
    """
    chosen = [
        line
        for line in lines
        if period.contains(line.when) or (line.is_open and line.created_at < period.end)
    ]
    return sorted(chosen, key=lambda line: (line.when, line.task_id))
