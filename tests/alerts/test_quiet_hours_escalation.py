"""The escalation worker with the patients' notification preferences, on an injected clock.

Registry on SQLite and PostgreSQL (tests/registry's fixtures and seeded home: 王芳 with a
phone, her daughter with ``receive_alerts``, dr.zhang on the contracted team). 王芳 chose
WeChat for non-urgent messages and quiet hours 22:00–07:00 in her zone (Asia/Shanghai,
UTC+8). A "restart" is a fresh worker sharing nothing with the dead one but the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import cast

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts.assembly import assemble_worker
from alerts.escalation import EscalationWorker, MessagePrefsSource
from alerts.escalation_policy import Channel, MessagePrefs, QuietHours
from alerts.model import FindingStatus, Severity
from alerts.recipients import registry_message_prefs, registry_recipients
from alerts.rules.model import RuleSet
from ingest.stores.base import ReadingStore
from registry.alert_models import EscalationStep, NotificationRow
from registry.care_models import UserAccount
from registry.db import session_scope
from registry.models import Patient
from registry.notification_prefs import NotificationPrefsRepository
from registry.notification_prefs_models import NonUrgentChannel
from tests.fakes import ManualClock
from tests.registry.conftest import clock, engine, registry_url  # noqa: F401 - fixtures
from tests.registry.test_alerts_repo import (
    Crash,
    RecordingNotifier,
    evaluate,
    finding,
    home,  # noqa: F401 - fixture
)
from tests.registry.test_alerts_repo import P as PATIENT

PATIENT_PHONE = "13800000001"
DAUGHTER_PHONE = "13800000002"
LATE = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
QUIET_END = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai


def channels() -> dict[str, RecordingNotifier]:
    return {c: RecordingNotifier(c) for c in ("inbox", "sms", "voice", "wechat")}


def worker(
    db: Engine,
    now: ManualClock,
    notifiers: dict[str, RecordingNotifier],
    name: str = "w1",
    prefs: MessagePrefsSource | None = registry_message_prefs,
) -> EscalationWorker:
    return EscalationWorker(
        db,
        notifiers=notifiers,
        recipients=registry_recipients,
        clock=now,
        worker_id=name,
        sleep=lambda _s: None,
        message_prefs=prefs,
    )


def choose(db: Engine, channel: NonUrgentChannel, quiet: tuple[time, time] | None) -> None:
    with session_scope(db) as s:
        NotificationPrefsRepository(s).set(
            PATIENT,
            channel=channel,
            quiet_start=None if quiet is None else quiet[0],
            quiet_end=None if quiet is None else quiet[1],
            by="wang.fang",
        )


def addresses(n: RecordingNotifier) -> list[str]:
    return [m.address for m in n.sent]


@pytest.fixture
def night(home: Engine, clock: ManualClock) -> Engine:  # noqa: F811 - fixtures
    """王芳's preferences set, the clock at 23:30 her time."""
    choose(home, NonUrgentChannel.WECHAT, (time(22, 0), time(7, 0)))
    clock.now = LATE
    return home


def test_the_registry_hands_the_prefs_in_the_patients_zone(
    home: Engine,  # noqa: F811
) -> None:
    with session_scope(home) as s:
        assert registry_message_prefs(s, PATIENT) == MessagePrefs(Channel.SMS, None)
    choose(home, NonUrgentChannel.WECHAT, (time(22, 0), time(7, 0)))
    with session_scope(home) as s:
        assert registry_message_prefs(s, PATIENT) == MessagePrefs(
            Channel.WECHAT, QuietHours(time(22, 0), time(7, 0), "Asia/Shanghai")
        )
        s.execute(update(Patient).where(Patient.id == PATIENT).values(time_zone="Europe/London"))
    choose(home, NonUrgentChannel.NONE, (time(22, 0), time(7, 0)))
    with session_scope(home) as s:
        assert registry_message_prefs(s, PATIENT) == MessagePrefs(
            None, QuietHours(time(22, 0), time(7, 0), "Europe/London")
        )


def test_a_p3_at_night_reaches_the_doctor_at_once_and_the_patient_once_at_seven(
    night: Engine,
    clock: ManualClock,  # noqa: F811
) -> None:
    notifiers = channels()
    [alert_id] = evaluate(night, clock, finding("G5", FindingStatus.FIRING, clock, Severity.P3))
    w = worker(night, clock, notifiers)
    assert w.run_once() == 2  # the doctor's inbox, the patient's message
    assert [m.recipient for m in notifiers["inbox"].sent] == ["user:" + doctor_id(night)]
    assert notifiers["wechat"].sent == notifiers["sms"].sent == []
    with session_scope(night) as s:
        held = s.scalars(select(EscalationStep).where(EscalationStep.step_no == 1)).one()
        assert (held.status, held.due_at, held.outcome) == (
            "due",
            QUIET_END,
            "deferred: quiet hours",
        )
    clock.now = QUIET_END - timedelta(seconds=1)
    assert w.run_once() == 0
    assert notifiers["wechat"].sent == []
    clock.now = QUIET_END
    assert w.run_once() == 1
    assert addresses(notifiers["wechat"]) == [PATIENT_PHONE]  # her channel, not SMS
    assert notifiers["sms"].sent == []
    clock.advance(days=2)
    assert w.run_once() == 0
    assert len(notifiers["wechat"].sent) == 1
    assert len(notifiers["inbox"].sent) == 1
    with session_scope(night) as s:
        [row] = s.scalars(select(NotificationRow).where(NotificationRow.channel == "wechat"))
        assert (row.alert_id, row.status, row.delivered_at) == (alert_id, "delivered", QUIET_END)


def doctor_id(db: Engine) -> str:
    with session_scope(db, write=False) as s:
        account = s.scalars(select(UserAccount).where(UserAccount.username == "dr.zhang")).one()
        return str(account.id)


def test_p1_at_night_goes_at_once_by_sms_to_patient_and_family(
    night: Engine,
    clock: ManualClock,  # noqa: F811
) -> None:
    notifiers = channels()
    evaluate(night, clock, finding("G1", FindingStatus.FIRING, clock, Severity.P1))
    assert worker(night, clock, notifiers).run_once() == 2
    assert sorted(addresses(notifiers["sms"])) == [PATIENT_PHONE, DAUGHTER_PHONE]
    assert len(notifiers["inbox"].sent) == 3  # patient, daughter, doctor
    assert notifiers["wechat"].sent == []
    assert_nothing_deferred(night)


def test_p2_at_night_goes_at_once_and_its_family_step_is_not_held(
    night: Engine,
    clock: ManualClock,  # noqa: F811
) -> None:
    notifiers = channels()
    evaluate(night, clock, finding("G2", FindingStatus.FIRING, clock, Severity.P2))
    w = worker(night, clock, notifiers)
    assert w.run_once() == 1
    assert len(notifiers["inbox"].sent) == 2  # patient and doctor
    clock.advance(minutes=30)  # 00:00 in Shanghai: G2's family step is due, and goes
    assert w.run_once() == 1
    assert addresses(notifiers["sms"]) == [DAUGHTER_PHONE]
    assert notifiers["wechat"].sent == []
    assert_nothing_deferred(night)


def assert_nothing_deferred(db: Engine) -> None:
    with session_scope(db, write=False) as s:
        assert "deferred: quiet hours" not in set(s.scalars(select(EscalationStep.outcome)))


def test_daytime_p4_goes_on_the_chosen_channel_and_none_sends_nothing(
    home: Engine,  # noqa: F811
    clock: ManualClock,  # noqa: F811
) -> None:
    choose(home, NonUrgentChannel.WECHAT, (time(22, 0), time(7, 0)))
    notifiers = channels()
    w = worker(home, clock, notifiers)  # T0: 16:00 in Shanghai
    evaluate(home, clock, finding("S2", FindingStatus.FIRING, clock, Severity.P4))
    assert w.run_once() == 2
    assert addresses(notifiers["wechat"]) == [PATIENT_PHONE]
    choose(home, NonUrgentChannel.NONE, None)
    evaluate(home, clock, finding("G5", FindingStatus.FIRING, clock, Severity.P3))
    assert w.run_once() == 2
    assert len(notifiers["inbox"].sent) == 2  # the doctor is told of both
    assert len(notifiers["wechat"].sent) == 1
    assert notifiers["sms"].sent == []
    with session_scope(home) as s:
        outcomes = list(s.scalars(select(EscalationStep.outcome).order_by(EscalationStep.id)))
    assert outcomes[-1] == "patient chose no non-urgent messages"


def test_a_deferred_message_survives_restarts_and_goes_once(
    night: Engine,
    clock: ManualClock,  # noqa: F811
) -> None:
    notifiers = channels()
    evaluate(night, clock, finding("G5", FindingStatus.FIRING, clock, Severity.P3))

    def dies_reading_prefs(session: Session, patient_id: str) -> MessagePrefs:
        raise Crash

    # w1 claims both steps, tells the doctor, and "is killed" on the patient's step.
    with pytest.raises(Crash):
        worker(night, clock, notifiers, "w1", prefs=dies_reading_prefs).run_once()
    assert len(notifiers["inbox"].sent) == 1
    w2 = worker(night, clock, notifiers, "w2")
    assert w2.run_once() == 0  # w1's lease still holds
    clock.advance(minutes=3)
    assert w2.run_once() == 1  # claimed again after the lease: still night, deferred
    assert notifiers["wechat"].sent == []
    # w2 dies in the night; w3 starts after seven.
    clock.now = QUIET_END + timedelta(minutes=5)
    w3 = worker(night, clock, notifiers, "w3")
    assert w3.run_once() == 1
    assert worker(night, clock, notifiers, "w4").run_once() == 0
    assert w3.run_once() == 0
    assert addresses(notifiers["wechat"]) == [PATIENT_PHONE]
    assert len(notifiers["inbox"].sent) == 1
    with session_scope(night) as s:
        rows = list(s.scalars(select(NotificationRow)))
        assert sorted((r.channel, r.attempts) for r in rows) == [("inbox", 1), ("wechat", 1)]


def test_the_worker_wiring_applies_the_patients_prefs(
    night: Engine,
    clock: ManualClock,  # noqa: F811
    rules: RuleSet,
) -> None:
    """`vitalgate alerts run` and the demo build their escalation worker here."""
    notifiers = channels()
    parts = assemble_worker(
        night,
        cast(ReadingStore, object()),  # not read: only the escalation worker runs
        rules=rules,
        notifiers=notifiers,
        holder="w1",
        clock=clock,
    )
    evaluate(night, clock, finding("G5", FindingStatus.FIRING, clock, Severity.P3))
    assert parts.escalation.run_once() == 2
    assert len(notifiers["inbox"].sent) == 1
    assert notifiers["sms"].sent == notifiers["wechat"].sent == []
    clock.now = QUIET_END
    assert parts.escalation.run_once() == 1
    assert addresses(notifiers["wechat"]) == [PATIENT_PHONE]
