""" "Mark reviewed" on the triage list, with undo on the same day only.

A review belongs to the patient's local calendar day (the day the doctor sees the list
for): :meth:`TriageReviewRepository.reviewed_today` answers which patients are reviewed
*today*, each in its own zone, and the list sinks them. The next local day the review no
longer counts, and it can no longer be undone: the row is history by then
(:class:`ReviewUndoExpired`). Auditing is the caller's (the API writes the audit row in
the same transaction as the change).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.care_lookup import find_patient
from registry.clock import Clock, utc_now
from registry.errors import InvalidRegistryInput, NotFound, RegistryError
from registry.models import Patient
from registry.triage_models import TriageReview

_IDS_PER_QUERY = 500
"""Ids per ``IN (…)`` list (well under SQLite's and PostgreSQL's parameter limits)."""


class ReviewUndoExpired(RegistryError):
    """The patient's review in force is of an earlier day: undo works on the same day only.

    Attributes:
        review_day: the local day the review was made.
    """

    def __init__(self, patient_id: str, review_day: date) -> None:
        super().__init__(f"the review of {review_day.isoformat()} can no longer be undone")
        self.patient_id = patient_id
        self.review_day = review_day


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """A review as the API and the triage list see it."""

    id: int
    patient_id: str
    review_day: date
    period_first: date
    period_last: date
    reviewed_by: str
    reviewed_at: datetime
    undone_at: datetime | None
    undone_by: str | None


def _record(row: TriageReview) -> ReviewRecord:
    return ReviewRecord(
        id=row.id,
        patient_id=row.patient_id,
        review_day=row.review_day,
        period_first=row.period_first,
        period_last=row.period_last,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        undone_at=row.undone_at,
        undone_by=row.undone_by,
    )


class TriageReviewRepository:
    """Reviews of triage entries, in the caller's transaction."""

    def __init__(self, session: Session, *, clock: Clock = utc_now) -> None:
        self._session = session
        self._clock = clock

    def _today(self, patient: Patient) -> date:
        return self._clock().astimezone(ZoneInfo(patient.time_zone)).date()

    def _in_force(self, patient_id: str) -> TriageReview | None:
        """The newest review not undone, of any day."""
        return self._session.scalars(
            select(TriageReview)
            .where(TriageReview.patient_id == patient_id, TriageReview.undone_at.is_(None))
            .order_by(TriageReview.review_day.desc(), TriageReview.id.desc())
            .limit(1)
        ).first()

    def mark(
        self, patient_id: str, *, reviewed_by: str, period_first: date, period_last: date
    ) -> tuple[ReviewRecord, bool]:
        """Mark the patient reviewed today; ``(record, created)``.

        Marking twice on one day keeps the first review (``created`` is False), so a double
        click or two doctors at once leave one row.

        Raises:
            NotFound: no such patient.
            InvalidRegistryInput: the period ends before it starts.
        """
        if period_last < period_first:
            raise InvalidRegistryInput("period_last", "the period ends before it starts")
        patient = find_patient(self._session, patient_id)
        today = self._today(patient)
        existing = self._in_force(patient_id)
        if existing is not None and existing.review_day == today:
            return _record(existing), False
        row = TriageReview(
            patient_id=patient_id,
            review_day=today,
            period_first=period_first,
            period_last=period_last,
            reviewed_by=reviewed_by,
            reviewed_at=self._clock(),
        )
        try:
            with self._session.begin_nested():
                self._session.add(row)
                self._session.flush()
        except IntegrityError:
            # Another transaction marked the patient in between: its review stands.
            again = self._in_force(patient_id)
            if again is None:
                raise
            return _record(again), False
        return _record(row), True

    def undo(self, patient_id: str, *, undone_by: str) -> ReviewRecord:
        """Undo today's review of the patient.

        Raises:
            NotFound: no such patient, or no review in force.
            ReviewUndoExpired: the review in force is of an earlier day.
        """
        patient = find_patient(self._session, patient_id)
        row = self._in_force(patient_id)
        if row is None:
            raise NotFound("triage review", patient_id)
        if row.review_day != self._today(patient):
            raise ReviewUndoExpired(patient_id, row.review_day)
        row.undone_at = self._clock()
        row.undone_by = undone_by
        self._session.flush()
        return _record(row)

    def reviewed_today(self, patient_ids: Collection[str]) -> dict[str, ReviewRecord]:
        """The review in force today (each patient's own local day) of each patient that
        has one; a query per 500 patients for the zones and one for the reviews."""
        ids = sorted(set(patient_ids))
        found: dict[str, ReviewRecord] = {}
        now = self._clock()
        for first in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[first : first + _IDS_PER_QUERY]
            zones = dict(
                self._session.execute(
                    select(Patient.id, Patient.time_zone).where(Patient.id.in_(chunk))
                ).all()
            )
            today = {pid: now.astimezone(ZoneInfo(zone)).date() for pid, zone in zones.items()}
            if not today:
                continue
            rows = self._session.scalars(
                select(TriageReview).where(
                    TriageReview.patient_id.in_(chunk),
                    TriageReview.undone_at.is_(None),
                    TriageReview.review_day.in_(set(today.values())),
                )
            )
            for row in rows:
                if today.get(row.patient_id) == row.review_day:
                    found[row.patient_id] = _record(row)
        return found
