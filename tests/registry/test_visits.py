"""Visit tasks in the registry, on SQLite and PostgreSQL, with an injected clock.

The alert side is the real lifecycle sink recording real alerts; nothing is mocked.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from alerts.pipeline import LifecycleSink
from registry.alert_models import AlertRow
from registry.alerts_repo import AlertRepository
from registry.care import AccountRepository, ContractRepository, TeamRepository
from registry.care_models import AccountKind, Role, TeamPosition
from registry.db import session_scope
from registry.errors import InvalidRegistryInput
from registry.repositories import PatientRepository
from registry.visit_alerts import visit_task_hook
from registry.visit_models import ReasonKind, VisitKind, VisitStatus, VisitTask
from registry.visit_policy import FollowUpClass, Programme
from registry.visits import Reason, VisitInput, VisitRepository, VisitStateError
from tests.fakes import ManualClock
from tests.registry.conftest import T0

P = "p-li"
OTHER = "p-zhao"


@pytest.fixture
def team(engine: Engine, clock: ManualClock) -> Engine:
    with session_scope(engine) as s:
        patients = PatientRepository(s, clock=clock)
        patients.add(P, display_name="李强")
        patients.add(OTHER, display_name="赵敏")
        accounts = AccountRepository(s, clock=clock)
        accounts.add(
            "dr.zhang", display_name="张", kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.add("nurse.liu", display_name="刘", kind=AccountKind.STAFF, roles=[Role.NURSE])
        accounts.add("nurse.sun", display_name="孙", kind=AccountKind.STAFF, roles=[Role.NURSE])
        teams = TeamRepository(s, clock=clock)
        teams.add("team-a", name="一", organisation="东城")
        teams.add("team-b", name="二", organisation="西城")
        teams.add_member("team-a", "dr.zhang", TeamPosition.DOCTOR)
        teams.add_member("team-a", "nurse.liu", TeamPosition.NURSE)
        teams.add_member("team-b", "nurse.sun", TeamPosition.NURSE)
        contracts = ContractRepository(s, clock=clock)
        contracts.sign(P, "team-a", service_package="hypertension", starts_on=T0.date())
        contracts.sign(OTHER, "team-b", service_package="hypertension", starts_on=T0.date())
    clock.advance(minutes=5)
    return engine


def _request(repo: VisitRepository, clock: ManualClock, patient: str = P, **kw: object) -> int:
    opened = repo.open(
        patient,
        Reason.doctor_request(VisitKind.HOME_VISIT, "请上门复测血压"),
        kind=VisitKind.HOME_VISIT,
        priority=2,
        earliest=clock(),
        latest=clock() + timedelta(days=7),
        actor="dr.zhang",
        **kw,  # type: ignore[arg-type]
    )
    return opened.task.id


def b2(status: FindingStatus, clock: ManualClock) -> Finding:
    return Finding(
        P, "B2", 1, Metric.BLOOD_PRESSURE, Severity.P3, status, clock(), ("r-1",),
        {"sys_mmhg": 135.0}, Explanation("bp.mean_high"),
    )  # fmt: skip


def test_one_open_task_per_patient_and_reason(team: Engine, clock: ManualClock) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)
        first = _request(repo, clock)
        again = repo.open(
            P,
            Reason.doctor_request(VisitKind.HOME_VISIT, "again"),
            kind=VisitKind.HOME_VISIT,
            priority=1,
            earliest=clock(),
            latest=clock() + timedelta(days=1),
            actor="dr.zhang",
        )
        assert not again.created
        assert again.task.id == first
        assert again.task.priority == 2  # the open task is not rewritten by the second request
        # Another reason, or another patient, is another task.
        phone = repo.open(
            P,
            Reason.doctor_request(VisitKind.PHONE, "call"),
            kind=VisitKind.PHONE,
            priority=2,
            earliest=clock(),
            latest=clock() + timedelta(days=1),
            actor="dr.zhang",
        )
        assert phone.created
        assert _request(repo, clock, OTHER) not in (first, phone.task.id)
        repo.cancel(first, actor="dr.zhang", reason="patient admitted")
        # A closed task no longer blocks a new one for the same reason.
        assert _request(repo, clock) != first


def test_the_database_refuses_a_second_open_task_per_reason(
    team: Engine, clock: ManualClock
) -> None:
    with session_scope(team) as s:
        task = VisitRepository(s, clock=clock).get(_request(VisitRepository(s, clock=clock), clock))
    with session_scope(team) as s:
        s.add(
            VisitTask(
                code="V-RACE", patient_id=P, reason_kind=task.reason_kind.value,
                reason_key=task.reason_key, alert_id=None, rule_id=None, note="", kind="phone",
                priority=2, earliest=task.earliest, latest=task.latest, assignee=None,
                status="scheduled", scheduled_at=None, created_at=clock(), created_by="x",
                closed_at=None,
            )
        )  # fmt: skip
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_every_change_is_in_the_history_with_who_and_why(team: Engine, clock: ManualClock) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)
        task_id = _request(repo, clock)
        repo.assign(task_id, "nurse.liu", actor="dr.zhang", reason="her area")
        clock.advance(hours=1)
        first = clock() + timedelta(days=1)
        repo.schedule(task_id, first, actor="nurse.liu", reason="")
        with pytest.raises(InvalidRegistryInput):  # a reschedule needs a reason
            repo.schedule(task_id, first + timedelta(days=1), actor="nurse.liu", reason=" ")
        repo.schedule(task_id, first + timedelta(days=1), actor="nurse.liu", reason="家里没人")
        repo.miss(task_id, actor="nurse.liu", reason="patient not at home")
        history = repo.history(task_id)
    assert [(e.kind, e.from_status, e.to_status, e.actor) for e in history] == [
        ("opened", None, "requested", "dr.zhang"),
        ("assigned", "requested", "requested", "dr.zhang"),
        ("scheduled", "requested", "scheduled", "nurse.liu"),
        ("rescheduled", "scheduled", "scheduled", "nurse.liu"),
        ("missed", "scheduled", "missed", "nurse.liu"),
    ]
    assert history[3].reason == "家里没人"
    assert history[3].details["previous"] == first.isoformat()
    assert history[4].reason == "patient not at home"


def test_status_moves_follow_the_lifecycle(team: Engine, clock: ManualClock) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)
        task_id = _request(repo, clock, assignee="nurse.liu")
        visit = VisitInput(clock(), clock() + timedelta(minutes=30), True, "ok")
        with pytest.raises(VisitStateError):  # not scheduled yet
            repo.complete(task_id, visit, actor="nurse.liu")
        with pytest.raises(VisitStateError):
            repo.miss(task_id, actor="nurse.liu", reason="x")
        with pytest.raises(InvalidRegistryInput):  # cancelling needs a reason
            repo.cancel(task_id, actor="nurse.liu", reason="")
        repo.cancel(task_id, actor="nurse.liu", reason="duplicate")
        with pytest.raises(VisitStateError):
            repo.schedule(task_id, clock(), actor="nurse.liu", reason="x")
        assert repo.get(task_id).status is VisitStatus.CANCELLED


def test_the_assignee_is_a_nurse_of_the_patients_team(team: Engine, clock: ManualClock) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)
        task_id = _request(repo, clock)
        for not_her_patient in ("nurse.sun", "dr.zhang", "nobody"):
            with pytest.raises(InvalidRegistryInput, match="assignee"):
                repo.assign(task_id, not_her_patient, actor="dr.zhang", reason="")
        with pytest.raises(InvalidRegistryInput, match="assignee"):  # no nurse, no schedule
            repo.schedule(task_id, clock(), actor="dr.zhang", reason="")
        assert (
            repo.assign(task_id, "nurse.liu", actor="dr.zhang", reason="").assignee == "nurse.liu"
        )


def test_the_queue_is_by_priority_then_deadline(team: Engine, clock: ManualClock) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)

        def task(key: str, priority: int, days: int) -> int:
            return repo.open(
                P, Reason.routine(key), kind=VisitKind.PHONE, priority=priority,
                earliest=clock(), latest=clock() + timedelta(days=days), actor="dr.zhang",
            ).task.id  # fmt: skip

        late_low, soon_low, urgent = task("a", 3, 9), task("b", 3, 2), task("c", 1, 30)
        closed = task("d", 1, 1)
        repo.cancel(closed, actor="dr.zhang", reason="done by phone")
        other = _request(repo, clock, OTHER)
        assert [t.id for t in repo.queue([P])] == [urgent, soon_low, late_low]
        assert other in [t.id for t in repo.queue([P, OTHER])]
        assert repo.queue([]) == []


def _scheduled(repo: VisitRepository, clock: ManualClock, key: str) -> int:
    task_id = repo.open(
        P, Reason.routine(key), kind=VisitKind.HOME_VISIT, priority=3, earliest=clock(),
        latest=clock() + timedelta(days=14), actor="dr.zhang", assignee="nurse.liu",
    ).task.id  # fmt: skip
    repo.schedule(task_id, clock() + timedelta(hours=2), actor="nurse.liu", reason="")
    return task_id


def _visit(clock: ManualClock, result: FollowUpClass) -> VisitInput:
    return VisitInput(
        clock(), clock() + timedelta(minutes=40), True, "血压偏高", ("r-a", "r-b"),
        Programme.HYPERTENSION, result,
    )  # fmt: skip


def test_a_controlled_follow_up_opens_the_next_in_three_months(
    team: Engine, clock: ManualClock
) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)
        task_id = _scheduled(repo, clock, "routine:hypertension")
        done = repo.complete(task_id, _visit(clock, FollowUpClass.CONTROLLED), actor="nurse.liu")
        out = clock() + timedelta(minutes=40)
        assert done.task.status is VisitStatus.COMPLETED
        assert not done.referral
        assert done.next_task is not None
        assert done.next_task.latest == out + timedelta(days=91)
        assert done.next_task.earliest == out + timedelta(days=77)
        assert done.next_task.reason_kind is ReasonKind.ROUTINE
        assert done.next_task.assignee == "nurse.liu"
        record = repo.record_of(task_id)
        assert record is not None
        assert record.next_task_id == done.next_task.id
        assert record.reading_ids == '["r-a", "r-b"]'


def test_not_controlled_twice_in_a_row_asks_for_a_referral(
    team: Engine, clock: ManualClock
) -> None:
    with session_scope(team) as s:
        repo = VisitRepository(s, clock=clock)
        first = repo.complete(
            _scheduled(repo, clock, "routine:hypertension"),
            _visit(clock, FollowUpClass.NOT_CONTROLLED),
            actor="nurse.liu",
        )
        assert first.next_task is not None
        assert not first.referral
        assert first.next_task.latest - first.next_task.earliest == timedelta(days=14)
        clock.advance(days=10)
        repo.schedule(first.next_task.id, clock(), actor="nurse.liu", reason="")
        second = repo.complete(
            first.next_task.id, _visit(clock, FollowUpClass.NOT_CONTROLLED), actor="nurse.liu"
        )
        assert second.referral
        assert second.next_task is not None
        assert second.next_task.reason_key == "referral:hypertension"
        assert second.next_task.priority == 1


def test_fired_alerts_open_one_task_and_resolution_leaves_it(
    team: Engine, clock: ManualClock
) -> None:
    sink = LifecycleSink(team, clock=clock, on_fired=visit_task_hook(clock))
    sink(P, [b2(FindingStatus.FIRING, clock)])
    with session_scope(team) as s:
        tasks = VisitRepository(s, clock=clock).tasks_of_patient(P)
        alert = s.scalars(select(AlertRow)).one()
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.kind, task.alert_id, task.rule_id) == (VisitKind.HOME_VISIT, alert.id, "B2")
    assert task.latest - task.earliest == timedelta(days=14)
    assert task.earliest == clock()
    assert task.created_by == "engine"
    assert task.reason_kind is ReasonKind.ALERT
    with session_scope(team) as s:
        VisitRepository(s, clock=clock).assign(task.id, "nurse.liu", actor="dr.zhang", reason="")
        VisitRepository(s, clock=clock).schedule(
            task.id, clock() + timedelta(days=3), actor="nurse.liu", reason=""
        )
    # The alert clears and, a week later, fires again: still one open task, still scheduled.
    clock.advance(days=1)
    sink(P, [b2(FindingStatus.CLEAR, clock)])
    clock.advance(days=7)
    sink(P, [b2(FindingStatus.FIRING, clock)])
    with session_scope(team) as s:
        assert s.scalar(select(func.count()).select_from(AlertRow)) == 2
        tasks = VisitRepository(s, clock=clock).tasks_of_patient(P)
        assert [(t.id, t.status) for t in tasks] == [(task.id, VisitStatus.SCHEDULED)]
        assert AlertRepository(s).open_alerts(P)[0].alert_id != str(task.alert_id)
