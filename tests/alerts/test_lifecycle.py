"""Examples of the lifecycle's safety rules, one case each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.lifecycle import (
    MAX_P1_SILENCE,
    AlertState,
    LifecycleError,
    MonitoringStatus,
    OpenAlert,
    TransitionKind,
    decide,
    make_silence,
    refuse_disable,
)
from alerts.model import FindingStatus, Metric, Severity
from tests.alerts.test_lifecycle_stateful import PATIENT, finding

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)  # 16:00 in Shanghai


def firing(rule_id: str, metric: Metric, severity: Severity, **kw: object) -> OpenAlert:
    return OpenAlert(
        f"a-{rule_id}", PATIENT, rule_id, metric, severity, AlertState.FIRING, T0, **kw
    )  # type: ignore[arg-type]


def test_a_firing_finding_opens_and_notifies() -> None:
    d = decide(PATIENT, [finding("G1", FindingStatus.FIRING, T0)], [], now=T0)
    assert [(t.kind, t.notify, t.to_state) for t in d.transitions] == [
        (TransitionKind.FIRE, True, AlertState.FIRING)
    ]


def test_p1_in_the_same_evaluation_mutes_p2_of_its_metric() -> None:
    batch = [finding("G2", FindingStatus.FIRING, T0), finding("G1", FindingStatus.FIRING, T0)]
    d = decide(PATIENT, batch, [], now=T0)
    assert [(t.rule_id, t.notify, t.muted_by) for t in d.transitions] == [
        ("G1", True, None),
        ("G2", False, "inhibited:G1"),
    ]


def test_acked_g1_mutes_g6_for_30_minutes_only() -> None:
    g1 = OpenAlert(
        "a1", PATIENT, "G1", Metric.GLUCOSE, Severity.P1, AlertState.ACKNOWLEDGED, T0,
        acknowledged_at=T0,
    )  # fmt: skip
    at = T0 + timedelta(minutes=29)
    d = decide(PATIENT, [finding("G6", FindingStatus.FIRING, at)], [g1], now=at)
    assert d.transitions[0].muted_by == "inhibited:G1"
    at = T0 + timedelta(minutes=30)
    d = decide(PATIENT, [finding("G6", FindingStatus.FIRING, at)], [g1], now=at)
    assert d.transitions[0].notify


def test_stale_cgm_mutes_the_missing_reading_reminder() -> None:
    s1 = firing("S1", Metric.CGM, Severity.SYS)
    d = decide(PATIENT, [finding("S2", FindingStatus.FIRING, T0)], [s1], now=T0)
    assert d.transitions[0].muted_by == "inhibited:S1"


def test_a_higher_tier_breaks_through_a_lower_tiers_snooze() -> None:
    snooze = make_silence(
        silence_id="s1", patient_id=PATIENT, metric=Metric.BLOOD_PRESSURE,
        severity=Severity.P2, author="dr-wang", reason="白大衣", starts_at=T0,
        ends_at=T0 + timedelta(hours=4),
    )  # fmt: skip
    muted = decide(
        PATIENT, [finding("B1", FindingStatus.FIRING, T0)], [], silences=[snooze], now=T0
    )
    assert muted.transitions[0].muted_by == "silence:s1"
    loud = decide(
        PATIENT, [finding("B1", FindingStatus.FIRING, T0, upgrade=True)], [],
        silences=[snooze], now=T0,
    )  # fmt: skip
    assert loud.transitions[0].notify
    assert loud.transitions[0].severity is Severity.P1


def test_p1_silences_are_capped_and_p1_rules_cannot_be_disabled() -> None:
    kw = {"silence_id": "s", "patient_id": PATIENT, "metric": Metric.GLUCOSE,
          "author": "dr", "reason": "visit", "starts_at": T0}  # fmt: skip
    make_silence(severity=Severity.P1, ends_at=T0 + MAX_P1_SILENCE, **kw)  # type: ignore[arg-type]
    with pytest.raises(LifecycleError):
        make_silence(severity=Severity.P1, ends_at=T0 + MAX_P1_SILENCE + timedelta(seconds=1), **kw)  # type: ignore[arg-type]
    make_silence(severity=Severity.P2, ends_at=T0 + timedelta(days=3), **kw)  # type: ignore[arg-type]
    with pytest.raises(LifecycleError):
        make_silence(severity=Severity.P2, ends_at=T0 + timedelta(days=3), **{**kw, "reason": " "})  # type: ignore[arg-type]
    with pytest.raises(LifecycleError):
        refuse_disable(Severity.P1)
    refuse_disable(Severity.P3)


def test_repeat_interval_and_all_clear() -> None:
    g2 = firing("G2", Metric.GLUCOSE, Severity.P2, last_notified_at=T0)
    soon = T0 + timedelta(minutes=59)
    assert (
        decide(PATIENT, [finding("G2", FindingStatus.FIRING, soon)], [g2], now=soon).transitions
        == ()
    )
    later = T0 + timedelta(hours=1)
    again = decide(PATIENT, [finding("G2", FindingStatus.FIRING, later)], [g2], now=later)
    assert again.transitions[0].kind is TransitionKind.RENOTIFY
    clear = decide(PATIENT, [finding("G2", FindingStatus.CLEAR, later)], [g2], now=later)
    assert (clear.transitions[0].kind, clear.transitions[0].reason) == (
        TransitionKind.RESOLVE, "all clear",
    )  # fmt: skip


def test_a_paused_patient_gets_no_alert_but_a_recorded_suppression() -> None:
    g2 = firing("G2", Metric.GLUCOSE, Severity.P2)
    d = decide(
        PATIENT, [finding("G1", FindingStatus.FIRING, T0)], [g2],
        status=MonitoringStatus("hospitalised", T0), now=T0,
    )  # fmt: skip
    assert [(t.kind, t.reason, t.notify) for t in d.transitions] == [
        (TransitionKind.SUPPRESS, "monitoring paused: hospitalised", False),
        (TransitionKind.RESOLVE, "monitoring paused: hospitalised", False),
    ]
