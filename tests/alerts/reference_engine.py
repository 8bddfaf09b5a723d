"""The straightforward engine and backtest loop, kept as the reference the optimised ones
(``alerts.rules.prepared``, ``alerts.backtest``) must agree with.

Every rule gets the whole window, re-sorted on every evaluation: slow (quadratic in a CGM
patient's history), but obviously what the rule kinds mean.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from alerts.backtest import DAY, BacktestAlert, _Open, _wake_durations, fold
from alerts.model import Finding
from alerts.rules.common import Context, SummaryFn, sort_readings
from alerts.rules.engine import EVALUATORS
from alerts.rules.model import RuleSet
from alerts.rules.overrides import active_rules, apply_overrides
from readings.files import PatientProfile
from readings.model import Kind, Reading


def reference_evaluate(
    readings: Sequence[Reading],
    profile: PatientProfile,
    rules: RuleSet,
    now: datetime,
    *,
    arrived: Collection[str] = frozenset(),
    summary: SummaryFn | None = None,
    monitoring_since: Mapping[Kind, datetime] | None = None,
) -> list[Finding]:
    """Each active rule's findings over the whole window (the engine before preparation)."""
    window = sort_readings(
        [r for r in readings if r.patient_id == profile.patient_id and r.measured_at <= now]
    )
    context = Context(
        profile=profile,
        now=now,
        arrived=frozenset(arrived),
        summary=summary,
        monitoring_since=monitoring_since,
    )
    findings: list[Finding] = []
    for rule in active_rules(rules, profile.conditions):
        effective = apply_overrides(rule, profile.overrides, now)
        if effective is not None:
            findings.extend(EVALUATORS[effective.kind](effective, window, context))
    return findings


def reference_backtest(
    readings: Sequence[Reading], profile: PatientProfile, rules: RuleSet, until: datetime
) -> tuple[list[tuple[datetime, list[Finding]]], list[BacktestAlert]]:
    """One patient's backtest with the reference engine: every evaluation and the alerts."""
    mine = sort_readings(readings)
    times = [r.measured_at for r in mine]
    ticks: set[datetime] = set(times)
    for moment in times:
        ticks.update(moment + d for d in _wake_durations(rules))
    day = times[0]
    while day < until:
        day += DAY
        ticks.add(day)
    ticks.add(until)
    heap = [t for t in ticks if t <= until]
    heapq.heapify(heap)
    seen: list[tuple[datetime, list[Finding]]] = []
    open_alerts: dict[tuple[str, str, bool], _Open] = {}
    closed: list[BacktestAlert] = []
    previous: datetime | None = None
    while heap:
        now = heapq.heappop(heap)
        if now == previous:
            continue
        start = bisect.bisect_right(times, now - rules.lookback)
        end = bisect.bisect_right(times, now)
        arrived_from = 0 if previous is None else bisect.bisect_right(times, previous)
        # No pairings in a file: each kind monitored since its first reading in the file,
        # found here by scanning everything measured so far.
        first: dict[Kind, datetime] = {}
        for r in mine[:end]:
            first.setdefault(r.kind, r.measured_at)
        findings = reference_evaluate(
            mine[start:end],
            profile,
            rules,
            now,
            arrived={r.id for r in mine[arrived_from:end]},
            monitoring_since=first,
        )
        seen.append((now, findings))
        fold(findings, open_alerts, closed)
        for f in findings:
            if f.deadline is not None and f.deadline <= until:
                heapq.heappush(heap, f.deadline)
        previous = now
    for entry in open_alerts.values():
        closed.append(replace(entry.alert, reading_ids=tuple(entry.ids)))
    return seen, closed
