"""A nurse's capacity and the day route applied to visit tasks, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from registry.care import AccountRepository, ContractRepository, TeamRepository
from registry.care_lookup import find_account
from registry.care_models import AccountKind, Role, TeamPosition
from registry.db import session_scope
from registry.errors import InvalidRegistryInput, NotFound
from registry.repositories import PatientRepository
from registry.visit_models import VisitKind, VisitStatus
from registry.visit_routes import DEFAULT_CAPACITY, Capacity
from registry.visit_schedule import CapacityRepository, apply_route
from registry.visit_schedule_models import VisitCapacity
from registry.visits import Reason, VisitRepository
from tests.fakes import ManualClock
from tests.registry.conftest import T0

DAY = date(2026, 3, 3)
NINE = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


@pytest.fixture
def team(engine: Engine, clock: ManualClock) -> dict[str, int]:
    with session_scope(engine) as s:
        accounts = AccountRepository(s, clock=clock)
        accounts.add("nurse.liu", display_name="刘", kind=AccountKind.STAFF, roles=[Role.NURSE])
        accounts.add("nurse.sun", display_name="孙", kind=AccountKind.STAFF, roles=[Role.NURSE])
        TeamRepository(s, clock=clock).add("team-a", name="一", organisation="东城")
        TeamRepository(s, clock=clock).add_member("team-a", "nurse.liu", TeamPosition.NURSE)
        ids = {}
        for pid in ("p-1", "p-2"):
            PatientRepository(s, clock=clock).add(pid)
            ContractRepository(s, clock=clock).sign(
                pid, "team-a", service_package="hypertension", starts_on=T0.date()
            )
            ids[pid] = (
                VisitRepository(s, clock=clock)
                .open(
                    pid,
                    Reason.routine("routine:hypertension"),
                    kind=VisitKind.HOME_VISIT,
                    priority=2,
                    earliest=T0,
                    latest=T0 + timedelta(days=14),
                    actor="dr.zhang",
                )
                .task.id
            )
    clock.advance(minutes=5)
    return ids


def test_capacity_defaults_then_stored_and_checked_by_the_database(
    engine: Engine, team: dict[str, int], clock: ManualClock
) -> None:
    with session_scope(engine) as s:
        capacities = CapacityRepository(s, clock=clock)
        assert capacities.get("nurse.liu") == DEFAULT_CAPACITY
        mine = Capacity(work_start=time(9, 0), work_end=time(15, 30), max_visits=4)
        assert capacities.set("nurse.liu", mine, actor="lead.zhou") == mine
        assert capacities.set("nurse.liu", mine, actor="lead.zhou") == mine  # an update
        with pytest.raises(NotFound):
            capacities.get("nobody")
    with session_scope(engine, write=False) as s:
        assert CapacityRepository(s).get("nurse.liu") == mine
        assert s.get_one(VisitCapacity, find_account(s, "nurse.liu").id).updated_by == "lead.zhou"
    with session_scope(engine) as s:
        row = s.get_one(VisitCapacity, find_account(s, "nurse.liu").id)
        row.work_end_minute = row.work_start_minute  # the database refuses an empty day
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_applying_a_route_schedules_reschedules_and_leaves_unchanged_visits_alone(
    engine: Engine, team: dict[str, int], clock: ManualClock
) -> None:
    first, second = team["p-1"], team["p-2"]
    with session_scope(engine) as s:
        done = apply_route(
            s, DAY, DEFAULT_CAPACITY, [first, second], nurse="nurse.liu",
            actor="nurse.liu", reason="day route", clock=clock,
        )  # fmt: skip
        assert [(t.status, t.assignee, t.scheduled_at) for t in done] == [
            (VisitStatus.SCHEDULED, "nurse.liu", NINE),
            (VisitStatus.SCHEDULED, "nurse.liu", NINE + timedelta(minutes=75)),
        ]
        # The same order again changes nothing; swapping reschedules both.
        apply_route(s, DAY, DEFAULT_CAPACITY, [first, second], nurse="nurse.liu",
                    actor="nurse.liu", reason="again", clock=clock)  # fmt: skip
        apply_route(s, DAY, DEFAULT_CAPACITY, [second, first], nurse="nurse.liu",
                    actor="nurse.liu", reason="患者下午在家", clock=clock)  # fmt: skip
        history = VisitRepository(s).history(first)
    assert [(e.kind, e.reason) for e in history] == [
        ("opened", ""),
        ("scheduled", "day route"),
        ("rescheduled", "患者下午在家"),
    ]
    assert history[-1].details["previous"] == NINE.isoformat()


def test_a_nurse_of_another_team_cannot_be_given_the_route(
    engine: Engine, team: dict[str, int], clock: ManualClock
) -> None:
    with pytest.raises(InvalidRegistryInput), session_scope(engine) as s:
        apply_route(
            s, DAY, DEFAULT_CAPACITY, [team["p-1"]], nurse="nurse.sun",
            actor="nurse.sun", reason="", clock=clock,
        )  # fmt: skip
    with session_scope(engine, write=False) as s:
        assert VisitRepository(s).get(team["p-1"]).status is VisitStatus.REQUESTED
