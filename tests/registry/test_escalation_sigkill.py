"""The escalation worker as a real process, SIGKILLed while notifying and between steps.

Checked against the delivery log the child writes (what the "channel" received) and the
registry: every step runs exactly once, none is missed, and every notification is delivered
at least once and recorded once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from alerts.escalation import EscalationWorker
from alerts.model import FindingStatus, Severity
from alerts.recipients import registry_message_prefs, registry_recipients
from registry.alert_models import EscalationStep, NotificationRow
from registry.db import session_scope
from registry.notification_prefs import NotificationPrefsRepository
from registry.notification_prefs_models import NonUrgentChannel
from tests.fakes import ManualClock
from tests.registry.conftest import T0
from tests.registry.test_alerts_repo import P, evaluate, finding, home  # noqa: F401 - fixture

CHILD = Path(__file__).with_name("escalation_child.py")


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def child(home: Engine, tmp_path: Path) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:  # noqa: F811
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        ready = tmp_path / "log.ready"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(home.url.render_as_string(hide_password=False)),
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


def write_clock(path: Path, at: datetime) -> None:
    """Move the child's clock atomically: a child reading a half-written file would crash
    (``Invalid isoformat string: ''``) and the test would time out waiting for it."""
    part = path.with_suffix(".part")
    part.write_text(at.isoformat())
    os.replace(part, path)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_sigkill_while_notifying_and_between_steps(
    home: Engine,  # noqa: F811
    clock: ManualClock,
    tmp_path: Path,
    child: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    log, hold, clock_file = tmp_path / "log", tmp_path / "log.hold", tmp_path / "clock"

    def set_clock(at: datetime) -> None:
        write_clock(clock_file, at)

    def lines() -> list[str]:
        return log.read_text().split() if log.exists() else []

    def delivered() -> int:
        with session_scope(home) as s:
            rows = s.scalars(select(NotificationRow).where(NotificationRow.status == "delivered"))
            return len(list(rows))

    set_clock(T0)
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    # 1. Killed while notifying: the first message is out, its receipt not yet recorded.
    hold.touch()
    first = child("w1")
    wait_for(lambda: len(lines()) == 1)
    kill(first)
    hold.unlink()
    second = child("w2")
    time.sleep(0.5)
    assert len(lines()) == 1  # w1's lease still holds the steps
    set_clock(T0 + timedelta(minutes=3))
    wait_for(lambda: delivered() == 5)  # inbox x3, SMS x2
    # 2. Killed between steps: the 10-minute step is done, then the worker dies.
    set_clock(T0 + timedelta(minutes=10))
    wait_for(lambda: delivered() == 6)
    kill(second)
    child("w3")
    set_clock(T0 + timedelta(minutes=20))

    def steps() -> Counter[tuple[int, int, str]]:
        with session_scope(home) as s:
            return Counter(
                (st.step_no, st.repeat_no, st.status) for st in s.scalars(select(EscalationStep))
            )

    # The duty doctor has no phone: skipped at once, and the last step repeats.
    wait_for(lambda: (3, 0, "skipped") in steps())
    assert steps() == Counter(
        {(0, 0, "done"): 1, (1, 0, "done"): 1, (2, 0, "done"): 1, (3, 0, "skipped"): 1,
         (3, 1, "due"): 1}
    )  # fmt: skip
    sent = Counter(lines())
    with session_scope(home) as s:
        rows = list(s.scalars(select(NotificationRow)))
    assert sorted(sent) == sorted(r.idempotency_key for r in rows)  # each recorded once
    assert all(r.status == "delivered" for r in rows)
    # At least once: only the message in flight at the first kill went out twice.
    assert sorted(sent.values()) == [1, 1, 1, 1, 1, 2]
    assert {r.idempotency_key: r.attempts for r in rows} == dict(sent)


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_sigkill_across_a_quiet_hours_deferral(
    home: Engine,  # noqa: F811
    clock: ManualClock,
    tmp_path: Path,
    child: Callable[[str], subprocess.Popen[bytes]],
) -> None:
    """A P3 at 23:30 in Shanghai: the doctor's inbox at once, the patient's WeChat held to
    07:00; workers killed before and after the deferral send it once, at 07:00."""
    log, hold, clock_file = tmp_path / "log", tmp_path / "log.hold", tmp_path / "clock"
    late = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    quiet_end = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai
    with session_scope(home) as s:
        NotificationPrefsRepository(s).set(
            P,
            channel=NonUrgentChannel.WECHAT,
            quiet_start=clock_time(22, 0),
            quiet_end=clock_time(7, 0),
            by="wang.fang",
        )

    def set_clock(at: datetime) -> None:
        write_clock(clock_file, at)

    def lines() -> list[str]:
        return log.read_text().split() if log.exists() else []

    def patient_step() -> tuple[str, datetime, str | None]:
        with session_scope(home, write=False) as s:
            st = s.scalars(select(EscalationStep).where(EscalationStep.step_no == 1)).one()
            return st.status, st.due_at, st.outcome

    clock.now = late
    set_clock(late)
    evaluate(home, clock, finding("G5", FindingStatus.FIRING, clock, Severity.P3))
    # 1. Killed while telling the doctor, holding both steps' claims.
    hold.touch()
    first = child("w1")
    wait_for(lambda: len(lines()) == 1)
    kill(first)
    hold.unlink()
    # 2. The restarted worker takes both after the lease: the inbox again, the WeChat held.
    second = child("w2")
    set_clock(late + timedelta(minutes=3))
    wait_for(lambda: patient_step() == ("due", quiet_end, "deferred: quiet hours"))
    kill(second)
    assert not [line for line in lines() if ":wechat:" in line]
    # 3. Another worker, after seven: the held message goes, once.
    third = child("w3")
    set_clock(quiet_end)
    wait_for(lambda: patient_step()[0] == "done")
    kill(third)
    clock.now = quiet_end + timedelta(days=1)
    after = EscalationWorker(
        home,
        notifiers={},
        recipients=registry_recipients,
        clock=clock,
        worker_id="w4",
        message_prefs=registry_message_prefs,
    )
    assert after.run_once() == 0  # nothing left due
    sent = Counter(lines())
    with session_scope(home) as s:
        rows = list(s.scalars(select(NotificationRow)))
    assert sorted((r.channel, r.status, r.attempts) for r in rows) == [
        ("inbox", "delivered", 2),  # in flight at the first kill: sent twice, recorded once
        ("wechat", "delivered", 1),
    ]
    assert {r.idempotency_key: r.attempts for r in rows} == dict(sent)
    assert [r.delivered_at for r in rows if r.channel == "wechat"] == [quiet_end]
