"""Alerts and escalation in the registry, on SQLite and PostgreSQL, with an injected clock.

The notifier here is a recording double (the real SMTP and webhook notifiers have their own
tests against a real aiosmtpd server and a real HTTP server); a "crash" is an exception that
escapes the worker at the chosen moment, after which a fresh worker takes over, as a restarted
process would: it shares nothing with the dead one but the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from alerts.escalation import NOTIFY_FAILED_RULE, EscalationWorker
from alerts.lifecycle import AlertState, LifecycleError, MonitoringStatus, decide
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity
from alerts.notify.base import Message, PermanentFailure, Receipt, RecoverableFailure
from alerts.recipients import registry_recipients
from registry.alert_models import AlertRow, EscalationStep, NotificationRow
from registry.alerts_repo import AlertRepository
from registry.audit import AuditRecord, verify_audit_log
from registry.care import (
    AccountRepository,
    ContractRepository,
    FamilyRepository,
    PatientCareRepository,
    RotaRepository,
    TeamRepository,
)
from registry.care_models import AccountKind, ConsentScope, PatientStatus, Role, TeamPosition
from registry.db import session_scope
from registry.repositories import PatientRepository
from tests.fakes import ManualClock
from tests.registry.conftest import T0

P = "p-wang"


class Crash(BaseException):
    """Stands for SIGKILL: escapes every ``except Exception``."""


@dataclass
class RecordingNotifier:
    channel: str
    sent: list[Message] = field(default_factory=list)
    permanent_for: set[str] = field(default_factory=set)
    crash_after_send: int | None = None
    down: bool = False
    """Every send fails recoverably (outlasting the retries)."""

    def send(self, message: Message) -> Receipt:
        if self.down:
            raise RecoverableFailure(f"{self.channel} down")
        if message.recipient in self.permanent_for:
            raise PermanentFailure("number not in service")
        self.sent.append(message)
        if self.crash_after_send is not None and len(self.sent) == self.crash_after_send:
            self.crash_after_send = None
            raise Crash
        return Receipt(self.channel, f"r-{len(self.sent)}")


@pytest.fixture
def home(engine: Engine, clock: ManualClock) -> Iterator[Engine]:
    with session_scope(engine) as s:
        PatientRepository(s, clock=clock).add(P, display_name="王芳")
        accounts = AccountRepository(s, clock=clock)
        accounts.add(
            "dr.zhang", display_name="张", kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.add(
            "dr.chen", display_name="陈", kind=AccountKind.STAFF, roles=[Role.FAMILY_DOCTOR]
        )
        accounts.add(
            "wang.fang",
            display_name="王",
            kind=AccountKind.PATIENT,
            patient_id=P,
            phone="13800000001",
        )
        accounts.add(
            "wang.daughter", display_name="女", kind=AccountKind.FAMILY, phone="13800000002"
        )
        accounts.add("wang.son", display_name="子", kind=AccountKind.FAMILY, phone="13800000003")
        TeamRepository(s, clock=clock).add("team-a", name="一", organisation="东城")
        TeamRepository(s, clock=clock).add_member("team-a", "dr.zhang", TeamPosition.DOCTOR)
        ContractRepository(s, clock=clock).sign(
            P, "team-a", service_package="diabetes", starts_on=T0.date()
        )
        family = FamilyRepository(s, clock=clock)
        family.link(P, "wang.daughter", relationship="daughter")
        family.link(P, "wang.son", relationship="son")
        family.grant(P, "wang.daughter", [ConsentScope.RECEIVE_ALERTS], granted_by="wang.fang")
        # The son may see readings but not receive alerts: he must never be phoned.
        family.grant(P, "wang.son", [ConsentScope.VIEW_READINGS], granted_by="wang.fang")
        RotaRepository(s).add_shift(
            "team-a", "dr.chen", starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=12)
        )
    return engine


def finding(
    rule: str, status: FindingStatus, clock: ManualClock, severity: Severity = Severity.P1
) -> Finding:
    return Finding(
        P,
        rule,
        1,
        Metric.GLUCOSE,
        severity,
        status,
        clock(),
        ("r-9",),
        {"low_mmol_l": 3.0},
        Explanation("glucose.low"),
    )


def evaluate(engine: Engine, clock: ManualClock, *findings: Finding) -> list[int]:
    with session_scope(engine) as s:
        repo = AlertRepository(s)
        d = decide(
            P,
            findings,
            repo.open_alerts(P),
            silences=repo.silences(P, clock()),
            status=repo.monitoring_status(P, clock()),
            now=clock(),
        )
        return repo.record(d)


def worker(
    engine: Engine, clock: ManualClock, notifiers: dict[str, RecordingNotifier], name: str = "w1"
) -> EscalationWorker:
    return EscalationWorker(
        engine,
        notifiers=notifiers,
        recipients=registry_recipients,
        clock=clock,
        worker_id=name,
        sleep=lambda _s: None,
    )


def channels() -> dict[str, RecordingNotifier]:
    return {c: RecordingNotifier(c) for c in ("inbox", "sms", "voice")}


def test_every_transition_is_an_event_and_an_audit_link(home: Engine, clock: ManualClock) -> None:
    [alert_id] = evaluate(home, clock, finding("G1", FindingStatus.PENDING, clock))
    clock.advance(minutes=5)
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    with session_scope(home) as s:
        AlertRepository(s).acknowledge(
            alert_id, actor="dr.zhang", note="打电话确认已进食", now=clock()
        )
    clock.advance(minutes=30)
    evaluate(home, clock, finding("G1", FindingStatus.CLEAR, clock))
    with session_scope(home) as s:
        events = AlertRepository(s).events(alert_id)
        assert [(e.kind, e.to_state, e.actor) for e in events] == [
            ("open_pending", "pending", "engine"),
            ("fire", "firing", "engine"),
            ("acknowledge", "acknowledged", "dr.zhang"),
            ("resolve", "resolved", "engine"),
        ]
        assert events[-1].reason == "all clear"
        actions = list(
            s.scalars(select(AuditRecord.action).where(AuditRecord.target == f"alert:{alert_id}"))
        )
        assert actions[:4] == [
            "alert.open_pending",
            "alert.fire",
            "alert.acknowledge",
            "alert.resolve",
        ]
        assert verify_audit_log(s) == []
        # Acknowledged: the rest of the chain was cancelled.
        statuses = set(
            s.scalars(select(EscalationStep.status).where(EscalationStep.alert_id == alert_id))
        )
        assert "due" not in statuses


def test_the_database_refuses_a_second_open_alert_per_rule(
    home: Engine, clock: ManualClock
) -> None:
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    with session_scope(home) as s:
        row = s.scalars(select(AlertRow)).one()
        copy = {c.name: getattr(row, c.name) for c in AlertRow.__table__.columns if c.name != "id"}
        s.add(AlertRow(**copy))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_a_paused_patient_gets_a_visible_suppression_not_an_alert(
    home: Engine, clock: ManualClock
) -> None:
    with session_scope(home) as s:
        PatientCareRepository(s, clock=clock).set_status(
            P, PatientStatus.HOSPITALISED, reason="住院", recorded_by="dr.zhang"
        )
    clock.advance(minutes=1)
    for _ in range(3):
        assert evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock)) == []
        clock.advance(minutes=5)
    with session_scope(home) as s:
        [row] = AlertRepository(s).suppressions(P)
        assert (row.rule_id, row.reason, row.count) == ("G1", "monitoring paused: hospitalised", 3)
        assert s.scalar(select(func.count()).select_from(AlertRow)) == 0
        assert AlertRepository(s).monitoring_status(P, clock()) == MonitoringStatus(
            "hospitalised", T0
        )


def test_p1_silences_are_capped_in_the_registry_too(home: Engine, clock: ManualClock) -> None:
    with session_scope(home) as s, pytest.raises(LifecycleError):
        AlertRepository(s).add_silence(
            P,
            metric=Metric.GLUCOSE,
            severity=Severity.P1,
            author="dr.zhang",
            reason="门诊",
            starts_at=clock(),
            ends_at=clock() + timedelta(hours=3),
        )


def sent_to(n: RecordingNotifier) -> list[tuple[str, str]]:
    return [(m.idempotency_key.split(":")[3], m.recipient) for m in n.sent]


def test_p1_escalates_on_its_deadlines_once_each_and_repeats(
    home: Engine, clock: ManualClock
) -> None:
    notifiers = channels()
    [alert_id] = evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    w = worker(home, clock, notifiers)
    assert w.run_once() == 2  # inbox (patient, family, doctor) and SMS (patient, family)
    assert len(notifiers["inbox"].sent) == 3
    assert {m.address for m in notifiers["sms"].sent} == {"13800000001", "13800000002"}
    assert w.run_once() == 0
    clock.advance(minutes=10)
    assert w.run_once() == 1
    assert [m.address for m in notifiers["voice"].sent] == ["13800000002"]  # not the son
    assert "120" in notifiers["voice"].sent[0].body
    # The daughter saw it: the duty doctor is still paged at 20 minutes.
    with session_scope(home) as s:
        AlertRepository(s).mark_seen(alert_id, actor="wang.daughter", now=clock())
    clock.advance(minutes=10)
    assert w.run_once() == 1
    assert len(notifiers["voice"].sent) == 1
    with session_scope(home) as s:
        # dr.chen has no phone: the duty doctor step was skipped at once, not waited on.
        steps = {(st.step_no, st.repeat_no): st.status for st in s.scalars(select(EscalationStep))}
    assert steps[(3, 0)] == "skipped"
    assert steps[(3, 1)] == "due"  # the last step repeats until acknowledged
    with session_scope(home) as s:
        AlertRepository(s).acknowledge(alert_id, actor="dr.zhang", note="已联系", now=clock())
    clock.advance(minutes=10)
    assert w.run_once() == 0


def test_a_crash_between_steps_misses_none_and_repeats_none(
    home: Engine, clock: ManualClock
) -> None:
    notifiers = channels()
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    worker(home, clock, notifiers, "w1").run_once()
    clock.advance(minutes=10)
    # w1 "dies" here; w2 is the restarted process.
    w2 = worker(home, clock, notifiers, "w2")
    assert w2.run_once() == 1
    assert w2.run_once() == 0
    keys = [m.idempotency_key for n in notifiers.values() for m in n.sent]
    assert len(keys) == len(set(keys)) == 6


def test_a_crash_while_notifying_resends_under_the_same_key_and_records_once(
    home: Engine, clock: ManualClock
) -> None:
    notifiers = channels()
    notifiers["inbox"].crash_after_send = 2
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    with pytest.raises(Crash):
        worker(home, clock, notifiers, "w1").run_once()
    # Before the lease runs out nobody else takes the step.
    w2 = worker(home, clock, notifiers, "w2")
    assert w2.run_once() == 0  # w1 had claimed both first steps
    clock.advance(minutes=3)
    assert w2.run_once() == 2
    inbox = [m.idempotency_key for m in notifiers["inbox"].sent]
    assert len(set(inbox)) == 3  # every recipient reached …
    assert len(inbox) == 4  # … the one in flight at the crash twice, under one key
    with session_scope(home) as s:
        rows = list(s.scalars(select(NotificationRow).where(NotificationRow.channel == "inbox")))
        assert len(rows) == 3
        assert all(r.status == "delivered" and r.receipt for r in rows)
        assert sorted(r.attempts for r in rows) == [1, 1, 2]
        assert verify_audit_log(s) == []


def test_a_permanent_failure_moves_on_and_raises_a_sys_alert(
    home: Engine, clock: ManualClock
) -> None:
    notifiers = channels()
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    w = worker(home, clock, notifiers)
    w.run_once()
    daughter_id = next(m.recipient for m in notifiers["sms"].sent if m.address == "13800000002")
    notifiers["voice"].permanent_for = {daughter_id}
    clock.advance(minutes=10)
    w.run_once()
    with session_scope(home) as s:
        steps = {
            st.step_no: st
            for st in s.scalars(select(EscalationStep).where(EscalationStep.repeat_no == 0))
        }
        assert steps[2].status == "failed"
        # The duty doctor's step did not wait for its 20-minute deadline.
        assert steps[3].due_at <= clock()
        sys_alert = s.scalars(select(AlertRow).where(AlertRow.rule_id == NOTIFY_FAILED_RULE)).one()
        assert (sys_alert.severity, sys_alert.state) == ("SYS", AlertState.FIRING.value)


def test_recoverable_failures_give_the_step_back_and_the_next_tick_delivers(
    home: Engine, clock: ManualClock
) -> None:
    notifiers = channels()
    notifiers["inbox"].down = True
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    w = worker(home, clock, notifiers)
    assert w.run_once() == 2
    with session_scope(home, write=False) as s:
        # The first recipient's failure gave the step back before anyone else was tried.
        [row] = s.scalars(select(NotificationRow).where(NotificationRow.channel == "inbox"))
        assert (row.status, row.attempts, row.error, row.receipt) == (
            "failed", 1, "inbox down", None
        )  # fmt: skip
        step = s.get_one(EscalationStep, row.step_id)
        assert (step.status, step.claimed_by, step.lease_until) == ("due", None, None)
        failed = s.scalars(select(AuditRecord).where(AuditRecord.action == "alert.notify_failed"))
        assert [a.target for a in failed] == [f"alert:{step.alert_id}"]
    notifiers["inbox"].down = False
    assert w.run_once() == 1  # given back: due again at once, no lease to wait out
    with session_scope(home, write=False) as s:
        rows = s.scalars(select(NotificationRow).where(NotificationRow.channel == "inbox"))
        assert sorted((r.status, r.attempts) for r in rows) == [
            ("delivered", 1), ("delivered", 1), ("delivered", 2)
        ]  # fmt: skip
        assert s.get_one(EscalationStep, step.id).status == "done"
        assert verify_audit_log(s) == []


def test_apscheduler_only_wakes_the_worker(home: Engine, clock: ManualClock) -> None:
    import time

    from alerts.scheduler import wake_worker

    notifiers = channels()
    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    scheduler = wake_worker(worker(home, clock, notifiers), tick_seconds=0.05)
    try:
        deadline = time.monotonic() + 10
        while len(notifiers["inbox"].sent) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert len(notifiers["inbox"].sent) == 3
    assert len(notifiers["sms"].sent) == 2


def test_a_worker_that_lost_its_lease_cannot_finish_the_step(
    home: Engine, clock: ManualClock
) -> None:
    from registry.alert_models import StepStatus
    from registry.escalation_repo import claim_due, finish_step

    evaluate(home, clock, finding("G1", FindingStatus.FIRING, clock))
    old = claim_due(home, worker="w1", now=clock(), lease=timedelta(minutes=2))
    clock.advance(minutes=3)
    new = claim_due(home, worker="w2", now=clock(), lease=timedelta(minutes=2))
    assert [s.step_id for s in new] == [s.step_id for s in old]
    with session_scope(home) as s:
        assert not finish_step(s, old[0], status=StepStatus.DONE, outcome="late", now=clock())
        assert finish_step(s, new[0], status=StepStatus.DONE, outcome="ok", now=clock())


def test_an_alert_that_fired_while_silenced_is_notified_when_the_silence_ends(
    home: Engine, clock: ManualClock
) -> None:
    with session_scope(home) as s:
        AlertRepository(s).add_silence(
            P,
            metric=Metric.GLUCOSE,
            severity=Severity.P2,
            author="dr.zhang",
            reason="复测中，家属在旁",
            starts_at=clock(),
            ends_at=clock() + timedelta(minutes=60),
        )
    low = finding("G2", FindingStatus.FIRING, clock, Severity.P2)
    [alert_id] = evaluate(home, clock, low)
    notifiers = channels()
    w = worker(home, clock, notifiers)
    assert w.run_once() == 0  # silenced: no step, nobody told
    clock.advance(minutes=61)
    evaluate(home, clock, finding("G2", FindingStatus.FIRING, clock, Severity.P2))
    assert w.run_once() >= 1
    assert notifiers["inbox"].sent, "the doctor was never told once the silence ended"
    with session_scope(home, write=False) as s:
        steps = list(s.scalars(select(EscalationStep).where(EscalationStep.alert_id == alert_id)))
        assert steps
        assert min(st.due_at for st in steps) >= T0 + timedelta(minutes=61)
    # A later repeat adds no second chain: one step row per chain step.
    clock.advance(hours=5)
    evaluate(home, clock, finding("G2", FindingStatus.FIRING, clock, Severity.P2))
    with session_scope(home, write=False) as s:
        keys = list(
            s.scalars(
                select(EscalationStep.idempotency_key).where(EscalationStep.alert_id == alert_id)
            )
        )
    assert len(keys) == len(set(keys))
