"""The optimised engine (a prepared history, each rule given only the span it reads) and
the backtest built on it agree with the straightforward engine on random histories: CGM
traces, meters in mmol/L and mg/dL with HI/LO flags, cuffs in mmHg and kPa, scales in kg
and lb, late arrivals, ties in time, dated overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.backtest import run_backtest
from alerts.model import Finding
from alerts.rules.engine import evaluate, evaluate_history
from alerts.rules.loader import default_rules
from alerts.rules.prepared import PreparedHistory
from ingest.validate import DEFAULT_LIMITS, check_values
from readings.files import PatientProfile
from readings.model import Kind, Reading
from readings.units import Unit
from tests.alerts import builders as b
from tests.alerts.reference_engine import reference_backtest, reference_evaluate

RULES = default_rules()
CONDITIONS = ("diabetes_type1", "diabetes_type2", "hypertension", "heart_failure", "copd")
HORIZON_MIN = 18 * 24 * 60
"""Histories span 18 days: longer than the default rules' 15-day lookback."""


@dataclass(frozen=True)
class _Summary:
    days: float
    wear_percent: float
    tir_percent: float
    tbr_below_3_9_percent: float
    tbr_below_3_0_percent: float


def _summary(readings: Any, profile: PatientProfile, now: datetime) -> _Summary:
    # Depends on exactly which readings G7 was given, so a different span shows.
    values = [r.values.glucose for r in readings]
    return _Summary(14, 100.0, float(len(values) % 100), min(values) * 3, 0.0)


def _minute(draw: st.DrawFn) -> int:
    coarse = draw(st.booleans())  # a coarse grid makes ties in measured_at
    if coarse:
        return draw(st.integers(0, HORIZON_MIN // 60)) * 60
    return draw(st.integers(0, HORIZON_MIN))


@st.composite
def _spot(draw: st.DrawFn) -> Reading:
    at = b.T0 + timedelta(minutes=_minute(draw))
    kind = draw(st.sampled_from(["glucose", "bp", "spo2", "weight", "temperature", "hr"]))
    one = st.floats(0, 1)
    x = draw(one)
    if kind == "glucose":
        flags = draw(st.sampled_from([(), (), (), ("result_high",), ("result_low",)]))
        if draw(st.booleans()):
            return b.glucose(round(1.8 + 32 * x, 1), at=at, flags=flags)
        return b.glucose(round(32 + 570 * x), Unit.MG_PER_DL, at=at, flags=flags)
    if kind == "bp":
        systolic, diastolic = 85 + 140 * x, 45 + 90 * draw(one)
        pulse = draw(st.one_of(st.none(), st.integers(35, 170).map(float)))
        if draw(st.booleans()):
            return b.bp(round(systolic), round(diastolic), at=at, pulse=pulse)
        return b.bp(round(systolic / 7.5, 1), round(diastolic / 7.5, 1), Unit.KPA, at, pulse)
    if kind == "spo2":
        return b.spo2(round(78 + 22 * x), at)
    if kind == "weight":
        kg = 70 + 6 * x
        if draw(st.booleans()):
            return b.weight(round(kg, 1), at)
        return b.weight(round(kg * 2.20462, 1), at, Unit.POUND)
    if kind == "temperature":
        return b.temperature(round(34.5 + 6 * x, 1), at)
    return b.heart_rate(round(35 + 140 * x), at)


@st.composite
def _cgm_trace(draw: st.DrawFn) -> list[Reading]:
    start = draw(st.integers(0, HORIZON_MIN))
    steps = draw(st.lists(st.floats(-1.2, 1.2), max_size=160))
    gaps = draw(st.lists(st.sampled_from([5, 5, 5, 5, 4, 6, 10, 40]), min_size=len(steps)))
    unit = draw(st.sampled_from([Unit.MMOL_PER_L, Unit.MG_PER_DL]))
    value, minute, trace = draw(st.floats(2.5, 20)), start, []
    for step, gap in zip(steps, gaps, strict=False):
        value = min(max(value + step, 2.2), 24.0)
        shown = round(value, 1) if unit == Unit.MMOL_PER_L else round(value * 18.016)
        trace.append(b.cgm(shown, b.T0 + timedelta(minutes=minute), unit))
        minute += gap
    return trace


@st.composite
def _routine(draw: st.DrawFn) -> list[Reading]:
    """Home routines long enough for the window rules: BP twice a day (B2's 12 readings
    over 7 days), a daily weight (H1, H2)."""
    first = draw(st.integers(0, 10))
    days = draw(st.integers(1, 18 - first))
    bp_mean, gain = draw(st.floats(115, 150)), draw(st.floats(-0.3, 0.9))
    jitter = st.integers(-90, 90)
    readings: list[Reading] = []
    for day in range(first, first + days):
        noon = b.T0 + timedelta(days=day, minutes=draw(jitter))
        if draw(st.integers(0, 9)):  # a missed day now and then
            readings.append(b.weight(round(72 + gain * (day - first), 1), noon))
        for hours in (0, 11):
            systolic = bp_mean + draw(st.floats(-12, 12))
            readings.append(
                b.bp(round(systolic), round(systolic * 0.62), at=noon + timedelta(hours=hours))
            )
    return readings


@st.composite
def _history(draw: st.DrawFn, max_spots: int = 80) -> tuple[PatientProfile, list[Reading]]:
    conditions = draw(st.sets(st.sampled_from(CONDITIONS), min_size=1))
    overrides: dict[str, Any] = {}
    if draw(st.booleans()):  # a dated override: new rule objects on every evaluation
        cut = (b.T0 + timedelta(days=draw(st.integers(0, 18)))).isoformat()
        overrides["G2.range.below"] = [{"value": 4.4, "from": cut}]
        overrides["G5.enabled"] = [{"value": False, "until": cut}]
    readings = draw(st.lists(_spot(), max_size=max_spots))
    if draw(st.booleans()):
        readings += draw(_routine())
    if "diabetes_type1" in conditions:
        readings += draw(_cgm_trace())
    readings = [r for r in readings if check_values(r, DEFAULT_LIMITS) is None]
    who = PatientProfile(b.PATIENT, frozenset(conditions), overrides=overrides)
    return who, readings


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), case=_history())
def test_the_prepared_engine_agrees_with_the_straightforward_one(
    data: st.DataObject, case: tuple[PatientProfile, list[Reading]]
) -> None:
    who, readings = case
    history = PreparedHistory(readings)
    moments = data.draw(st.lists(st.integers(0, HORIZON_MIN + 24 * 60), min_size=1, max_size=6))
    if readings:  # at a reading, and a few minutes after one (the deadlines, the buckets)
        picked = data.draw(st.lists(st.sampled_from(readings), max_size=4))
        later = data.draw(st.sampled_from([0, 1, 10, 15, 60, 24 * 60]))
        moments += [int((r.measured_at - b.T0).total_seconds() // 60) + later for r in picked]
    # Pairings known or not (S1/S2's monitoring_since), starting anywhere in the history.
    paired_at = st.integers(0, HORIZON_MIN).map(lambda m: b.T0 + timedelta(minutes=m))
    since_map = data.draw(
        st.one_of(st.none(), st.dictionaries(st.sampled_from(list(Kind)), paired_at, max_size=4))
    )
    for minute in moments:
        now = b.T0 + timedelta(minutes=minute)
        # Some readings arrive now, however old they are: those are the late ones.
        arrived = {r.id for r in readings if r.measured_at <= now and data.draw(st.booleans())}
        since = now - RULES.lookback
        window = [r for r in readings if r.measured_at > since]
        given = {"arrived": arrived, "summary": _summary, "monitoring_since": since_map}
        expected = reference_evaluate(window, who, RULES, now, **given)
        got = evaluate_history(history, who, RULES, now, since=since, **given)
        assert got == expected
        # The live path: the engine prepares the window it is given on every call.
        assert evaluate(window, who, RULES, now, **given) == expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_history(max_spots=30))
def test_the_backtest_agrees_with_the_straightforward_loop(
    case: tuple[PatientProfile, list[Reading]],
) -> None:
    who, readings = case
    if not readings:
        return
    until = max(r.measured_at for r in readings) + timedelta(days=1)
    seen: list[tuple[datetime, list[Finding]]] = []
    result = run_backtest(
        readings, [who], RULES, until=until, on_findings=lambda p, now, f: seen.append((now, f))
    )
    expected_seen, expected_alerts = reference_backtest(readings, who, RULES, until)
    assert seen == expected_seen
    expected_alerts.sort(key=lambda a: (a.fired_at, a.patient_id, a.rule_id))
    assert result.alerts == expected_alerts
