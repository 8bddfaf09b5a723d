"""Triage reviews on both backends: mark, same-day undo, no undo the next day, per-zone days."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from registry.db import session_scope
from registry.errors import InvalidRegistryInput, NotFound
from registry.repositories import PatientRepository
from registry.triage import ReviewUndoExpired, TriageReviewRepository
from registry.triage_models import TriageReview
from tests.fakes import ManualClock
from tests.registry.conftest import T0

FIRST, LAST = date(2026, 2, 15), date(2026, 2, 28)
# T0 is 2026-03-01 08:00 UTC: 16:00 in Shanghai, 03:00 in New York (still 1 March).


@pytest.fixture
def seeded(engine: Engine, clock: ManualClock) -> Engine:
    with session_scope(engine) as session:
        patients = PatientRepository(session, clock=clock)
        patients.add("p-sh", time_zone="Asia/Shanghai")
        patients.add("p-ny", time_zone="America/New_York")
    return engine


def _mark(engine: Engine, clock: ManualClock, patient: str, by: str = "dr.zhang"):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return TriageReviewRepository(session, clock=clock).mark(
            patient, reviewed_by=by, period_first=FIRST, period_last=LAST
        )


def _today(engine: Engine, clock: ManualClock) -> set[str]:
    with session_scope(engine, write=False) as session:
        return set(TriageReviewRepository(session, clock=clock).reviewed_today(["p-sh", "p-ny"]))


def test_mark_then_undo_the_same_day(seeded: Engine, clock: ManualClock) -> None:
    record, created = _mark(seeded, clock, "p-sh")
    assert created
    assert (record.review_day, record.reviewed_by, record.reviewed_at) == (
        date(2026, 3, 1),
        "dr.zhang",
        T0,
    )
    assert (record.period_first, record.period_last) == (FIRST, LAST)
    assert _today(seeded, clock) == {"p-sh"}
    clock.advance(hours=7, minutes=59)  # 23:59 in Shanghai: still the same day
    with session_scope(seeded) as session:
        undone = TriageReviewRepository(session, clock=clock).undo("p-sh", undone_by="dr.li")
    assert (undone.undone_by, undone.undone_at) == ("dr.li", clock.now)
    assert _today(seeded, clock) == set()
    with session_scope(seeded) as session, pytest.raises(NotFound):
        TriageReviewRepository(session, clock=clock).undo("p-sh", undone_by="dr.li")
    # The undone row stays as history; marking again makes a new one.
    _record, created = _mark(seeded, clock, "p-sh")
    assert created
    with session_scope(seeded, write=False) as session:
        assert session.scalar(select(func.count()).select_from(TriageReview)) == 2


def test_marking_twice_a_day_keeps_the_first_review(seeded: Engine, clock: ManualClock) -> None:
    first, _ = _mark(seeded, clock, "p-sh")
    clock.advance(minutes=5)
    again, created = _mark(seeded, clock, "p-sh", by="nurse.liu")
    assert not created
    assert (again.id, again.reviewed_by) == (first.id, "dr.zhang")


def test_the_next_local_day_the_review_no_longer_counts_nor_undoes(
    seeded: Engine, clock: ManualClock
) -> None:
    _mark(seeded, clock, "p-sh")
    clock.advance(hours=8)  # 00:00 on 2 March in Shanghai
    assert _today(seeded, clock) == set()
    with session_scope(seeded) as session, pytest.raises(ReviewUndoExpired) as caught:
        TriageReviewRepository(session, clock=clock).undo("p-sh", undone_by="dr.zhang")
    assert caught.value.review_day == date(2026, 3, 1)
    # A new day's review is a new row, and that one can be undone.
    _record, created = _mark(seeded, clock, "p-sh")
    assert created
    with session_scope(seeded) as session:
        undone = TriageReviewRepository(session, clock=clock).undo("p-sh", undone_by="dr.zhang")
    assert undone.review_day == date(2026, 3, 2)


def test_each_patient_has_its_own_local_day(seeded: Engine, clock: ManualClock) -> None:
    _mark(seeded, clock, "p-sh")
    _mark(seeded, clock, "p-ny")
    clock.advance(hours=9)  # 01:00 on 2 March in Shanghai, 12:00 on 1 March in New York
    assert _today(seeded, clock) == {"p-ny"}
    clock.advance(hours=12, seconds=-1)  # 23:59:59 in New York
    assert _today(seeded, clock) == {"p-ny"}
    clock.advance(seconds=1)
    assert _today(seeded, clock) == set()


def test_unknown_patient_and_reversed_period(seeded: Engine, clock: ManualClock) -> None:
    with session_scope(seeded) as session:
        repo = TriageReviewRepository(session, clock=clock)
        with pytest.raises(NotFound):
            repo.mark("p-none", reviewed_by="x", period_first=FIRST, period_last=LAST)
        with pytest.raises(InvalidRegistryInput):
            repo.mark("p-sh", reviewed_by="x", period_first=LAST, period_last=FIRST)
        with pytest.raises(NotFound):
            repo.undo("p-none", undone_by="x")


def test_the_database_allows_one_review_in_force_per_day(
    seeded: Engine, clock: ManualClock
) -> None:
    _mark(seeded, clock, "p-sh")
    row = TriageReview(
        patient_id="p-sh",
        review_day=date(2026, 3, 1),
        period_first=FIRST,
        period_last=LAST,
        reviewed_by="x",
        reviewed_at=T0 + timedelta(minutes=1),
    )
    with session_scope(seeded) as session:
        session.add(row)
        with pytest.raises(IntegrityError):
            session.flush()
