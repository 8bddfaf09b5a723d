"""Stale and missing data: S1 (CGM silent), S2 (no readings in days), S3 (gateway offline).

These run on the clock, not on readings: the evaluator calls them on a schedule and the
backtest wakes at each threshold after every reading. S3 needs the gateways' last-seen
times as input (heartbeats); readings alone cannot tell an idle gateway from a dead one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from alerts.model import Finding, FindingStatus
from alerts.rules.common import Context, finding, kind_of
from alerts.rules.model import Rule
from readings.model import Reading


def _durations(rule: Rule) -> dict[str, float]:
    result = {f"{level.name} min": level.after.total_seconds() / 60 for level in rule.levels}
    result.update({f"{g.name} h": g.after.total_seconds() / 3600 for g in rule.groups})
    after = rule.params.get("after")
    if isinstance(after, timedelta):
        result["after min"] = after.total_seconds() / 60
    return result


def _make(
    rule: Rule,
    ctx: Context,
    fired: bool,
    key: str,
    params: dict[str, str | int | float],
    readings: Sequence[Reading] = (),
) -> Finding:
    assert rule.severity is not None
    return finding(
        rule,
        ctx,
        status=FindingStatus.FIRING if fired else FindingStatus.CLEAR,
        severity=rule.severity,
        readings=readings,
        thresholds=_durations(rule),
        key=key if fired else f"{key}.clear",
        params=params,
    )


def evaluate_stale(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """S1: the newest CGM reading is ``after`` or more old (the highest level reached).

    Only for a patient wearing a CGM: one whose last CGM reading is within
    ``active_within``; a sensor removed for longer is S2's business."""
    cgm = [r for r in readings if kind_of(r) in rule.kinds]
    if not cgm:
        return []
    silent = ctx.now - cgm[-1].measured_at
    if silent > rule.params["active_within"]:
        return []
    reached = [level for level in rule.levels if silent >= level.after]
    if not reached:
        return [_make(rule, ctx, False, "alert.stale", {})]
    level = max(reached, key=lambda lv: lv.after)
    minutes = int(silent.total_seconds() // 60)
    return [_make(rule, ctx, True, "alert.stale", {"level": level.name, "minutes": minutes})]


def evaluate_missing(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """S2: for each group the patient's conditions call for, no reading for ``after``.

    With no reading of the group in the window, the silence is counted from the
    patient's oldest reading of any kind there (when monitoring is known to have run)."""
    if not readings:
        return []
    start = readings[0].measured_at
    missing: list[str] = []
    applies = False
    for group in rule.groups:
        if not group.conditions & ctx.profile.conditions:
            continue
        applies = True
        last = max((r.measured_at for r in readings if kind_of(r) in group.kinds), default=start)
        if ctx.now - last >= group.after:
            missing.append(group.name)
    if not applies:
        return []
    return [_make(rule, ctx, bool(missing), "alert.missing", {"groups": ",".join(missing)})]


def evaluate_gateway_offline(
    rule: Rule, readings: Sequence[Reading], ctx: Context
) -> list[Finding]:
    """S3: a gateway of the patient last seen ``after`` or more ago (``gateway_last_seen``)."""
    if not ctx.gateway_last_seen:
        return []
    after: timedelta = rule.params["after"]
    offline = sorted(g for g, seen in ctx.gateway_last_seen.items() if ctx.now - seen >= after)
    return [
        _make(rule, ctx, bool(offline), "alert.gateway_offline", {"gateways": ",".join(offline)})
    ]
