"""Plausibility of readings that already passed the wire contract (docs/plausibility-rules.md).

The contract (:mod:`readings.codec`) guarantees shape, types, units and ids; this module
asks whether a value can be a real measurement of a living person by a home device. A
reading that fails is kept in quarantine with the rule's name and never reaches the store
or the alerts: an impossible value must lead to "measure again", never to an alarm.

Every bound is chosen wide on purpose. Quarantining a real extreme reading (a severe
hypoglycaemia, a hypertensive crisis) would hide exactly the value that matters most, so
the limits are those of the devices and of physiology, not clinical targets. Values are
in the contract's canonical units (mmol/L, mmHg, /min, %, kg, m, °C, s).

Everything here is pure: the caller passes the clock reading (``now``) in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from readings.model import (
    BloodPressureValues,
    BodyTemperatureValues,
    CgmGlucoseValues,
    GlucoseValues,
    HeartRateValues,
    Kind,
    Reading,
    Spo2Values,
    WeightValues,
)
from readings.units import mg_per_dl_to_mmol_per_l

GLUCOSE_DISPLAY_ROUNDING_MMOL_PER_L: Final = 0.05
"""Devices set to mmol/L round to one decimal: a sensor's 40 mg/dL floor (2.22 mmol/L)
arrives as 2.2. Each glucose bound is widened by half a display step."""
GLUCOSE_METER_MIN_MMOL_PER_L: Final = (
    mg_per_dl_to_mmol_per_l(10) - GLUCOSE_DISPLAY_ROUNDING_MMOL_PER_L
)
"""≈ 0.5 mmol/L. The widest meter range on the market is 10–600 mg/dL (Contour ``V=10600``,
Accu-Chek 10–600; OneTouch 20–600). A LO result carries the meter's lower limit."""
GLUCOSE_METER_MAX_MMOL_PER_L: Final = (
    mg_per_dl_to_mmol_per_l(600) + GLUCOSE_DISPLAY_ROUNDING_MMOL_PER_L
)
"""≈ 33.35 mmol/L: no home meter reports above 600 mg/dL; a HI result carries its limit."""
CGM_GLUCOSE_MIN_MMOL_PER_L: Final = (
    mg_per_dl_to_mmol_per_l(40) - GLUCOSE_DISPLAY_ROUNDING_MMOL_PER_L
)
"""≈ 2.17 mmol/L: Dexcom and FreeStyle Libre sensors report 40 mg/dL at the lowest ("LO")."""
CGM_GLUCOSE_MAX_MMOL_PER_L: Final = (
    mg_per_dl_to_mmol_per_l(500) + GLUCOSE_DISPLAY_ROUNDING_MMOL_PER_L
)
"""≈ 27.8 mmol/L: FreeStyle Libre's upper limit (Dexcom stops at 400 mg/dL)."""
SYSTOLIC_MIN_MMHG: Final = 40.0
"""Oscillometric cuffs cannot detect a systolic pressure below ≈ 40 mmHg."""
SYSTOLIC_MAX_MMHG: Final = 300.0
"""Cuff pressure range of home monitors is 0–300 mmHg (IEC 80601-2-30); above is impossible."""
DIASTOLIC_MIN_MMHG: Final = 20.0
"""Below ≈ 20 mmHg no cuff reports a diastolic value; it is a failed measurement."""
DIASTOLIC_MAX_MMHG: Final = 250.0
"""Above the highest diastolic ever reported in a crisis; the cuff range caps it anyway."""
HEART_RATE_MIN_PER_MIN: Final = 20.0
"""Below 20 /min a person is in arrest, not taking home readings; straps send 0 for
"no skin contact", which must not look like asystole."""
HEART_RATE_MAX_PER_MIN: Final = 300.0
"""Above the fastest conducted rhythms (≈ 250–300 /min); oximeters stop at 250–254."""
RR_INTERVAL_MIN_SECONDS: Final = 60.0 / HEART_RATE_MAX_PER_MIN
"""The beat-to-beat interval of the fastest plausible heart rate."""
RR_INTERVAL_MAX_SECONDS: Final = 60.0 / HEART_RATE_MIN_PER_MIN
"""The beat-to-beat interval of the slowest plausible heart rate."""
SPO2_MIN_PERCENT: Final = 50.0
"""Oximeters are calibrated only down to 70 % (ISO 80601-2-61); readings far below are
probe-off or motion artefacts (0 is what many send for "no signal")."""
SPO2_MAX_PERCENT: Final = 100.0
"""Saturation is a fraction of haemoglobin: above 100 % is impossible."""
WEIGHT_MIN_KG: Final = 2.0
"""Below a newborn's weight: the scale was stepped on by a pet or tapped by hand."""
WEIGHT_MAX_KG: Final = 400.0
"""Above the capacity of any home or bariatric scale sold for home use (≈ 300–400 kg)."""
HEIGHT_MIN_M: Final = 0.3
"""Heights are typed into the scale by the user; below a newborn's length is a typo."""
HEIGHT_MAX_M: Final = 2.75
"""Above the tallest person recorded (2.72 m)."""
BMI_MIN: Final = 5.0
"""kg/m²; far below the lowest BMI compatible with life (≈ 7–8)."""
BMI_MAX: Final = 200.0
"""kg/m²; above the highest ever recorded (≈ 186)."""
TEMPERATURE_MIN_CELSIUS: Final = 25.0
"""Below the lowest body temperature survived; home thermometers read from 32 °C and
send lower numbers for room-temperature or "Lo" measurements."""
TEMPERATURE_MAX_CELSIUS: Final = 45.0
"""Above the highest body temperature survived (≈ 44–46 °C is fatal); hotter is a kettle."""
MEASURED_FUTURE_TOLERANCE_SECONDS: Final = 600.0
"""Gateways run NTP and correct device clocks; 10 minutes absorbs a gateway whose clock
has not synchronised yet, while a device clock set a day or a year ahead is caught."""
EARLIEST_MEASURED_AT: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""Meters whose clock reset to 2000-01-01 are caught by the gateway's clock correction;
anything earlier cannot be a measurement by a device that talks to a VitalGate gateway."""

_FLOAT_TOLERANCE: Final = 1e-9
"""Unit conversions of a value sent exactly at a meter's limit (600 mg/dL as kg/L) can land
a few ulps outside it; the bounds are inclusive up to this."""


class Rule(StrEnum):
    """The name of each plausibility rule, as stored with a quarantined reading."""

    GLUCOSE_OUT_OF_METER_RANGE = "glucose_out_of_meter_range"
    CGM_GLUCOSE_OUT_OF_SENSOR_RANGE = "cgm_glucose_out_of_sensor_range"
    SYSTOLIC_OUT_OF_RANGE = "systolic_out_of_range"
    DIASTOLIC_OUT_OF_RANGE = "diastolic_out_of_range"
    SYSTOLIC_NOT_ABOVE_DIASTOLIC = "systolic_not_above_diastolic"
    MEAN_ARTERIAL_OUTSIDE_CUFF_PRESSURES = "mean_arterial_outside_cuff_pressures"
    PULSE_OUT_OF_RANGE = "pulse_out_of_range"
    HEART_RATE_OUT_OF_RANGE = "heart_rate_out_of_range"
    RR_INTERVAL_OUT_OF_RANGE = "rr_interval_out_of_range"
    SPO2_OUT_OF_RANGE = "spo2_out_of_range"
    WEIGHT_OUT_OF_RANGE = "weight_out_of_range"
    HEIGHT_OUT_OF_RANGE = "height_out_of_range"
    BMI_OUT_OF_RANGE = "bmi_out_of_range"
    TEMPERATURE_OUT_OF_RANGE = "temperature_out_of_range"
    MEASURED_IN_FUTURE = "measured_in_future"
    MEASURED_AFTER_RECEIVED = "measured_after_received"
    MEASURED_TOO_EARLY = "measured_too_early"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlausibilityLimits:
    """The bounds the rules apply; defaults are the module constants.

    A deployment may narrow or widen them through the ingest configuration (for example a
    paediatric programme lowering ``weight_min_kg``).
    """

    glucose_meter_min_mmol_per_l: float = GLUCOSE_METER_MIN_MMOL_PER_L
    glucose_meter_max_mmol_per_l: float = GLUCOSE_METER_MAX_MMOL_PER_L
    cgm_glucose_min_mmol_per_l: float = CGM_GLUCOSE_MIN_MMOL_PER_L
    cgm_glucose_max_mmol_per_l: float = CGM_GLUCOSE_MAX_MMOL_PER_L
    systolic_min_mmhg: float = SYSTOLIC_MIN_MMHG
    systolic_max_mmhg: float = SYSTOLIC_MAX_MMHG
    diastolic_min_mmhg: float = DIASTOLIC_MIN_MMHG
    diastolic_max_mmhg: float = DIASTOLIC_MAX_MMHG
    heart_rate_min_per_min: float = HEART_RATE_MIN_PER_MIN
    heart_rate_max_per_min: float = HEART_RATE_MAX_PER_MIN
    rr_interval_min_seconds: float = RR_INTERVAL_MIN_SECONDS
    rr_interval_max_seconds: float = RR_INTERVAL_MAX_SECONDS
    spo2_min_percent: float = SPO2_MIN_PERCENT
    spo2_max_percent: float = SPO2_MAX_PERCENT
    weight_min_kg: float = WEIGHT_MIN_KG
    weight_max_kg: float = WEIGHT_MAX_KG
    height_min_m: float = HEIGHT_MIN_M
    height_max_m: float = HEIGHT_MAX_M
    bmi_min: float = BMI_MIN
    bmi_max: float = BMI_MAX
    temperature_min_celsius: float = TEMPERATURE_MIN_CELSIUS
    temperature_max_celsius: float = TEMPERATURE_MAX_CELSIUS
    measured_future_tolerance_seconds: float = MEASURED_FUTURE_TOLERANCE_SECONDS
    earliest_measured_at: datetime = EARLIEST_MEASURED_AT

    def __post_init__(self) -> None:
        for lower, upper in _BOUND_PAIRS:
            if getattr(self, lower) >= getattr(self, upper):
                raise ValueError(f"{lower} must be below {upper}")
        if self.measured_future_tolerance_seconds < 0:
            raise ValueError("measured_future_tolerance_seconds must not be negative")
        if self.earliest_measured_at.tzinfo is None:
            raise ValueError("earliest_measured_at needs a UTC offset")


_BOUND_PAIRS: Final = tuple(
    (f"{quantity}_min_{unit}".rstrip("_"), f"{quantity}_max_{unit}".rstrip("_"))
    for quantity, unit in (
        ("glucose_meter", "mmol_per_l"),
        ("cgm_glucose", "mmol_per_l"),
        ("systolic", "mmhg"),
        ("diastolic", "mmhg"),
        ("heart_rate", "per_min"),
        ("rr_interval", "seconds"),
        ("spo2", "percent"),
        ("weight", "kg"),
        ("height", "m"),
        ("bmi", ""),
        ("temperature", "celsius"),
    )
)
"""Each (lower, upper) pair of :class:`PlausibilityLimits` fields."""

DEFAULT_LIMITS: Final = PlausibilityLimits()


@dataclass(frozen=True, slots=True)
class Implausibility:
    """Why a reading cannot be a real measurement.

    Attributes:
        rule: the rule that failed.
        field: the reading's field, as a path (``values.systolic``, ``measured_at``).
        detail: the value and the bound it broke, for the operator reviewing quarantine.
    """

    rule: Rule
    field: str
    detail: str

    def describe(self) -> str:
        """``rule: field: detail`` — what the quarantine stores as its detail."""
        return f"{self.rule}: {self.field}: {self.detail}"


def _outside(value: float, low: float, high: float) -> bool:
    return value < low - _FLOAT_TOLERANCE or value > high + _FLOAT_TOLERANCE


def _range_check(
    rule: Rule, field: str, value: float | None, low: float, high: float, unit: str
) -> Implausibility | None:
    if value is None or not _outside(value, low, high):
        return None
    return Implausibility(rule, field, f"{value:g} {unit} is outside {low:.4g}–{high:.4g} {unit}")


def check_glucose(values: GlucoseValues, limits: PlausibilityLimits) -> Implausibility | None:
    """A meter's result must lie within what meters can report (HI/LO sit at the limit)."""
    return _range_check(
        Rule.GLUCOSE_OUT_OF_METER_RANGE,
        "values.glucose",
        values.glucose,
        limits.glucose_meter_min_mmol_per_l,
        limits.glucose_meter_max_mmol_per_l,
        "mmol/L",
    )


def check_cgm_glucose(
    values: CgmGlucoseValues, limits: PlausibilityLimits
) -> Implausibility | None:
    """A CGM value must lie within what sensors report."""
    return _range_check(
        Rule.CGM_GLUCOSE_OUT_OF_SENSOR_RANGE,
        "values.glucose",
        values.glucose,
        limits.cgm_glucose_min_mmol_per_l,
        limits.cgm_glucose_max_mmol_per_l,
        "mmol/L",
    )


def _check_pulse(
    field: str, pulse: float | None, limits: PlausibilityLimits
) -> Implausibility | None:
    return _range_check(
        Rule.PULSE_OUT_OF_RANGE,
        field,
        pulse,
        limits.heart_rate_min_per_min,
        limits.heart_rate_max_per_min,
        "/min",
    )


def check_blood_pressure(
    values: BloodPressureValues, limits: PlausibilityLimits
) -> Implausibility | None:
    """Cuff pressures within the cuff's range, systolic above diastolic, MAP between them."""
    found = _range_check(
        Rule.SYSTOLIC_OUT_OF_RANGE,
        "values.systolic",
        values.systolic,
        limits.systolic_min_mmhg,
        limits.systolic_max_mmhg,
        "mmHg",
    ) or _range_check(
        Rule.DIASTOLIC_OUT_OF_RANGE,
        "values.diastolic",
        values.diastolic,
        limits.diastolic_min_mmhg,
        limits.diastolic_max_mmhg,
        "mmHg",
    )
    if found is not None:
        return found
    if values.systolic <= values.diastolic:
        return Implausibility(
            Rule.SYSTOLIC_NOT_ABOVE_DIASTOLIC,
            "values.systolic",
            f"systolic {values.systolic:g} mmHg is not above diastolic {values.diastolic:g} mmHg",
        )
    mean = values.mean_arterial
    if mean is not None and not values.diastolic <= mean <= values.systolic:
        return Implausibility(
            Rule.MEAN_ARTERIAL_OUTSIDE_CUFF_PRESSURES,
            "values.mean_arterial",
            f"{mean:g} mmHg is outside diastolic–systolic "
            f"{values.diastolic:g}–{values.systolic:g} mmHg",
        )
    return _check_pulse("values.pulse", values.pulse, limits)


def check_heart_rate(values: HeartRateValues, limits: PlausibilityLimits) -> Implausibility | None:
    """Heart rate and each RR interval within what a beating heart produces."""
    found = _range_check(
        Rule.HEART_RATE_OUT_OF_RANGE,
        "values.heart_rate",
        values.heart_rate,
        limits.heart_rate_min_per_min,
        limits.heart_rate_max_per_min,
        "/min",
    )
    if found is not None:
        return found
    for index, interval in enumerate(values.rr_intervals or ()):
        found = _range_check(
            Rule.RR_INTERVAL_OUT_OF_RANGE,
            f"values.rr_intervals[{index}]",
            interval,
            limits.rr_interval_min_seconds,
            limits.rr_interval_max_seconds,
            "s",
        )
        if found is not None:
            return found
    return None


def check_spo2(values: Spo2Values, limits: PlausibilityLimits) -> Implausibility | None:
    """Saturation at most 100 % and above the artefact floor; pulse plausible."""
    return _range_check(
        Rule.SPO2_OUT_OF_RANGE,
        "values.spo2",
        values.spo2,
        limits.spo2_min_percent,
        limits.spo2_max_percent,
        "%",
    ) or _check_pulse("values.pulse", values.pulse, limits)


def check_weight(values: WeightValues, limits: PlausibilityLimits) -> Implausibility | None:
    """Weight within what home scales weigh; typed-in height and BMI humanly possible."""
    return (
        _range_check(
            Rule.WEIGHT_OUT_OF_RANGE,
            "values.weight",
            values.weight,
            limits.weight_min_kg,
            limits.weight_max_kg,
            "kg",
        )
        or _range_check(
            Rule.HEIGHT_OUT_OF_RANGE,
            "values.height",
            values.height,
            limits.height_min_m,
            limits.height_max_m,
            "m",
        )
        or _range_check(
            Rule.BMI_OUT_OF_RANGE, "values.bmi", values.bmi, limits.bmi_min, limits.bmi_max, "kg/m²"
        )
    )


def check_body_temperature(
    values: BodyTemperatureValues, limits: PlausibilityLimits
) -> Implausibility | None:
    """Temperature within what a living body can have."""
    return _range_check(
        Rule.TEMPERATURE_OUT_OF_RANGE,
        "values.temperature",
        values.temperature,
        limits.temperature_min_celsius,
        limits.temperature_max_celsius,
        "°C",
    )


def check_times(
    reading: Reading, *, now: datetime, limits: PlausibilityLimits
) -> Implausibility | None:
    """``measured_at`` after 2000, not after the gateway received it, not in the future.

    Both later-than checks allow ``measured_future_tolerance_seconds`` for clock skew
    between device, gateway and this server.
    """
    tolerance = timedelta(seconds=limits.measured_future_tolerance_seconds)
    measured_at = reading.measured_at
    if measured_at < limits.earliest_measured_at:
        return Implausibility(
            Rule.MEASURED_TOO_EARLY,
            "measured_at",
            f"{measured_at.isoformat()} is before {limits.earliest_measured_at.isoformat()}",
        )
    if measured_at > now + tolerance:
        return Implausibility(
            Rule.MEASURED_IN_FUTURE,
            "measured_at",
            f"{measured_at.isoformat()} is {(measured_at - now).total_seconds():.0f} s after "
            f"this server's clock (tolerance {tolerance.total_seconds():.0f} s)",
        )
    if measured_at > reading.received_at + tolerance:
        return Implausibility(
            Rule.MEASURED_AFTER_RECEIVED,
            "measured_at",
            f"{measured_at.isoformat()} is "
            f"{(measured_at - reading.received_at).total_seconds():.0f} s after the gateway "
            f"received it (tolerance {tolerance.total_seconds():.0f} s)",
        )
    return None


def check_values(reading: Reading, limits: PlausibilityLimits) -> Implausibility | None:
    """The value rules of the reading's kind."""
    values = reading.values
    match values:
        case GlucoseValues():
            return check_glucose(values, limits)
        case CgmGlucoseValues():
            return check_cgm_glucose(values, limits)
        case BloodPressureValues():
            return check_blood_pressure(values, limits)
        case HeartRateValues():
            return check_heart_rate(values, limits)
        case Spo2Values():
            return check_spo2(values, limits)
        case WeightValues():
            return check_weight(values, limits)
        case BodyTemperatureValues():
            return check_body_temperature(values, limits)
    raise TypeError(f"no plausibility rules for {type(values).__name__}")


def check_plausibility(
    reading: Reading, *, now: datetime, limits: PlausibilityLimits = DEFAULT_LIMITS
) -> Implausibility | None:
    """The first plausibility rule the reading breaks, or ``None`` if it is plausible.

    Args:
        reading: a reading that passed the wire contract.
        now: this server's clock, UTC.
        limits: the bounds to apply.
    """
    return check_times(reading, now=now, limits=limits) or check_values(reading, limits)


# -- what the rules are, as data (for the published table; behaviour is above) -------------


@dataclass(frozen=True, slots=True)
class RuleDescription:
    """One plausibility rule as documentation: where it applies, its limits, why.

    Attributes:
        rule: the rule's name (stored as the start of the quarantine detail).
        kinds: the reading kinds it applies to (empty: every kind).
        field: the reading's field it looks at (``values.systolic``, ``measured_at``).
        reason: why the limit is where it is.
        lower: the :class:`PlausibilityLimits` attribute of the inclusive lower bound.
        upper: the :class:`PlausibilityLimits` attribute of the inclusive upper bound.
        unit: the unit of the bounds (the contract's canonical unit of the field).
        condition: the rule in words, for rules that compare fields instead of bounds.
    """

    rule: Rule
    kinds: tuple[Kind, ...]
    field: str
    reason: str
    lower: str | None = None
    upper: str | None = None
    unit: str = ""
    condition: str = ""


RULE_DESCRIPTIONS: Final = (
    RuleDescription(
        Rule.MEASURED_TOO_EARLY,
        (),
        "measured_at",
        "a device clock reset to its factory date; the gateway corrects clocks it can read",
        lower="earliest_measured_at",
    ),
    RuleDescription(
        Rule.MEASURED_IN_FUTURE,
        (),
        "measured_at",
        "absorbs a gateway clock not yet synchronised; catches a device clock a day or a "
        "year ahead",
        upper="measured_future_tolerance_seconds",
        unit="s",
        condition="at most the tolerance after this server's clock",
    ),
    RuleDescription(
        Rule.MEASURED_AFTER_RECEIVED,
        (),
        "measured_at",
        "a reading cannot be measured after the gateway received it",
        upper="measured_future_tolerance_seconds",
        unit="s",
        condition="at most the tolerance after the reading's received_at",
    ),
    RuleDescription(
        Rule.GLUCOSE_OUT_OF_METER_RANGE,
        (Kind.GLUCOSE,),
        "values.glucose",
        "the widest range home meters report (10–600 mg/dL), widened by half a display "
        "step; HI/LO results carry the meter's limit",
        lower="glucose_meter_min_mmol_per_l",
        upper="glucose_meter_max_mmol_per_l",
        unit="mmol/L",
    ),
    RuleDescription(
        Rule.CGM_GLUCOSE_OUT_OF_SENSOR_RANGE,
        (Kind.CGM_GLUCOSE,),
        "values.glucose",
        "sensors report 40–500 mg/dL at most, widened by half a display step",
        lower="cgm_glucose_min_mmol_per_l",
        upper="cgm_glucose_max_mmol_per_l",
        unit="mmol/L",
    ),
    RuleDescription(
        Rule.SYSTOLIC_OUT_OF_RANGE,
        (Kind.BLOOD_PRESSURE,),
        "values.systolic",
        "oscillometric cuffs detect nothing below ≈ 40 mmHg and inflate to 300 mmHg at most",
        lower="systolic_min_mmhg",
        upper="systolic_max_mmhg",
        unit="mmHg",
    ),
    RuleDescription(
        Rule.DIASTOLIC_OUT_OF_RANGE,
        (Kind.BLOOD_PRESSURE,),
        "values.diastolic",
        "below ≈ 20 mmHg no cuff reports a diastolic value; the cuff's range caps the top",
        lower="diastolic_min_mmhg",
        upper="diastolic_max_mmhg",
        unit="mmHg",
    ),
    RuleDescription(
        Rule.SYSTOLIC_NOT_ABOVE_DIASTOLIC,
        (Kind.BLOOD_PRESSURE,),
        "values.systolic",
        "a pressure wave's peak is above its trough; otherwise the measurement failed",
        condition="systolic > diastolic",
    ),
    RuleDescription(
        Rule.MEAN_ARTERIAL_OUTSIDE_CUFF_PRESSURES,
        (Kind.BLOOD_PRESSURE,),
        "values.mean_arterial",
        "the mean of a pressure wave lies between its trough and its peak",
        condition="diastolic ≤ mean_arterial ≤ systolic (when sent)",
    ),
    RuleDescription(
        Rule.SPO2_OUT_OF_RANGE,
        (Kind.SPO2,),
        "values.spo2",
        "oximeters are calibrated down to 70 %; far lower is probe-off (many send 0); "
        "above 100 % is impossible",
        lower="spo2_min_percent",
        upper="spo2_max_percent",
        unit="%",
    ),
    RuleDescription(
        Rule.PULSE_OUT_OF_RANGE,
        (Kind.BLOOD_PRESSURE, Kind.SPO2),
        "values.pulse",
        "the same bounds as heart_rate: a cuff's or oximeter's pulse is a heart rate",
        lower="heart_rate_min_per_min",
        upper="heart_rate_max_per_min",
        unit="/min",
    ),
    RuleDescription(
        Rule.HEART_RATE_OUT_OF_RANGE,
        (Kind.HEART_RATE,),
        "values.heart_rate",
        "below 20 /min a person is in arrest (straps send 0 for no skin contact); above "
        "the fastest conducted rhythms",
        lower="heart_rate_min_per_min",
        upper="heart_rate_max_per_min",
        unit="/min",
    ),
    RuleDescription(
        Rule.RR_INTERVAL_OUT_OF_RANGE,
        (Kind.HEART_RATE,),
        "values.rr_intervals[i]",
        "each beat-to-beat interval of the plausible heart rates (60 s / 300 to 60 s / 20)",
        lower="rr_interval_min_seconds",
        upper="rr_interval_max_seconds",
        unit="s",
    ),
    RuleDescription(
        Rule.WEIGHT_OUT_OF_RANGE,
        (Kind.WEIGHT,),
        "values.weight",
        "below a newborn (a pet, a hand); above the capacity of home and bariatric scales",
        lower="weight_min_kg",
        upper="weight_max_kg",
        unit="kg",
    ),
    RuleDescription(
        Rule.HEIGHT_OUT_OF_RANGE,
        (Kind.WEIGHT,),
        "values.height",
        "a typed-in height: below a newborn's length or above the tallest person recorded",
        lower="height_min_m",
        upper="height_max_m",
        unit="m",
    ),
    RuleDescription(
        Rule.BMI_OUT_OF_RANGE,
        (Kind.WEIGHT,),
        "values.bmi",
        "far outside the lowest and highest BMI ever recorded",
        lower="bmi_min",
        upper="bmi_max",
        unit="kg/m²",
    ),
    RuleDescription(
        Rule.TEMPERATURE_OUT_OF_RANGE,
        (Kind.BODY_TEMPERATURE,),
        "values.temperature",
        "outside the body temperatures a person survives (room air, a kettle)",
        lower="temperature_min_celsius",
        upper="temperature_max_celsius",
        unit="°C",
    ),
)
"""Every :class:`Rule`. Filtered to one kind, they are in the order
:func:`check_plausibility` applies them (time rules first, then the kind's value rules):
the first rule a reading breaks is the one reported."""
