"""Glucose Service: Glucose Measurement 0x2A18, Measurement Context 0x2A34, Feature 0x2A51.

Byte layouts and the reasons for these decisions: ``docs/devices.md``. Decisions:

* **Scale.** The concentration SFLOAT is read per the spec, in SI base units: kg/L (flags
  bit 2 = 0) or mol/L (bit 2 = 1). It is converted to mmol/L only through
  :func:`readings.units.to_canonical`; ``source_unit`` is ``kg/L`` or ``mol/L``. Nothing is
  ever rescaled to "fix" a meter: a value outside 0.5–55 mmol/L is flagged
  ``glucose_out_of_range`` and the record is a ``DEVICE_ERROR`` (the number is kept so an
  engineer can see what was sent). That range encloses every meter's measuring range
  (typically 10/20–600 mg/dL, 0.6–33.3 mmol/L) and catches the scale bugs seen in public
  firmware (exponent −3, i.e. 100x too high).
* **Time.** ``device_time`` is the user-facing time, Base Time **plus** Time Offset
  (xDrip subtracts: a bug). The offset itself stays in the context as
  ``time_offset_minutes``.
* **Control solution** (sample type 10 or sample location 4) is ``CONTROL_SOLUTION`` and
  flagged ``control_solution``: never forwarded as a patient reading.
* **HI/LO** (status bits 5/6) stay patient readings, flagged ``result_high``/``result_low``
  with the meter's range limit as the value: they feed the most urgent alerts.
* Status bits saying the result itself is invalid (sensor malfunction, insufficient
  sample, strip insertion or type error, temperature out of range, strip pulled too soon,
  general device fault) make the record a ``DEVICE_ERROR``; battery low and time fault are
  flags only.
* **Context amounts** stay SI (``carbohydrate_kg``, ``medication_kg`` or
  ``medication_l``): the GATT resolution hints (grams, mg, mL) are for display only.
* Strictness: a field the flags promise must be there, else the value is truncated
  (``InvalidFrame`` naming field and offset). Bytes after the last defined field (Nordic
  sends 17-byte contexts with zero padding) are ignored and counted as ``trailing_bytes``
  (in a measurement's context; a context value's count stays in its decoded fields, not
  in the reading it annotates). RFU bits are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from device_drivers.gatt._common import (
    ContextValue,
    device_time_of,
    flag_names,
    note_trailing_bytes,
)
from device_drivers.gatt._wire import (
    FieldReader,
    pack_sint,
    pack_uint,
    padding,
    require_together,
)
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.errors import UnencodableValue
from device_drivers.gatt.ieee11073 import (
    DecodedFloat,
    SpecialValue,
    encode_sfloat,
    read_sfloat,
)
from device_drivers.measurement import Disposition, Measurement
from readings.model import GlucoseValues, Kind
from readings.units import Unit, to_canonical

GLUCOSE_PLAUSIBLE_MIN_MMOL_PER_L: Final = 0.5
"""Below every meter's measuring range (LO is reported at 10–20 mg/dL, 0.6–1.1 mmol/L)."""
GLUCOSE_PLAUSIBLE_MAX_MMOL_PER_L: Final = 55.0
"""Above every meter's measuring range (HI at 600 mg/dL, 33.3 mmol/L) with margin; a
value beyond is a scale or firmware error, not a patient's glucose."""

# Glucose Measurement flags (uint8).
_GM_TIME_OFFSET: Final = 0x01
_GM_CONCENTRATION: Final = 0x02
_GM_UNIT_MOL_PER_L: Final = 0x04
_GM_SENSOR_STATUS: Final = 0x08
_GM_CONTEXT_FOLLOWS: Final = 0x10

# Glucose Measurement Context flags (uint8).
_GC_CARBOHYDRATE: Final = 0x01
_GC_MEAL: Final = 0x02
_GC_TESTER_HEALTH: Final = 0x04
_GC_EXERCISE: Final = 0x08
_GC_MEDICATION: Final = 0x10
_GC_MEDICATION_UNIT_LITRES: Final = 0x20
_GC_HBA1C: Final = 0x40
_GC_EXTENDED_FLAGS: Final = 0x80

SAMPLE_TYPE_CONTROL_SOLUTION: Final = 10
SAMPLE_LOCATION_CONTROL_SOLUTION: Final = 4
EXERCISE_DURATION_OVERRUN: Final = 0xFFFF

SAMPLE_TYPE_NAMES: Final[dict[int, str]] = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
"""Type nibble; 0 and 11–15 are RFU and left out of the context."""
SAMPLE_LOCATION_NAMES: Final[dict[int, str]] = {
    1: "finger",
    2: "alternate_site",
    3: "earlobe",
    4: "control_solution",
}
"""Sample Location nibble; 15 (not available), 0 and 5–14 (RFU) are left out."""
CARBOHYDRATE_NAMES: Final[dict[int, str]] = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEAL_NAMES: Final[dict[int, str]] = {
    1: "preprandial",
    2: "postprandial",
    3: "fasting",
    4: "casual",
    5: "bedtime",
}
TESTER_NAMES: Final[dict[int, str]] = {
    1: "self",
    2: "health_care_professional",
    3: "lab_test",
}
HEALTH_NAMES: Final[dict[int, str]] = {
    1: "minor_issues",
    2: "major_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_issues",
}
MEDICATION_NAMES: Final[dict[int, str]] = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}


class GlucoseSensorStatus(IntFlag):
    """Sensor Status Annunciation (bits 12–15 RFU)."""

    BATTERY_LOW = 1 << 0
    SENSOR_MALFUNCTION = 1 << 1
    SAMPLE_SIZE_INSUFFICIENT = 1 << 2
    STRIP_INSERTION_ERROR = 1 << 3
    STRIP_TYPE_INCORRECT = 1 << 4
    RESULT_HIGH = 1 << 5
    RESULT_LOW = 1 << 6
    SENSOR_TEMPERATURE_HIGH = 1 << 7
    SENSOR_TEMPERATURE_LOW = 1 << 8
    STRIP_PULLED_TOO_SOON = 1 << 9
    GENERAL_DEVICE_FAULT = 1 << 10
    TIME_FAULT = 1 << 11


_SENSOR_STATUS_MASK: Final = 0x0FFF
_RESULT_INVALIDATING_STATUS: Final = (
    GlucoseSensorStatus.SENSOR_MALFUNCTION
    | GlucoseSensorStatus.SAMPLE_SIZE_INSUFFICIENT
    | GlucoseSensorStatus.STRIP_INSERTION_ERROR
    | GlucoseSensorStatus.STRIP_TYPE_INCORRECT
    | GlucoseSensorStatus.SENSOR_TEMPERATURE_HIGH
    | GlucoseSensorStatus.SENSOR_TEMPERATURE_LOW
    | GlucoseSensorStatus.STRIP_PULLED_TOO_SOON
    | GlucoseSensorStatus.GENERAL_DEVICE_FAULT
)


class GlucoseFeature(IntFlag):
    """Glucose Feature 0x2A51: which Sensor Status bits the meter can ever set (11–15 RFU)."""

    LOW_BATTERY_DETECTION = 1 << 0
    SENSOR_MALFUNCTION_DETECTION = 1 << 1
    SAMPLE_SIZE_DETECTION = 1 << 2
    STRIP_INSERTION_ERROR_DETECTION = 1 << 3
    STRIP_TYPE_ERROR_DETECTION = 1 << 4
    RESULT_HIGH_LOW_DETECTION = 1 << 5
    TEMPERATURE_HIGH_LOW_DETECTION = 1 << 6
    READ_INTERRUPT_DETECTION = 1 << 7
    GENERAL_DEVICE_FAULT = 1 << 8
    TIME_FAULT = 1 << 9
    MULTIPLE_BOND_SUPPORTED = 1 << 10


_GLUCOSE_FEATURE_MASK: Final = 0x07FF


@dataclass(frozen=True, slots=True)
class GlucoseMeasurementFields:
    """The fields of one Glucose Measurement value, as sent.

    ``concentration``, ``sample_type`` and ``sample_location`` share flags bit 1: all set
    or all ``None``.
    """

    sequence_number: int
    base_time: DateTimeFields
    time_offset_minutes: int | None = None
    concentration: DecodedFloat | None = None
    """kg/L, or mol/L when ``unit_mol_per_l``."""
    unit_mol_per_l: bool = False
    sample_type: int | None = None
    sample_location: int | None = None
    sensor_status: GlucoseSensorStatus | None = None
    context_follows: bool = False
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


@dataclass(frozen=True, slots=True)
class GlucoseContextFields:
    """The fields of one Glucose Measurement Context value, as sent.

    Pairs sharing a flag bit (carbohydrate id + amount, tester + health, exercise duration
    + intensity, medication id + amount) are all set or all ``None``.
    """

    sequence_number: int
    extended_flags: int | None = None
    """All bits RFU; kept only so a re-encoded value is identical."""
    carbohydrate_id: int | None = None
    carbohydrate_kg: DecodedFloat | None = None
    meal: int | None = None
    tester: int | None = None
    health: int | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_percent: int | None = None
    medication_id: int | None = None
    medication: DecodedFloat | None = None
    """kg, or L when ``medication_unit_litres``."""
    medication_unit_litres: bool = False
    hba1c_percent: DecodedFloat | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


def parse_glucose_measurement_fields(data: bytes) -> GlucoseMeasurementFields:
    """Decode a Glucose Measurement (0x2A18) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    sequence_number = reader.uint16("sequence_number")
    base_time = read_date_time(reader, "base_time")
    time_offset = reader.sint(2, "time_offset") if flags & _GM_TIME_OFFSET else None
    concentration: DecodedFloat | None = None
    sample_type = sample_location = None
    if flags & _GM_CONCENTRATION:
        concentration = read_sfloat(reader, "glucose_concentration")
        type_location = reader.uint8("type_sample_location")
        sample_type, sample_location = type_location & 0x0F, type_location >> 4
    sensor_status = None
    if flags & _GM_SENSOR_STATUS:
        raw_status = reader.uint16("sensor_status_annunciation")
        sensor_status = GlucoseSensorStatus(raw_status & _SENSOR_STATUS_MASK)
    return GlucoseMeasurementFields(
        sequence_number=sequence_number,
        base_time=base_time,
        time_offset_minutes=time_offset,
        concentration=concentration,
        unit_mol_per_l=bool(flags & _GM_UNIT_MOL_PER_L),
        sample_type=sample_type,
        sample_location=sample_location,
        sensor_status=sensor_status,
        context_follows=bool(flags & _GM_CONTEXT_FOLLOWS),
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_glucose_measurement(fields: GlucoseMeasurementFields) -> bytes:
    """The Glucose Measurement value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit, or a flag group is only partly set.
    """
    has_concentration = require_together(
        "glucose_concentration", fields.concentration, fields.sample_type, fields.sample_location
    )
    flags = (
        (_GM_TIME_OFFSET if fields.time_offset_minutes is not None else 0)
        | (_GM_CONCENTRATION if has_concentration else 0)
        | (_GM_UNIT_MOL_PER_L if fields.unit_mol_per_l else 0)
        | (_GM_SENSOR_STATUS if fields.sensor_status is not None else 0)
        | (_GM_CONTEXT_FOLLOWS if fields.context_follows else 0)
    )
    out = bytearray([flags])
    out += pack_uint(fields.sequence_number, 2, "sequence_number")
    out += encode_date_time(fields.base_time, field="base_time")
    if fields.time_offset_minutes is not None:
        out += pack_sint(fields.time_offset_minutes, 2, "time_offset")
    if fields.concentration is not None:
        assert fields.sample_type is not None
        assert fields.sample_location is not None
        for name, nibble in (
            ("sample_type", fields.sample_type),
            ("sample_location", fields.sample_location),
        ):
            if not 0 <= nibble <= 0x0F:
                raise UnencodableValue(f"{nibble} does not fit in a nibble", field=name)
        out += encode_sfloat(fields.concentration, field="glucose_concentration")
        out.append(fields.sample_type | fields.sample_location << 4)
    if fields.sensor_status is not None:
        out += pack_uint(int(fields.sensor_status), 2, "sensor_status_annunciation")
    out += padding(fields.trailing_bytes)
    return bytes(out)


def to_measurement(fields: GlucoseMeasurementFields) -> Measurement:
    """The measurement a Glucose Measurement record stands for (see the module's decisions)."""
    unit = Unit.MOL_PER_L if fields.unit_mol_per_l else Unit.KG_PER_L
    flags: set[str] = set(flag_names(fields.sensor_status))
    context: dict[str, ContextValue] = {}
    device_time = device_time_of(
        fields.base_time, flags, context, offset_minutes=fields.time_offset_minutes or 0
    )
    if fields.time_offset_minutes is not None:
        context["time_offset_minutes"] = fields.time_offset_minutes
    note_trailing_bytes(fields.trailing_bytes, context)
    if fields.sample_type in SAMPLE_TYPE_NAMES:
        context["sample_type"] = SAMPLE_TYPE_NAMES[fields.sample_type]
    if fields.sample_location in SAMPLE_LOCATION_NAMES:
        context["sample_location"] = SAMPLE_LOCATION_NAMES[fields.sample_location]
    control_solution = (
        fields.sample_type == SAMPLE_TYPE_CONTROL_SOLUTION
        or fields.sample_location == SAMPLE_LOCATION_CONTROL_SOLUTION
    )
    if control_solution:
        flags.add("control_solution")

    values: GlucoseValues | None = None
    disposition = Disposition.PATIENT_READING
    if fields.concentration is None:
        flags.add("glucose_unavailable")
        disposition = Disposition.DEVICE_ERROR
    elif isinstance(fields.concentration, SpecialValue):
        flags.add("glucose_unavailable")
        context["glucose_special"] = fields.concentration.value
        disposition = Disposition.DEVICE_ERROR
    else:
        mmol_per_l = to_canonical(fields.concentration, unit)
        values = GlucoseValues(glucose=mmol_per_l)
        if control_solution:
            disposition = Disposition.CONTROL_SOLUTION
        elif not GLUCOSE_PLAUSIBLE_MIN_MMOL_PER_L <= mmol_per_l <= GLUCOSE_PLAUSIBLE_MAX_MMOL_PER_L:
            flags.add("glucose_out_of_range")
            disposition = Disposition.DEVICE_ERROR
        elif (
            fields.sensor_status is not None and fields.sensor_status & _RESULT_INVALIDATING_STATUS
        ):
            disposition = Disposition.DEVICE_ERROR
    return Measurement(
        kind=Kind.GLUCOSE,
        values=values,
        source_unit=unit,
        device_time=device_time,
        seq=fields.sequence_number,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def parse_glucose_measurement(data: bytes) -> Measurement:
    """Decode a Glucose Measurement (0x2A18) value into a measurement.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    return to_measurement(parse_glucose_measurement_fields(data))


def parse_glucose_context_fields(data: bytes) -> GlucoseContextFields:
    """Decode a Glucose Measurement Context (0x2A34) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    sequence_number = reader.uint16("sequence_number")
    extended = reader.uint8("extended_flags") if flags & _GC_EXTENDED_FLAGS else None
    carbohydrate_id = carbohydrate = None
    if flags & _GC_CARBOHYDRATE:
        carbohydrate_id = reader.uint8("carbohydrate_id")
        carbohydrate = read_sfloat(reader, "carbohydrate")
    meal = reader.uint8("meal") if flags & _GC_MEAL else None
    tester = health = None
    if flags & _GC_TESTER_HEALTH:
        tester_health = reader.uint8("tester_health")
        tester, health = tester_health & 0x0F, tester_health >> 4
    duration = intensity = None
    if flags & _GC_EXERCISE:
        duration = reader.uint16("exercise_duration")
        intensity = reader.uint8("exercise_intensity")
    medication_id = medication = None
    if flags & _GC_MEDICATION:
        medication_id = reader.uint8("medication_id")
        medication = read_sfloat(reader, "medication")
    hba1c = read_sfloat(reader, "hba1c") if flags & _GC_HBA1C else None
    return GlucoseContextFields(
        sequence_number=sequence_number,
        extended_flags=extended,
        carbohydrate_id=carbohydrate_id,
        carbohydrate_kg=carbohydrate,
        meal=meal,
        tester=tester,
        health=health,
        exercise_duration_s=duration,
        exercise_intensity_percent=intensity,
        medication_id=medication_id,
        medication=medication,
        medication_unit_litres=bool(flags & _GC_MEDICATION_UNIT_LITRES),
        hba1c_percent=hba1c,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_glucose_context(fields: GlucoseContextFields) -> bytes:
    """The Glucose Measurement Context value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit, or a flag group is only partly set.
    """
    has_carbohydrate = require_together(
        "carbohydrate", fields.carbohydrate_id, fields.carbohydrate_kg
    )
    has_tester_health = require_together("tester_health", fields.tester, fields.health)
    has_exercise = require_together(
        "exercise", fields.exercise_duration_s, fields.exercise_intensity_percent
    )
    has_medication = require_together("medication", fields.medication_id, fields.medication)
    flags = (
        (_GC_CARBOHYDRATE if has_carbohydrate else 0)
        | (_GC_MEAL if fields.meal is not None else 0)
        | (_GC_TESTER_HEALTH if has_tester_health else 0)
        | (_GC_EXERCISE if has_exercise else 0)
        | (_GC_MEDICATION if has_medication else 0)
        | (_GC_MEDICATION_UNIT_LITRES if fields.medication_unit_litres else 0)
        | (_GC_HBA1C if fields.hba1c_percent is not None else 0)
        | (_GC_EXTENDED_FLAGS if fields.extended_flags is not None else 0)
    )
    out = bytearray([flags])
    out += pack_uint(fields.sequence_number, 2, "sequence_number")
    if fields.extended_flags is not None:
        out += pack_uint(fields.extended_flags, 1, "extended_flags")
    if fields.carbohydrate_id is not None and fields.carbohydrate_kg is not None:
        out += pack_uint(fields.carbohydrate_id, 1, "carbohydrate_id")
        out += encode_sfloat(fields.carbohydrate_kg, field="carbohydrate")
    if fields.meal is not None:
        out += pack_uint(fields.meal, 1, "meal")
    if fields.tester is not None and fields.health is not None:
        if not (0 <= fields.tester <= 0x0F and 0 <= fields.health <= 0x0F):
            raise UnencodableValue("tester and health are nibbles (0–15)", field="tester_health")
        out.append(fields.tester | fields.health << 4)
    if fields.exercise_duration_s is not None and fields.exercise_intensity_percent is not None:
        out += pack_uint(fields.exercise_duration_s, 2, "exercise_duration")
        out += pack_uint(fields.exercise_intensity_percent, 1, "exercise_intensity")
    if fields.medication_id is not None and fields.medication is not None:
        out += pack_uint(fields.medication_id, 1, "medication_id")
        out += encode_sfloat(fields.medication, field="medication")
    if fields.hba1c_percent is not None:
        out += encode_sfloat(fields.hba1c_percent, field="hba1c")
    out += padding(fields.trailing_bytes)
    return bytes(out)


def context_entries(fields: GlucoseContextFields) -> dict[str, ContextValue]:
    """The reading-context entries a Glucose Measurement Context contributes.

    Codes are named (``meal: "preprandial"``); RFU and "not available" codes and special
    SFLOATs are left out; amounts stay in SI units.
    """
    entries: dict[str, ContextValue] = {}

    def add_name(key: str, code: int | None, names: dict[int, str]) -> None:
        if code is not None and code in names:
            entries[key] = names[code]

    def add_number(key: str, value: DecodedFloat | None) -> None:
        if value is not None and not isinstance(value, SpecialValue):
            entries[key] = value

    add_name("carbohydrate", fields.carbohydrate_id, CARBOHYDRATE_NAMES)
    add_number("carbohydrate_kg", fields.carbohydrate_kg)
    add_name("meal", fields.meal, MEAL_NAMES)
    add_name("tester", fields.tester, TESTER_NAMES)
    add_name("health", fields.health, HEALTH_NAMES)
    if fields.exercise_duration_s == EXERCISE_DURATION_OVERRUN:
        entries["exercise_duration_overrun"] = True
    elif fields.exercise_duration_s is not None:
        entries["exercise_duration_s"] = fields.exercise_duration_s
    if fields.exercise_intensity_percent is not None:
        entries["exercise_intensity_percent"] = fields.exercise_intensity_percent
    add_name("medication", fields.medication_id, MEDICATION_NAMES)
    medication_key = "medication_l" if fields.medication_unit_litres else "medication_kg"
    add_number(medication_key, fields.medication)
    add_number("hba1c_percent", fields.hba1c_percent)
    return entries


def join_glucose_context(
    measurements: Iterable[Measurement], contexts: Iterable[GlucoseContextFields]
) -> list[Measurement]:
    """Attach each context to the measurement with the same sequence number.

    Measurements without a context are returned unchanged; contexts without a measurement
    are dropped (the meter annotates only records it sends). When two contexts carry the
    same sequence number the later one wins, as it would on the meter's display.
    """
    by_sequence = {context.sequence_number: context_entries(context) for context in contexts}
    joined: list[Measurement] = []
    for measurement in measurements:
        entries = by_sequence.get(measurement.seq) if measurement.seq is not None else None
        if entries:
            measurement = dataclasses.replace(
                measurement, context={**measurement.context, **entries}
            )
        joined.append(measurement)
    return joined


def parse_glucose_feature(data: bytes) -> GlucoseFeature:
    """Decode Glucose Feature (0x2A51); RFU bits are dropped.

    Raises:
        InvalidFrame: fewer than two bytes.
    """
    return GlucoseFeature(FieldReader(data).uint16("glucose_feature") & _GLUCOSE_FEATURE_MASK)


def encode_glucose_feature(features: GlucoseFeature) -> bytes:
    """The Glucose Feature value for ``features``."""
    return pack_uint(int(features), 2, "glucose_feature")
