"""Visit reminders as registry rows, on SQLite and PostgreSQL, with an injected clock.

The rows follow the task through the real visit repository: scheduled → reminders planned,
rescheduled → superseded and replanned, closed → cancelled; claims are exclusive.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from registry.care import AccountRepository, ContractRepository, TeamRepository
from registry.care_models import AccountKind, Role, TeamPosition
from registry.db import session_scope
from registry.models import Patient
from registry.repositories import PatientRepository
from registry.visit_models import VisitKind, VisitStatus
from registry.visit_reminder_models import (
    ReminderAudience,
    ReminderKind,
    ReminderStatus,
    VisitReminder,
)
from registry.visit_reminders import (
    TaskState,
    claim_due,
    finish,
    plan,
    reminder_key,
    reminders_of,
    set_sms_opt_in,
)
from registry.visits import Reason, VisitInput, VisitRepository
from tests.fakes import ManualClock
from tests.registry.conftest import T0

P = "p-li"
SHANGHAI_UTC_OFFSET = timedelta(hours=8)
VISIT = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
"""10:00 in Shanghai on 3 March (T0 is 16:00 on 1 March there)."""
DAY_BEFORE = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
"""18:00 in Shanghai on 2 March."""
MORNING = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
"""07:30 in Shanghai on 3 March."""


@pytest.fixture
def care(engine: Engine, clock: ManualClock) -> Engine:
    """Patient 李强 of team A (nurse 刘, lead 王, a patient account with a phone)."""
    with session_scope(engine) as s:
        PatientRepository(s, clock=clock).add(P, display_name="李强")
        s.get_one(Patient, P).community = "和平里社区"
        accounts = AccountRepository(s, clock=clock)
        accounts.add(
            "dr.zhang", display_name="张", kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.add("nurse.liu", display_name="刘", kind=AccountKind.STAFF, roles=[Role.NURSE])
        accounts.add("lead.wang", display_name="王", kind=AccountKind.STAFF, roles=[Role.TEAM_LEAD])
        accounts.add(
            "li.qiang", display_name="李强", kind=AccountKind.PATIENT, phone="13800000001",
            patient_id=P,
        )  # fmt: skip
        teams = TeamRepository(s, clock=clock)
        teams.add("team-a", name="一", organisation="东城")
        teams.add_member("team-a", "dr.zhang", TeamPosition.DOCTOR)
        teams.add_member("team-a", "nurse.liu", TeamPosition.NURSE)
        teams.add_member("team-a", "lead.wang", TeamPosition.LEAD)
        ContractRepository(s, clock=clock).sign(
            P, "team-a", service_package="hypertension", starts_on=T0.date()
        )
    clock.advance(minutes=5)
    return engine


def open_task(engine: Engine, clock: ManualClock, *, days: int = 14, reason: str = "") -> int:
    """A home visit for 李强 due within ``days``, assigned to nurse 刘 (another ``reason``:
    another task, since there is one open task per patient + reason)."""
    why = (
        Reason.routine(f"routine:{reason}")
        if reason
        else Reason.doctor_request(VisitKind.HOME_VISIT, "请上门复测血压")
    )
    with session_scope(engine) as s:
        opened = VisitRepository(s, clock=clock).open(
            P,
            why,
            kind=VisitKind.HOME_VISIT,
            priority=2,
            earliest=clock(),
            latest=clock() + timedelta(days=days),
            actor="dr.zhang",
            assignee="nurse.liu",
        )
        return opened.task.id


def schedule(engine: Engine, clock: ManualClock, task_id: int, at: datetime, why: str = "") -> None:
    with session_scope(engine) as s:
        VisitRepository(s, clock=clock).schedule(task_id, at, actor="nurse.liu", reason=why)


def rows(engine: Engine, task_id: int) -> dict[str, tuple[str, datetime]]:
    with session_scope(engine, write=False) as s:
        return {r.idempotency_key: (r.status, r.due_at) for r in reminders_of(s, task_id)}


def test_the_plan_is_in_the_patients_local_time() -> None:
    state = TaskState(1, VisitStatus.SCHEDULED, VISIT, VISIT + timedelta(days=9),
                      "Asia/Shanghai", patient_sms_opt_in=False)  # fmt: skip
    planned = {(p.kind, p.audience): p for p in plan(state)}
    assert planned.keys() == {
        (ReminderKind.OVERDUE, ReminderAudience.TEAM_LEAD),
        (ReminderKind.DAY_BEFORE, ReminderAudience.NURSE),
        (ReminderKind.MORNING_OF, ReminderAudience.NURSE),
    }
    assert planned[ReminderKind.DAY_BEFORE, ReminderAudience.NURSE].due_at == DAY_BEFORE
    assert planned[ReminderKind.MORNING_OF, ReminderAudience.NURSE].due_at == MORNING
    assert planned[ReminderKind.OVERDUE, ReminderAudience.TEAM_LEAD].due_at == state.latest
    # Another zone, other UTC times: 18:00 and 07:30 are the patient's, not the server's.
    berlin = plan(TaskState(1, VisitStatus.SCHEDULED, VISIT + timedelta(hours=8), state.latest,
                            "Europe/Berlin", patient_sms_opt_in=True))  # fmt: skip
    due = {(p.kind, p.audience): p.due_at for p in berlin}
    assert due[ReminderKind.DAY_BEFORE, ReminderAudience.NURSE] == datetime(
        2026, 3, 2, 17, 0, tzinfo=UTC
    )
    assert due[ReminderKind.MORNING_OF, ReminderAudience.PATIENT] == datetime(
        2026, 3, 3, 6, 30, tzinfo=UTC
    )


def test_a_visit_before_half_past_seven_has_no_morning_reminder() -> None:
    early = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai
    kinds = {p.kind for p in plan(TaskState(1, VisitStatus.SCHEDULED, early, VISIT,
                                            "Asia/Shanghai", patient_sms_opt_in=True))}  # fmt: skip
    assert kinds == {ReminderKind.OVERDUE, ReminderKind.DAY_BEFORE}
    requested = plan(TaskState(1, VisitStatus.REQUESTED, None, VISIT, "Asia/Shanghai", True))
    assert [(p.kind, p.due_at) for p in requested] == [(ReminderKind.OVERDUE, VISIT)]
    for closed in (VisitStatus.COMPLETED, VisitStatus.CANCELLED, VisitStatus.MISSED):
        assert plan(TaskState(1, closed, VISIT, VISIT, "Asia/Shanghai", True)) == []


def test_scheduling_creates_keyed_rows_and_an_open_task_its_overdue_row(
    care: Engine, clock: ManualClock
) -> None:
    task_id = open_task(care, clock)
    latest = clock() + timedelta(days=14)
    overdue = reminder_key(task_id, ReminderKind.OVERDUE, ReminderAudience.TEAM_LEAD, latest)
    assert rows(care, task_id) == {overdue: ("due", latest)}
    schedule(care, clock, task_id, VISIT)
    day_before = reminder_key(task_id, ReminderKind.DAY_BEFORE, ReminderAudience.NURSE, VISIT)
    morning = reminder_key(task_id, ReminderKind.MORNING_OF, ReminderAudience.NURSE, VISIT)
    assert day_before == f"visit:{task_id}:day_before:nurse:20260303T0200Z"
    assert rows(care, task_id) == {
        overdue: ("due", latest),
        day_before: ("due", DAY_BEFORE),
        morning: ("due", MORNING),
    }
    # The patient did not opt in: no SMS row. Opting in plans it for the scheduled visit.
    with session_scope(care) as s:
        set_sms_opt_in(s, P, True, actor="li.qiang", now=clock())
    sms = reminder_key(task_id, ReminderKind.MORNING_OF, ReminderAudience.PATIENT, VISIT)
    assert rows(care, task_id)[sms] == ("due", MORNING)
    with session_scope(care, write=False) as s:
        channels = {r.audience: r.channel for r in reminders_of(s, task_id)}
    assert channels == {"team_lead": "inbox", "nurse": "inbox", "patient": "sms"}
    with session_scope(care) as s:
        set_sms_opt_in(s, P, False, actor="li.qiang", now=clock())
    assert rows(care, task_id)[sms][0] == "superseded"


def test_rescheduling_supersedes_the_old_rows_and_plans_new_ones(
    care: Engine, clock: ManualClock
) -> None:
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    first = set(rows(care, task_id))
    later = VISIT + timedelta(days=2)
    schedule(care, clock, task_id, later, why="患者周二不在家")
    after = rows(care, task_id)
    old = {k for k in first if "overdue" not in k}
    assert {after[k][0] for k in old} == {"superseded"}
    new = {k: v for k, v in after.items() if k not in first}
    assert sorted(v for v in new.values()) == [
        ("due", DAY_BEFORE + timedelta(days=2)),
        ("due", MORNING + timedelta(days=2)),
    ]
    # Back to the first time: its rows are due again, not duplicated.
    schedule(care, clock, task_id, VISIT, why="患者改回周二")
    back = rows(care, task_id)
    assert len(back) == 5
    assert {back[k][0] for k in old} == {"due"}
    assert {back[k][0] for k in new} == {"superseded"}


def test_a_reminder_already_sent_is_not_revived(care: Engine, clock: ManualClock) -> None:
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    clock.now = DAY_BEFORE
    [claimed] = claim_due(care, worker="w", now=clock(), lease=timedelta(minutes=2))
    with session_scope(care) as s:
        s.get_one(VisitReminder, claimed.reminder_id).status = ReminderStatus.DONE.value
    schedule(care, clock, task_id, VISIT + timedelta(days=1), why="改期")
    schedule(care, clock, task_id, VISIT, why="改回")
    assert rows(care, task_id)[claimed.idempotency_key][0] == "done"


def test_closing_a_task_cancels_its_pending_reminders(care: Engine, clock: ManualClock) -> None:
    cancelled = open_task(care, clock)
    schedule(care, clock, cancelled, VISIT)
    with session_scope(care) as s:
        VisitRepository(s, clock=clock).cancel(cancelled, actor="nurse.liu", reason="住院")
    assert {status for status, _ in rows(care, cancelled).values()} == {"cancelled"}
    missed = open_task(care, clock)
    schedule(care, clock, missed, VISIT)
    with session_scope(care) as s:
        VisitRepository(s, clock=clock).miss(missed, actor="nurse.liu", reason="不在家")
    assert {status for status, _ in rows(care, missed).values()} == {"cancelled"}
    completed = open_task(care, clock)
    schedule(care, clock, completed, VISIT)
    clock.now = DAY_BEFORE + timedelta(minutes=1)
    [sent] = claim_due(care, worker="w", now=clock(), lease=timedelta(minutes=2))
    with session_scope(care) as s:
        s.get_one(VisitReminder, sent.reminder_id).status = ReminderStatus.DONE.value
    clock.now = VISIT + timedelta(hours=1)
    with session_scope(care) as s:
        VisitRepository(s, clock=clock).complete(
            completed,
            VisitInput(VISIT, VISIT + timedelta(minutes=40), consent=True, assessment="血压稳定"),
            actor="nurse.liu",
        )
    statuses = Counter(status for status, _ in rows(care, completed).values())
    assert statuses == Counter({"cancelled": 2, "done": 1})  # the one sent stays done


def test_a_reminder_already_past_when_planned_is_not_created(
    care: Engine, clock: ManualClock
) -> None:
    task_id = open_task(care, clock)
    clock.now = DAY_BEFORE + timedelta(hours=2)  # 20:00 the evening before
    schedule(care, clock, task_id, VISIT)
    assert {k.split(":")[2] for k in rows(care, task_id)} == {"overdue", "morning_of"}


def test_claims_are_exclusive_and_leases_expire(care: Engine, clock: ManualClock) -> None:
    tasks = [open_task(care, clock, days=3 + n, reason=f"r{n}") for n in range(6)]
    for n, task_id in enumerate(tasks):
        schedule(care, clock, task_id, VISIT + timedelta(hours=n))
    now = MORNING + timedelta(minutes=1)
    barrier = threading.Barrier(4)
    won: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def claim(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                won[n] += [
                    c.reminder_id
                    for c in claim_due(
                        care, worker=f"w{n}", now=now, lease=timedelta(minutes=2), limit=2
                    )
                ]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    claimed = [r for ids in won for r in ids]
    with session_scope(care, write=False) as s:
        due_now = list(s.scalars(select(VisitReminder.id).where(VisitReminder.due_at <= now)))
    assert len(due_now) == 12  # six day-before and six morning reminders
    assert sorted(claimed) == sorted(due_now)  # every one claimed, none twice
    # Nothing is claimable until the leases run out; then all of them are again.
    assert claim_due(care, worker="x", now=now + timedelta(minutes=1), lease=timedelta(1)) == []
    again = claim_due(care, worker="x", now=now + timedelta(minutes=3), lease=timedelta(1))
    assert sorted(c.reminder_id for c in again) == sorted(due_now)
    # A reminder not yet due is never claimed.
    with session_scope(care, write=False) as s:
        later = s.scalars(select(VisitReminder.id).where(VisitReminder.due_at > now)).all()
    assert later
    assert not set(later) & {c.reminder_id for c in again}


def test_a_worker_that_lost_its_lease_cannot_finish_the_reminder(
    care: Engine, clock: ManualClock
) -> None:
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    clock.now = DAY_BEFORE
    [old] = claim_due(care, worker="w1", now=clock(), lease=timedelta(minutes=2))
    clock.advance(minutes=3)
    [new] = claim_due(care, worker="w2", now=clock(), lease=timedelta(minutes=2))
    assert new.reminder_id == old.reminder_id
    with session_scope(care) as s:
        assert not finish(s, old, status=ReminderStatus.DONE, outcome="late", now=clock())
        assert finish(s, new, status=ReminderStatus.DONE, outcome="ok", now=clock())
    with session_scope(care, write=False) as s:
        row = s.get_one(VisitReminder, new.reminder_id)
        assert (row.status, row.outcome, row.claimed_by) == ("done", "ok", "w2")
