"""The visit-reminder worker on an injected clock: every reminder once, across a SIGKILL.

The rows come from the real visit repository (tests/registry/test_visit_reminders.py's
seeded team); the worker claims them as :mod:`alerts.escalation` claims steps. The restart
test runs the worker as a real process, kills it with SIGKILL and checks what the channel
received (the delivery log the child writes) against the registry's delivery rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from alerts.notify.base import Message, PermanentFailure, Receipt, RecoverableFailure
from alerts.visit_reminders import VisitReminderWorker
from registry.db import session_scope
from registry.models import AuditRecord
from registry.visit_reminder_models import VisitReminder, VisitReminderDelivery
from registry.visit_reminders import claim_due, set_sms_opt_in
from registry.visits import VisitRepository
from tests.fakes import ManualClock
from tests.registry.conftest import clock, engine, registry_url  # noqa: F401 - fixtures
from tests.registry.test_escalation_sigkill import write_clock
from tests.registry.test_visit_reminders import (
    DAY_BEFORE,
    MORNING,
    VISIT,
    P,
    care,  # noqa: F401 - fixture
    open_task,
    schedule,
)

CHILD = Path(__file__).with_name("visit_reminder_child.py")


class Recorder:
    """A channel that keeps what it was given; ``refuse`` makes it fail for good, ``down``
    fail recoverably (every retry)."""

    def __init__(self, channel: str, refuse: bool = False) -> None:
        self.channel = channel
        self.sent: list[Message] = []
        self._refuse = refuse
        self.down = False

    def send(self, message: Message) -> Receipt:
        if self.down:
            raise RecoverableFailure(f"{self.channel} down")
        if self._refuse:
            raise PermanentFailure("number not in service")
        self.sent.append(message)
        return Receipt(self.channel, f"r-{len(self.sent)}")


@pytest.fixture
def channels() -> dict[str, Recorder]:
    return {"inbox": Recorder("inbox"), "sms": Recorder("sms")}


def worker(db: Engine, now: ManualClock, channels: dict[str, Recorder]) -> VisitReminderWorker:
    return VisitReminderWorker(
        db, notifiers=channels, clock=now, worker_id="w", sleep=lambda _s: None
    )


def sent(channels: dict[str, Recorder]) -> list[tuple[str, str]]:
    return [(c, m.recipient) for c, r in channels.items() for m in r.sent]


def code_of(db: Engine, task_id: int) -> str:
    with session_scope(db, write=False) as s:
        return VisitRepository(s).get(task_id).code


def test_reminders_fire_once_each_with_the_least_data(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    channels: dict[str, Recorder],
) -> None:
    with session_scope(care) as s:
        set_sms_opt_in(s, P, True, actor="li.qiang", now=clock())
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    run = worker(care, clock, channels)
    clock.now = DAY_BEFORE - timedelta(minutes=1)
    assert run.run_once() == 0
    clock.now = DAY_BEFORE
    assert run.run_once() == 1
    assert run.run_once() == 0
    [day_before] = channels["inbox"].sent
    code = code_of(care, task_id)
    assert day_before.address == "nurse.liu"
    assert day_before.alert_id is None
    assert day_before.body == (
        f"【VitalGate】明日访视提醒：{code}，上门随访，3月3日 10:00，和平里社区。"
        "请在应用中查看任务。"
    )
    clock.now = MORNING + timedelta(minutes=1)
    assert run.run_once() == 2
    clock.advance(hours=1)
    assert run.run_once() == 0
    assert Counter(c for c, _ in sent(channels)) == Counter({"inbox": 2, "sms": 1})
    [sms] = channels["sms"].sent
    assert sms.address == "13800000001"
    assert sms.recipient == f"patient:{P}"
    assert code in sms.body
    assert "3月3日 10:00" in sms.body
    for message in [*channels["inbox"].sent, sms]:
        # No name, no address, no reason or diagnosis, no phone number in the text.
        for secret in ("李强", "血压", "高血压", "13800000001", "hypertension"):
            assert secret not in message.body
            assert secret not in message.subject
    with session_scope(care, write=False) as s:
        rows = list(s.scalars(select(VisitReminderDelivery)))
        audits = s.scalars(select(AuditRecord.action).where(AuditRecord.action == "visit.remind"))
        assert len(list(audits)) == 3
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 1)] * 3
    assert len({r.idempotency_key for r in rows}) == 3


def test_a_reminder_claimed_before_the_visit_moved_is_not_sent(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    channels: dict[str, Recorder],
) -> None:
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    clock.now = DAY_BEFORE
    [claimed] = claim_due(care, worker="w", now=clock(), lease=timedelta(minutes=2))
    # Between the claim and the send the nurse moves the visit (another transaction).
    schedule(care, clock, task_id, VISIT + timedelta(days=1), why="患者改约")
    worker(care, clock, channels)._run(claimed, clock())
    assert sent(channels) == []
    with session_scope(care, write=False) as s:
        assert s.get_one(VisitReminder, claimed.reminder_id).status == "superseded"
    # The new time's reminders run instead.
    clock.now = DAY_BEFORE + timedelta(days=1)
    worker(care, clock, channels).run_once()
    assert "3月4日 10:00" in channels["inbox"].sent[0].body


def test_an_overdue_task_escalates_to_the_team_lead_once(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    channels: dict[str, Recorder],
) -> None:
    overdue = open_task(care, clock, days=3, reason="overdue")
    done_in_time = open_task(care, clock, days=3, reason="in-time")
    schedule(care, clock, done_in_time, clock() + timedelta(days=1))
    with session_scope(care) as s:
        VisitRepository(s, clock=clock).cancel(done_in_time, actor="nurse.liu", reason="已电话随访")
    run = worker(care, clock, channels)
    clock.advance(days=3)
    clock.advance(seconds=-1)
    run.run_once()
    assert sent(channels) == []
    clock.advance(seconds=61)
    run.run_once()
    clock.advance(days=2)
    run.run_once()
    [message] = channels["inbox"].sent
    assert message.address == "lead.wang"
    code = code_of(care, overdue)
    assert message.subject == f"访视逾期 {code}"
    assert "已过截止时间" in message.body
    assert "和平里社区" in message.body


def test_nobody_reachable_is_skipped_and_a_refusal_fails(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
) -> None:
    with session_scope(care) as s:
        set_sms_opt_in(s, P, True, actor="li.qiang", now=clock())
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    refusing = {"inbox": Recorder("inbox", refuse=True)}  # no SMS gateway configured
    clock.now = MORNING
    VisitReminderWorker(care, notifiers=refusing, clock=clock, worker_id="w",
                        sleep=lambda _s: None).run_once()  # fmt: skip
    with session_scope(care, write=False) as s:
        statuses = {
            (r.kind, r.audience): r.status
            for r in s.scalars(select(VisitReminder).where(VisitReminder.task_id == task_id))
        }
    assert statuses == {
        ("overdue", "team_lead"): "due",
        ("day_before", "nurse"): "failed",
        ("morning_of", "nurse"): "failed",
        ("morning_of", "patient"): "skipped",
    }


def test_recoverable_failures_give_the_reminder_back_and_the_next_tick_delivers(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    channels: dict[str, Recorder],
) -> None:
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    channels["inbox"].down = True
    run = worker(care, clock, channels)
    clock.now = DAY_BEFORE
    assert run.run_once() == 1
    with session_scope(care, write=False) as s:
        [row] = s.scalars(select(VisitReminderDelivery))
        assert (row.status, row.attempts, row.error, row.receipt) == (
            "failed", 1, "inbox down", None
        )  # fmt: skip
        reminder = s.get_one(VisitReminder, row.reminder_id)
        assert (reminder.status, reminder.claimed_by, reminder.lease_until) == ("due", None, None)
        failed = s.scalars(select(AuditRecord).where(AuditRecord.action == "visit.remind_failed"))
        assert [a.target for a in failed] == [f"visit:{task_id}"]
    channels["inbox"].down = False
    assert run.run_once() == 1  # given back: due again at once, no lease to wait out
    with session_scope(care, write=False) as s:
        [row] = s.scalars(select(VisitReminderDelivery))
        assert (row.status, row.attempts, row.error) == ("delivered", 2, None)
        assert s.get_one(VisitReminder, row.reminder_id).status == "done"
    assert sent(channels) == [("inbox", row.recipient)]


def test_a_delivery_already_recorded_is_not_sent_again(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    channels: dict[str, Recorder],
) -> None:
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    clock.now = DAY_BEFORE
    assert worker(care, clock, channels).run_once() == 1
    with session_scope(care) as s:
        # As if the worker died after recording the receipt and before finishing the
        # reminder, and its lease ran out: the reminder is claimable again.
        [row] = s.scalars(select(VisitReminderDelivery))
        reminder = s.get_one(VisitReminder, row.reminder_id)
        reminder.status, reminder.done_at, reminder.outcome = "due", None, None
    assert worker(care, clock, channels).run_once() == 1
    assert len(channels["inbox"].sent) == 1
    with session_scope(care, write=False) as s:
        [row] = s.scalars(select(VisitReminderDelivery))
        assert (row.status, row.attempts) == ("delivered", 1)
        assert s.get_one(VisitReminder, row.reminder_id).status == "done"


# -- a real process, killed ------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def child(care: Engine, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:  # noqa: F811
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        ready = tmp_path / "log.ready"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), care.url.render_as_string(hide_password=False),
             str(tmp_path / "clock"), str(tmp_path / "log"), name],
            env=env,
        )  # fmt: skip
        started.append(proc)
        wait_for(ready.exists)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_exactly_once_across_a_sigkill_between_reminders(
    care: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    tmp_path: Path,
    child: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    log, hold, clock_file = tmp_path / "log", tmp_path / "log.hold", tmp_path / "clock"

    def set_clock(at: datetime) -> None:
        # Atomically: the child reading a half-written file crashed under load
        # ("Invalid isoformat string: ''") and the test failed.
        write_clock(clock_file, at)

    def lines() -> list[str]:
        return log.read_text().split() if log.exists() else []

    def status(kind: str, audience: str) -> str:
        with session_scope(care, write=False) as s:
            return s.scalars(
                select(VisitReminder.status).where(
                    VisitReminder.kind == kind, VisitReminder.audience == audience
                )
            ).one()

    with session_scope(care) as s:
        set_sms_opt_in(s, P, True, actor="li.qiang", now=clock())
    task_id = open_task(care, clock)
    schedule(care, clock, task_id, VISIT)
    set_clock(clock())
    first = child("w1")
    set_clock(DAY_BEFORE)
    wait_for(lambda: status("day_before", "nurse") == "done")
    # Killed between reminders: the day-before one is done, the morning ones not yet due.
    kill(first)
    assert len(lines()) == 1
    second = child("w2")
    set_clock(MORNING + timedelta(minutes=1))
    wait_for(lambda: status("morning_of", "patient") == "done")
    wait_for(lambda: status("morning_of", "nurse") == "done")
    # Killed while the overdue escalation is being sent: the message is out, not recorded.
    hold.touch()
    with session_scope(care) as s:
        latest = VisitRepository(s).get(task_id).latest
    set_clock(latest + timedelta(minutes=1))
    wait_for(lambda: len(lines()) == 4)
    kill(second)
    hold.unlink()
    child("w3")
    time.sleep(0.5)
    assert len(lines()) == 4  # w2's lease still holds the overdue reminder
    set_clock(latest + timedelta(minutes=4))
    wait_for(lambda: status("overdue", "team_lead") == "done")
    channel = Counter(lines())
    with session_scope(care, write=False) as s:
        rows = list(s.scalars(select(VisitReminderDelivery)))
    assert sorted(channel) == sorted(r.idempotency_key for r in rows)  # each recorded once
    assert all(r.status == "delivered" for r in rows)
    kinds = Counter(key.split(":")[2] for key in channel.elements())
    # Every reminder once across the restart between them; only the message in flight at
    # the second kill went out twice (at least once), and was recorded once.
    assert kinds == Counter({"day_before": 1, "morning_of": 2, "overdue": 2})
    assert {r.idempotency_key: r.attempts for r in rows} == dict(channel)
