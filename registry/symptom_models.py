"""Symptoms patients report from the portal ("头晕", "胸闷" …), append-only.

Each report keeps the patient's own words and the alert it opened (or joined: a rule has
one open alert per patient, so a second "胸闷" while the first is open adds a report, not
an alert). Created by migration ``0013_notification_prefs`` with the preferences table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.care_models import USERNAME_LENGTH
from registry.models import _BIG_ID, Base


class SymptomReport(Base):
    """One symptom report: what, the patient's words, who reported it, the alert."""

    __tablename__ = "symptom_reports"
    __table_args__ = (
        Index("ix_symptom_reports_patient_id_reported_at", "patient_id", "reported_at"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    symptom: Mapped[str] = mapped_column(String(32))
    """A code of :data:`alerts.symptoms.SYMPTOMS`."""
    note: Mapped[str] = mapped_column(Text)
    """The patient's own words (may be empty); health data, never logged."""
    reported_at: Mapped[datetime]
    reported_by: Mapped[str] = mapped_column(String(USERNAME_LENGTH))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    """The alert the report opened or joined (None while monitoring is paused)."""
