"""The triage rules and list: each bucket at, above and below its threshold, the priority
order, one entry per patient with all its reasons, the caps, the data issues, the text."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from reports.summaries import (
    BloodPressureSummary,
    CgmSummary,
    HomeMean,
    Insufficient,
    MeterSummary,
    PatientSummary,
    Period,
    Spo2Summary,
    Sufficient,
    Targets,
    TimeInRanges,
    WeightSummary,
    summarise_patient,
)
from reports.triage import (
    BUCKET_LABELS,
    Bucket,
    DataIssueKind,
    DeviceFact,
    GatewayFact,
    PatientFacts,
    ReviewMark,
    build_triage,
    matches,
    triage_text,
)
from tests.reports.builders import SHANGHAI, T0, cgm, meter

NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
PERIOD = Period.local_days(date(2026, 3, 1), date(2026, 3, 15), SHANGHAI)
PREVIOUS = Period.local_days(date(2026, 2, 15), date(2026, 3, 1), SHANGHAI)
_NONE = Insufficient("n/a", 0, 1)


def _cgm(very_low: float, low: float, high: float, very_high: float) -> CgmSummary:
    target = 100.0 - very_low - low - high - very_high
    return CgmSummary(
        readings=4032,
        sample_interval_minutes=5.0,
        active_percent=100.0,
        mean_mmol_l=Sufficient(7.0),
        sd_mmol_l=Sufficient(2.0),
        gmi_percent=Sufficient(6.5),
        cv_percent=Sufficient(28.0),
        time_in_ranges_percent=Sufficient(TimeInRanges(very_low, low, target, high, very_high)),
        percentile_bands=Sufficient(()),
    )


def _meter(
    below_3_0: int = 0, below_3_9: int = 0, in_target: float = 80.0, per_day: float = 4.0
) -> MeterSummary:
    return MeterSummary(
        readings=int(per_day * 14),
        readings_per_day=per_day,
        mean_mmol_l=Sufficient(7.0),
        sd_mmol_l=Sufficient(2.0),
        in_target_percent=Sufficient(in_target),
        min_mmol_l=2.8,
        max_mmol_l=12.0,
        events_below_3_9=below_3_9,
        events_below_3_0=below_3_0,
        by_meal=(),
    )


def _bp(systolic: float, diastolic: float) -> BloodPressureSummary:
    mean = Sufficient(HomeMean(systolic, diastolic, 12))
    return BloodPressureSummary(
        readings=14,
        home_mean=mean,
        readings_used=12,
        morning_mean=mean,
        evening_mean=mean,
        above_target_percent=Sufficient(0.0),
    )


def _weight(change_3d: float) -> WeightSummary:
    return WeightSummary(
        readings=14,
        days_with_weight=14,
        latest_kg=70.0,
        change_3d_kg=Sufficient(change_3d),
        change_7d_kg=Sufficient(change_3d),
        trend_kg_per_week=Sufficient(0.0),
    )


def _spo2(readings: int, below_percent: float) -> Spo2Summary:
    return Spo2Summary(
        readings=readings,
        mean_percent=Sufficient(95.0),
        min_percent=88.0,
        max_percent=98.0,
        below_target_percent=Sufficient(below_percent),
    )


def _summary(period: Period = PERIOD, **sections: Any) -> PatientSummary:
    empty = summarise_patient("p-1", [], period, Targets())
    return replace(empty, **sections)


def _facts(
    patient: str = "p-1",
    *,
    previous: PatientSummary | None = None,
    conditions: tuple[str, ...] = (),
    **sections: Any,
) -> PatientFacts:
    return PatientFacts(
        patient_id=patient,
        display_name=f"name-{patient}",
        conditions=frozenset(conditions),
        community="东城",
        village="一村",
        teams=frozenset({"team-a"}),
        current=_summary(**sections),
        previous=previous,
        last_measured=NOW - timedelta(hours=2),
    )


def _bucket(facts: PatientFacts) -> Bucket | None:
    listing = build_triage([facts], NOW)
    return listing.prioritised[0].bucket if listing.prioritised else None


# (bucket, sections just below, exactly at, just above the threshold); "at" is not flagged
# except for the ≥ rules (meter episodes, home BP, TIR drop), where "at" is flagged.
CASES = [
    (Bucket.CGM_VERY_LOW, {"cgm": _cgm(0.9, 0, 0, 0)}, {"cgm": _cgm(1.0, 0, 0, 0)},
     {"cgm": _cgm(1.1, 0, 0, 0)}, False),
    (Bucket.CGM_LOW, {"cgm": _cgm(0.5, 3.4, 0, 0)}, {"cgm": _cgm(0.5, 3.5, 0, 0)},
     {"cgm": _cgm(0.5, 3.6, 0, 0)}, False),
    (Bucket.CGM_VERY_HIGH, {"cgm": _cgm(0, 0, 10, 4.9)}, {"cgm": _cgm(0, 0, 10, 5.0)},
     {"cgm": _cgm(0, 0, 10, 5.1)}, False),
    (Bucket.CGM_HIGH, {"cgm": _cgm(0, 0, 20.5, 4.4)}, {"cgm": _cgm(0, 0, 20.0, 5.0)},
     {"cgm": _cgm(0, 0, 20.1, 5.0)}, False),
    (Bucket.METER_VERY_LOW, {"meter": _meter(below_3_0=0)}, {"meter": _meter(below_3_0=1)},
     {"meter": _meter(below_3_0=2, below_3_9=1)}, True),
    (Bucket.METER_LOW, {"meter": _meter(below_3_9=1)}, {"meter": _meter(below_3_9=2)},
     {"meter": _meter(below_3_9=3)}, True),
    (Bucket.METER_OUT_OF_TARGET, {"meter": _meter(in_target=50.1)},
     {"meter": _meter(in_target=50.0)}, {"meter": _meter(in_target=49.9)}, False),
    (Bucket.METER_SPARSE, {"meter": _meter(per_day=1.01)}, {"meter": _meter(per_day=1.0)},
     {"meter": _meter(per_day=0.99)}, False),
    (Bucket.BP_HIGH, {"blood_pressure": _bp(134.9, 84.9)},
     {"blood_pressure": _bp(135.0, 80.0)}, {"blood_pressure": _bp(120.0, 85.1)}, True),
    (Bucket.SPO2_LOW, {"spo2": _spo2(10, 10.0)}, {"spo2": _spo2(10, 20.0)},
     {"spo2": _spo2(10, 30.0)}, True),
]  # fmt: skip


@pytest.mark.parametrize(("bucket", "below", "at", "above", "at_flags"), CASES, ids=str)
def test_each_bucket_at_above_and_below_its_threshold(
    bucket: Bucket,
    below: dict[str, Any],
    at: dict[str, Any],
    above: dict[str, Any],
    at_flags: bool,
) -> None:
    assert _bucket(_facts(**below)) is Bucket.MEETING_TARGETS
    assert (_bucket(_facts(**at)) is bucket) is at_flags
    assert _bucket(_facts(**above)) is bucket


def test_weight_gain_is_a_heart_failure_rule_strictly_above_2_kg() -> None:
    hf = ("heart_failure",)
    assert _bucket(_facts(conditions=hf, weight=_weight(2.0))) is Bucket.MEETING_TARGETS
    assert _bucket(_facts(conditions=hf, weight=_weight(2.01))) is Bucket.WEIGHT_GAIN
    assert _bucket(_facts(weight=_weight(3.0))) is Bucket.MEETING_TARGETS  # not HF


def test_a_large_drop_in_tir_against_the_previous_period() -> None:
    before = _summary(PREVIOUS, cgm=_cgm(0, 0, 10.0, 0))  # TIR 90
    at = _facts(previous=before, cgm=_cgm(0, 0, 25.0, 0))  # TIR 75: -15 points
    less = _facts(previous=before, cgm=_cgm(0, 0, 24.9, 0))
    assert _bucket(at) is Bucket.TIR_DROP
    assert _bucket(less) is Bucket.MEETING_TARGETS
    entry = build_triage([at], NOW).prioritised[0]
    assert entry.changes.tir_points == -15.0
    assert entry.reasons[0].value == -15.0
    assert entry.reasons[0].unit == "pp"


def test_insufficient_cgm_wear_flags_no_bucket_and_is_a_data_issue() -> None:
    worn = _cgm(5.0, 5.0, 0, 0)
    short = replace(worn, active_percent=40.0, time_in_ranges_percent=Insufficient("wear", 40, 70))
    listing = build_triage([_facts(cgm=short)], NOW)
    assert listing.prioritised[0].bucket is Bucket.MEETING_TARGETS
    (patient,) = listing.data_issues
    assert [(i.kind, i.value) for i in patient.issues] == [(DataIssueKind.CGM_WEAR_LOW, 40.0)]


def test_priority_order_one_entry_per_patient_with_every_reason() -> None:
    everything = _facts(
        "p-all",
        conditions=("heart_failure",),
        cgm=_cgm(0.5, 5.0, 30.0, 6.0),
        meter=_meter(below_3_0=1, below_3_9=3, in_target=40.0, per_day=0.5),
        blood_pressure=_bp(150.0, 95.0),
        weight=_weight(2.5),
        spo2=_spo2(10, 50.0),
    )
    listing = build_triage([everything], NOW)
    (entry,) = listing.prioritised
    assert entry.bucket is Bucket.METER_VERY_LOW  # CGM very low is 0.5 %: not flagged
    assert [r.bucket for r in entry.reasons] == [
        Bucket.METER_VERY_LOW,
        Bucket.CGM_LOW,
        Bucket.METER_LOW,
        Bucket.WEIGHT_GAIN,
        Bucket.SPO2_LOW,
        Bucket.CGM_VERY_HIGH,
        Bucket.CGM_HIGH,
        Bucket.METER_OUT_OF_TARGET,
        Bucket.BP_HIGH,
        Bucket.METER_SPARSE,
    ]
    assert listing.bucket_counts[Bucket.METER_VERY_LOW] == 1
    assert sum(listing.bucket_counts.values()) == 1


def test_the_list_runs_in_bucket_order_and_reviewed_patients_sink() -> None:
    patients = [
        _facts("p-bp", blood_pressure=_bp(150.0, 90.0)),
        _facts("p-ok", meter=_meter()),
        _facts("p-low", cgm=_cgm(3.0, 2.0, 0, 0)),
        _facts("p-high", cgm=_cgm(0, 0, 30.0, 0)),
    ]
    order = [e.patient_id for e in build_triage(patients, NOW).prioritised]
    assert order == ["p-low", "p-high", "p-bp", "p-ok"]
    mark = ReviewMark("dr.zhang", NOW)
    patients[2] = replace(patients[2], reviewed=mark)
    order = [e.patient_id for e in build_triage(patients, NOW).prioritised]
    assert order == ["p-high", "p-bp", "p-ok", "p-low"]


def test_within_a_bucket_the_worst_figure_comes_first() -> None:
    patients = [_facts(f"p-{v}", blood_pressure=_bp(v, 80.0)) for v in (140.0, 170.0, 150.0)]
    order = [e.patient_id for e in build_triage(patients, NOW).prioritised]
    assert order == ["p-170.0", "p-150.0", "p-140.0"]


def test_caps_keep_the_most_urgent_and_state_the_count_beyond() -> None:
    patients = [_facts(f"p-{i:03}", meter=_meter()) for i in range(120)]
    patients.append(_facts("p-urgent", cgm=_cgm(5.0, 0, 0, 0)))
    silent = [replace(p, last_measured=NOW - timedelta(days=5)) for p in patients[:60]]
    listing = build_triage(silent + patients[60:], NOW, prioritised_cap=100, data_issues_cap=50)
    assert len(listing.prioritised) == 100
    assert listing.prioritised[0].patient_id == "p-urgent"
    assert (listing.prioritised_total, listing.prioritised_beyond_cap) == (121, 21)
    assert (len(listing.data_issues), listing.data_issues_beyond_cap) == (50, 10)
    assert listing.bucket_counts[Bucket.MEETING_TARGETS] == 120


def test_data_issues_gateway_offline_battery_not_measured_never_measured() -> None:
    base = _facts("p-1", meter=_meter())
    assert build_triage([base], NOW).data_issues == ()
    troubled = replace(
        base,
        last_measured=NOW - timedelta(days=3),
        gateways=(
            GatewayFact("gw-1", "offline", NOW - timedelta(hours=26)),
            GatewayFact("gw-2", "online", NOW - timedelta(days=9)),
        ),
        devices=(
            DeviceFact("dev-a", 20, False),
            DeviceFact("dev-b", 21, False),
            DeviceFact("dev-c", None, True),
        ),
    )
    never = replace(_facts("p-2"), last_measured=None)
    listing = build_triage([never, troubled], NOW)
    assert [p.patient_id for p in listing.prioritised] == ["p-1"]  # p-2: nothing to judge
    first, second = listing.data_issues
    assert first.patient_id == "p-2"  # never measured ranks before 3 days
    assert [(i.kind, i.value) for i in first.issues] == [(DataIssueKind.NOT_MEASURED, None)]
    assert [(i.kind, i.value, i.subject) for i in second.issues] == [
        (DataIssueKind.NOT_MEASURED, 3.0, None),
        (DataIssueKind.GATEWAY_OFFLINE, 26.0, "gw-1"),
        (DataIssueKind.BATTERY_LOW, 20.0, "dev-a"),
        (DataIssueKind.BATTERY_LOW, None, "dev-c"),
    ]
    recent = replace(base, last_measured=NOW - timedelta(days=2, hours=23))
    assert build_triage([recent], NOW).data_issues == ()


def test_changes_against_the_previous_period() -> None:
    before = _summary(PREVIOUS, blood_pressure=_bp(140.0, 90.0), meter=_meter(in_target=60.0))
    facts = _facts(previous=before, blood_pressure=_bp(146.5, 88.0), meter=_meter(in_target=70.0))
    changes = build_triage([facts], NOW).prioritised[0].changes
    assert (changes.bp_systolic_mmhg, changes.bp_diastolic_mmhg) == (6.5, -2.0)
    assert changes.meter_in_target_points == 10.0
    assert changes.tir_points is None


def test_filters_by_team_tag_and_condition() -> None:
    facts = _facts(conditions=("hypertension",), meter=_meter())
    assert matches(facts, team="team-a", tag="一村", condition="hypertension")
    assert matches(facts, team=None, tag="东城", condition=None)
    assert not matches(facts, team="team-b", tag=None, condition=None)
    assert not matches(facts, team=None, tag="西城", condition=None)
    assert not matches(facts, team=None, tag=None, condition="copd")


def test_every_bucket_has_its_rule_in_both_languages_with_the_threshold() -> None:
    for bucket in Bucket:
        labels = BUCKET_LABELS[bucket]
        assert set(labels) == {"zh-CN", "en"}
    assert "3.0 mmol/L" in BUCKET_LABELS[Bucket.CGM_VERY_LOW]["en"]
    assert "> 1 %" in BUCKET_LABELS[Bucket.CGM_VERY_LOW]["zh-CN"]
    assert "135/85" in BUCKET_LABELS[Bucket.BP_HIGH]["zh-CN"]


def test_text_for_the_emr_is_plain_with_signed_changes() -> None:
    before = _summary(PREVIOUS, blood_pressure=_bp(140.0, 90.0))
    listing = build_triage(
        [
            _facts("p-1", previous=before, blood_pressure=_bp(146.5, 88.0)),
            replace(_facts("p-2"), last_measured=None),
        ],
        NOW,
    )
    text = triage_text(listing, "zh-CN", date(2026, 3, 1), date(2026, 3, 14))
    assert "家庭血压：7 天平均 ≥ 135/85 mmHg (1)" in text
    assert "name-p-1 [p-1] 家庭血压：7 天平均 ≥ 135/85 mmHg: 146.5/88 mmHg" in text
    assert "+6.5/-2.0 mmHg" in text
    assert "数据问题 (1)" in text
    assert "从未测量" in text
    assert not re.search(r"<[a-z/]|\*\*|\|", text)  # no markup, no table syntax
    english = triage_text(listing, "en", date(2026, 3, 1), date(2026, 3, 14))
    assert "Home BP: 7-day mean ≥ 135/85 mmHg" in english
    assert "never measured" in english


def test_end_to_end_from_readings_through_the_shared_summaries() -> None:
    # 14 days of 5-min CGM, 2 % of it below 3.0: very low (a real summary, not a stub).
    readings = []
    for index in range(14 * 288):
        value = 2.8 if index % 50 == 0 else 6.5
        readings.append(cgm(value, T0 + timedelta(minutes=5 * index)))
    readings += [meter(5.5, T0 + timedelta(hours=7 + 24 * d)) for d in range(14)]
    summary = summarise_patient("p-1", readings, PERIOD, Targets())
    facts = replace(_facts(), current=summary)
    (entry,) = build_triage([facts], NOW).prioritised
    assert entry.bucket is Bucket.CGM_VERY_LOW
    assert entry.reasons[0].value == 2.0


def test_patients_with_paused_monitoring_are_left_out_and_counted() -> None:
    hospitalised = replace(_facts("p-h", cgm=_cgm(5.0, 0, 0, 0)), last_measured=None)
    listing = build_triage([replace(hospitalised, status="hospitalised"), _facts("p-1")], NOW)
    assert [e.patient_id for e in listing.prioritised] == []  # p-1 has no data to judge
    assert [p.patient_id for p in listing.data_issues] == []
    assert listing.paused_total == 1
    assert build_triage([hospitalised], NOW).prioritised[0].bucket is Bucket.CGM_VERY_LOW
