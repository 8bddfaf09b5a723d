"""A hypothesis state machine over the pure lifecycle.

The machine plays the registry: it applies every transition :func:`alerts.lifecycle.decide`
returns to a model store and an append-only event log, and checks after every step that no
patient + rule has two open alerts, that no notification went out past an inhibition, a
silence or a pause, and that every alert's state is the one its last recorded event says.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from alerts.lifecycle import (
    ACKED_G1_FOR,
    OPEN_STATES,
    AlertState,
    MonitoringStatus,
    OpenAlert,
    Silence,
    Transition,
    TransitionKind,
    acknowledge,
    decide,
    make_silence,
)
from alerts.model import Explanation, Finding, FindingStatus, Metric, Severity

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PATIENT = "p-1"
RULES: dict[str, tuple[Metric, Severity]] = {
    "G1": (Metric.GLUCOSE, Severity.P1),
    "G2": (Metric.GLUCOSE, Severity.P2),
    "G3": (Metric.GLUCOSE, Severity.P2),
    "G5": (Metric.GLUCOSE, Severity.P3),
    "G6": (Metric.CGM, Severity.P2),
    "S1": (Metric.CGM, Severity.SYS),
    "S2": (Metric.ADHERENCE, Severity.P4),
    "B1": (Metric.BLOOD_PRESSURE, Severity.P2),
}


def finding(rule_id: str, status: FindingStatus, at: datetime, upgrade: bool = False) -> Finding:
    metric, severity = RULES[rule_id]
    if upgrade and rule_id == "B1":
        severity = Severity.P1
    return Finding(
        patient_id=PATIENT,
        rule_id=rule_id,
        rule_version=1,
        metric=metric,
        severity=severity,
        status=status,
        at=at,
        reading_ids=("r1",),
        thresholds={},
        explanation=Explanation("test"),
    )


findings_st = st.lists(
    st.tuples(st.sampled_from(sorted(RULES)), st.sampled_from(list(FindingStatus)), st.booleans()),
    min_size=1,
    max_size=5,
)


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.alerts: dict[str, OpenAlert] = {}
        self.resolved: set[str] = set()
        self.events: list[Transition] = []
        self.last_event_of: dict[str, Transition] = {}
        self.silences: list[Silence] = []
        self.status = MonitoringStatus("active")
        self.next_id = 0

    def open_alerts(self) -> list[OpenAlert]:
        return [a for a in self.alerts.values() if a.state in OPEN_STATES]

    def record(self, transition: Transition) -> None:
        """What the registry does with a transition, with the checks made at that moment."""
        open_now = self.open_alerts()
        if transition.notify:
            assert not self.status.paused
            for other in open_now:
                if (
                    other.severity is Severity.P1
                    and other.metric == transition.finding.metric  # type: ignore[union-attr]
                    and transition.severity in (Severity.P2, Severity.P3)
                    and other.rule_id != transition.rule_id
                    and other.state is not AlertState.PENDING
                ):
                    raise AssertionError(f"{transition} went out past P1 {other}")
                if other.rule_id == "S1" and transition.rule_id == "S2":
                    raise AssertionError("S2 notified while CGM data was stale")
                if (
                    other.rule_id == "G1"
                    and transition.rule_id in ("G2", "G6")
                    and other.acknowledged_at is not None
                    and self.now < other.acknowledged_at + ACKED_G1_FOR
                ):
                    raise AssertionError("G2/G6 notified inside an acked G1's mute")
            for silence in self.silences:
                assert transition.finding is None or not silence.covers(
                    transition.finding, self.now
                ), f"{transition} went out through {silence}"
        if transition.kind is TransitionKind.SUPPRESS:
            assert self.status.paused
            self.events.append(transition)
            return
        if transition.alert_id is None:
            assert transition.finding is not None
            assert all(a.rule_id != transition.rule_id for a in open_now), "second open alert"
            self.next_id += 1
            alert_id = f"a{self.next_id}"
            assert transition.to_state is not None
            self.alerts[alert_id] = OpenAlert(
                alert_id,
                PATIENT,
                transition.rule_id,
                transition.finding.metric,
                transition.severity,
                transition.to_state,
                self.now,
                last_notified_at=self.now if transition.notify else None,
            )
        else:
            alert_id = transition.alert_id
            alert = self.alerts[alert_id]
            assert alert.state == transition.from_state
            assert transition.to_state is not None
            self.alerts[alert_id] = replace(
                alert,
                state=transition.to_state,
                severity=min(alert.severity, transition.severity, key=lambda s: s.rank),
                acknowledged_at=self.now
                if transition.kind is TransitionKind.ACKNOWLEDGE
                else alert.acknowledged_at,
                last_notified_at=self.now if transition.notify else alert.last_notified_at,
            )
        if transition.to_state is AlertState.RESOLVED:
            self.resolved.add(alert_id)
        self.events.append(transition)
        self.last_event_of[alert_id] = transition

    @rule(items=findings_st)
    def evaluate(self, items: list[tuple[str, FindingStatus, bool]]) -> None:
        batch = [finding(r, s, self.now, up) for r, s, up in items]
        decision = decide(
            PATIENT,
            batch,
            self.open_alerts(),
            silences=self.silences,
            status=self.status,
            now=self.now,
        )
        for transition in decision.transitions:
            self.record(transition)
        if self.status.paused:
            assert not self.open_alerts()

    @rule(minutes=st.integers(min_value=1, max_value=120))
    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @precondition(lambda self: any(a.state is AlertState.FIRING for a in self.open_alerts()))
    @rule(data=st.data())
    def acknowledge_one(self, data: st.DataObject) -> None:
        firing = [a for a in self.open_alerts() if a.state is AlertState.FIRING]
        alert = data.draw(st.sampled_from(firing))
        self.record(acknowledge(alert, actor="dr-wang", note="called", now=self.now))

    @rule(
        rule_id=st.sampled_from(sorted(RULES)),
        minutes=st.integers(min_value=5, max_value=120),
    )
    def snooze(self, rule_id: str, minutes: int) -> None:
        metric, severity = RULES[rule_id]
        self.silences.append(
            make_silence(
                silence_id=f"s{len(self.silences)}",
                patient_id=PATIENT,
                metric=metric,
                severity=severity,
                author="dr-wang",
                reason="patient in clinic",
                starts_at=self.now,
                ends_at=self.now + timedelta(minutes=minutes),
            )
        )

    @rule(status=st.sampled_from(["active", "active", "hospitalised", "deceased"]))
    def set_status(self, status: str) -> None:
        self.status = MonitoringStatus(status, self.now)

    @invariant()
    def one_open_alert_per_rule(self) -> None:
        rules = [a.rule_id for a in self.open_alerts()]
        assert len(rules) == len(set(rules))

    @invariant()
    def every_state_is_its_last_event(self) -> None:
        for alert_id, alert in self.alerts.items():
            assert self.last_event_of[alert_id].to_state == alert.state


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
