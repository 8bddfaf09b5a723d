"""The engine: a patient's readings window, profile, rules and the instant → findings.

Pure and deterministic: the same arguments give the same findings in the same order. The
evaluator worker calls it with each patient's window from the reading store; the backtest
calls it as its clock advances through a file of readings.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from alerts.model import Finding
from alerts.rules.cgm import evaluate_cgm_summary, evaluate_forecast
from alerts.rules.common import Context, SummaryFn
from alerts.rules.model import Rule, RuleSet
from alerts.rules.overrides import active_rules, apply_overrides
from alerts.rules.prepared import PreparedHistory, Span, rule_findings
from alerts.rules.stale import evaluate_gateway_offline, evaluate_missing, evaluate_stale
from alerts.rules.thresholds import evaluate_threshold
from alerts.rules.trends import (
    evaluate_moving_average_rise,
    evaluate_weight_change,
    evaluate_window_mean,
)
from readings.files import PatientProfile
from readings.model import Kind, Reading

Evaluator = Callable[[Rule, Sequence[Reading], Context], list[Finding]]


def _never(rule: Rule, readings: Sequence[Reading], context: Context) -> list[Finding]:
    # S4: an implausible reading is quarantined by ingest and the patient asked to measure
    # again; it is never an alarm, so the rule exists only to be documented.
    return []


def _clinic_wide(rule: Rule, readings: Sequence[Reading], context: Context) -> list[Finding]:
    # SYS1: a clinic-side outage is no patient's finding. The evaluator's outage monitor
    # (alerts.incidents) raises one incident per outage and holds S1–S3 back meanwhile.
    return []


def _reported(rule: Rule, readings: Sequence[Reading], context: Context) -> list[Finding]:
    # Symptom rules: a symptom is reported, not measured; the report itself makes the
    # finding (alerts.symptoms.symptom_finding), so readings never raise one.
    return []


EVALUATORS: dict[str, Evaluator] = {
    "threshold": evaluate_threshold,
    "window_mean": evaluate_window_mean,
    "weight_change": evaluate_weight_change,
    "moving_average_rise": evaluate_moving_average_rise,
    "forecast_ar2": evaluate_forecast,
    "cgm_summary": evaluate_cgm_summary,
    "stale": evaluate_stale,
    "missing": evaluate_missing,
    "gateway_offline": evaluate_gateway_offline,
    "plausibility": _never,
    "clinic_outage": _clinic_wide,
    "symptom": _reported,
}
"""One function per rule kind (``kind`` in the rule file)."""


def evaluate(
    readings: Sequence[Reading],
    profile: PatientProfile,
    rules: RuleSet,
    now: datetime,
    *,
    arrived: Collection[str] = frozenset(),
    gateway_last_seen: Mapping[str, datetime] | None = None,
    summary: SummaryFn | None = None,
    monitoring_since: Mapping[Kind, datetime] | None = None,
) -> list[Finding]:
    """Every active rule's findings for one patient at ``now``.

    Args:
        readings: the patient's window (at least ``rules.lookback``), in any order;
            readings measured after ``now`` are ignored. Implausible readings must not be
            here (ingest quarantines them: S4 never alarms).
        profile: conditions (select rules and profiles) and effective-dated overrides.
        rules: the rule set.
        now: the evaluation instant (the injected clock), timezone-aware.
        arrived: ids of readings that arrived for this evaluation; only they can be late
            (now − measured_at beyond the rule's ``late_after``), which turns what they
            would raise into a review finding instead of a page.
        gateway_last_seen: the patient's gateways and when each was last heard (S3).
        summary: computes the CGM summary for G7; without it G7 is not evaluated.
        monitoring_since: per reading kind, since when the patient's paired devices
            produce it (S1, S2; a kind absent is not expected). None: pairings unknown,
            each kind monitored since its first reading in ``readings``.

    Raises:
        alerts.rules.overrides.OverrideError: an override that cannot apply.
    """
    history = PreparedHistory([r for r in readings if r.patient_id == profile.patient_id])
    return evaluate_history(
        history,
        profile,
        rules,
        now,
        arrived=arrived,
        gateway_last_seen=gateway_last_seen,
        summary=summary,
        monitoring_since=monitoring_since,
    )


def evaluate_history(
    history: PreparedHistory,
    profile: PatientProfile,
    rules: RuleSet,
    now: datetime,
    *,
    since: datetime | None = None,
    arrived: Collection[str] = frozenset(),
    gateway_last_seen: Mapping[str, datetime] | None = None,
    summary: SummaryFn | None = None,
    monitoring_since: Mapping[Kind, datetime] | None = None,
) -> list[Finding]:
    """:func:`evaluate` over the prepared history's readings measured after ``since``
    (None: all) and by ``now``; the backtest prepares each patient's history once (and
    gives ``monitoring_since`` from the whole history's first reading of each kind).

    Raises:
        ValueError: the history is another patient's.
        alerts.rules.overrides.OverrideError: an override that cannot apply.
    """
    if history.patient_id not in (None, profile.patient_id):
        raise ValueError("the prepared history is another patient's")
    lo, hi = history.window(now, since)
    context = Context(
        profile=profile,
        now=now,
        arrived=frozenset(arrived),
        gateway_last_seen=dict(gateway_last_seen or {}),
        summary=summary,
        monitoring_since=None if monitoring_since is None else dict(monitoring_since),
    )
    span = Span(history, lo, hi, history.arrived(context.arrived, lo, hi))
    findings: list[Finding] = []
    for rule in active_rules(rules, profile.conditions):
        effective = apply_overrides(rule, profile.overrides, now)
        if effective is None:
            continue
        findings.extend(rule_findings(effective, span, context, EVALUATORS[effective.kind]))
    return findings
