"""Backtest: run the rules over a file of readings as if they had arrived on time.

The clock advances through the readings' ``measured_at`` in order, through every instant
a rule could change its mind without a new reading (a pending finding's deadline, each
stale/missing threshold after a reading, once a day), and on to ``until``. A tiny fold
keeps one open alert per patient + rule (FIRING opens it, CLEAR resolves it), enough to
report when each alert fired and resolved. It is a stand-in for the real lifecycle
(inhibition, silences, acknowledgement), which is not applied here.

A file (and the stored history, ``alerts.backtest_store``) carries no device pairings, so
the missing-data rules take monitoring of a kind to run since its first reading in the
whole history (:func:`alerts.rules.common.first_readings`), where the live worker uses the
pairing's start: a kind the patient never measured is never missing.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from alerts.model import Finding, FindingStatus, Severity
from alerts.rules.common import first_readings
from alerts.rules.engine import evaluate_history
from alerts.rules.model import RuleSet
from alerts.rules.overrides import check_overrides
from alerts.rules.prepared import PreparedHistory
from ingest.validate import DEFAULT_LIMITS, check_values
from readings.files import PatientProfile
from readings.model import Reading

DAY = timedelta(days=1)


class BacktestError(ValueError):
    """The inputs cannot be backtested (a reading of a patient not in the patients file …)."""


@dataclass(frozen=True, slots=True)
class BacktestAlert:
    """One alert as the backtest saw it."""

    rule_id: str
    severity: Severity
    patient_id: str
    fired_at: datetime
    resolved_at: datetime | None
    reading_ids: tuple[str, ...]
    confirmed: bool = True
    late: bool = False


@dataclass(slots=True)
class BacktestResult:
    """All alerts, in firing order, and the counts behind the alert-burden table."""

    alerts: list[BacktestAlert]
    patient_weeks: float
    rule_ids: tuple[str, ...]
    dropped_implausible: int = 0
    evaluations: int = 0

    def per_rule(self) -> dict[str, dict[str, float | int]]:
        """Per rule: alerts, alerts per patient-week, unconfirmed and late ones."""
        result: dict[str, dict[str, float | int]] = {}
        for rule_id in self.rule_ids:
            mine = [a for a in self.alerts if a.rule_id == rule_id]
            result[rule_id] = {
                "alerts": len(mine),
                "per_patient_week": round(len(mine) / self.patient_weeks, 4)
                if self.patient_weeks
                else 0.0,
                "unconfirmed": sum(not a.confirmed for a in mine),
                "late": sum(a.late for a in mine),
            }
        if "S4" in result:
            result["S4"]["dropped_readings"] = self.dropped_implausible
        return result

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` document."""
        return {
            "alerts": [
                {
                    "rule_id": a.rule_id,
                    "severity": a.severity.value,
                    "patient_id": a.patient_id,
                    "fired_at": _iso(a.fired_at),
                    "resolved_at": None if a.resolved_at is None else _iso(a.resolved_at),
                    "reading_ids": list(a.reading_ids),
                    "confirmed": a.confirmed,
                    "late": a.late,
                }
                for a in self.alerts
            ],
            "per_rule": self.per_rule(),
            "patient_weeks": round(self.patient_weeks, 2),
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class _Open:
    alert: BacktestAlert
    ids: list[str] = field(default_factory=list)


def fold(
    findings: Iterable[Finding],
    open_alerts: dict[tuple[str, str, bool], _Open],
    closed: list[BacktestAlert],
) -> None:
    """One open alert per patient + rule (+ late review): FIRING opens or updates it,
    CLEAR resolves it, PENDING is not an alert yet."""
    for finding in findings:
        key = (finding.patient_id, finding.rule_id, finding.late)
        current = open_alerts.get(key)
        if finding.status is FindingStatus.FIRING:
            if current is None:
                alert = BacktestAlert(
                    finding.rule_id,
                    finding.severity,
                    finding.patient_id,
                    finding.at,
                    None,
                    finding.reading_ids,
                    finding.confirmed,
                    finding.late,
                )
                open_alerts[key] = _Open(alert, list(finding.reading_ids))
            else:
                severity = min(current.alert.severity, finding.severity, key=lambda s: s.rank)
                current.ids.extend(i for i in finding.reading_ids if i not in current.ids)
                current.alert = replace(current.alert, severity=severity)
        elif finding.status is FindingStatus.CLEAR and current is not None:
            closed.append(
                replace(current.alert, resolved_at=finding.at, reading_ids=tuple(current.ids))
            )
            del open_alerts[key]


def _wake_durations(rules: RuleSet) -> list[timedelta]:
    durations: set[timedelta] = set()
    for rule in rules.rules:
        durations.update(level.after for level in rule.levels)
        durations.update(group.after for group in rule.groups)
    return sorted(durations)


def run_backtest(
    readings: Sequence[Reading],
    profiles: Sequence[PatientProfile],
    rules: RuleSet,
    *,
    until: datetime | None = None,
    on_findings: Callable[[str, datetime, list[Finding]], None] | None = None,
) -> BacktestResult:
    """Evaluate every patient's readings as the clock advances; see the module docstring.

    Implausible readings (ingest's plausibility rules) are dropped and counted under S4:
    they never alarm. S3 is not evaluated: a file of readings has no gateway heartbeats.
    ``on_findings`` (patient id, instant, findings) sees every evaluation, in clock order per
    patient: ``bench/alerts.py`` feeds it to the real lifecycle to count what inhibition mutes.

    Raises:
        BacktestError: a reading of an unknown patient, or an override that cannot apply.
    """
    by_patient: dict[str, list[Reading]] = {p.patient_id: [] for p in profiles}
    dropped = 0
    for reading in readings:
        if reading.patient_id not in by_patient:
            raise BacktestError(
                f"reading {reading.id}: patient {reading.patient_id!r} is not in the patients file"
            )
        if check_values(reading, DEFAULT_LIMITS) is not None:
            dropped += 1
            continue
        by_patient[reading.patient_id].append(reading)
    kept = [r for rs in by_patient.values() for r in rs]
    if until is None:
        until = max((r.measured_at for r in kept), default=None)
        until = None if until is None else until + DAY
    closed: list[BacktestAlert] = []
    open_alerts: dict[tuple[str, str, bool], _Open] = {}
    weeks = 0.0
    evaluations = 0
    wake = _wake_durations(rules)
    lookback = rules.lookback
    for profile in profiles:
        mine = by_patient[profile.patient_id]
        if not mine or until is None:
            continue
        try:
            check_overrides(
                rules, profile.patient_id, profile.overrides, min(r.measured_at for r in mine)
            )
        except ValueError as exc:
            raise BacktestError(str(exc)) from None
        history = PreparedHistory(mine)  # sorted and split by kind once per patient
        times = history.times
        first_of_kind = first_readings(history.readings)
        weeks += max((until - times[0]) / timedelta(weeks=1), 0.0)
        ticks: set[datetime] = set(times)
        for moment in times:
            ticks.update(moment + d for d in wake)
        day = times[0]
        while day < until:
            day += DAY
            ticks.add(day)
        ticks.add(until)
        heap = [t for t in ticks if t <= until]
        heapq.heapify(heap)
        previous: datetime | None = None
        while heap:
            now = heapq.heappop(heap)
            if now == previous:
                continue
            end = bisect.bisect_right(times, now)
            arrived_from = 0 if previous is None else bisect.bisect_right(times, previous)
            arrived = {r.id for r in history.readings[arrived_from:end]}
            findings = evaluate_history(
                history,
                profile,
                rules,
                now,
                since=now - lookback,
                arrived=arrived,
                monitoring_since={k: t for k, t in first_of_kind.items() if t <= now},
            )
            evaluations += 1
            if on_findings is not None:
                on_findings(profile.patient_id, now, findings)
            fold(findings, open_alerts, closed)
            for f in findings:
                if f.deadline is not None and f.deadline <= until:
                    heapq.heappush(heap, f.deadline)
            previous = now
    for entry in open_alerts.values():
        closed.append(replace(entry.alert, reading_ids=tuple(entry.ids)))
    closed.sort(key=lambda a: (a.fired_at, a.patient_id, a.rule_id))
    return BacktestResult(
        alerts=closed,
        patient_weeks=weeks,
        rule_ids=tuple(r.id for r in rules.rules),
        dropped_implausible=dropped,
        evaluations=evaluations,
    )
