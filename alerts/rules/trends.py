"""Window and baseline rules: B2 (7-day home BP mean), H1 (weight vs the patient's own
weight days earlier), H2 (7-day moving-average rise).

They read every reading in their window, late ones included (a meter synced late still
counts towards the 7-day mean); a finding whose newest reading is late becomes a review.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from statistics import fmean

from alerts.model import Finding, FindingStatus
from alerts.rules.common import (
    Context,
    bound_thresholds,
    field_value,
    finding,
    in_unit,
    is_late,
    kind_of,
    late_review,
    thresholds_of,
)
from alerts.rules.model import Bound, Rule
from readings.model import Reading


def _of_kind(rule: Rule, readings: Sequence[Reading]) -> list[Reading]:
    return [r for r in readings if kind_of(r) in rule.kinds]


def _local_date(reading: Reading, ctx: Context) -> date:
    return reading.measured_at.astimezone(ctx.profile.time_zone).date()


def _result(
    rule: Rule,
    ctx: Context,
    fired: bool,
    used: Sequence[Reading],
    thresholds: dict[str, float],
    key: str,
    params: dict[str, str | int | float],
) -> list[Finding]:
    assert rule.severity is not None
    if fired and used and is_late(used[-1], rule, ctx):
        return [late_review(rule, ctx, used, thresholds)]
    return [
        finding(
            rule,
            ctx,
            status=FindingStatus.FIRING if fired else FindingStatus.CLEAR,
            severity=rule.severity,
            readings=used,
            thresholds=thresholds,
            key=key if fired else f"{key}.clear",
            params=params,
        )
    ]


def _window_means(rule: Rule, series: Sequence[Reading]) -> tuple[bool, dict[str, float | str]]:
    """Whether any condition holds on the series' mean, and the means (in the unit compared)."""
    means: dict[str, float | str] = {}
    high = False
    for condition in rule.conditions:
        values = [(r, f) for r in series if (f := field_value(r, condition.fields))]
        if not values:
            continue
        bound = condition.bounds[0]
        compared = [in_unit(r, name, v, bound) for r, (name, v) in values]
        units = {unit for unit, _ in compared}
        if len(units) == 1:
            unit, mean = units.pop(), fmean(v for _, v in compared)
        else:  # mixed units: compare the canonical mean
            unit, mean = bound.canonical.value, fmean(v for _, (_, v) in values)
        means[condition.name] = round(mean, 2)
        means[f"{condition.name}_unit"] = unit
        high = high or all(b.op.holds(mean, b.threshold_for(unit)[1]) for b in condition.bounds)
    return high, means


def evaluate_window_mean(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """B2: the mean over ``window`` (first local day dropped) against the conditions.

    Fewer than ``min_readings`` left: no verdict; if the mean of what there is (first day
    included) is already high, a pending finding asks for more measurements, so one high
    reading never fires it.
    """
    assert rule.severity is not None
    window: timedelta = rule.params["window"]
    everything = [r for r in _of_kind(rule, readings) if r.measured_at > ctx.now - window]
    if not everything:
        return []
    series = everything
    if rule.params["drop_first_day"]:
        first_day = _local_date(everything[0], ctx)
        series = [r for r in everything if _local_date(r, ctx) != first_day]
    thresholds = thresholds_of(rule.conditions)
    if len(series) < rule.params["min_readings"]:
        high, means = _window_means(rule, everything)
        if not high:
            return []
        return [
            finding(
                rule,
                ctx,
                status=FindingStatus.PENDING,
                severity=rule.severity,
                readings=everything,
                thresholds=thresholds,
                key="alert.window_mean.pending",
                params={"readings": len(series), **means},
                ask_retest_within=rule.params["retest_within"],
            )
        ]
    high, means = _window_means(rule, series)
    params: dict[str, str | int | float] = {"readings": len(series), **means}
    return _result(rule, ctx, high, series, thresholds, "alert.window_mean", params)


def _nearest(
    readings: Sequence[Reading], target_time: object, tolerance: timedelta
) -> Reading | None:
    best: Reading | None = None
    for reading in readings:
        gap = abs(reading.measured_at - target_time)  # type: ignore[operator]
        if gap <= tolerance and (best is None or gap < abs(best.measured_at - target_time)):  # type: ignore[operator]
            best = reading
    return best


def _weight_in(reading: Reading, bound: Bound) -> tuple[str, float]:
    found = field_value(reading, ("weight",))
    assert found is not None
    return in_unit(reading, "weight", found[1], bound)


def _kg(reading: Reading) -> float:
    found = field_value(reading, ("weight",))
    assert found is not None
    return found[1]


def evaluate_weight_change(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """H1: the newest weight against the patient's weight ``over`` earlier (nearest reading
    within ``tolerance`` of that instant); a gain above the bound fires."""
    weights = _of_kind(rule, readings)
    if not weights:
        return []
    latest = weights[-1]
    tolerance: timedelta = rule.params["tolerance"]
    thresholds: dict[str, float] = {}
    for change in rule.changes:
        thresholds.update(bound_thresholds(change.name, change.bound))
    compared_any = False
    for change in rule.changes:
        earlier = _nearest(
            [r for r in weights if r is not latest], latest.measured_at - change.over, tolerance
        )
        if earlier is None:
            continue
        compared_any = True
        unit, now_weight = _weight_in(latest, change.bound)
        earlier_unit, then_weight = _weight_in(earlier, change.bound)
        if unit != earlier_unit:  # one scale in kg, another in lb: compare in kg
            unit = change.bound.canonical.value
            now_weight, then_weight = _kg(latest), _kg(earlier)
        gain = now_weight - then_weight
        if change.bound.op.holds(gain, change.bound.threshold_for(unit)[1]):
            params: dict[str, str | int | float] = {
                "change": change.name,
                "gain_kg": round(gain, 2),
            }
            return _result(
                rule, ctx, True, [earlier, latest], thresholds, "alert.weight_change", params
            )
    if not compared_any:
        return []
    return _result(rule, ctx, False, [latest], thresholds, "alert.weight_change", {})


def evaluate_moving_average_rise(
    rule: Rule, readings: Sequence[Reading], ctx: Context
) -> list[Finding]:
    """H2: the mean of daily weights over the last ``days`` days against the ``days``
    before; each side needs ``min_days`` days with a weight."""
    days: int = rule.params["days"]
    bound: Bound = rule.params["rise_above"]
    today = ctx.now.astimezone(ctx.profile.time_zone).date()
    daily: dict[date, list[float]] = defaultdict(list)
    used: list[Reading] = []
    for reading in _of_kind(rule, readings):
        day = _local_date(reading, ctx)
        if 0 <= (today - day).days < 2 * days:
            daily[day].append(_weight_in(reading, bound)[1])
            used.append(reading)
    recent = [fmean(v) for d, v in daily.items() if (today - d).days < days]
    before = [fmean(v) for d, v in daily.items() if (today - d).days >= days]
    if len(recent) < rule.params["min_days"] or len(before) < rule.params["min_days"]:
        return []
    rise = fmean(recent) - fmean(before)
    fired = bound.op.holds(rise, bound.by_unit[bound.canonical.value])
    thresholds = bound_thresholds("rise_above", bound)
    params: dict[str, str | int | float] = {"rise_kg": round(rise, 2), "days": days}
    return _result(rule, ctx, fired, used, thresholds, "alert.moving_average_rise", params)
