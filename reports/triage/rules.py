"""The triage buckets: each one rule, stated in words, judged on the shared summaries.

Every rule reads a figure of :mod:`reports.summaries` (never a number of its own making);
a figure that is :class:`~reports.summaries.Insufficient` never puts a patient in a
bucket — the data issues list says why there is no number instead.

Priority order (a patient is listed once, at the first bucket that applies):

1. hypoglycaemia, CGM then meter — a danger today (TIDE puts "very low" first);
2. heart-failure weight gain and low SpO₂ — decompensation that needs a call today;
3. hyperglycaemia (CGM very high, high; meter out of target);
4. home blood pressure above the home threshold;
5. a large drop in time in range against the previous period;
6. too few meter readings to judge;
7. none of the above: meeting targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from reports.summaries import (
    HomeMean,
    Insufficient,
    PatientSummary,
    Sufficient,
    TimeInRanges,
)

# --- CGM: the TIDE population-view rules (Tidepool TIDE; thresholds from the
# International Consensus on Time in Range, Battelino et al., Diabetes Care 2019, and
# ADA Standards of Care §6 glycaemic targets). Percent of CGM readings in the period.
CGM_VERY_LOW_PERCENT: Final = 1.0
"""%. Time < 3.0 mmol/L (< 54 mg/dL) above 1 %: TIDE "very low" (consensus goal < 1 %)."""
CGM_LOW_PERCENT: Final = 4.0
"""%. Time < 3.9 mmol/L (< 70 mg/dL, very low included) above 4 %: TIDE "low"."""
CGM_VERY_HIGH_PERCENT: Final = 5.0
"""%. Time > 13.9 mmol/L (> 250 mg/dL) above 5 %: TIDE "very high"."""
CGM_HIGH_PERCENT: Final = 25.0
"""%. Time > 10.0 mmol/L (> 180 mg/dL, very high included) above 25 %: TIDE "high"."""
TIR_DROP_POINTS: Final = 15.0
"""percentage points. TIR at least 15 points below the previous period's: TIDE's "large
drop in time in range" flag (Tidepool's default; 5 points of TIR ≈ 1 h a day is the
consensus's clinically meaningful change, 15 is three times that)."""

# --- Meter (self-monitored glucose): no consensus exists; project rules built on the ADA
# hypoglycaemia levels (Standards of Care §6: level 1 < 3.9, level 2 < 3.0 mmol/L).
METER_VERY_LOW_EVENTS: Final = 1
"""events. Any meter episode < 3.0 mmol/L (level 2 hypoglycaemia) needs the doctor."""
METER_LOW_EVENTS: Final = 2
"""events. Two or more episodes < 3.9 mmol/L: a pattern rather than a one-off."""
METER_IN_TARGET_MIN_PERCENT: Final = 50.0
"""%. Fewer than half the meter readings inside the patient's target (the CGM goal is
70 % TIR; meters sample the worst moments — fasting, before meals — so half is the bar)."""
METER_MIN_PER_DAY: Final = 1.0
"""readings per day. Below one a day the period cannot show a pattern (CDS 2020 advises
several a week even on oral agents; basal-insulin users test daily)."""

# --- Home blood pressure, heart failure, SpO₂.
HOME_BP_SYSTOLIC_MMHG: Final = 135.0
HOME_BP_DIASTOLIC_MMHG: Final = 85.0
"""mmHg. 7-day home mean ≥ 135 systolic or ≥ 85 diastolic: the home hypertension threshold
(ESH 2023; Chinese hypertension guideline 2018/2024)."""
HF_WEIGHT_GAIN_KG: Final = 2.0
"""kg in 3 days. More than 2 kg: fluid retention (ESC HFA; Chinese HF guideline
"3天内体重突然增加2kg以上")."""
SPO2_LOW_READINGS: Final = 2
"""readings. Two or more SpO₂ readings below the patient's target (94 %, COPD 88 %: BTS
2017): one low reading is often a cold finger or motion, two are a pattern."""

HF_CONDITION: Final = "heart_failure"


class Bucket(StrEnum):
    """The prioritised buckets, in priority order (the enum's order is the priority)."""

    CGM_VERY_LOW = "cgm_very_low"
    METER_VERY_LOW = "meter_very_low"
    CGM_LOW = "cgm_low"
    METER_LOW = "meter_low"
    WEIGHT_GAIN = "weight_gain"
    SPO2_LOW = "spo2_low"
    CGM_VERY_HIGH = "cgm_very_high"
    CGM_HIGH = "cgm_high"
    METER_OUT_OF_TARGET = "meter_out_of_target"
    BP_HIGH = "bp_high"
    TIR_DROP = "tir_drop"
    METER_SPARSE = "meter_sparse"
    MEETING_TARGETS = "meeting_targets"

    @property
    def priority(self) -> int:
        """0 for the most urgent bucket."""
        return list(Bucket).index(self)


BUCKET_LABELS: Final[dict[Bucket, dict[str, str]]] = {
    Bucket.CGM_VERY_LOW: {
        "zh-CN": "动态血糖：< 3.0 mmol/L 的时间 > 1 %",
        "en": "CGM: time < 3.0 mmol/L > 1 %",
    },
    Bucket.METER_VERY_LOW: {
        "zh-CN": "指尖血糖：任一次 < 3.0 mmol/L",
        "en": "Meter: any reading < 3.0 mmol/L",
    },
    Bucket.CGM_LOW: {
        "zh-CN": "动态血糖：< 3.9 mmol/L 的时间 > 4 %",
        "en": "CGM: time < 3.9 mmol/L > 4 %",
    },
    Bucket.METER_LOW: {
        "zh-CN": "指尖血糖：2 次及以上 < 3.9 mmol/L",
        "en": "Meter: 2 or more readings < 3.9 mmol/L",
    },
    Bucket.WEIGHT_GAIN: {
        "zh-CN": "心衰：3 天内体重增加 > 2 kg",
        "en": "Heart failure: weight gain > 2 kg in 3 days",
    },
    Bucket.SPO2_LOW: {
        "zh-CN": "血氧：2 次及以上低于目标（94 %，慢阻肺 88 %）",
        "en": "SpO₂: 2 or more readings below target (94 %, COPD 88 %)",
    },
    Bucket.CGM_VERY_HIGH: {
        "zh-CN": "动态血糖：> 13.9 mmol/L 的时间 > 5 %",
        "en": "CGM: time > 13.9 mmol/L > 5 %",
    },
    Bucket.CGM_HIGH: {
        "zh-CN": "动态血糖：> 10.0 mmol/L 的时间 > 25 %",
        "en": "CGM: time > 10.0 mmol/L > 25 %",
    },
    Bucket.METER_OUT_OF_TARGET: {
        "zh-CN": "指尖血糖：在目标范围内的读数 < 50 %",
        "en": "Meter: readings in target < 50 %",
    },
    Bucket.BP_HIGH: {
        "zh-CN": "家庭血压：7 天平均 ≥ 135/85 mmHg",
        "en": "Home BP: 7-day mean ≥ 135/85 mmHg",
    },
    Bucket.TIR_DROP: {
        "zh-CN": "动态血糖：目标范围内时间（TIR）比上一周期下降 ≥ 15 个百分点",
        "en": "CGM: time in range (TIR) down ≥ 15 percentage points vs the previous period",
    },
    Bucket.METER_SPARSE: {
        "zh-CN": "指尖血糖：每天不足 1 次",
        "en": "Meter: fewer than 1 reading per day",
    },
    Bucket.MEETING_TARGETS: {
        "zh-CN": "达标：以上规则均不适用",
        "en": "Meeting targets: none of the rules above applies",
    },
}
"""Each bucket's rule in words, per language (the page and the text copy show these)."""


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule that applies to a patient, with the figure that made it apply.

    Attributes:
        bucket: the rule.
        value: the figure judged (%, events, kg, mmHg systolic …), rounded for display.
        unit: the figure's unit (``%``, ``events``, ``readings``, ``kg``, ``mmHg``,
            ``readings/day``, ``pp`` for percentage points).
        second: a second figure where the rule has two (the diastolic mean), else ``None``.
    """

    bucket: Bucket
    value: float
    unit: str
    second: float | None = None


def _tir(summary: PatientSummary | None) -> TimeInRanges | None:
    if summary is None or summary.cgm is None:
        return None
    figure = summary.cgm.time_in_ranges_percent
    return figure.value if isinstance(figure, Sufficient) else None


def cgm_reasons(current: PatientSummary, previous: PatientSummary | None) -> list[Reason]:
    """The TIDE rules on the period's CGM time in ranges (none without sufficient wear)."""
    tir = _tir(current)
    if tir is None:
        return []
    found = []
    below_3_9 = tir.very_low + tir.low
    above_10 = tir.high + tir.very_high
    if tir.very_low > CGM_VERY_LOW_PERCENT:
        found.append(Reason(Bucket.CGM_VERY_LOW, round(tir.very_low, 1), "%"))
    if below_3_9 > CGM_LOW_PERCENT:
        found.append(Reason(Bucket.CGM_LOW, round(below_3_9, 1), "%"))
    if tir.very_high > CGM_VERY_HIGH_PERCENT:
        found.append(Reason(Bucket.CGM_VERY_HIGH, round(tir.very_high, 1), "%"))
    if above_10 > CGM_HIGH_PERCENT:
        found.append(Reason(Bucket.CGM_HIGH, round(above_10, 1), "%"))
    before = _tir(previous)
    if before is not None and before.target - tir.target >= TIR_DROP_POINTS:
        found.append(Reason(Bucket.TIR_DROP, round(tir.target - before.target, 1), "pp"))
    return found


def meter_reasons(current: PatientSummary) -> list[Reason]:
    """The meter rules: hypoglycaemia episodes, % in target, readings per day."""
    meter = current.meter
    if meter is None:
        return []
    found = []
    if meter.events_below_3_0 >= METER_VERY_LOW_EVENTS:
        found.append(Reason(Bucket.METER_VERY_LOW, meter.events_below_3_0, "events"))
    if meter.events_below_3_9 >= METER_LOW_EVENTS:
        found.append(Reason(Bucket.METER_LOW, meter.events_below_3_9, "events"))
    in_target = meter.in_target_percent
    if isinstance(in_target, Sufficient) and in_target.value < METER_IN_TARGET_MIN_PERCENT:
        found.append(Reason(Bucket.METER_OUT_OF_TARGET, round(in_target.value, 1), "%"))
    if meter.readings_per_day < METER_MIN_PER_DAY:
        found.append(Reason(Bucket.METER_SPARSE, round(meter.readings_per_day, 2), "readings/day"))
    return found


def home_mean(summary: PatientSummary | None) -> HomeMean | None:
    """The 7-day home BP mean when sufficient."""
    if summary is None or summary.blood_pressure is None:
        return None
    figure = summary.blood_pressure.home_mean
    return None if isinstance(figure, Insufficient) else figure.value


def vitals_reasons(current: PatientSummary, conditions: frozenset[str]) -> list[Reason]:
    """Home BP, heart-failure weight gain (HF patients only) and low SpO₂."""
    found = []
    mean = home_mean(current)
    if mean is not None and (
        mean.systolic >= HOME_BP_SYSTOLIC_MMHG or mean.diastolic >= HOME_BP_DIASTOLIC_MMHG
    ):
        found.append(
            Reason(Bucket.BP_HIGH, round(mean.systolic, 1), "mmHg", round(mean.diastolic, 1))
        )
    weight = current.weight
    if HF_CONDITION in conditions and weight is not None:
        change = weight.change_3d_kg
        if isinstance(change, Sufficient) and change.value > HF_WEIGHT_GAIN_KG:
            found.append(Reason(Bucket.WEIGHT_GAIN, round(change.value, 2), "kg"))
    spo2 = current.spo2
    if spo2 is not None and isinstance(spo2.below_target_percent, Sufficient):
        below = round(spo2.below_target_percent.value * spo2.readings / 100.0)
        if below >= SPO2_LOW_READINGS:
            found.append(Reason(Bucket.SPO2_LOW, below, "readings"))
    return found


def reasons_of(
    current: PatientSummary, previous: PatientSummary | None, conditions: frozenset[str]
) -> tuple[Reason, ...]:
    """Every rule that applies, most urgent first; ``()`` when none does."""
    found = (
        cgm_reasons(current, previous)
        + meter_reasons(current)
        + vitals_reasons(current, conditions)
    )
    return tuple(sorted(found, key=lambda reason: reason.bucket.priority))


def has_data(summary: PatientSummary) -> bool:
    """Whether the period holds any reading the rules judge."""
    return any(
        section is not None
        for section in (
            summary.cgm,
            summary.meter,
            summary.blood_pressure,
            summary.weight,
            summary.spo2,
        )
    )
