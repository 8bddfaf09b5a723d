"""CGM rules: G6, the AR2 forecast as Nightscout computes it, and G7, the 14-day summary.

G6 reimplements ``lib/plugins/ar2.js`` and the bucketing of ``lib/plugins/bgnow.js`` of
nightscout/cgm-remote-monitor (read at commit 7e0e77f8, 2026-04-29):

* bgnow: four 5-minute buckets, bucket *i* spanning [last − 2.5 min − 5i min, +5 min]
  (both ends inclusive), filled from the newest reading back until one falls outside;
  each bucket's mean skips values ≤ 39 mg/dL (sensor codes); "5 minutes ago" is the
  previous non-empty bucket's mean, interpolated linearly when it is more than 9 min back;
* ar2: y = ln(BG/140); yₜ₊₁ = −0.723·yₜ₋₁ + 1.716·yₜ; six 5-minute steps, each point
  round(140·eʸ) clamped to 36–400 mg/dL; loss = Σⱼ₌₀..₅ (log₁₀(predⱼ/120))² / 5 (six terms
  over five, as coded); WARN above 0.05; labelled low from the 20-minute point; nothing
  when the newest reading is more than 10 minutes old.

G6 fires when that warn-level forecast's point at ``horizon`` is below the threshold and the
glucose is not already below it (G1/G2 cover a low that has happened).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from alerts.model import Finding, FindingStatus
from alerts.rules.common import Context, bound_thresholds, finding, is_late, kind_of, late_review
from alerts.rules.model import Bound, Rule
from readings.model import Reading
from readings.units import Unit, from_canonical, to_canonical

BG_REF_MG_DL: Final = 140.0
"""ar2.js BG_REF: the central tendency the log transform is taken around."""
BG_MIN_MG_DL: Final = 36.0
BG_MAX_MG_DL: Final = 400.0
"""ar2.js clamps every predicted point to 36–400 mg/dL."""
AR_COEFFICIENTS: Final = (-0.723, 1.716)
LOSS_REF_MG_DL: Final = 120.0
SENSOR_CODE_MAX_MG_DL: Final = 39.0
"""bgnow.js skips values ≤ 39 mg/dL in bucket means (Dexcom error codes)."""
BUCKET: Final = timedelta(minutes=5)
BUCKET_OFFSET: Final = timedelta(minutes=2.5)
BUCKET_COUNT: Final = 4
INTERPOLATE_AFTER_MINUTES: Final = 9.0
STEPS: Final = 6


@dataclass(frozen=True, slots=True)
class Forecast:
    """AR2's six points (5…30 min ahead, mg/dL) and its loss."""

    predicted: tuple[float, ...]
    loss: float
    used: tuple[Reading, ...]


def _js_round(value: float) -> float:
    return math.floor(value + 0.5)  # JavaScript's Math.round: halves go up


def _mg_dl(reading: Reading) -> float:
    return round(from_canonical(reading.values.glucose, Unit.MG_PER_DL), 6)  # type: ignore[attr-defined]


def ar2_forecast(readings: Sequence[Reading]) -> Forecast | None:
    """Nightscout's AR2 forecast from CGM readings (oldest first), or None when it has too
    little data (no two non-empty buckets, or a mean below 36 mg/dL)."""
    if not readings:
        return None
    last: datetime = readings[-1].measured_at
    buckets: list[list[Reading]] = [[] for _ in range(BUCKET_COUNT)]
    for reading in reversed(readings):
        index = next(
            (
                i
                for i in range(BUCKET_COUNT)
                if last - BUCKET_OFFSET - i * BUCKET
                <= reading.measured_at
                <= last - BUCKET_OFFSET - i * BUCKET + BUCKET
            ),
            None,
        )
        if index is None:
            break
        buckets[index].append(reading)
    stats: list[tuple[float, datetime] | None] = []
    for bucket in buckets:
        good = [r for r in bucket if _mg_dl(r) > SENSOR_CODE_MAX_MG_DL]
        if not good:
            stats.append(None)
            continue
        newest = max(good, key=lambda r: r.measured_at)
        stats.append((sum(_mg_dl(r) for r in good) / len(good), newest.measured_at))
    recent = next((s for s in stats if s is not None), None)
    if recent is None:
        return None
    previous = next((s for s in stats if s is not None and s[1] < recent[1]), None)
    if previous is None:
        return None
    absolute = recent[0] - previous[0]
    elapsed = (recent[1] - previous[1]).total_seconds() / 60
    mean_5_ago = (
        recent[0] - absolute / elapsed * 5 if elapsed > INTERPOLATE_AFTER_MINUTES else previous[0]
    )
    if recent[0] < BG_MIN_MG_DL or mean_5_ago <= 0:
        return None
    prev, curr = math.log(mean_5_ago / BG_REF_MG_DL), math.log(recent[0] / BG_REF_MG_DL)
    points: list[float] = []
    for _ in range(STEPS):
        prev, curr = curr, AR_COEFFICIENTS[0] * prev + AR_COEFFICIENTS[1] * curr
        mg = _js_round(BG_REF_MG_DL * math.exp(curr))
        points.append(max(BG_MIN_MG_DL, min(BG_MAX_MG_DL, mg)))
    size = min(len(points) - 1, STEPS)
    loss = sum(math.log10(p / LOSS_REF_MG_DL) ** 2 / size for p in points[: size + 1])
    used = tuple(r for bucket in buckets for r in bucket)
    return Forecast(tuple(points), loss, tuple(sorted(used, key=lambda r: r.measured_at)))


def evaluate_forecast(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """G6: predicted below the threshold at ``horizon`` (AR2), data fresher than ``max_age``."""
    assert rule.severity is not None
    cgm = [r for r in readings if kind_of(r) in rule.kinds]
    if not cgm or ctx.now - cgm[-1].measured_at > rule.params["max_age"]:
        return []
    forecast = ar2_forecast(cgm)
    if forecast is None:
        return []
    bound: Bound = rule.params["below"]
    unit, threshold = bound.threshold_for(cgm[-1].source_unit)
    step = int(rule.params["horizon"] / BUCKET) - 1
    predicted = forecast.predicted[step]
    predicted_in_unit = round(from_canonical(to_canonical(predicted, Unit.MG_PER_DL), unit), 6)
    current = round(from_canonical(cgm[-1].values.glucose, unit), 6)  # type: ignore[attr-defined]
    fired = (
        forecast.loss > rule.params["min_loss"]
        and bound.op.holds(predicted_in_unit, threshold)
        and not bound.op.holds(current, threshold)
    )
    thresholds = bound_thresholds("below", bound)
    if fired and is_late(cgm[-1], rule, ctx):
        return [late_review(rule, ctx, forecast.used, thresholds)]
    return [
        finding(
            rule,
            ctx,
            status=FindingStatus.FIRING if fired else FindingStatus.CLEAR,
            severity=rule.severity,
            readings=forecast.used,
            thresholds=thresholds,
            key="alert.forecast_low" if fired else "alert.forecast_low.clear",
            params={"predicted": predicted_in_unit, "unit": unit, "loss": round(forecast.loss, 4)},
        )
    ]


def evaluate_cgm_summary(rule: Rule, readings: Sequence[Reading], ctx: Context) -> list[Finding]:
    """G7: the injected summary over ``days`` days against the TIR consensus targets.

    Nothing without a summary function (the reports' summaries module computes it) or with
    less than ``min_wear_percent`` wear (the consensus' data-sufficiency rule)."""
    assert rule.severity is not None
    if ctx.summary is None:
        return []
    days: int = rule.params["days"]
    cgm = [
        r
        for r in readings
        if kind_of(r) in rule.kinds and r.measured_at > ctx.now - timedelta(days=days)
    ]
    summary = ctx.summary(cgm, ctx.profile, ctx.now) if cgm else None
    if summary is None or summary.wear_percent < rule.params["min_wear_percent"]:
        return []
    p = rule.params
    fired = (
        summary.tbr_below_3_9_percent > p["tbr_below_3_9_max_percent"]
        or summary.tbr_below_3_0_percent > p["tbr_below_3_0_max_percent"]
        or summary.tir_percent < p["tir_min_percent"]
    )
    thresholds = {
        "tbr_below_3_9_max %": p["tbr_below_3_9_max_percent"],
        "tbr_below_3_0_max %": p["tbr_below_3_0_max_percent"],
        "tir_min %": p["tir_min_percent"],
    }
    return [
        finding(
            rule,
            ctx,
            status=FindingStatus.FIRING if fired else FindingStatus.CLEAR,
            severity=rule.severity,
            readings=(),
            thresholds=thresholds,
            key="alert.cgm_summary" if fired else "alert.cgm_summary.clear",
            params={
                "tir_percent": round(summary.tir_percent, 1),
                "tbr_below_3_9_percent": round(summary.tbr_below_3_9_percent, 1),
                "tbr_below_3_0_percent": round(summary.tbr_below_3_0_percent, 1),
                "days": days,
            },
        )
    ]
