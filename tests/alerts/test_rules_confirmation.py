"""Confirmation, deadlines, persistence, HI/LO, units and late data (issue 10's safety rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.model import Finding, FindingStatus, Severity
from alerts.rules.engine import evaluate
from alerts.rules.model import RuleSet
from readings.model import Reading
from readings.units import Unit
from tests.alerts.builders import T0, bp, cgm, glucose, minutes, profile, spo2
from tests.alerts.test_rules_thresholds import finding_of

DIABETIC = profile("diabetes_type2")


def test_single_35_mmol_waits_for_a_retest_until_its_deadline_then_fires_unconfirmed(
    rules: RuleSet,
) -> None:
    reading = glucose(35.0)
    pending = finding_of("G4", [reading], rules, now=T0)
    assert pending is not None
    assert pending.status is FindingStatus.PENDING
    assert pending.deadline == T0 + minutes(15)
    assert pending.ask_retest_within == minutes(15)
    just_before = finding_of("G4", [reading], rules, now=T0 + minutes(15) - timedelta(seconds=1))
    assert just_before is not None
    assert just_before.status is FindingStatus.PENDING
    fired = finding_of("G4", [reading], rules, now=T0 + minutes(15))
    assert fired is not None
    assert (fired.status, fired.severity, fired.confirmed) == (
        FindingStatus.FIRING,
        Severity.P1,
        False,
    )
    assert fired.reading_ids == (reading.id,)
    assert fired.rule_version == 1
    assert fired.thresholds["at_or_above mmol/L"] == 33.3


def test_g4_retest_confirms_or_clears(rules: RuleSet) -> None:
    first = glucose(35.0)
    confirmed = finding_of(
        "G4", [first, glucose(34.0, at=T0 + minutes(5))], rules, now=T0 + minutes(5)
    )
    assert confirmed is not None
    assert (confirmed.status, confirmed.confirmed) == (FindingStatus.FIRING, True)
    cleared = finding_of(
        "G4", [first, glucose(8.0, at=T0 + minutes(5))], rules, now=T0 + minutes(5)
    )
    assert cleared is not None
    assert cleared.status is FindingStatus.CLEAR


def test_meter_hi_and_lo_are_g4_and_g1_whatever_the_value(rules: RuleSet) -> None:
    hi = glucose(500, Unit.MG_PER_DL, flags=("result_high",))  # a meter whose limit is 500
    found = finding_of("G4", [hi], rules)
    assert found is not None
    assert (found.status, found.severity) == (FindingStatus.PENDING, Severity.P1)
    lo = glucose(20, Unit.MG_PER_DL, flags=("result_low",))
    low = finding_of("G1", [lo], rules)
    assert low is not None
    assert (low.status, low.severity) == (FindingStatus.FIRING, Severity.P1)
    lo_at_limit = glucose(3.3, flags=("result_low",))  # "LO" on a meter that stops at 3.3
    low = finding_of("G1", [lo_at_limit], rules)
    assert low is not None
    assert low.status is FindingStatus.FIRING
    g2 = finding_of("G2", [lo_at_limit], rules)
    assert g2 is None  # LO is G1, never the milder G2


def test_two_300_mg_dl_two_hours_apart_fire_g3(rules: RuleSet) -> None:
    first = glucose(300, Unit.MG_PER_DL)
    one = finding_of("G3", [first], rules)
    assert one is not None
    assert one.status is FindingStatus.PENDING
    assert one.deadline is None
    assert one.ask_retest_within == timedelta(hours=1)
    second = glucose(300, Unit.MG_PER_DL, at=T0 + timedelta(hours=2))
    both = finding_of("G3", [first, second], rules, now=T0 + timedelta(hours=2))
    assert both is not None
    assert (both.status, both.severity) == (FindingStatus.FIRING, Severity.P2)
    assert both.reading_ids == (first.id, second.id)


def test_g3_needs_the_readings_an_hour_apart(rules: RuleSet) -> None:
    readings = [glucose(300, Unit.MG_PER_DL), glucose(310, Unit.MG_PER_DL, at=T0 + minutes(30))]
    found = finding_of("G3", readings, rules, now=T0 + minutes(30))
    assert found is not None
    assert found.status is FindingStatus.PENDING


def test_persistence_rules_never_fire_on_one_reading_however_long_we_wait(rules: RuleSet) -> None:
    for rule_id, reading in (("G3", glucose(20.0)), ("G5", glucose(15.0))):
        later = finding_of(rule_id, [reading], rules, now=T0 + timedelta(hours=20))
        assert later is not None
        assert later.status is FindingStatus.PENDING, rule_id
        assert later.ask_retest_within is not None


def test_54_mg_dl_is_g2_not_g1(rules: RuleSet) -> None:
    # 54 mg/dL converts to 2.997 mmol/L, which would be G1 in mmol/L.
    reading = glucose(54, Unit.MG_PER_DL)
    g1 = finding_of("G1", [reading], rules)
    assert g1 is not None
    assert g1.status is FindingStatus.CLEAR
    g2 = finding_of("G2", [reading], rules)
    assert g2 is not None
    assert (g2.status, g2.severity) == (FindingStatus.FIRING, Severity.P2)


def test_g1_fires_at_once_and_asks_for_a_retest(rules: RuleSet) -> None:
    found = finding_of("G1", [glucose(2.5)], rules)
    assert found is not None
    assert (found.status, found.severity, found.confirmed) == (
        FindingStatus.FIRING,
        Severity.P1,
        True,
    )
    assert found.ask_retest_within == minutes(15)


def test_cgm_low_must_last_15_minutes_or_fires_unconfirmed_at_the_deadline(rules: RuleSet) -> None:
    lows = [cgm(2.6, T0 + minutes(5 * i)) for i in range(4)]  # 0, 5, 10, 15 min
    early = finding_of("G1", lows[:3], rules, now=T0 + minutes(10))
    assert early is not None
    assert early.status is FindingStatus.PENDING
    assert early.deadline == T0 + minutes(15)
    confirmed = finding_of("G1", lows, rules, now=T0 + minutes(15))
    assert confirmed is not None
    assert (confirmed.status, confirmed.confirmed) == (FindingStatus.FIRING, True)
    silent = finding_of("G1", lows[:2], rules, now=T0 + minutes(15))
    assert silent is not None
    assert (silent.status, silent.confirmed) == (FindingStatus.FIRING, False)
    recovered = finding_of(
        "G1", [*lows[:2], cgm(4.5, T0 + minutes(10))], rules, now=T0 + minutes(10)
    )
    assert recovered is not None
    assert recovered.status is FindingStatus.CLEAR


def test_b1_confirms_on_the_mean_of_two_and_has_a_deadline(rules: RuleSet) -> None:
    hyper = profile("hypertension")
    first = bp(185, 90)
    pending = finding_of("B1", [first], rules, hyper)
    assert pending is not None
    assert pending.status is FindingStatus.PENDING
    assert pending.deadline == T0 + minutes(15)
    fired = finding_of(
        "B1", [first, bp(176, 88, at=T0 + minutes(1))], rules, hyper, T0 + minutes(1)
    )
    assert fired is not None
    assert fired.status is FindingStatus.FIRING  # mean 180.5
    below = finding_of(
        "B1", [first, bp(170, 88, at=T0 + minutes(1))], rules, hyper, T0 + minutes(1)
    )
    assert below is not None
    assert below.status is FindingStatus.CLEAR  # mean 177.5
    late = finding_of("B1", [first], rules, hyper, T0 + minutes(15))
    assert late is not None
    assert (late.status, late.confirmed) == (FindingStatus.FIRING, False)
    kpa = [bp(24.2, 12.0, Unit.KPA), bp(23.8, 12.0, Unit.KPA, at=T0 + minutes(1))]
    in_kpa = finding_of("B1", kpa, rules, hyper, T0 + minutes(1))
    assert in_kpa is not None
    assert in_kpa.status is FindingStatus.FIRING  # mean 24.0 kPa


def test_o1_p1_fires_unconfirmed_at_its_deadline_while_p2_needs_two_readings(
    rules: RuleSet,
) -> None:
    p1 = finding_of("O1", [spo2(86)], rules, now=T0 + minutes(10))
    assert p1 is not None
    assert (p1.status, p1.severity, p1.confirmed) == (FindingStatus.FIRING, Severity.P1, False)
    p2 = finding_of("O1", [spo2(90)], rules, now=T0 + timedelta(hours=5))
    assert p2 is not None
    assert (p2.status, p2.severity) == (FindingStatus.PENDING, Severity.P2)
    two = finding_of("O1", [spo2(90), spo2(91, at=T0 + minutes(5))], rules, now=T0 + minutes(5))
    assert two is not None
    assert (two.status, two.severity) == (FindingStatus.FIRING, Severity.P2)


def test_copd_o2_replaces_o1_instead_of_adding(rules: RuleSet) -> None:
    findings = evaluate([spo2(89)], profile("copd"), rules, T0)
    assert {f.rule_id for f in findings} == {"O2"}
    assert findings[0].status is FindingStatus.CLEAR
    assert {f.rule_id for f in evaluate([spo2(89)], profile(), rules, T0)} == {"O1"}


def _on_time(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.late and f.status is not FindingStatus.CLEAR]


def _late_batch() -> list[Reading]:
    start = T0 - timedelta(days=3)
    return [glucose(v, at=start + timedelta(hours=h)) for h, v in enumerate([6.0, 2.5, 3.5, 7.0])]


def test_a_three_day_late_batch_gives_only_a_review(rules: RuleSet) -> None:
    batch = _late_batch()
    findings = evaluate(batch, DIABETIC, rules, T0, arrived={r.id for r in batch})
    assert [f for f in _on_time(findings) if f.severity.rank <= Severity.P2.rank] == []
    reviews = [f for f in findings if f.late]
    assert {f.rule_id for f in reviews} == {"G1", "G2"}
    for review in reviews:
        assert (review.status, review.severity) == (FindingStatus.FIRING, Severity.P4)
    assert set(next(f for f in reviews if f.rule_id == "G1").reading_ids) == {batch[1].id}


def test_a_fresh_low_in_a_late_batch_still_pages_g1(rules: RuleSet) -> None:
    batch = [*_late_batch(), glucose(2.5, at=T0 - minutes(5))]
    findings = evaluate(batch, DIABETIC, rules, T0, arrived={r.id for r in batch})
    paged = [f for f in _on_time(findings) if f.rule_id == "G1"]
    assert len(paged) == 1
    assert (paged[0].status, paged[0].severity) == (FindingStatus.FIRING, Severity.P1)
    assert paged[0].reading_ids == (batch[-1].id,)
    assert any(f.late and f.rule_id == "G1" for f in findings)


def test_history_that_arrived_on_time_is_never_late(rules: RuleSet) -> None:
    history = _late_batch()
    findings = evaluate(history, DIABETIC, rules, T0)  # nothing arrived now
    assert [f for f in findings if f.late] == []


@pytest.mark.parametrize("unit", [Unit.MMOL_PER_L, Unit.MG_PER_DL])
def test_readings_after_now_are_ignored(rules: RuleSet, unit: str) -> None:
    future = glucose(2.0 if unit == Unit.MMOL_PER_L else 36, unit, at=T0 + minutes(1))
    assert finding_of("G1", [future], rules, now=T0) is None


def test_findings_count_the_events_of_the_last_seven_days_late_ones_included(
    rules: RuleSet,
) -> None:
    old = [glucose(3.5, at=T0 - timedelta(days=d)) for d in (8, 6, 2)]
    found = finding_of("G2", [*old, glucose(3.6)], rules)
    assert found is not None
    assert found.explanation.params["events_7d"] == 3  # the 8-day-old one is outside
