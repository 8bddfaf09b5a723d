"""Registry tables of visit reminders: the reminder rows, their delivery log, and the
patient's SMS opt-in.

A reminder is a row with its due time, a status and a unique idempotency key
(``visit:<task>:<kind>:<audience>:<anchor>``), claimed with a lease exactly like an alert's
escalation step (:mod:`registry.escalation_repo`). APScheduler only wakes the worker; the
rows are the truth, so a reminder survives restarts and runs once.

Deliveries have a table of their own rather than sharing ``notifications``: that table's
rows belong to an alert (its ``alert_id`` is required), and most visit tasks have none.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from registry.delivery_log import DeliveryLogColumns
from registry.leases import CLAIMED as LEASE_CLAIMED
from registry.leases import DUE as LEASE_DUE
from registry.leases import LeasedRowColumns
from registry.models import Base


class ReminderKind(StrEnum):
    """Which reminder of a visit task a row is."""

    DAY_BEFORE = "day_before"
    """18:00 local time the day before the visit (the nurse plans her next day)."""
    MORNING_OF = "morning_of"
    """07:30 local time on the day of the visit."""
    OVERDUE = "overdue"
    """The task is still open when its due window ends: the team lead is told once."""


class ReminderAudience(StrEnum):
    """Who a reminder row goes to (resolved to people when it runs)."""

    NURSE = "nurse"
    PATIENT = "patient"
    TEAM_LEAD = "team_lead"


class ReminderStatus(StrEnum):
    """Where a reminder is; ``claimed`` carries a lease that a dead worker loses."""

    DUE = LEASE_DUE
    CLAIMED = LEASE_CLAIMED
    DONE = "done"
    SKIPPED = "skipped"
    """Nobody reachable (no assignee, no phone, the patient withdrew the opt-in)."""
    FAILED = "failed"
    """A permanent notifier failure."""
    CANCELLED = "cancelled"
    """The task was completed, cancelled or missed before the reminder ran."""
    SUPERSEDED = "superseded"
    """The visit was rescheduled: the reminders of the new time replace this one."""


PENDING_STATUSES = frozenset({ReminderStatus.DUE, ReminderStatus.CLAIMED})


class VisitReminder(LeasedRowColumns, Base):
    """One reminder of one visit task to one audience, due at ``due_at``.

    The due time, status, lease, outcome and idempotency key are
    :class:`~registry.leases.LeasedRowColumns`.
    """

    __tablename__ = "visit_reminders"
    __table_args__ = (
        Index("ix_visit_reminders_status_due_at", "status", "due_at"),
        Index("ix_visit_reminders_task_id", "task_id"),
    )

    task_id: Mapped[int] = mapped_column(ForeignKey("visit_tasks.id"))
    kind: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32))
    anchor_at: Mapped[datetime]
    """What the reminder is about: the scheduled start (reminders) or the window's end
    (overdue). The worker sends only while the task still has this time."""


class VisitReminderDelivery(DeliveryLogColumns, Base):
    """One message of a reminder to one recipient: created once, its receipt recorded once.

    The delivery-log columns are :class:`~registry.delivery_log.DeliveryLogColumns`; the
    recipient is ``user:<account id>`` or ``patient:<patient id>``, never the phone number.
    """

    __tablename__ = "visit_reminder_deliveries"

    reminder_id: Mapped[int] = mapped_column(ForeignKey("visit_reminders.id"), index=True)


class VisitReminderPreference(Base):
    """A patient's choice about visit reminders (no row: no SMS).

    The registry had no notification preferences for patients yet; this is the one switch
    the visit reminders need. Off by default: an SMS reveals to whoever holds the phone that
    a nurse is coming, so the patient (or a family member acting for them) opts in.
    """

    __tablename__ = "visit_reminder_preferences"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    sms_opt_in: Mapped[bool] = mapped_column(Boolean)
    """Send the patient an SMS on the morning of a visit."""
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(128))
