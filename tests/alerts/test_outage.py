"""Clinic-side outages (pure): intervals, grace boundaries, suppression, one incident each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.model import Severity
from alerts.outage import (
    EVALUATOR_GRACE,
    HEARTBEAT_GRACE,
    RECOVERY_GRACE,
    AliveSpan,
    IncidentActionKind,
    KnownIncident,
    Outage,
    OutageCause,
    explaining_outage,
    find_outages,
    plan_incidents,
    silent_gaps,
)
from alerts.rules.model import RuleSet

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
INGEST = frozenset({OutageCause.INGEST})


def span(start: timedelta, last: timedelta) -> AliveSpan:
    return AliveSpan(T0 + start, T0 + last)


def test_grace_is_two_beats_and_slack() -> None:
    grace, recovery = HEARTBEAT_GRACE, RECOVERY_GRACE
    assert grace == timedelta(seconds=60)
    assert recovery < timedelta(minutes=15)  # below S1's warning


def test_steady_heartbeats_are_no_outage() -> None:
    spans = [span(timedelta(0), 3 * H)]
    assert find_outages(spans, now=T0 + 3 * H + 30 * S, horizon=T0) == []


@pytest.mark.parametrize(
    ("silence", "outage"),
    [
        (HEARTBEAT_GRACE - S, False),  # just below the grace: still up
        (HEARTBEAT_GRACE, True),  # at it: silent
        (HEARTBEAT_GRACE + S, True),
    ],
)
def test_ongoing_silence_at_the_grace_boundary(silence: timedelta, outage: bool) -> None:
    spans = [span(timedelta(0), H)]
    found = find_outages(spans, now=T0 + H + silence, horizon=T0)
    if outage:
        assert found == [Outage(T0 + H, None, INGEST)]  # it began at the last beat
    else:
        assert found == []


@pytest.mark.parametrize(
    ("gap", "outage"),
    [(HEARTBEAT_GRACE - S, False), (HEARTBEAT_GRACE, False), (HEARTBEAT_GRACE + S, True)],
)
def test_ended_gap_between_spans_at_the_grace_boundary(gap: timedelta, outage: bool) -> None:
    # A restart whose new span starts within the grace of the old one's last beat is no gap.
    spans = [span(timedelta(0), H), AliveSpan(T0 + H + gap, T0 + 4 * H)]
    found = find_outages(spans, now=T0 + 4 * H, horizon=T0)
    assert found == ([Outage(T0 + H, T0 + H + gap, INGEST)] if outage else [])


def test_two_hours_without_ingest_is_one_outage_from_last_beat_to_restart() -> None:
    spans = [span(timedelta(0), H), span(3 * H, 5 * H)]
    assert find_outages(spans, now=T0 + 5 * H, horizon=T0) == [Outage(T0 + H, T0 + 3 * H, INGEST)]


def test_overlapping_workers_cover_each_other() -> None:
    # Worker a stops at 1 h, worker b runs from 30 min to 4 h: ingest never stopped.
    spans = [span(timedelta(0), H), span(30 * MIN, 4 * H)]
    assert find_outages(spans, now=T0 + 4 * H, horizon=T0) == []


def test_no_heartbeat_at_all_is_an_outage_since_the_horizon_once_the_grace_passed() -> None:
    assert silent_gaps([], horizon=T0, now=T0 + HEARTBEAT_GRACE, grace=HEARTBEAT_GRACE) == [
        (T0, None)
    ]
    assert silent_gaps([], horizon=T0, now=T0 + HEARTBEAT_GRACE - S, grace=HEARTBEAT_GRACE) == []


def test_a_first_heartbeat_soon_after_the_horizon_is_no_gap() -> None:
    spans = [span(HEARTBEAT_GRACE - S, 2 * H)]
    assert find_outages(spans, now=T0 + 2 * H, horizon=T0) == []
    late = [span(HEARTBEAT_GRACE + S, 2 * H)]
    assert find_outages(late, now=T0 + 2 * H, horizon=T0) == [
        Outage(T0, T0 + HEARTBEAT_GRACE + S, INGEST)
    ]


def test_spans_older_than_the_horizon_are_ignored() -> None:
    spans = [span(-5 * H, -4 * H), span(timedelta(0), 2 * H)]
    assert find_outages(spans, now=T0 + 2 * H, horizon=T0) == []


def test_broker_and_ingest_silence_merge_into_one_outage() -> None:
    spans = [span(timedelta(0), H), span(3 * H, 5 * H)]
    found = find_outages(
        spans,
        now=T0 + 5 * H,
        horizon=T0,
        broker_disconnects=[(T0 + H + 10 * S, T0 + 3 * H - MIN)],
    )
    both = frozenset({OutageCause.INGEST, OutageCause.BROKER})
    assert found == [Outage(T0 + H, T0 + 3 * H, both)]


@pytest.mark.parametrize(
    ("down", "outage"),
    [(EVALUATOR_GRACE, False), (EVALUATOR_GRACE + S, True)],
)
def test_evaluator_downtime_counts_past_its_grace(down: timedelta, outage: bool) -> None:
    spans = [span(timedelta(0), 5 * H)]
    found = find_outages(spans, now=T0 + 5 * H, horizon=T0, evaluator_down=(T0 + H, T0 + H + down))
    assert found == (
        [Outage(T0 + H, T0 + H + down, frozenset({OutageCause.EVALUATOR}))] if outage else []
    )


OUTAGE = Outage(T0 + H, T0 + 3 * H, INGEST)


@pytest.mark.parametrize("rule", ["S1", "S2", "S3"])
def test_stale_rules_during_the_outage_are_explained(rule: str) -> None:
    assert explaining_outage(rule, T0 + 50 * MIN, [OUTAGE], T0 + 2 * H) is OUTAGE


@pytest.mark.parametrize("rule", ["G1", "B1", "S4", "SYS-NOTIFY"])
def test_other_rules_are_never_explained(rule: str) -> None:
    assert explaining_outage(rule, T0 + 50 * MIN, [OUTAGE], T0 + 2 * H) is None


@pytest.mark.parametrize(
    ("after_recovery", "explained"),
    [(RECOVERY_GRACE - S, True), (RECOVERY_GRACE, False), (RECOVERY_GRACE + S, False)],
)
def test_recovery_grace_boundary(after_recovery: timedelta, explained: bool) -> None:
    now = T0 + 3 * H + after_recovery  # OUTAGE.end + …
    found = explaining_outage("S3", T0 + 30 * MIN, [OUTAGE], now)
    assert (found is OUTAGE) is explained


def test_a_silence_that_began_after_recovery_is_not_explained() -> None:
    now = T0 + 3 * H + 5 * MIN  # inside the grace
    assert explaining_outage("S1", T0 + 3 * H, [OUTAGE], now) is None
    assert explaining_outage("S1", T0 + 3 * H - S, [OUTAGE], now) is OUTAGE


def test_an_unknown_silence_start_is_explained_while_the_window_lasts() -> None:
    assert explaining_outage("S2", None, [OUTAGE], T0 + 3 * H + MIN) is OUTAGE
    assert explaining_outage("S2", None, [OUTAGE], T0 + 3 * H + RECOVERY_GRACE) is None


def test_an_ongoing_outage_explains_everything_silent() -> None:
    ongoing = Outage(T0 + H, None, INGEST)
    assert explaining_outage("S3", T0, [ongoing], T0 + 10 * H) is ongoing
    assert explaining_outage("S3", T0, [ongoing], T0 + H - S) is None  # before it began


def test_evaluator_downtime_alone_does_not_explain_silence() -> None:
    down = Outage(T0 + H, T0 + 3 * H, frozenset({OutageCause.EVALUATOR}))
    assert explaining_outage("S1", T0 + 50 * MIN, [down], T0 + 3 * H + MIN) is None
    both = Outage(T0 + H, T0 + 3 * H, frozenset({OutageCause.EVALUATOR, OutageCause.INGEST}))
    assert explaining_outage("S1", T0 + 50 * MIN, [both], T0 + 3 * H + MIN) is both


def test_one_incident_per_outage() -> None:
    ongoing = Outage(T0 + H, None, INGEST)
    opened = plan_incidents([ongoing], [], T0 + 2 * H)
    assert [(a.kind, a.started_at) for a in opened] == [(IncidentActionKind.OPEN, T0 + H)]
    known = [KnownIncident(1, T0 + H, None, resolved=False)]
    # Still going, a cause joining it: nothing new.
    joined = Outage(T0 + H, None, INGEST | {OutageCause.BROKER})
    assert plan_incidents([joined], known, T0 + 2 * H + MIN) == []
    # Recovered: resolved at the recovery instant.
    ended = Outage(T0 + H, T0 + 3 * H, INGEST)
    resolved = plan_incidents([ended], known, T0 + 3 * H + MIN)
    assert [(a.kind, a.incident_id, a.ended_at) for a in resolved] == [
        (IncidentActionKind.RESOLVE, 1, T0 + 3 * H)
    ]
    done = [KnownIncident(1, T0 + H, T0 + 3 * H, resolved=True)]
    assert plan_incidents([ended], done, T0 + 4 * H) == []


def test_an_outage_seen_only_afterwards_is_recorded_once() -> None:
    ended = Outage(T0 + H, T0 + 3 * H, frozenset({OutageCause.EVALUATOR}))
    actions = plan_incidents([ended], [], T0 + 3 * H)
    assert [(a.kind, a.started_at, a.ended_at) for a in actions] == [
        (IncidentActionKind.RECORD, T0 + H, T0 + 3 * H)
    ]
    recorded = [KnownIncident(7, T0 + H, T0 + 3 * H, resolved=True)]
    assert plan_incidents([ended], recorded, T0 + 4 * H) == []


def test_an_open_incident_whose_outage_left_the_view_resolves_now() -> None:
    known = [KnownIncident(1, T0, None, resolved=False)]
    actions = plan_incidents([], known, T0 + 5 * H)
    assert [(a.kind, a.ended_at) for a in actions] == [(IncidentActionKind.RESOLVE, T0 + 5 * H)]


def test_the_rule_file_carries_the_same_graces(rules: RuleSet) -> None:
    params = rules.get("SYS1").params
    assert params == {"heartbeat_grace": HEARTBEAT_GRACE, "recovery_grace": RECOVERY_GRACE}
    assert rules.get("SYS1").severity is Severity.SYS
