"""docs/plausibility-rules.md is what the code generates, and the table says what the code does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from ingest import rules_doc
from ingest.validate import (
    DEFAULT_LIMITS,
    RULE_DESCRIPTIONS,
    Rule,
    RuleDescription,
    check_plausibility,
)
from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Kind,
    Reading,
    Spo2Values,
    Values,
    WeightValues,
    new_reading,
)
from readings.units import Unit

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
STEP = 1e-6
"""How far outside a bound a probe goes: far above the rules' float tolerance (1e-9)."""

PLAUSIBLE: dict[Kind, tuple[Values, Unit]] = {
    Kind.GLUCOSE: (GlucoseValues(glucose=5.6), Unit.MMOL_PER_L),
    Kind.CGM_GLUCOSE: (CgmGlucoseValues(glucose=5.6), Unit.MMOL_PER_L),
    Kind.BLOOD_PRESSURE: (
        BloodPressureValues(systolic=120, diastolic=80, mean_arterial=93, pulse=70),
        Unit.MMHG,
    ),
    Kind.HEART_RATE: (HeartRateValues(heart_rate=70, rr_intervals=(0.85,)), Unit.PER_MIN),
    Kind.SPO2: (Spo2Values(spo2=97, pulse=70), Unit.PERCENT),
    Kind.WEIGHT: (WeightValues(weight=72.5, bmi=24.1, height=1.73), Unit.KG),
    Kind.BODY_TEMPERATURE: (BodyTemperatureValues(temperature=36.8), Unit.CELSIUS),
}


def _reading(kind: Kind, **values: Any) -> Reading:
    plausible, unit = PLAUSIBLE[kind]
    return new_reading(
        values=msgspec.structs.replace(plausible, **values),
        source_unit=unit,
        measured_at=NOW - timedelta(minutes=5),
        received_at=NOW - timedelta(minutes=1),
        device_id="Acme-Meter-0001",
        patient_id="p1",
        gateway_id="gw1",
        seq=1,
    )


def _broken_rule(reading: Reading) -> Rule | None:
    found = check_plausibility(reading, now=NOW)
    return None if found is None else found.rule


def test_the_published_table_is_generated_from_the_code() -> None:
    published = rules_doc.DOC_PATH.read_text(encoding="utf-8")
    assert published == rules_doc.render(), "run `python -m ingest.rules_doc` and commit"


def test_every_rule_is_described_once() -> None:
    assert sorted(d.rule for d in RULE_DESCRIPTIONS) == sorted(Rule)
    for description in RULE_DESCRIPTIONS:
        bounds = [name for name in (description.lower, description.upper) if name is not None]
        assert description.condition or bounds, description
        assert all(hasattr(DEFAULT_LIMITS, name) for name in bounds), description
        assert description.reason, description


RANGE_RULES = [
    pytest.param(d, id=d.rule.value)
    for d in RULE_DESCRIPTIONS
    if d.kinds and d.lower is not None and d.upper is not None
]


@pytest.mark.parametrize("description", RANGE_RULES)
def test_each_value_range_in_the_table_is_the_one_applied(description: RuleDescription) -> None:
    assert description.lower is not None
    assert description.upper is not None
    low: float = getattr(DEFAULT_LIMITS, description.lower)
    high: float = getattr(DEFAULT_LIMITS, description.upper)
    name = description.field.removeprefix("values.").removesuffix("[i]")
    for kind in description.kinds:

        def probe(value: float, kind: Kind = kind) -> Rule | None:
            wrapped: Any = (value,) if name == "rr_intervals" else value
            return _broken_rule(_reading(kind, **{name: wrapped}))

        # At a bound, the rule holds (another rule may object: systolic 40 over diastolic 80).
        assert probe(low) is not description.rule, (kind, low)
        assert probe(high) is not description.rule, (kind, high)
        assert probe(low - STEP * max(1.0, abs(low))) is description.rule, (kind, low)
        assert probe(high + STEP * max(1.0, abs(high))) is description.rule, (kind, high)


def test_the_time_rules_in_the_table_are_the_ones_applied() -> None:
    tolerance = timedelta(seconds=DEFAULT_LIMITS.measured_future_tolerance_seconds)
    base = _reading(Kind.GLUCOSE)
    millisecond = timedelta(milliseconds=1)

    def at(measured_at: datetime, received_at: datetime) -> Rule | None:
        reading = new_reading(
            values=base.values,
            source_unit=base.source_unit,
            measured_at=measured_at,
            received_at=received_at,
            device_id=base.device_id,
            patient_id=base.patient_id,
            gateway_id=base.gateway_id,
            seq=1,
        )
        return _broken_rule(reading)

    earliest = DEFAULT_LIMITS.earliest_measured_at
    assert at(earliest, NOW) is None
    assert at(earliest - millisecond, NOW) is Rule.MEASURED_TOO_EARLY
    assert at(NOW + tolerance, NOW + tolerance) is None
    assert at(NOW + tolerance + millisecond, NOW + tolerance) is Rule.MEASURED_IN_FUTURE
    received = NOW - 2 * tolerance
    assert at(received + tolerance, received) is None
    assert at(received + tolerance + millisecond, received) is Rule.MEASURED_AFTER_RECEIVED


def test_the_table_follows_the_limits_it_is_given() -> None:
    narrowed = replace(DEFAULT_LIMITS, weight_min_kg=0.5)
    assert "| 0.5 – 400 kg |" in rules_doc.render(narrowed)
    assert "| 2 – 400 kg |" in rules_doc.render()
