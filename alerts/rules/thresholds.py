"""Threshold rules (G1–G5, B1, B3, O1/O2, R1, T1): tiers, confirmation and deadlines.

A tier matches a reading when any of its conditions (or its flag: a meter's HI/LO) holds.
The run of consecutive matching readings ending at the newest one decides:

* confirmed (``count`` readings spanning ``span``, a CGM spanning ``cgm_span``, or for
  ``combine: mean`` the mean of the last ``count``) → FIRING;
* not yet → PENDING, asking for a re-test; with a ``deadline`` (a dangerous single reading:
  G4, B1, O1/O2 at P1) it fires at the deadline anyway, marked unconfirmed;
* the newest reading does not match any tier → CLEAR.

Persistence rules (G3, G5, R1, T1 …) have no deadline: one reading never fires them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from statistics import fmean
from typing import Final

from alerts.model import Finding, FindingStatus
from alerts.rules.common import (
    Context,
    condition_holds,
    field_value,
    finding,
    in_unit,
    is_late,
    kind_of,
    late_review,
    thresholds_of,
)
from alerts.rules.model import Condition, Rule, Tier
from readings.model import Kind, Reading

EVENT_WINDOW: Final = timedelta(days=7)
"""Findings count the tier's matching readings over 7 days, late ones included: G2 goes to
the doctor on ≥ 2 events in 7 days (CLINICAL table (a)); the lifecycle routes on it."""

EventCount = Callable[[Tier], int]
"""The tier's matching readings of the rule over ``EVENT_WINDOW`` before the instant."""


def tier_matches(tier: Tier, reading: Reading) -> bool:
    """The tier's flag is set on the reading, or one of its conditions holds."""
    if tier.flag is not None and tier.flag in reading.flags:
        return True
    return any(condition_holds(reading, c) for c in tier.conditions)


def rule_fields(rule: Rule) -> tuple[str, ...]:
    """Every field the rule's tiers read, sorted (a reading needs one of them to count)."""
    return tuple(sorted({f for tier in rule.tiers for c in tier.conditions for f in c.fields}))


def is_relevant(rule: Rule, fields: tuple[str, ...], reading: Reading) -> bool:
    """The reading is of the rule's kinds, carries none of its excluded flags, and has a
    field the rule reads."""
    return (
        kind_of(reading) in rule.kinds
        and not rule.exclude_flags.intersection(reading.flags)
        and field_value(reading, fields) is not None
    )


def _relevant(rule: Rule, readings: Sequence[Reading]) -> list[Reading]:
    fields = rule_fields(rule)
    return [r for r in readings if is_relevant(rule, fields, r)]


def _mean_holds(condition: Condition, readings: Sequence[Reading]) -> bool:
    values = [found for r in readings if (found := field_value(r, condition.fields)) is not None]
    if len(values) != len(readings):
        return False
    for bound in condition.bounds:
        compared = [
            in_unit(r, name, v, bound) for r, (name, v) in zip(readings, values, strict=True)
        ]
        units = {unit for unit, _ in compared}
        if len(units) == 1:
            unit = units.pop()
            mean = fmean(v for _, v in compared)
        else:  # mixed units: compare the canonical mean
            unit = bound.canonical.value
            mean = fmean(v for _, v in values)
        if not bound.op.holds(mean, bound.threshold_for(unit)[1]):
            return False
    return True


def _tier_finding(
    rule: Rule, tier: Tier, relevant: list[Reading], ctx: Context, events: EventCount
) -> Finding | None:
    confirmation = tier.confirmation
    latest = relevant[-1]
    thresholds = thresholds_of([c for t in rule.tiers for c in t.conditions])
    params: dict[str, str | int | float] = {"severity": tier.severity.value}

    def make(status: FindingStatus, run: Sequence[Reading], **extra: object) -> Finding:
        return finding(
            rule,
            ctx,
            status=status,
            severity=tier.severity,
            readings=run,
            thresholds=thresholds,
            key=f"alert.threshold.{status.value}",
            params={**params, "readings": len(run), "events_7d": events(tier)},
            ask_retest_within=confirmation.retest_within,
            **extra,
        )

    cgm = kind_of(latest) is Kind.CGM_GLUCOSE and confirmation.cgm_span is not None
    earliest = latest.measured_at - confirmation.within
    if confirmation.combine == "mean" and confirmation.count > 1:
        recent = [r for r in relevant if r.measured_at >= earliest][-confirmation.count :]
        if len(recent) == confirmation.count:
            if any(_mean_holds(c, recent) for c in tier.conditions):
                return make(FindingStatus.FIRING, recent)
            return None
        if not tier_matches(tier, latest):
            return None
        run = [latest]
    else:
        if not tier_matches(tier, latest):
            return None
        run = []
        for reading in reversed(relevant):
            if reading.measured_at < earliest or not tier_matches(tier, reading):
                break
            run.append(reading)
        run.reverse()
        span = run[-1].measured_at - run[0].measured_at
        if cgm:
            assert confirmation.cgm_span is not None
            confirmed = len(run) >= 2 and span >= confirmation.cgm_span
        else:
            confirmed = len(run) >= confirmation.count and span >= confirmation.span
        if confirmed:
            return make(FindingStatus.FIRING, run)
    if confirmation.deadline is None:
        return make(FindingStatus.PENDING, run)
    wait = confirmation.cgm_span if cgm and confirmation.cgm_span else confirmation.deadline
    deadline = run[0].measured_at + wait
    if ctx.now >= deadline:
        return make(FindingStatus.FIRING, run, confirmed=False)
    return make(FindingStatus.PENDING, run, deadline=deadline)


def evaluate_threshold(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """The rule's finding for the newest reading, and a review finding for late ones."""
    relevant = _relevant(rule, readings)

    def events(tier: Tier) -> int:
        since = ctx.now - EVENT_WINDOW
        return sum(1 for r in relevant if r.measured_at > since and tier_matches(tier, r))

    return threshold_findings(rule, relevant, ctx, events)


def threshold_findings(
    rule: Rule,
    relevant: list[Reading],
    ctx: Context,
    events: EventCount,
    arrivals: Sequence[Reading] | None = None,
) -> list[Finding]:
    """:func:`evaluate_threshold` on the rule's relevant readings, oldest first.

    ``relevant`` may be shortened to what the decision reads (see
    :mod:`alerts.rules.prepared`): the newest reading and every reading within the longest
    tier's ``within`` before it; ``events`` counts the 7-day events; ``arrivals`` (default:
    all of ``relevant``) are the relevant readings that arrived for this evaluation, oldest
    first: only they can be late, and the late review reads them.
    """
    if not relevant:
        return []
    findings: list[Finding] = []
    if not is_late(relevant[-1], rule, ctx):
        results = [
            r for tier in rule.tiers if (r := _tier_finding(rule, tier, relevant, ctx, events))
        ]
        firing = [r for r in results if r.status is FindingStatus.FIRING]
        chosen = min(firing or results, key=lambda f: f.severity.rank, default=None)
        if chosen is None:
            chosen = finding(
                rule,
                ctx,
                status=FindingStatus.CLEAR,
                severity=min((t.severity for t in rule.tiers), key=lambda s: s.rank),
                readings=relevant[-1:],
                thresholds=thresholds_of([c for t in rule.tiers for c in t.conditions]),
                key="alert.threshold.clear",
            )
        findings.append(chosen)
    late = [
        r
        for r in (relevant if arrivals is None else arrivals)
        if is_late(r, rule, ctx) and any(tier_matches(t, r) for t in rule.tiers)
    ]
    if late:
        thresholds = thresholds_of([c for t in rule.tiers for c in t.conditions])
        findings.append(late_review(rule, ctx, late, thresholds))
    return findings
