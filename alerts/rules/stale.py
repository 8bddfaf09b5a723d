"""Stale and missing data: S1 (CGM silent), S2 (no readings in days), S3 (gateway offline).

These run on the clock, not on readings: the evaluator calls them on a schedule and the
backtest wakes at each threshold after every reading. S3 needs the gateways' last-seen
times as input (heartbeats); readings alone cannot tell an idle gateway from a dead one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from alerts.model import Finding, FindingStatus
from alerts.rules.common import Context, finding, first_readings, kind_of
from alerts.rules.model import Rule
from readings.model import Kind, Reading


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


def monitoring_starts(readings: Sequence[Reading], ctx: Context) -> Mapping[Kind, datetime]:
    """Per kind, since when readings of it are expected: the context's ``monitoring_since``
    (the patient's pairings), or without it the first reading of the kind given."""
    if ctx.monitoring_since is not None:
        return ctx.monitoring_since
    return first_readings(readings)


def _expected_since(
    kinds: frozenset[Kind], starts: Mapping[Kind, datetime], now: datetime
) -> datetime | None:
    """When monitoring of any of ``kinds`` began (by ``now``); None: none of them expected."""
    begun = [starts[kind] for kind in kinds if kind in starts and starts[kind] <= now]
    return min(begun, default=None)


def evaluate_stale(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """S1: the newest CGM reading is ``after`` or more old (the highest level reached).

    Only for a patient wearing a CGM: one whose last CGM reading is within
    ``active_within``; a sensor removed for longer is S2's business. With the pairings
    known (``monitoring_since``), a CGM no longer paired is not expected (clear), and the
    silence counts from the later of the last CGM reading and the CGM's pairing (a new
    sensor paired is silent from its pairing, not from the old sensor's last reading)."""
    cgm = [r for r in readings if kind_of(r) in rule.kinds]
    if not cgm:
        return []
    last = max(r.measured_at for r in cgm)
    if ctx.now - last > rule.params["active_within"]:
        return []
    since = last
    if ctx.monitoring_since is not None:
        paired = _expected_since(rule.kinds, ctx.monitoring_since, ctx.now)
        if paired is None:
            return [_make(rule, ctx, False, "alert.stale", {})]
        since = max(since, paired)
    silent = ctx.now - since
    reached = [level for level in rule.levels if silent >= level.after]
    if not reached:
        return [_make(rule, ctx, False, "alert.stale", {})]
    level = max(reached, key=lambda lv: lv.after)
    minutes = int(silent.total_seconds() // 60)
    return [_make(rule, ctx, True, "alert.stale", {"level": level.name, "minutes": minutes})]


def evaluate_missing(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """S2: for each group the patient's conditions call for, no reading for ``after``.

    The silence of a group counts from the later of its last reading and the start of its
    monitoring (:func:`monitoring_starts`: the pairing of a device producing one of its
    kinds). A group whose kinds no paired device produces, and (without pairings known)
    one with no reading given, is not expected: it never fires. With nothing expected and
    no reading at all there is no finding; with readings, the finding is a clear."""
    starts = monitoring_starts(readings, ctx)
    missing: list[str] = []
    applies = expected = False
    for group in rule.groups:
        if not group.conditions & ctx.profile.conditions:
            continue
        applies = True
        begun = _expected_since(group.kinds, starts, ctx.now)
        if begun is None:
            continue  # nothing of the group's kinds is paired (or ever measured)
        expected = True
        last = max((r.measured_at for r in readings if kind_of(r) in group.kinds), default=begun)
        if ctx.now - max(begun, last) >= group.after:
            missing.append(group.name)
    if not applies or not (expected or readings):
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
