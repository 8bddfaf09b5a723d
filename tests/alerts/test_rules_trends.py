"""Window means, weight baselines, stale and missing data, the AR2 forecast, G7, overrides."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from alerts.model import FindingStatus, Severity
from alerts.rules.cgm import ar2_forecast
from alerts.rules.engine import evaluate
from alerts.rules.model import RuleSet
from alerts.rules.overrides import OverrideError, check_overrides
from readings.model import Reading
from readings.units import Unit
from tests.alerts.builders import T0, bp, cgm, glucose, minutes, profile, weight
from tests.alerts.test_rules_thresholds import finding_of

DAY = timedelta(days=1)
HF = profile("heart_failure")
B2_NOW = T0 + timedelta(hours=13)
"""Just after the home series' last reading (day 7, 20:00 in Shanghai)."""


def _home_series(
    systolic: float, days: int = 7, per_day: int = 2, unit: str = Unit.MMHG
) -> list[Reading]:
    start = T0 - timedelta(days=days - 1)
    return [
        bp(
            systolic,
            80 if unit == Unit.MMHG else 10.7,
            unit,
            at=start + d * DAY + timedelta(hours=12 * i),
        )
        for d in range(days)
        for i in range(per_day)
    ]


@pytest.mark.parametrize(
    ("systolic", "unit", "status"),
    [
        (135, Unit.MMHG, FindingStatus.FIRING),
        (134, Unit.MMHG, FindingStatus.CLEAR),
        (136, Unit.MMHG, FindingStatus.FIRING),
        (18.0, Unit.KPA, FindingStatus.FIRING),
        (17.9, Unit.KPA, FindingStatus.CLEAR),
        (18.1, Unit.KPA, FindingStatus.FIRING),
    ],
)
def test_b2_home_mean_over_seven_days(
    rules: RuleSet, systolic: float, unit: str, status: FindingStatus
) -> None:
    found = finding_of(
        "B2", _home_series(systolic, unit=unit), rules, profile("hypertension"), B2_NOW
    )
    assert found is not None
    assert found.status is status
    assert found.severity is Severity.P3


def test_b2_drops_the_first_day_and_needs_twelve_readings(rules: RuleSet) -> None:
    series = _home_series(150)
    # 14 readings over 7 days; dropping day 1 leaves 12: enough.
    enough = finding_of("B2", series, rules, profile("hypertension"), B2_NOW)
    assert enough is not None
    assert enough.status is FindingStatus.FIRING
    assert len(enough.reading_ids) == 12
    short = finding_of("B2", series[:-1], rules, profile("hypertension"), B2_NOW)
    assert short is not None  # 13 readings, day 1's two dropped: 11, not enough
    assert short.status is FindingStatus.PENDING
    one = finding_of("B2", [bp(170, 100)], rules, profile("hypertension"), T0)
    assert one is not None
    assert one.status is FindingStatus.PENDING  # one reading never fires B2
    # a very high first day does not count
    skewed = [
        bp(200, 120, at=series[0].measured_at),
        *[bp(130, 80, at=r.measured_at + minutes(1)) for r in series],
    ]
    assert (f := finding_of("B2", skewed, rules, profile("hypertension"), B2_NOW)) is not None
    assert f.status is FindingStatus.CLEAR


@pytest.mark.parametrize(
    ("gain", "unit", "fires"),
    [(2.0, Unit.KG, False), (2.1, Unit.KG, True), (1.9, Unit.KG, False)],
)
def test_h1_gain_against_three_days_earlier(
    rules: RuleSet, gain: float, unit: str, fires: bool
) -> None:
    readings = [weight(70.0, T0 - 3 * DAY), weight(70.0 + gain, T0)]
    found = finding_of("H1", readings, rules, HF)
    assert found is not None
    assert found.status is (FindingStatus.FIRING if fires else FindingStatus.CLEAR)


@pytest.mark.parametrize(("gain", "fires"), [(1.0, False), (1.1, True), (0.9, False)])
def test_h1_gain_in_one_day(rules: RuleSet, gain: float, fires: bool) -> None:
    found = finding_of("H1", [weight(70.0, T0 - DAY), weight(70.0 + gain, T0)], rules, HF)
    assert found is not None
    assert found.status is (FindingStatus.FIRING if fires else FindingStatus.CLEAR)


def test_h1_compares_pounds_in_pounds_only_against_kg_thresholds(rules: RuleSet) -> None:
    readings = [weight(154.0, T0 - 3 * DAY, Unit.POUND), weight(159.0, T0, Unit.POUND)]  # +2.27 kg
    found = finding_of("H1", readings, rules, HF)
    assert found is not None
    assert found.status is FindingStatus.FIRING


def test_h1_is_only_for_heart_failure(rules: RuleSet) -> None:
    assert finding_of("H1", [weight(70, T0 - DAY), weight(75, T0)], rules, profile()) is None


@pytest.mark.parametrize(("rise", "fires"), [(1.5, False), (1.6, True), (1.4, False)])
def test_h2_seven_day_moving_average_rise(rules: RuleSet, rise: float, fires: bool) -> None:
    readings = [weight(70.0, T0 - d * DAY) for d in range(7, 14)]
    readings += [weight(70.0 + rise, T0 - d * DAY) for d in range(7)]
    found = finding_of("H2", readings, rules, HF, T0 + minutes(1))
    assert found is not None
    assert found.status is (FindingStatus.FIRING if fires else FindingStatus.CLEAR)


@pytest.mark.parametrize(
    ("silent", "level"),
    [(minutes(14.9), None), (minutes(15), "warn"), (minutes(29), "warn"), (minutes(30), "urgent")],
)
def test_s1_cgm_stale(rules: RuleSet, silent: timedelta, level: str | None) -> None:
    found = finding_of("S1", [cgm(6.0, T0)], rules, now=T0 + silent)
    assert found is not None
    if level is None:
        assert found.status is FindingStatus.CLEAR
    else:
        assert (found.status, found.severity) == (FindingStatus.FIRING, Severity.SYS)
        assert found.explanation.params["level"] == level


@pytest.mark.parametrize(
    ("condition", "reading", "gap", "fires"),
    [
        ("diabetes_type2", "glucose", timedelta(days=3), True),
        ("diabetes_type2", "glucose", timedelta(days=3) - minutes(1), False),
        ("heart_failure", "weight", timedelta(days=2), True),
        ("heart_failure", "weight", timedelta(days=2) - minutes(1), False),
        ("hypertension", "bp", timedelta(days=3), True),
    ],
)
def test_s2_missing_readings(
    rules: RuleSet, condition: str, reading: str, gap: timedelta, fires: bool
) -> None:
    last = {"glucose": glucose(6.0), "weight": weight(70, T0), "bp": bp(120, 80)}[reading]
    found = finding_of("S2", [last], rules, profile(condition), T0 + gap)
    assert found is not None
    assert found.status is (FindingStatus.FIRING if fires else FindingStatus.CLEAR)
    assert found.severity is Severity.P4


def test_s3_takes_gateway_last_seen_as_input(rules: RuleSet) -> None:
    def s3(seen: datetime) -> Any:
        out = evaluate([], profile(), rules, T0, gateway_last_seen={"gw-1": seen})
        return next(f for f in out if f.rule_id == "S3").status

    assert s3(T0 - minutes(60)) is FindingStatus.FIRING
    assert s3(T0 - minutes(59)) is FindingStatus.CLEAR
    assert not [f for f in evaluate([], profile(), rules, T0) if f.rule_id == "S3"]


def _nightscout_ar2(before: float, now: float) -> tuple[list[float], float]:
    # The recurrence exactly as CLINICAL describes Nightscout's ar2.js, independently.
    prev, curr = math.log(before / 140), math.log(now / 140)
    points = []
    for _ in range(6):
        prev, curr = curr, -0.723 * prev + 1.716 * curr
        points.append(max(36.0, min(400.0, math.floor(140 * math.exp(curr) + 0.5))))
    return points, sum(math.log10(p / 120) ** 2 for p in points) / 5


@pytest.mark.parametrize(("before", "now"), [(120, 110), (90, 80), (150, 160), (60, 45)])
def test_ar2_matches_nightscout(before: float, now: float) -> None:
    readings = [cgm(before, T0 - minutes(5), Unit.MG_PER_DL), cgm(now, T0, Unit.MG_PER_DL)]
    forecast = ar2_forecast(readings)
    assert forecast is not None
    points, loss = _nightscout_ar2(before, now)
    assert list(forecast.predicted) == points
    assert forecast.loss == pytest.approx(loss)


def test_ar2_interpolates_a_gap_over_nine_minutes() -> None:
    readings = [cgm(100, T0 - minutes(10), Unit.MG_PER_DL), cgm(80, T0, Unit.MG_PER_DL)]
    forecast = ar2_forecast(readings)
    assert forecast is not None
    assert list(forecast.predicted) == _nightscout_ar2(90, 80)[0]


@pytest.mark.parametrize(
    ("before", "now", "unit", "fires"),
    [
        (90, 80, Unit.MG_PER_DL, True),
        (100, 88, Unit.MG_PER_DL, False),
        (5.0, 4.44, Unit.MMOL_PER_L, True),
    ],
)
def test_g6_forecast_low(rules: RuleSet, before: float, now: float, unit: str, fires: bool) -> None:
    readings = [cgm(before, T0 - minutes(5), unit), cgm(now, T0, unit)]
    found = finding_of("G6", readings, rules, now=T0 + minutes(1))
    assert found is not None
    assert found.status is (FindingStatus.FIRING if fires else FindingStatus.CLEAR)
    stale = finding_of("G6", readings, rules, now=T0 + minutes(11))
    assert stale is None  # data older than 10 min: no forecast


class _Summary:
    def __init__(
        self, tir: float, tbr39: float = 1.0, tbr30: float = 0.2, wear: float = 90
    ) -> None:
        self.days = 14.0
        self.wear_percent = wear
        self.tir_percent = tir
        self.tbr_below_3_9_percent = tbr39
        self.tbr_below_3_0_percent = tbr30


def test_g7_uses_the_injected_summary_with_elderly_targets(rules: RuleSet) -> None:
    readings = [cgm(6.0, T0)]

    def g7(who: Any, summary: _Summary | None) -> Any:
        out = evaluate(readings, who, rules, T0, summary=lambda r, p, n: summary)
        return next((f.status for f in out if f.rule_id == "G7"), None)

    assert g7(profile(), _Summary(tir=69)) is FindingStatus.FIRING
    assert g7(profile(), _Summary(tir=70)) is FindingStatus.CLEAR
    assert g7(profile("frail_elderly"), _Summary(tir=55)) is FindingStatus.CLEAR
    assert g7(profile("frail_elderly"), _Summary(tir=49)) is FindingStatus.FIRING
    assert g7(profile(), _Summary(tir=80, tbr39=4.1)) is FindingStatus.FIRING
    assert g7(profile(), _Summary(tir=20, wear=69)) is None  # too little wear
    assert not [f for f in evaluate(readings, profile(), rules, T0) if f.rule_id == "G7"]


def test_effective_dated_override_applies_from_its_date(rules: RuleSet) -> None:
    overrides = {"G2.range.below": [{"value": 4.4, "from": "2026-03-02T00:00:00+00:00"}]}
    who = profile("diabetes_type1", **overrides)
    reading = glucose(4.2, at=T0 - DAY)
    before = finding_of("G2", [reading], rules, who, now=T0 - DAY)
    assert before is not None
    assert before.status is FindingStatus.CLEAR
    after = finding_of("G2", [glucose(4.2)], rules, who, now=T0)
    assert after is not None
    assert after.status is FindingStatus.FIRING
    assert after.thresholds["range.below mmol/L"] == 4.4


def test_override_in_mg_dl_and_disabling(rules: RuleSet) -> None:
    who = profile(**{"G3.at_or_above": {"mmol/L": 15.0, "mg/dL": 270}, "G5.enabled": False})
    found = finding_of("G3", [glucose(275, Unit.MG_PER_DL)], rules, who)
    assert found is not None
    assert found.status is FindingStatus.PENDING
    assert finding_of("G5", [glucose(20.0)], rules, who) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"G1.enabled": False}, "P1 rule and cannot be disabled"),
        ({"G1.nonsense": 2}, "has no setting 'nonsense'"),
        ({"X9.below": 2}, "no rule 'X9'"),
        ({"G1.below": {"mg/dL": 50}}, "needs the canonical unit mmol/L"),
        ({"G1.below": "low"}, "expected a number"),
    ],
)
def test_bad_overrides_are_refused_with_patient_and_key(
    rules: RuleSet, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(OverrideError, match=message) as caught:
        check_overrides(rules, "p-7", overrides, T0)
    assert "patient p-7" in str(caught.value)


def test_evaluation_is_deterministic_whatever_the_input_order(rules: RuleSet) -> None:
    readings = [glucose(2.5, at=T0 - minutes(i * 7)) for i in range(5)] + [
        cgm(3.0, T0 - minutes(3))
    ]
    first = evaluate(readings, profile("diabetes_type1"), rules, T0)
    again = evaluate(list(reversed(readings)), profile("diabetes_type1"), rules, T0)
    assert first == again


def test_g6_says_nothing_new_when_glucose_is_already_low(rules: RuleSet) -> None:
    readings = [cgm(75, T0 - minutes(5), Unit.MG_PER_DL), cgm(65, T0, Unit.MG_PER_DL)]
    forecast = ar2_forecast(readings)
    assert forecast is not None
    assert forecast.predicted[3] < 70
    found = finding_of("G6", readings, rules, now=T0)
    assert found is not None
    assert found.status is FindingStatus.CLEAR  # G1/G2 speak for a low that has happened


def test_ar2_rounds_halves_up_like_javascript() -> None:
    from alerts.rules.cgm import _js_round

    assert (_js_round(70.5), _js_round(71.5), _js_round(-0.5)) == (71, 72, 0)


@pytest.mark.parametrize(
    ("overrides", "rule_id", "reading", "expected"),
    [
        # 88 mg/dL comes back from mmol/L as 87.99999999999999: still not < 88.
        (
            {"G2.range.below": {"mmol/L": 4.9, "mg/dL": 88}},
            "G2",
            glucose(88, Unit.MG_PER_DL),
            FindingStatus.CLEAR,
        ),
        (
            {"G2.range.below": {"mmol/L": 4.9, "mg/dL": 88}},
            "G2",
            glucose(87, Unit.MG_PER_DL),
            FindingStatus.FIRING,
        ),
        # 19.0 kPa comes back from mmHg as 18.999999999999996: still ≥ 19.0.
        (
            {"B1.systolic": {"mm[Hg]": 142.5, "kPa": 19.0}},
            "B1",
            bp(19.0, 10.0, Unit.KPA),
            FindingStatus.PENDING,
        ),
    ],
)
def test_a_value_is_compared_as_the_device_showed_it(
    rules: RuleSet,
    overrides: dict[str, Any],
    rule_id: str,
    reading: Reading,
    expected: FindingStatus,
) -> None:
    found = finding_of(rule_id, [reading], rules, profile("hypertension", **overrides))
    assert found is not None
    assert found.status is expected
