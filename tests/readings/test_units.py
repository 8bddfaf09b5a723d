"""Unit conversions: exact both ways, and agreeing with the values the specs publish."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readings import units
from readings.errors import UnitError
from readings.units import Unit, canonical_unit, from_canonical, to_canonical

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)

PAIRS = [
    (units.mg_per_dl_to_mmol_per_l, units.mmol_per_l_to_mg_per_dl),
    (units.kg_per_l_to_mmol_per_l, units.mmol_per_l_to_kg_per_l),
    (units.mol_per_l_to_mmol_per_l, units.mmol_per_l_to_mol_per_l),
    (units.kpa_to_mmhg, units.mmhg_to_kpa),
    (units.pound_to_kg, units.kg_to_pound),
    (units.inch_to_metre, units.metre_to_inch),
    (units.fahrenheit_to_celsius, units.celsius_to_fahrenheit),
]


@pytest.mark.parametrize(("forward", "backward"), PAIRS)
@given(value=finite)
def test_each_conversion_round_trips_both_ways(forward, backward, value: float) -> None:
    assert math.isclose(backward(forward(value)), value, rel_tol=1e-12, abs_tol=1e-9)
    assert math.isclose(forward(backward(value)), value, rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        # 100 mg/dL = 1000 mg/L / 180.156 g/mol = 5.5507 mmol/L
        (100.0, Unit.MG_PER_DL, 1000 / 180.156),
        (180.156, Unit.MG_PER_DL, 10.0),
        # docs/devices.md, Glucose Measurement 0x2A18: 64 B0 = 100 x 10⁻⁵ kg/L = 100 mg/dL
        (100e-5, Unit.KG_PER_L, 1000 / 180.156),
        # docs/devices.md, Glucose Measurement 0x2A18: 26 B2 = 550 x 10⁻⁵ mol/L = 5.50 mmol/L
        (550e-5, Unit.MOL_PER_L, 5.5),
        # docs/devices.md, Blood Pressure 0x2A35: 1 kPa = 7.50062 mmHg (1000 Pa / 133.322387415 Pa)
        (1.0, Unit.KPA, 7.5006157585),
        (18.9, Unit.KPA, 141.761637835),
        # international pound and inch
        (157.0, Unit.POUND, 71.21400209),
        (68.0, Unit.INCH, 1.7272),
        (98.6, Unit.FAHRENHEIT, 37.0),
        (32.0, Unit.FAHRENHEIT, 0.0),
        (5.5, Unit.MMOL_PER_L, 5.5),
    ],
)
def test_to_canonical_matches_published_values(value: float, unit: Unit, expected: float) -> None:
    assert math.isclose(to_canonical(value, unit), expected, rel_tol=1e-8)
    assert math.isclose(from_canonical(expected, unit), value, rel_tol=1e-8)


@pytest.mark.parametrize(
    ("unit", "canonical"),
    [
        (Unit.MG_PER_DL, Unit.MMOL_PER_L),
        (Unit.KG_PER_L, Unit.MMOL_PER_L),
        (Unit.KPA, Unit.MMHG),
        (Unit.POUND, Unit.KG),
        (Unit.FAHRENHEIT, Unit.CELSIUS),
        (Unit.INCH, Unit.METRE),
        (Unit.PER_MIN, Unit.PER_MIN),
    ],
)
def test_canonical_unit(unit: Unit, canonical: Unit) -> None:
    assert canonical_unit(unit) is canonical


def test_every_unit_has_a_canonical_unit() -> None:
    for unit in Unit:
        assert canonical_unit(unit) in Unit


def test_unknown_unit_is_named_in_the_error() -> None:
    with pytest.raises(UnitError, match="'mmHg'"):
        to_canonical(1.0, "mmHg")
