"""Plausibility rules (``docs/plausibility-rules.md``): each rule named, tested with cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingest.validate import (
    DEFAULT_LIMITS,
    GLUCOSE_METER_MAX_MMOL_PER_L,
    GLUCOSE_METER_MIN_MMOL_PER_L,
    PlausibilityLimits,
    Rule,
    check_plausibility,
)
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit, kg_per_l_to_mmol_per_l, mg_per_dl_to_mmol_per_l

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

UNIT_OF = {
    GlucoseValues: Unit.MMOL_PER_L,
    CgmGlucoseValues: Unit.MMOL_PER_L,
    BloodPressureValues: Unit.MMHG,
    HeartRateValues: Unit.PER_MIN,
    Spo2Values: Unit.PERCENT,
    WeightValues: Unit.KG,
    BodyTemperatureValues: Unit.CELSIUS,
}


def reading(
    values: Values,
    *,
    measured_at: datetime = NOW - timedelta(minutes=5),
    received_at: datetime = NOW - timedelta(minutes=1),
    flags: tuple[str, ...] = (),
) -> Reading:
    return new_reading(
        values=values,
        source_unit=UNIT_OF[type(values)],
        measured_at=measured_at,
        received_at=received_at,
        device_id="Acme-Meter-0001",
        patient_id="p1",
        gateway_id="gw1",
        seq=1,
        flags=flags,
    )


PLAUSIBLE = [
    pytest.param(GlucoseValues(glucose=5.6), id="glucose-normal"),
    pytest.param(GlucoseValues(glucose=1.2), id="glucose-severe-hypo"),
    pytest.param(GlucoseValues(glucose=GLUCOSE_METER_MIN_MMOL_PER_L), id="glucose-LO-at-limit"),
    pytest.param(GlucoseValues(glucose=GLUCOSE_METER_MAX_MMOL_PER_L), id="glucose-HI-at-limit"),
    pytest.param(GlucoseValues(glucose=kg_per_l_to_mmol_per_l(600e-5)), id="glucose-HI-via-kg/L"),
    pytest.param(GlucoseValues(glucose=33.3), id="glucose-HI-mmol-display"),
    pytest.param(CgmGlucoseValues(glucose=2.2, trend=-0.1), id="cgm-at-LO"),
    pytest.param(BloodPressureValues(systolic=120, diastolic=80, pulse=70), id="bp-normal"),
    pytest.param(BloodPressureValues(systolic=230, diastolic=130), id="bp-crisis-kept"),
    pytest.param(BloodPressureValues(systolic=85, diastolic=50, mean_arterial=62), id="bp-low"),
    pytest.param(HeartRateValues(heart_rate=42, rr_intervals=(1.4, 1.43)), id="hr-brady"),
    pytest.param(HeartRateValues(heart_rate=180), id="hr-tachy"),
    pytest.param(Spo2Values(spo2=100, pulse=60), id="spo2-100"),
    pytest.param(Spo2Values(spo2=82), id="spo2-copd-low"),
    pytest.param(WeightValues(weight=72.5, bmi=24.1, height=1.73), id="weight"),
    pytest.param(WeightValues(weight=3.1), id="weight-newborn"),
    pytest.param(BodyTemperatureValues(temperature=39.8), id="fever"),
    pytest.param(BodyTemperatureValues(temperature=34.5), id="hypothermia"),
]


@pytest.mark.parametrize("values", PLAUSIBLE)
def test_plausible_readings_pass(values: Values) -> None:
    assert check_plausibility(reading(values), now=NOW) is None


IMPLAUSIBLE = [
    (GlucoseValues(glucose=0.3), Rule.GLUCOSE_OUT_OF_METER_RANGE, "values.glucose"),
    (
        GlucoseValues(glucose=mg_per_dl_to_mmol_per_l(601)),
        Rule.GLUCOSE_OUT_OF_METER_RANGE,
        "values.glucose",
    ),
    (GlucoseValues(glucose=55.0), Rule.GLUCOSE_OUT_OF_METER_RANGE, "values.glucose"),
    (CgmGlucoseValues(glucose=30.0), Rule.CGM_GLUCOSE_OUT_OF_SENSOR_RANGE, "values.glucose"),
    (CgmGlucoseValues(glucose=1.0), Rule.CGM_GLUCOSE_OUT_OF_SENSOR_RANGE, "values.glucose"),
    (
        BloodPressureValues(systolic=80, diastolic=90),
        Rule.SYSTOLIC_NOT_ABOVE_DIASTOLIC,
        "values.systolic",
    ),
    (
        BloodPressureValues(systolic=90, diastolic=90),
        Rule.SYSTOLIC_NOT_ABOVE_DIASTOLIC,
        "values.systolic",
    ),
    (
        BloodPressureValues(systolic=310, diastolic=90),
        Rule.SYSTOLIC_OUT_OF_RANGE,
        "values.systolic",
    ),
    (BloodPressureValues(systolic=30, diastolic=25), Rule.SYSTOLIC_OUT_OF_RANGE, "values.systolic"),
    (
        BloodPressureValues(systolic=120, diastolic=10),
        Rule.DIASTOLIC_OUT_OF_RANGE,
        "values.diastolic",
    ),
    (
        BloodPressureValues(systolic=120, diastolic=80, mean_arterial=130),
        Rule.MEAN_ARTERIAL_OUTSIDE_CUFF_PRESSURES,
        "values.mean_arterial",
    ),
    (
        BloodPressureValues(systolic=120, diastolic=80, pulse=400),
        Rule.PULSE_OUT_OF_RANGE,
        "values.pulse",
    ),
    (HeartRateValues(heart_rate=0), Rule.HEART_RATE_OUT_OF_RANGE, "values.heart_rate"),
    (HeartRateValues(heart_rate=350), Rule.HEART_RATE_OUT_OF_RANGE, "values.heart_rate"),
    (
        HeartRateValues(heart_rate=60, rr_intervals=(1.0, 5.0)),
        Rule.RR_INTERVAL_OUT_OF_RANGE,
        "values.rr_intervals[1]",
    ),
    (Spo2Values(spo2=101), Rule.SPO2_OUT_OF_RANGE, "values.spo2"),
    (Spo2Values(spo2=0), Rule.SPO2_OUT_OF_RANGE, "values.spo2"),
    (Spo2Values(spo2=97, pulse=5), Rule.PULSE_OUT_OF_RANGE, "values.pulse"),
    (WeightValues(weight=0.5), Rule.WEIGHT_OUT_OF_RANGE, "values.weight"),
    (WeightValues(weight=650), Rule.WEIGHT_OUT_OF_RANGE, "values.weight"),
    (WeightValues(weight=70, height=17.5), Rule.HEIGHT_OUT_OF_RANGE, "values.height"),
    (WeightValues(weight=70, bmi=240), Rule.BMI_OUT_OF_RANGE, "values.bmi"),
    (BodyTemperatureValues(temperature=22.0), Rule.TEMPERATURE_OUT_OF_RANGE, "values.temperature"),
    (BodyTemperatureValues(temperature=98.6), Rule.TEMPERATURE_OUT_OF_RANGE, "values.temperature"),
]


@pytest.mark.parametrize(("values", "rule", "field"), IMPLAUSIBLE, ids=lambda v: str(v)[:40])
def test_implausible_values_name_their_rule_and_field(
    values: Values, rule: Rule, field: str
) -> None:
    found = check_plausibility(reading(values), now=NOW)
    assert found is not None
    assert (found.rule, found.field) == (rule, field)
    assert found.describe().startswith(f"{rule}: {field}: ")


def test_every_rule_is_exercised_by_the_tables() -> None:
    time_rules = {Rule.MEASURED_IN_FUTURE, Rule.MEASURED_AFTER_RECEIVED, Rule.MEASURED_TOO_EARLY}
    assert {rule for _, rule, _ in IMPLAUSIBLE} | time_rules == set(Rule)


GLUCOSE = GlucoseValues(glucose=6.0)


@pytest.mark.parametrize(
    ("measured_at", "received_at", "rule"),
    [
        (NOW + timedelta(hours=2), NOW + timedelta(hours=2), Rule.MEASURED_IN_FUTURE),
        (NOW + timedelta(days=365), NOW, Rule.MEASURED_IN_FUTURE),
        (NOW - timedelta(minutes=1), NOW - timedelta(hours=1), Rule.MEASURED_AFTER_RECEIVED),
        (datetime(1999, 12, 31, 23, 59, tzinfo=UTC), NOW, Rule.MEASURED_TOO_EARLY),
        (datetime(1970, 1, 1, tzinfo=UTC), NOW, Rule.MEASURED_TOO_EARLY),
        (NOW + timedelta(minutes=9), NOW + timedelta(minutes=9), None),
        (NOW, NOW - timedelta(minutes=9), None),
        (datetime(2000, 1, 1, tzinfo=UTC), NOW, None),
    ],
)
def test_time_rules(measured_at: datetime, received_at: datetime, rule: Rule | None) -> None:
    found = check_plausibility(
        reading(GLUCOSE, measured_at=measured_at, received_at=received_at), now=NOW
    )
    assert (found.rule if found else None) == rule


def test_times_are_checked_before_values() -> None:
    found = check_plausibility(
        reading(Spo2Values(spo2=101), measured_at=datetime(1990, 1, 1, tzinfo=UTC)), now=NOW
    )
    assert found is not None
    assert found.rule is Rule.MEASURED_TOO_EARLY


def test_limits_can_be_narrowed_per_deployment() -> None:
    paediatric = PlausibilityLimits(weight_min_kg=0.4)
    assert check_plausibility(reading(WeightValues(weight=0.5)), now=NOW, limits=paediatric) is None
    assert check_plausibility(reading(WeightValues(weight=0.5)), now=NOW) is not None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weight_min_kg": 500.0}, "weight_min_kg must be below weight_max_kg"),
        ({"heart_rate_max_per_min": 10.0}, "heart_rate_min_per_min must be below"),
        ({"bmi_min": 300.0}, "bmi_min must be below bmi_max"),
        ({"measured_future_tolerance_seconds": -1.0}, "must not be negative"),
        ({"earliest_measured_at": datetime(2000, 1, 1)}, "needs a UTC offset"),
    ],
)
def test_inconsistent_limits_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlausibilityLimits(**overrides)  # type: ignore[arg-type]


def test_defaults_are_the_module_constants() -> None:
    assert PlausibilityLimits() == DEFAULT_LIMITS
    assert DEFAULT_LIMITS.glucose_meter_max_mmol_per_l == pytest.approx(33.35, abs=0.01)
    assert DEFAULT_LIMITS.glucose_meter_min_mmol_per_l == pytest.approx(0.505, abs=0.001)
