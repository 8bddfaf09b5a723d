"""Registry tables of nurse visits: visit tasks, their append-only history, visit records
and the per-nurse calendar feed tokens.

A visit task is opened by an alert rule (B2 → home visit within two weeks), by a doctor's
request, or by the routine follow-up of the national basic public-health service (基本公卫
随访). One *open* task per patient + reason is enforced by the database too: a partial
unique index on ``(patient_id, reason_key)`` where the status is ``requested`` or
``scheduled``, so two evaluator workers racing on the same finding cannot open two tasks.

Every change (creation, assignment, scheduling, completion, cancellation, a missed visit) is
one :class:`VisitTaskEvent` row with who and why; task rows carry only the current state.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from registry.care_models import USERNAME_LENGTH
from registry.models import _BIG_ID, Base

VISIT_CODE_LENGTH: Final = 16
"""``V-`` and ten characters of a random base-32 string: the pseudonym a phone calendar sees."""


class VisitStatus(StrEnum):
    """Where a visit task is (after Bahmni appointments, reduced to what a nurse decides)."""

    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    MISSED = "missed"


OPEN_STATUSES: Final = frozenset({VisitStatus.REQUESTED, VisitStatus.SCHEDULED})


class VisitKind(StrEnum):
    """How the nurse sees the patient."""

    HOME_VISIT = "home_visit"
    PHONE = "phone"
    CLINIC = "clinic"


class ReasonKind(StrEnum):
    """Why the task exists."""

    ALERT = "alert"
    """Opened by an alert rule as the alert fired."""
    DOCTOR_REQUEST = "doctor_request"
    """A doctor asked for it (from an alert, or on their own judgement)."""
    ROUTINE = "routine"
    """A follow-up of the service package (基本公卫 quarterly follow-up, a referral)."""


class VisitTask(Base):
    """One visit to be made: patient, reason, kind, priority, due window, assignee, status."""

    __tablename__ = "visit_tasks"
    __table_args__ = (
        Index(
            "uq_visit_tasks_open_patient_reason",
            "patient_id",
            "reason_key",
            unique=True,
            sqlite_where=text("status IN ('requested', 'scheduled')"),
            postgresql_where=text("status IN ('requested', 'scheduled')"),
        ),
        Index("ix_visit_tasks_status_latest", "status", "latest"),
        Index("ix_visit_tasks_patient_id_id", "patient_id", "id"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(VISIT_CODE_LENGTH), unique=True)
    """Pseudonymous visit code: random, unrelated to the patient id."""
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    reason_kind: Mapped[str] = mapped_column(String(16))
    reason_key: Mapped[str] = mapped_column(String(64))
    """What "the same reason" means: ``rule:B2``, ``request:phone``, ``routine:hypertension``."""
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    rule_id: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text)
    """The requester's words (staff-only; never in a calendar feed)."""
    kind: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int]
    """1 (most urgent) … 3, from the alert tier (P1 → 1)."""
    earliest: Mapped[datetime]
    latest: Mapped[datetime]
    assignee: Mapped[str | None] = mapped_column(String(USERNAME_LENGTH))
    """Username of a nurse of the patient's team."""
    status: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    closed_at: Mapped[datetime | None]


class VisitTaskEvent(Base):
    """An append-only record of one change of a task: what, from/to, who, when, why."""

    __tablename__ = "visit_task_events"
    __table_args__ = (Index("ix_visit_task_events_task_id_id", "task_id", "id"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("visit_tasks.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    """JSON object: what changed (assignee, scheduled time, the follow-up task it created)."""


class VisitRecord(Base):
    """What the nurse recorded when completing a task (one per completed task)."""

    __tablename__ = "visit_records"

    task_id: Mapped[int] = mapped_column(ForeignKey("visit_tasks.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    check_in_at: Mapped[datetime]
    check_out_at: Mapped[datetime]
    consent: Mapped[bool] = mapped_column(Boolean)
    assessment: Mapped[str] = mapped_column(Text)
    programme: Mapped[str | None] = mapped_column(String(32))
    """``hypertension`` or ``diabetes_type2`` when this was a 基本公卫 follow-up."""
    classification: Mapped[str | None] = mapped_column(String(32))
    reading_ids: Mapped[str] = mapped_column(Text)
    """JSON list of the reading ids of the vitals measured, stored in the reading store."""
    next_task_id: Mapped[int | None] = mapped_column(ForeignKey("visit_tasks.id"))
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime]


class CalendarToken(Base):
    """A nurse's secret calendar-feed token, stored as its SHA-256 only; revocable."""

    __tablename__ = "calendar_tokens"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
