"""Units and conversions: the one place where a number changes unit.

Every reading carries its values in one canonical unit per quantity (China's clinical
units): glucose mmol/L, pressure mmHg, mass kg, length m, temperature °C, rates /min,
saturation %. Units are written as UCUM codes (the codes FHIR uses), so ``mm[Hg]`` and
``[lb_av]`` rather than ``mmHg`` and ``lb``.

Factors are exact definitions where one exists (pound, inch, millimetre of mercury);
glucose uses its molar mass. Each conversion has an inverse, and the tests check both
directions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from readings.errors import UnitError

GLUCOSE_MOLAR_MASS_G_PER_MOL: Final = 180.156
"""C6H12O6 from IUPAC standard atomic weights (6 x 12.011 + 12 x 1.008 + 6 x 15.999).

Clinical texts round the mg/dL per mmol/L factor to 18 or 18.016; 18.0156 is what the
molar mass gives and what we use both ways, so a value never drifts on a round trip."""

MG_PER_DL_PER_MMOL_PER_L: Final = GLUCOSE_MOLAR_MASS_G_PER_MOL / 10.0
"""1 mmol/L of glucose = 180.156 mg/L = 18.0156 mg/dL."""

PASCAL_PER_MMHG: Final = 133.322387415
"""Conventional millimetre of mercury: 13.5951 g/cm³ x 9.80665 m/s² x 1 mm (exact by definition)."""

KG_PER_POUND: Final = 0.45359237
"""International avoirdupois pound (exact by definition since 1959)."""

METRE_PER_INCH: Final = 0.0254
"""International inch (exact by definition)."""


class Unit(StrEnum):
    """Units as sent by devices or used canonically, written as UCUM codes."""

    MMOL_PER_L = "mmol/L"
    MG_PER_DL = "mg/dL"
    MOL_PER_L = "mol/L"
    """SI unit in which Bluetooth glucose meters may send the concentration."""
    KG_PER_L = "kg/L"
    """SI unit in which Bluetooth glucose meters may send the concentration."""
    MMOL_PER_L_PER_MIN = "mmol/L/min"
    MG_PER_DL_PER_MIN = "mg/dL/min"
    MMHG = "mm[Hg]"
    KPA = "kPa"
    PER_MIN = "/min"
    PERCENT = "%"
    KG = "kg"
    POUND = "[lb_av]"
    METRE = "m"
    INCH = "[in_i]"
    CELSIUS = "Cel"
    FAHRENHEIT = "[degF]"
    KILOJOULE = "kJ"
    SECOND = "s"
    UNITLESS = "1"


def mg_per_dl_to_mmol_per_l(value: float) -> float:
    """Glucose concentration, mg/dL → mmol/L."""
    return value / MG_PER_DL_PER_MMOL_PER_L


def mmol_per_l_to_mg_per_dl(value: float) -> float:
    """Glucose concentration, mmol/L → mg/dL (for display on request)."""
    return value * MG_PER_DL_PER_MMOL_PER_L


def kg_per_l_to_mmol_per_l(value: float) -> float:
    """Glucose concentration as sent by GATT meters in kg/L → mmol/L.

    1 kg/L = 10⁶ mg/L = 10⁵ mg/dL; meters send e.g. 100 mg/dL as 100 x 10⁻⁵ kg/L.
    """
    return mg_per_dl_to_mmol_per_l(value * 1e5)


def mmol_per_l_to_kg_per_l(value: float) -> float:
    """Inverse of :func:`kg_per_l_to_mmol_per_l` (used by the simulated meters)."""
    return mmol_per_l_to_mg_per_dl(value) / 1e5


def mol_per_l_to_mmol_per_l(value: float) -> float:
    """Glucose concentration as sent by GATT meters in mol/L → mmol/L."""
    return value * 1000.0


def mmol_per_l_to_mol_per_l(value: float) -> float:
    """Inverse of :func:`mol_per_l_to_mmol_per_l`."""
    return value / 1000.0


def kpa_to_mmhg(value: float) -> float:
    """Pressure, kPa → mmHg."""
    return value * 1000.0 / PASCAL_PER_MMHG


def mmhg_to_kpa(value: float) -> float:
    """Pressure, mmHg → kPa."""
    return value * PASCAL_PER_MMHG / 1000.0


def pound_to_kg(value: float) -> float:
    """Mass, lb → kg."""
    return value * KG_PER_POUND


def kg_to_pound(value: float) -> float:
    """Mass, kg → lb."""
    return value / KG_PER_POUND


def inch_to_metre(value: float) -> float:
    """Length, in → m."""
    return value * METRE_PER_INCH


def metre_to_inch(value: float) -> float:
    """Length, m → in."""
    return value / METRE_PER_INCH


def fahrenheit_to_celsius(value: float) -> float:
    """Temperature, °F → °C."""
    return (value - 32.0) * 5.0 / 9.0


def celsius_to_fahrenheit(value: float) -> float:
    """Temperature, °C → °F."""
    return value * 9.0 / 5.0 + 32.0


_CANONICAL_OF: Final[dict[Unit, Unit]] = {
    Unit.MMOL_PER_L: Unit.MMOL_PER_L,
    Unit.MG_PER_DL: Unit.MMOL_PER_L,
    Unit.MOL_PER_L: Unit.MMOL_PER_L,
    Unit.KG_PER_L: Unit.MMOL_PER_L,
    Unit.MMOL_PER_L_PER_MIN: Unit.MMOL_PER_L_PER_MIN,
    Unit.MG_PER_DL_PER_MIN: Unit.MMOL_PER_L_PER_MIN,
    Unit.MMHG: Unit.MMHG,
    Unit.KPA: Unit.MMHG,
    Unit.PER_MIN: Unit.PER_MIN,
    Unit.PERCENT: Unit.PERCENT,
    Unit.KG: Unit.KG,
    Unit.POUND: Unit.KG,
    Unit.METRE: Unit.METRE,
    Unit.INCH: Unit.METRE,
    Unit.CELSIUS: Unit.CELSIUS,
    Unit.FAHRENHEIT: Unit.CELSIUS,
    Unit.KILOJOULE: Unit.KILOJOULE,
    Unit.SECOND: Unit.SECOND,
    Unit.UNITLESS: Unit.UNITLESS,
}


def canonical_unit(unit: Unit | str) -> Unit:
    """The canonical unit of the quantity that ``unit`` measures."""
    return _CANONICAL_OF[parse_unit(unit)]


def parse_unit(unit: Unit | str) -> Unit:
    """``unit`` as a :class:`Unit`; raises :class:`UnitError` naming the unknown unit."""
    try:
        return Unit(unit)
    except ValueError:
        known = ", ".join(u.value for u in Unit)
        raise UnitError(f"unknown unit {unit!r}; known units: {known}") from None


def to_canonical(value: float, unit: Unit | str) -> float:
    """``value`` given in ``unit``, expressed in the canonical unit of its quantity.

    Uses the named conversion functions above so there is one formula per conversion.
    """
    parsed = parse_unit(unit)
    match parsed:
        case Unit.MG_PER_DL:
            return mg_per_dl_to_mmol_per_l(value)
        case Unit.MG_PER_DL_PER_MIN:
            return mg_per_dl_to_mmol_per_l(value)
        case Unit.MOL_PER_L:
            return mol_per_l_to_mmol_per_l(value)
        case Unit.KG_PER_L:
            return kg_per_l_to_mmol_per_l(value)
        case Unit.KPA:
            return kpa_to_mmhg(value)
        case Unit.POUND:
            return pound_to_kg(value)
        case Unit.INCH:
            return inch_to_metre(value)
        case Unit.FAHRENHEIT:
            return fahrenheit_to_celsius(value)
        case _:
            return value


def from_canonical(value: float, unit: Unit | str) -> float:
    """Inverse of :func:`to_canonical`: a canonical value expressed in ``unit``."""
    parsed = parse_unit(unit)
    match parsed:
        case Unit.MG_PER_DL:
            return mmol_per_l_to_mg_per_dl(value)
        case Unit.MG_PER_DL_PER_MIN:
            return mmol_per_l_to_mg_per_dl(value)
        case Unit.MOL_PER_L:
            return mmol_per_l_to_mol_per_l(value)
        case Unit.KG_PER_L:
            return mmol_per_l_to_kg_per_l(value)
        case Unit.KPA:
            return mmhg_to_kpa(value)
        case Unit.POUND:
            return kg_to_pound(value)
        case Unit.INCH:
            return metre_to_inch(value)
        case Unit.FAHRENHEIT:
            return celsius_to_fahrenheit(value)
        case _:
            return value
