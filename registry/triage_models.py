"""Registry table of the triage view's "mark reviewed": who looked at a patient, which day.

A review row says: on ``review_day`` (the patient's local calendar day) ``reviewed_by``
went through the patient's triage entry for the period ``period_first`` … ``period_last``.
The triage list sinks the patient for the rest of that day. An undo sets ``undone_at`` and
``undone_by`` — the row stays, so the audit can explain why a patient was at the bottom of
the list at 10:00 and back on top at 10:05. At most one review per patient and day is in
force (``undone_at IS NULL``): a partial unique index, so two doctors clicking at once
cannot leave two rows.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from registry.care_models import USERNAME_LENGTH
from registry.models import _BIG_ID, Base


class TriageReview(Base):
    """One "mark reviewed" of a patient's triage entry, and its undo if any."""

    __tablename__ = "triage_reviews"
    __table_args__ = (
        Index("ix_triage_reviews_patient_id_review_day", "patient_id", "review_day"),
        Index(
            "uq_triage_reviews_in_force",
            "patient_id",
            "review_day",
            unique=True,
            sqlite_where=text("undone_at IS NULL"),
            postgresql_where=text("undone_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    review_day: Mapped[date] = mapped_column(Date)
    """The patient's local calendar day of the review (the day it sinks the patient)."""
    period_first: Mapped[date] = mapped_column(Date)
    period_last: Mapped[date] = mapped_column(Date)
    """The triage period the doctor looked at, local days, inclusive."""
    reviewed_by: Mapped[str] = mapped_column(String(USERNAME_LENGTH))
    reviewed_at: Mapped[datetime]
    undone_at: Mapped[datetime | None]
    undone_by: Mapped[str | None] = mapped_column(String(USERNAME_LENGTH))
