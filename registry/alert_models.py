"""Registry tables of the alert engine: alerts, their append-only events, silences,
suppressions of paused patients, escalation steps and notifications.

One open alert per patient + rule is enforced by the database too (a partial unique index
on ``(patient_id, rule_id)`` where ``resolved_at IS NULL``), so two workers racing on the same
finding cannot open two. Escalation steps and notifications carry unique idempotency keys:
a worker killed after sending and before recording sends again under the same key, and the
row is recorded once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.delivery_log import DeliveryLogColumns
from registry.delivery_log import NotificationStatus as NotificationStatus
from registry.leases import CLAIMED as LEASE_CLAIMED
from registry.leases import DUE as LEASE_DUE
from registry.leases import LeasedRowColumns
from registry.models import Base

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class StepStatus(StrEnum):
    """Where an escalation step is; ``claimed`` carries a lease that a dead worker loses."""

    DUE = LEASE_DUE
    CLAIMED = LEASE_CLAIMED
    DONE = "done"
    SKIPPED = "skipped"
    """No reachable recipient: the next step became due at once."""
    FAILED = "failed"
    """A permanent notifier failure: the next step became due at once and a SYS alert opened."""
    CANCELLED = "cancelled"
    """The alert was acknowledged or resolved before the step was due."""


class AlertRow(Base):
    """One alert: a rule's finding about a patient, from opening to resolution."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_patient_rule",
            "patient_id",
            "rule_id",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
        Index("ix_alerts_patient_id_opened_at", "patient_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    rule_id: Mapped[str] = mapped_column(String(32))
    rule_version: Mapped[int]
    metric: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    confirmed: Mapped[bool] = mapped_column(Boolean)
    late: Mapped[bool] = mapped_column(Boolean)
    reading_ids: Mapped[str] = mapped_column(Text)
    """JSON list of the readings that caused it, oldest first."""
    thresholds: Mapped[str] = mapped_column(Text)
    """JSON object: the thresholds in force, named with their unit."""
    explanation_key: Mapped[str] = mapped_column(String(128))
    explanation_params: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    muted_by: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(128))


class AlertEvent(Base):
    """An append-only record of one transition or action on an alert: who, when, why."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_id_id", "alert_id", "id"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    muted_by: Mapped[str | None] = mapped_column(String(64))


class AlertSilence(Base):
    """A snooze of a patient's metric at a tier and below, with author, reason and expiry."""

    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_patient_id_ends_at", "patient_id", "ends_at"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    metric: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    author: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]


class AlertSuppression(Base):
    """A rule held back because the patient's monitoring is paused: the pause made visible.

    One row per patient, rule and pause (the status change's ``since``), however many
    evaluations found the same thing during it.
    """

    __tablename__ = "alert_suppressions"
    __table_args__ = (UniqueConstraint("patient_id", "rule_id", "reason", "since"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    rule_id: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(128))
    since: Mapped[datetime]
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    count: Mapped[int]


class EscalationStep(LeasedRowColumns, Base):
    """One step of an alert's escalation chain, due at ``due_at``, claimed with a lease.

    The due time, status, lease, outcome and idempotency key are
    :class:`~registry.leases.LeasedRowColumns`.
    """

    __tablename__ = "escalation_steps"
    __table_args__ = (Index("ix_escalation_steps_status_due_at", "status", "due_at"),)

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    step_no: Mapped[int]
    repeat_no: Mapped[int]
    audience: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))


class NotificationRow(DeliveryLogColumns, Base):
    """One message to one recipient on one channel, recorded once per idempotency key.

    The delivery-log columns are :class:`~registry.delivery_log.DeliveryLogColumns`; the
    recipient is an account or family-link id, never a phone number or address.
    """

    __tablename__ = "notifications"

    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    step_id: Mapped[int | None] = mapped_column(ForeignKey("escalation_steps.id"))
