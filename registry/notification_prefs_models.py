"""Notification preferences of a patient: which channel non-urgent messages use, and quiet
hours for them (P3/P4 only: P1, P2 and SYS always come through).

One row per patient, changed in place: it is a setting, not a clinical decision, and every
change is in the audit log (the route writes it).
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, String, Time
from sqlalchemy.orm import Mapped, mapped_column

from registry.care_models import USERNAME_LENGTH
from registry.models import ID_LENGTH, Base


class NonUrgentChannel(StrEnum):
    """Where non-urgent (P3/P4) messages go; urgent ones use the escalation policy's."""

    SMS = "sms"
    WECHAT = "wechat"
    NONE = "none"
    """No message at all for non-urgent alerts (they are still on the portal)."""


class NotificationPreference(Base):
    """A patient's notification preferences (absent: SMS, no quiet hours)."""

    __tablename__ = "notification_preferences"
    __table_args__ = (
        CheckConstraint(
            "channel IN ('sms', 'wechat', 'none')",
            name="channel_known",
        ),
        # Quiet hours are both set or both absent.
        CheckConstraint(
            "(quiet_start IS NULL) = (quiet_end IS NULL)",
            name="quiet_hours_pair",
        ),
    )

    patient_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("patients.id"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    quiet_start: Mapped[time | None] = mapped_column(Time)
    """Local time (the patient's zone) the quiet hours begin; may be after ``quiet_end``."""
    quiet_end: Mapped[time | None] = mapped_column(Time)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(USERNAME_LENGTH))
