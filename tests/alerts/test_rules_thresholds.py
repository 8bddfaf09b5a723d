"""Every default threshold at, just above and just below, in each unit the source gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from alerts.model import Finding, FindingStatus, Severity
from alerts.rules.engine import evaluate
from alerts.rules.model import RuleSet
from readings.files import PatientProfile
from readings.model import Reading
from readings.units import Unit
from tests.alerts.builders import (
    T0,
    bp,
    glucose,
    heart_rate,
    profile,
    spo2,
    temperature,
)


def finding_of(
    rule_id: str,
    readings: list[Reading],
    rules: RuleSet,
    who: PatientProfile | None = None,
    now: datetime = T0,
) -> Finding | None:
    """The rule's (on-time) finding, or None if it said nothing."""
    found = [
        f
        for f in evaluate(readings, who or profile("diabetes_type2"), rules, now)
        if f.rule_id == rule_id and not f.late
    ]
    assert len(found) <= 1
    return found[0] if found else None


def matched(finding: Finding | None) -> Severity | None:
    """The severity of a matching (pending or firing) finding; None when clear."""
    if finding is None or finding.status is FindingStatus.CLEAR:
        return None
    return finding.severity


P1, P2, P3 = Severity.P1, Severity.P2, Severity.P3
GLUCOSE_CASES: list[tuple[str, str, float, Severity | None]] = [
    # rule, unit, shown value, expected tier
    ("G1", Unit.MMOL_PER_L, 3.0, None),
    ("G1", Unit.MMOL_PER_L, 2.9, P1),
    ("G1", Unit.MMOL_PER_L, 3.1, None),
    ("G1", Unit.MG_PER_DL, 54, None),
    ("G1", Unit.MG_PER_DL, 53, P1),
    ("G1", Unit.MG_PER_DL, 55, None),
    ("G2", Unit.MMOL_PER_L, 3.0, P2),
    ("G2", Unit.MMOL_PER_L, 2.9, None),
    ("G2", Unit.MMOL_PER_L, 3.1, P2),
    ("G2", Unit.MMOL_PER_L, 3.9, None),
    ("G2", Unit.MMOL_PER_L, 3.8, P2),
    ("G2", Unit.MMOL_PER_L, 4.0, None),
    ("G2", Unit.MG_PER_DL, 54, P2),
    ("G2", Unit.MG_PER_DL, 53, None),
    ("G2", Unit.MG_PER_DL, 55, P2),
    ("G2", Unit.MG_PER_DL, 70, None),
    ("G2", Unit.MG_PER_DL, 69, P2),
    ("G2", Unit.MG_PER_DL, 71, None),
    ("G3", Unit.MMOL_PER_L, 16.7, P2),
    ("G3", Unit.MMOL_PER_L, 16.6, None),
    ("G3", Unit.MMOL_PER_L, 16.8, P2),
    ("G3", Unit.MG_PER_DL, 300, P2),
    ("G3", Unit.MG_PER_DL, 299, None),
    ("G3", Unit.MG_PER_DL, 301, P2),
    ("G4", Unit.MMOL_PER_L, 33.3, P1),
    ("G4", Unit.MMOL_PER_L, 33.2, None),
    ("G4", Unit.MMOL_PER_L, 33.4, P1),
    ("G4", Unit.MG_PER_DL, 600, P1),
    ("G4", Unit.MG_PER_DL, 599, None),
    ("G4", Unit.MG_PER_DL, 601, P1),
    ("G5", Unit.MMOL_PER_L, 13.9, None),
    ("G5", Unit.MMOL_PER_L, 13.8, None),
    ("G5", Unit.MMOL_PER_L, 14.0, P3),
    ("G5", Unit.MG_PER_DL, 250, None),
    ("G5", Unit.MG_PER_DL, 249, None),
    ("G5", Unit.MG_PER_DL, 251, P3),
]


@pytest.mark.parametrize(("rule_id", "unit", "value", "expected"), GLUCOSE_CASES)
def test_glucose_thresholds_in_the_device_unit(
    rules: RuleSet, rule_id: str, unit: str, value: float, expected: Severity | None
) -> None:
    assert matched(finding_of(rule_id, [glucose(value, unit)], rules)) == expected


BP_CASES: list[tuple[str, str, float, float, Severity | None]] = [
    ("B1", Unit.MMHG, 180, 80, P2),
    ("B1", Unit.MMHG, 179, 80, None),
    ("B1", Unit.MMHG, 181, 80, P2),
    ("B1", Unit.MMHG, 150, 110, P2),
    ("B1", Unit.MMHG, 150, 109, None),
    ("B1", Unit.MMHG, 150, 111, P2),
    ("B1", Unit.KPA, 24.0, 10.7, P2),
    ("B1", Unit.KPA, 23.9, 10.7, None),
    ("B1", Unit.KPA, 24.1, 10.7, P2),
    ("B1", Unit.KPA, 20.0, 14.7, P2),
    ("B1", Unit.KPA, 20.0, 14.6, None),
    ("B1", Unit.KPA, 20.0, 14.8, P2),
    ("B3", Unit.MMHG, 90, 60, P2),
    ("B3", Unit.MMHG, 89, 60, P2),
    ("B3", Unit.MMHG, 91, 60, None),
    ("B3", Unit.KPA, 12.0, 8.0, P2),
    ("B3", Unit.KPA, 11.9, 8.0, P2),
    ("B3", Unit.KPA, 12.1, 8.0, None),
]


@pytest.mark.parametrize(("rule_id", "unit", "systolic", "diastolic", "expected"), BP_CASES)
def test_blood_pressure_thresholds_in_mmhg_and_kpa(
    rules: RuleSet,
    rule_id: str,
    unit: str,
    systolic: float,
    diastolic: float,
    expected: Severity | None,
) -> None:
    found = finding_of(rule_id, [bp(systolic, diastolic, unit)], rules, profile("hypertension"))
    assert matched(found) == expected


Builder = Callable[[float], Reading]
VITAL_CASES: list[tuple[str, str, Builder, float, Severity | None]] = [
    ("O1", "", spo2, 88, P1),
    ("O1", "", spo2, 87, P1),
    ("O1", "", spo2, 89, P2),
    ("O1", "", spo2, 91, P2),
    ("O1", "", spo2, 90, P2),
    ("O1", "", spo2, 92, None),
    ("O2", "copd", spo2, 85, P1),
    ("O2", "copd", spo2, 84, P1),
    ("O2", "copd", spo2, 86, P2),
    ("O2", "copd", spo2, 88, None),
    ("O2", "copd", spo2, 87, P2),
    ("O2", "copd", spo2, 89, None),
    ("R1", "", heart_rate, 40, P2),
    ("R1", "", heart_rate, 39, P2),
    ("R1", "", heart_rate, 41, None),
    ("R1", "", heart_rate, 131, P2),
    ("R1", "", heart_rate, 130, P3),
    ("R1", "", heart_rate, 132, P2),
    ("R1", "", heart_rate, 100, None),
    ("R1", "", heart_rate, 99, None),
    ("R1", "", heart_rate, 101, P3),
    ("T1", "", temperature, 39.0, P3),
    ("T1", "", temperature, 39.1, P2),
    ("T1", "", temperature, 38.9, P3),
    ("T1", "", temperature, 38.0, P3),
    ("T1", "", temperature, 37.9, None),
    ("T1", "", temperature, 38.1, P3),
    ("T1", "", temperature, 35.0, P2),
    ("T1", "", temperature, 34.9, P2),
    ("T1", "", temperature, 35.1, None),
]


@pytest.mark.parametrize(("rule_id", "condition", "build", "value", "expected"), VITAL_CASES)
def test_vital_sign_thresholds(
    rules: RuleSet,
    rule_id: str,
    condition: str,
    build: Builder,
    value: float,
    expected: Severity | None,
) -> None:
    who = profile(condition) if condition else profile()
    assert matched(finding_of(rule_id, [build(value)], rules, who)) == expected


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (37.9, FindingStatus.FIRING),  # > 37.8 once
        (37.8, FindingStatus.PENDING),  # only > 37.2: needs a repeat
        (37.3, FindingStatus.PENDING),
        (37.2, FindingStatus.CLEAR),
    ],
)
def test_frail_elderly_fever_criteria_replace_the_general_ones(
    rules: RuleSet, value: float, status: FindingStatus
) -> None:
    frail = finding_of("T1", [temperature(value)], rules, profile("frail_elderly"))
    assert frail is not None
    assert frail.status is status
    general = finding_of("T1", [temperature(value)], rules, profile())
    assert general is not None
    assert general.status is FindingStatus.CLEAR


def test_a_cuff_pulse_counts_for_resting_heart_rate(rules: RuleSet) -> None:
    assert matched(finding_of("R1", [bp(120, 80, pulse=135)], rules)) == P2
    assert finding_of("R1", [bp(120, 80)], rules) is None


def test_fahrenheit_temperatures_compare_in_celsius(rules: RuleSet) -> None:
    assert matched(finding_of("T1", [temperature(102.4, unit=Unit.FAHRENHEIT)], rules)) == P2


def test_engine_findings_are_each_active_rules_findings_over_the_window() -> None:
    # A guard for speeding up engine.evaluate (e.g. splitting the window by kind): each
    # active rule must see every reading it reads, in order, as over the whole window.
    from alerts.rules.common import Context
    from alerts.rules.engine import EVALUATORS, evaluate
    from alerts.rules.loader import default_rules
    from alerts.rules.overrides import active_rules
    from tests.alerts.builders import T0, bp, glucose, minutes, profile, spo2

    rules = default_rules()
    patient = profile("diabetes_type2", "hypertension", "copd")
    window = [
        glucose(2.5, at=T0),
        bp(185, 112, at=T0 + minutes(1), pulse=135),
        spo2(84, at=T0 + minutes(2)),
        glucose(17.0, at=T0 + minutes(3)),
        bp(186, 111, at=T0 + minutes(4), pulse=136),
        spo2(84, at=T0 + minutes(20)),
        glucose(2.8, at=T0 + minutes(20)),
    ]
    now = T0 + minutes(30)
    context = Context(profile=patient, now=now, arrived=frozenset(), gateway_last_seen={})
    expected = [
        f
        for rule in active_rules(rules, patient.conditions)
        for f in EVALUATORS[rule.kind](rule, window, context)
    ]
    got = evaluate(window, patient, rules, now)
    assert got == expected
    assert {f.rule_id for f in got} >= {"G1", "B1", "O2", "R1"}
