"""Quiet hours and the non-urgent channel, decided purely: whose messages wait, until when.

All instants are UTC; Asia/Shanghai is UTC+8 all year, so 22:00–07:00 there is 14:00–23:00
UTC. The worker that acts on these decisions is tested in test_quiet_hours_escalation.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from alerts.escalation_policy import (
    BY_SEVERITY,
    CHAINS,
    Audience,
    Channel,
    Dispatch,
    MessagePrefs,
    QuietHours,
    StepDispatch,
    chain_for,
    dispatch,
    follows_patient_prefs,
)
from alerts.lifecycle import decide
from alerts.model import FindingStatus, Severity
from tests.alerts.test_lifecycle_stateful import PATIENT, finding

NIGHT = QuietHours(time(22, 0), time(7, 0), "Asia/Shanghai")
NIGHT_UTC = QuietHours(time(22, 0), time(7, 0), "UTC")
NAP = QuietHours(time(13, 0), time(14, 30), "Asia/Shanghai")
"""Quiet hours that do not span midnight (an after-lunch rest)."""


def shanghai(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """An instant given as Shanghai wall time on March ``day`` 2026, returned in UTC."""
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (shanghai(1, 21, 59, 59), False),
        (shanghai(1, 22, 0), True),  # the start is inside
        (shanghai(1, 23, 59, 59), True),
        (shanghai(2, 0, 0), True),  # across midnight
        (shanghai(2, 6, 59, 59), True),
        (shanghai(2, 7, 0), False),  # the end is not
        (shanghai(2, 12, 0), False),
    ],
)
def test_quiet_hours_spanning_midnight_start_inclusive_end_exclusive(
    at: datetime, inside: bool
) -> None:
    assert NIGHT.contains(at) is inside


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (shanghai(1, 12, 59, 59), False),
        (shanghai(1, 13, 0), True),
        (shanghai(1, 14, 29, 59), True),
        (shanghai(1, 14, 30), False),
        (shanghai(1, 23, 0), False),  # not a midnight span: the evening is outside
    ],
)
def test_quiet_hours_within_one_day(at: datetime, inside: bool) -> None:
    assert NAP.contains(at) is inside


def test_quiet_hours_are_read_in_the_patients_zone_not_utc() -> None:
    late_in_shanghai = shanghai(1, 23, 0)  # 15:00 UTC
    assert NIGHT.contains(late_in_shanghai)
    assert not NIGHT_UTC.contains(late_in_shanghai)
    morning_in_shanghai = shanghai(2, 7, 30)  # 23:30 UTC: night in London
    assert not NIGHT.contains(morning_in_shanghai)
    assert NIGHT_UTC.contains(morning_in_shanghai)
    assert NIGHT_UTC.hold_until(morning_in_shanghai) == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "at", [shanghai(1, 22, 0), shanghai(1, 23, 59, 59), shanghai(2, 0, 0), shanghai(2, 6, 59, 59)]
)
def test_a_held_message_waits_for_the_end_of_that_night(at: datetime) -> None:
    end = NIGHT.hold_until(at)
    assert end == shanghai(2, 7, 0) == datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
    assert not NIGHT.contains(end)  # at the end it goes: never held a second time


def test_outside_quiet_hours_nothing_is_held() -> None:
    assert NIGHT.hold_until(shanghai(2, 7, 0)) is None
    assert NIGHT.hold_until(shanghai(1, 21, 59, 59)) is None
    assert NAP.hold_until(shanghai(1, 13, 45)) == shanghai(1, 14, 30)


WECHAT_AT_NIGHT = MessagePrefs(Channel.WECHAT, NIGHT)
LATE = shanghai(1, 23, 30)
DAY = shanghai(1, 16, 0)


@pytest.mark.parametrize("severity", [Severity.P1, Severity.P2, Severity.SYS])
@pytest.mark.parametrize("audiences", [("patient",), ("family",), ("patient", "family")])
@pytest.mark.parametrize("channel", ["sms", "voice", "wechat"])
def test_urgent_messages_are_never_held_and_keep_the_policys_channel(
    severity: Severity, audiences: tuple[str, ...], channel: str
) -> None:
    assert dispatch(severity, audiences, channel, WECHAT_AT_NIGHT, LATE) == StepDispatch(
        Dispatch.SEND, channel
    )
    no_messages = MessagePrefs(None, NIGHT)
    assert dispatch(severity, audiences, channel, no_messages, LATE).action is Dispatch.SEND


@pytest.mark.parametrize("severity", [Severity.P3, Severity.P4])
@pytest.mark.parametrize("audiences", [("patient",), ("family",), ("patient", "family")])
def test_non_urgent_patient_messages_wait_for_the_quiet_end_on_the_chosen_channel(
    severity: Severity, audiences: tuple[str, ...]
) -> None:
    held = dispatch(severity, audiences, "sms", WECHAT_AT_NIGHT, LATE)
    assert (held.action, held.channel, held.until) == (
        Dispatch.DEFER,
        "wechat",
        shanghai(2, 7, 0),
    )
    assert dispatch(severity, audiences, "sms", WECHAT_AT_NIGHT, DAY) == StepDispatch(
        Dispatch.SEND, "wechat"
    )


@pytest.mark.parametrize("severity", [Severity.P3, Severity.P4])
def test_the_doctors_inbox_is_never_held(severity: Severity) -> None:
    for audiences in (("doctor",), ("duty_doctor",), ("patient", "doctor")):
        plan = dispatch(severity, audiences, "inbox", WECHAT_AT_NIGHT, LATE)
        assert plan == StepDispatch(Dispatch.SEND, "inbox")
    # The patient's own in-app inbox is read when the app is opened: not held, not replaced.
    assert dispatch(severity, ("patient",), "inbox", WECHAT_AT_NIGHT, LATE) == StepDispatch(
        Dispatch.SEND, "inbox"
    )


@pytest.mark.parametrize("audiences", [("doctor",), ("duty_doctor",), ("team_lead",)])
@pytest.mark.parametrize("channel", ["sms", "voice", "wechat"])
def test_the_patients_quiet_hours_never_hold_staff_messages(
    audiences: tuple[str, ...], channel: str
) -> None:
    for severity in (Severity.P3, Severity.P4):
        plan = dispatch(severity, audiences, channel, MessagePrefs(None, NIGHT), LATE)
        assert plan == StepDispatch(Dispatch.SEND, channel)


def test_none_skips_the_non_urgent_message_only() -> None:
    no_messages = MessagePrefs(None, None)
    plan = dispatch(Severity.P3, ("patient",), "sms", no_messages, DAY)
    assert plan.action is Dispatch.SKIP
    assert dispatch(Severity.P3, ("doctor",), "inbox", no_messages, DAY).action is Dispatch.SEND


def test_without_prefs_the_policy_channel_goes_at_once() -> None:
    assert dispatch(Severity.P3, ("patient",), "sms", None, LATE) == StepDispatch(
        Dispatch.SEND, "sms"
    )
    default = MessagePrefs(Channel.SMS, None)
    assert dispatch(Severity.P3, ("patient",), "sms", default, LATE) == StepDispatch(
        Dispatch.SEND, "sms"
    )


def _chains() -> list[tuple[str, Severity]]:
    generic = [("X9", s) for s in BY_SEVERITY]
    named = [(rule, s) for rule in CHAINS for s in Severity if s is not Severity.P1]
    return generic + named


@pytest.mark.parametrize(("rule_id", "severity"), _chains())
def test_every_chain_keeps_patient_messages_apart_from_staff(
    rule_id: str, severity: Severity
) -> None:
    """A P3/P4 step mixing patient and staff would hold both or neither: none may exist;
    the patient's message is the last step, so its wait or skip moves no staff step."""
    steps = chain_for(rule_id, severity).steps
    patient_side = {Audience.PATIENT, Audience.FAMILY}
    for number, step in enumerate(steps):
        if step.channel.value in ("sms", "wechat", "voice") and set(step.audiences) & patient_side:
            assert set(step.audiences) <= patient_side, (rule_id, number)
        if follows_patient_prefs(severity, [a.value for a in step.audiences], step.channel.value):
            assert number == len(steps) - 1, (rule_id, number)


@pytest.mark.parametrize("severity", [Severity.P3, Severity.P4])
def test_p3_p4_chains_tell_the_doctors_inbox_at_once_and_message_the_patient(
    severity: Severity,
) -> None:
    steps = chain_for("G5", severity).steps
    assert [(s.after, s.audiences, s.channel) for s in steps] == [
        (timedelta(0), (Audience.DOCTOR,), Channel.INBOX),
        (timedelta(0), (Audience.PATIENT,), Channel.SMS),
    ]


def test_the_lifecycle_fires_a_p3_at_night_unmuted() -> None:
    """Quiet hours are no lifecycle mute (that held the doctor's inbox back for good)."""
    d = decide(PATIENT, [finding("G5", FindingStatus.FIRING, LATE)], [], now=LATE)
    assert [(t.rule_id, t.notify, t.muted_by) for t in d.transitions] == [("G5", True, None)]
