"""Glucose Measurement 0x2A18, Context 0x2A34 and Feature 0x2A51 (docs/devices.md).

Vectors are the Nordic example plus values built by hand from the field tables;
each comment derives the expected value from the spec. Glucose in mmol/L uses
1 mmol/L = 18.0156 mg/dL (molar mass 180.156 g/mol).
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    DateTimeFields,
    GlucoseContextFields,
    GlucoseFeature,
    GlucoseMeasurementFields,
    GlucoseSensorStatus,
    SpecialValue,
    UnencodableValue,
    decode_characteristic,
    encode_glucose_context,
    encode_glucose_feature,
    encode_glucose_measurement,
    join_glucose_context,
    parse_glucose_context_fields,
    parse_glucose_feature,
    parse_glucose_measurement,
    parse_glucose_measurement_fields,
)
from device_drivers.measurement import Disposition, Measurement
from readings.model import GlucoseValues, Kind
from readings.units import Unit
from tests.device_drivers.gatt_strategies import (
    date_times,
    flags_of,
    nibbles,
    sfloats,
    uint8,
    uint16,
)

MG_PER_DL_PER_MMOL_PER_L = 18.0156
# 2024-03-15 08:30:00: year 0x07E8, month 3, day 0x0F, 08:1E:00.
BASE_TIME = "E8 07 03 0F 08 1E 00"
BASE_DATETIME = datetime(2024, 3, 15, 8, 30)


def _values(measurement: Measurement) -> dict[str, object]:
    assert measurement.values is not None
    return dict(measurement.values.as_dict())


def _glucose(measurement_wire: str) -> float:
    measurement = parse_glucose_measurement(bytes.fromhex(measurement_wire))
    assert isinstance(measurement.values, GlucoseValues)
    return measurement.values.glucose


def test_nordic_example() -> None:
    wire = bytes.fromhex("1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01")
    fields = parse_glucose_measurement_fields(wire)
    # Flags 0x1B: time offset, concentration, kg/L (bit 2 clear), status, context follows.
    assert fields == GlucoseMeasurementFields(
        sequence_number=1,
        base_time=DateTimeFields(2019, 2, 27, 11, 10, 30),
        time_offset_minutes=-5,  # FB FF
        concentration=30.0,  # 1E 00: 30 x 10^0 kg/L, a parser test value
        unit_mol_per_l=False,
        sample_type=2,  # 0x12 low nibble: capillary plasma
        sample_location=1,  # high nibble: finger
        sensor_status=GlucoseSensorStatus.BATTERY_LOW
        | GlucoseSensorStatus.SAMPLE_SIZE_INSUFFICIENT
        | GlucoseSensorStatus.SENSOR_TEMPERATURE_LOW,  # 0x0105: bits 0, 2, 8
        context_follows=True,
    )
    measurement = parse_glucose_measurement(wire)
    assert measurement.kind is Kind.GLUCOSE
    assert measurement.seq == 1
    assert measurement.source_unit is Unit.KG_PER_L
    # User-facing time = base + offset: 11:10:30 - 5 min (xDrip subtracts: a bug).
    assert measurement.device_time == datetime(2019, 2, 27, 11, 5, 30)
    assert measurement.context == {
        "time_offset_minutes": -5,
        "sample_type": "capillary_plasma",
        "sample_location": "finger",
    }
    # 30 kg/L = 3 000 000 mg/dL: out of range; insufficient sample invalidates anyway.
    assert measurement.flags == {
        "battery_low",
        "sample_size_insufficient",
        "sensor_temperature_low",
        "glucose_out_of_range",
    }
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert _values(measurement) == pytest.approx({"glucose": 3_000_000 / 18.0156})


def test_kg_per_litre_100_mg_per_dl() -> None:
    # Flags 0x02; seq 7; 64 B0 = 100 x 10^-5 kg/L = 100 mg/dL; 0x12 plasma/finger.
    measurement = parse_glucose_measurement(bytes.fromhex(f"02 07 00 {BASE_TIME} 64 B0 12"))
    assert _values(measurement) == pytest.approx({"glucose": 100 / MG_PER_DL_PER_MMOL_PER_L})
    assert measurement.source_unit is Unit.KG_PER_L
    assert measurement.device_time == BASE_DATETIME
    assert measurement.seq == 7
    assert measurement.disposition is Disposition.PATIENT_READING
    assert measurement.flags == frozenset()


@pytest.mark.parametrize(
    ("concentration", "mmol_per_l"),
    [
        ("26 B2", 5.5),  # 550 x 10^-5 mol/L = 5.50 mmol/L (2012 nRF51 sample)
        ("37 C0", 5.5),  # 55 x 10^-4 mol/L = 5.5 mmol/L
        ("0C C0", 1.2),  # 12 x 10^-4 mol/L = 1.2 mmol/L
    ],
)
def test_mol_per_litre(concentration: str, mmol_per_l: float) -> None:
    # Flags 0x06: concentration + mol/L.
    wire = f"06 01 00 {BASE_TIME} {concentration} 12"
    assert _glucose(wire) == pytest.approx(mmol_per_l)
    assert parse_glucose_measurement(bytes.fromhex(wire)).source_unit is Unit.MOL_PER_L


def test_scale_bug_is_flagged_not_rescaled() -> None:
    # 26 D2 = 550 x 10^-3 mol/L = 550 mmol/L (the later nRF5 samples' exponent).
    measurement = parse_glucose_measurement(bytes.fromhex(f"06 01 00 {BASE_TIME} 26 D2 12"))
    assert _values(measurement) == pytest.approx({"glucose": 550.0})
    assert "glucose_out_of_range" in measurement.flags
    assert measurement.disposition is Disposition.DEVICE_ERROR


def test_minimal_record_without_concentration_is_a_device_error() -> None:
    # 10 bytes, flags 0: sequence 0x0102 = 258 and base time only.
    measurement = parse_glucose_measurement(bytes.fromhex(f"00 02 01 {BASE_TIME}"))
    assert measurement.seq == 258
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.flags == {"glucose_unavailable"}
    assert measurement.device_time == BASE_DATETIME


def test_positive_time_offset_is_added() -> None:
    # Flags 0x03; offset 5A 00 = +90 min → 08:30 + 1:30 = 10:00.
    measurement = parse_glucose_measurement(bytes.fromhex(f"03 01 00 {BASE_TIME} 5A 00 64 B0 12"))
    assert measurement.device_time == datetime(2024, 3, 15, 10, 0)
    assert measurement.context["time_offset_minutes"] == 90


def test_unknown_base_date_keeps_raw_time() -> None:
    measurement = parse_glucose_measurement(bytes.fromhex("02 01 00 00 00 00 00 08 1E 00 64 B0 12"))
    assert measurement.device_time is None
    assert measurement.context["device_time_raw"] == "0000-00-00T08:30:00"
    assert measurement.disposition is Disposition.PATIENT_READING


@pytest.mark.parametrize(
    ("type_location", "sample_type", "sample_location"),
    [
        ("1A", "control_solution", "finger"),  # type 10 (control solution), location 1
        ("42", "capillary_plasma", "control_solution"),  # type 2, location 4 (control)
    ],
)
def test_control_solution_is_never_a_patient_reading(
    type_location: str, sample_type: str, sample_location: str
) -> None:
    measurement = parse_glucose_measurement(
        bytes.fromhex(f"02 01 00 {BASE_TIME} 64 B0 {type_location}")
    )
    assert measurement.disposition is Disposition.CONTROL_SOLUTION
    assert "control_solution" in measurement.flags
    assert measurement.context["sample_type"] == sample_type
    assert measurement.context["sample_location"] == sample_location
    assert _values(measurement) == pytest.approx({"glucose": 100 / MG_PER_DL_PER_MMOL_PER_L})


@pytest.mark.parametrize(
    ("concentration", "status", "flag", "mg_per_dl"),
    [
        ("58 B2", "20 00", "result_high", 600),  # 600 x 10^-5 kg/L; status bit 5 (HI)
        ("14 B0", "40 00", "result_low", 20),  # 20 x 10^-5 kg/L; status bit 6 (LO)
    ],
)
def test_hi_lo_are_patient_readings_with_the_range_limit(
    concentration: str, status: str, flag: str, mg_per_dl: int
) -> None:
    # Flags 0x0A: concentration + status.
    measurement = parse_glucose_measurement(
        bytes.fromhex(f"0A 01 00 {BASE_TIME} {concentration} 11 {status}")
    )
    assert measurement.disposition is Disposition.PATIENT_READING
    assert measurement.flags == {flag}
    assert _values(measurement) == pytest.approx({"glucose": mg_per_dl / MG_PER_DL_PER_MMOL_PER_L})


@pytest.mark.parametrize(
    ("wire", "special"),
    [
        ("FF 07", "NaN"),
        ("00 08", "NRes"),
        ("FE 07", "+INF"),
        ("02 08", "-INF"),
        ("01 08", "reserved"),
    ],
)
def test_special_concentration_is_never_a_number(wire: str, special: str) -> None:
    measurement = parse_glucose_measurement(bytes.fromhex(f"02 01 00 {BASE_TIME} {wire} 11"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.context["glucose_special"] == special
    assert "glucose_unavailable" in measurement.flags


STATUS_BITS = [
    (0, "battery_low", Disposition.PATIENT_READING),
    (1, "sensor_malfunction", Disposition.DEVICE_ERROR),
    (2, "sample_size_insufficient", Disposition.DEVICE_ERROR),
    (3, "strip_insertion_error", Disposition.DEVICE_ERROR),
    (4, "strip_type_incorrect", Disposition.DEVICE_ERROR),
    (5, "result_high", Disposition.PATIENT_READING),
    (6, "result_low", Disposition.PATIENT_READING),
    (7, "sensor_temperature_high", Disposition.DEVICE_ERROR),
    (8, "sensor_temperature_low", Disposition.DEVICE_ERROR),
    (9, "strip_pulled_too_soon", Disposition.DEVICE_ERROR),
    (10, "general_device_fault", Disposition.DEVICE_ERROR),
    (11, "time_fault", Disposition.PATIENT_READING),
]


@pytest.mark.parametrize(("bit", "flag", "disposition"), STATUS_BITS)
def test_each_sensor_status_bit(bit: int, flag: str, disposition: Disposition) -> None:
    status = (1 << bit).to_bytes(2, "little").hex()
    measurement = parse_glucose_measurement(
        bytes.fromhex(f"0A 01 00 {BASE_TIME} 64 B0 11 {status}")
    )
    assert measurement.flags == {flag}
    assert measurement.disposition is disposition


def test_rfu_bits_are_ignored() -> None:
    # Flags 0xE2: RFU bits 5–7 set; status 0xF000: RFU bits 12–15 only.
    measurement = parse_glucose_measurement(bytes.fromhex(f"EA 01 00 {BASE_TIME} 64 B0 12 00 F0"))
    assert measurement.flags == frozenset()
    assert measurement.disposition is Disposition.PATIENT_READING


def test_trailing_bytes_are_tolerated() -> None:
    assert _glucose(f"02 01 00 {BASE_TIME} 64 B0 12 00 00 00") == pytest.approx(
        100 / MG_PER_DL_PER_MMOL_PER_L
    )


@pytest.mark.parametrize(
    ("length", "field", "offset"),
    [
        (0, "flags", 0),
        (1, "sequence_number", 1),
        (3, "base_time.year", 3),
        (9, "base_time.seconds", 9),
        (10, "time_offset", 10),
        (12, "glucose_concentration", 12),
        (14, "type_sample_location", 14),
        (15, "sensor_status_annunciation", 15),
        (16, "sensor_status_annunciation", 15),
    ],
)
def test_truncation_names_field_and_offset(length: int, field: str, offset: int) -> None:
    wire = bytes.fromhex("1B 01 00 E3 07 02 1B 0B 0A 1E FB FF 1E 00 12 05 01")[:length]
    with pytest.raises(InvalidFrame) as error:
        parse_glucose_measurement(wire)
    assert (error.value.field, error.value.offset) == (field, offset)


# -- Context ------------------------------------------------------------------------------

# Flags 0xDF = every field: b0 carbohydrate, b1 meal, b2 tester/health, b3 exercise,
# b4 medication (b5 clear: kilograms), b6 HbA1c, b7 extended flags.
FULL_CONTEXT = (
    "DF 01 00"  # flags, sequence 1
    " 00"  # extended flags (RFU)
    " 01 32 D0"  # breakfast, 50 x 10^-3 kg = 50 g
    " 02"  # postprandial
    " 12"  # tester 2 (health-care professional), health 1 (minor issues)
    " 10 0E 32"  # exercise 0x0E10 = 3600 s at 0x32 = 50 %
    " 04 0A A0"  # long-acting insulin, 10 x 10^-6 kg = 10 mg
    " 41 F0"  # HbA1c 65 x 10^-1 = 6.5 %
)


def test_full_context() -> None:
    fields = parse_glucose_context_fields(bytes.fromhex(FULL_CONTEXT))
    assert fields == GlucoseContextFields(
        sequence_number=1,
        extended_flags=0,
        carbohydrate_id=1,
        carbohydrate_kg=0.05,
        meal=2,
        tester=2,
        health=1,
        exercise_duration_s=3600,
        exercise_intensity_percent=50,
        medication_id=4,
        medication=0.00001,
        medication_unit_litres=False,
        hba1c_percent=6.5,
    )
    decoded = decode_characteristic("2A34", bytes.fromhex(FULL_CONTEXT))
    assert isinstance(decoded, dict)
    assert decoded["context"] == {
        "carbohydrate": "breakfast",
        "carbohydrate_kg": 0.05,
        "meal": "postprandial",
        "tester": "health_care_professional",
        "health": "minor_issues",
        "exercise_duration_s": 3600,
        "exercise_intensity_percent": 50,
        "medication": "long_acting_insulin",
        "medication_kg": 0.00001,
        "hba1c_percent": 6.5,
    }


def test_medication_in_litres() -> None:
    # Flags 0x30: medication + unit litres; seq 5; pre-mixed (5); 2 x 10^-3 L = 2 mL.
    fields = parse_glucose_context_fields(bytes.fromhex("30 05 00 05 02 D0"))
    assert fields.medication == 0.002
    assert fields.medication_unit_litres
    joined = join_glucose_context(
        [parse_glucose_measurement(bytes.fromhex(f"02 05 00 {BASE_TIME} 64 B0 12"))], [fields]
    )
    assert joined[0].context["medication"] == "pre_mixed_insulin"
    assert joined[0].context["medication_l"] == 0.002


def test_exercise_overrun() -> None:
    # Flags 0x08; duration 0xFFFF = overrun; intensity 0x64 = 100 %.
    decoded = decode_characteristic("2A34", bytes.fromhex("08 01 00 FF FF 64"))
    assert isinstance(decoded, dict)
    assert decoded["context"] == {
        "exercise_duration_overrun": True,
        "exercise_intensity_percent": 100,
    }


def test_nordic_padded_context_and_unknown_codes() -> None:
    # Meal only (flags 0x02), 1 = preprandial, then 13 zero bytes of padding: ignored,
    # and counted.
    fields = parse_glucose_context_fields(bytes.fromhex("02 05 00 01" + " 00" * 13))
    assert fields == GlucoseContextFields(sequence_number=5, meal=1, trailing_bytes=13)
    # Meal 9 is RFU: kept in the fields, left out of the reading's context.
    decoded = decode_characteristic("2A34", bytes.fromhex("02 05 00 09"))
    assert isinstance(decoded, dict)
    assert decoded["meal"] == 9
    assert decoded["context"] == {}


def test_special_context_amounts_are_left_out_of_the_reading() -> None:
    # Carbohydrate NRes (00 08), HbA1c NaN (FF 07).
    decoded = decode_characteristic("2A34", bytes.fromhex("41 01 00 03 00 08 FF 07"))
    assert isinstance(decoded, dict)
    assert decoded["carbohydrate_kg"] == "NRes"
    assert decoded["hba1c_percent"] == "NaN"
    assert decoded["context"] == {"carbohydrate": "dinner"}


@pytest.mark.parametrize(
    ("length", "field"),
    [(3, "extended_flags"), (4, "carbohydrate_id"), (5, "carbohydrate"), (15, "hba1c")],
)
def test_context_truncation(length: int, field: str) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_glucose_context_fields(bytes.fromhex(FULL_CONTEXT)[:length])
    assert error.value.field == field


def test_join_by_sequence_number() -> None:
    first = parse_glucose_measurement(bytes.fromhex(f"12 01 00 {BASE_TIME} 64 B0 12"))
    second = parse_glucose_measurement(bytes.fromhex(f"02 02 00 {BASE_TIME} 64 B0 12"))
    context = parse_glucose_context_fields(bytes.fromhex("02 01 00 03"))  # seq 1, fasting
    orphan = parse_glucose_context_fields(bytes.fromhex("02 09 00 01"))  # seq 9: no record
    joined = join_glucose_context([first, second], [orphan, context])
    assert joined[0].context["meal"] == "fasting"
    assert joined[0].context["sample_type"] == "capillary_plasma"
    assert joined[1] == second


def test_feature() -> None:
    # 0x0405: bits 0, 2, 10; bit 15 (RFU) in the second vector is dropped.
    expected = (
        GlucoseFeature.LOW_BATTERY_DETECTION
        | GlucoseFeature.SAMPLE_SIZE_DETECTION
        | GlucoseFeature.MULTIPLE_BOND_SUPPORTED
    )
    assert parse_glucose_feature(bytes.fromhex("05 04")) == expected
    assert parse_glucose_feature(bytes.fromhex("05 84")) == expected
    assert decode_characteristic("2A51", bytes.fromhex("05 04")) == {
        "features": ["low_battery_detection", "multiple_bond_supported", "sample_size_detection"]
    }


def test_encoder_refuses_a_half_set_flag_group() -> None:
    fields = GlucoseMeasurementFields(
        sequence_number=1, base_time=DateTimeFields(2024, 3, 15, 8, 30, 0), concentration=0.001
    )
    with pytest.raises(UnencodableValue) as error:
        encode_glucose_measurement(fields)
    assert error.value.field == "glucose_concentration"


# -- Properties -----------------------------------------------------------------------------


@st.composite
def measurement_fields(draw: st.DrawFn) -> GlucoseMeasurementFields:
    has_concentration = draw(st.booleans())
    return GlucoseMeasurementFields(
        sequence_number=draw(uint16),
        base_time=draw(date_times),
        time_offset_minutes=draw(st.none() | st.integers(-0x8000, 0x7FFF)),
        concentration=draw(sfloats) if has_concentration else None,
        unit_mol_per_l=draw(st.booleans()),
        sample_type=draw(nibbles) if has_concentration else None,
        sample_location=draw(nibbles) if has_concentration else None,
        sensor_status=draw(st.none() | flags_of(GlucoseSensorStatus)),
        context_follows=draw(st.booleans()),
    )


@st.composite
def context_fields(draw: st.DrawFn) -> GlucoseContextFields:
    carbohydrate, tester_health, exercise, medication = (draw(st.booleans()) for _ in range(4))
    return GlucoseContextFields(
        sequence_number=draw(uint16),
        extended_flags=draw(st.none() | uint8),
        carbohydrate_id=draw(uint8) if carbohydrate else None,
        carbohydrate_kg=draw(sfloats) if carbohydrate else None,
        meal=draw(st.none() | uint8),
        tester=draw(nibbles) if tester_health else None,
        health=draw(nibbles) if tester_health else None,
        exercise_duration_s=draw(uint16) if exercise else None,
        exercise_intensity_percent=draw(uint8) if exercise else None,
        medication_id=draw(uint8) if medication else None,
        medication=draw(sfloats) if medication else None,
        medication_unit_litres=draw(st.booleans()),
        hba1c_percent=draw(st.none() | sfloats),
    )


@given(measurement_fields())
def test_measurement_round_trip(fields: GlucoseMeasurementFields) -> None:
    assert parse_glucose_measurement_fields(encode_glucose_measurement(fields)) == fields


@given(context_fields())
def test_context_round_trip(fields: GlucoseContextFields) -> None:
    assert parse_glucose_context_fields(encode_glucose_context(fields)) == fields


@given(flags_of(GlucoseFeature))
def test_feature_round_trip(features: GlucoseFeature) -> None:
    assert parse_glucose_feature(encode_glucose_feature(features)) == features


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for parse in (parse_glucose_measurement, parse_glucose_context_fields, parse_glucose_feature):
        with contextlib.suppress(DriverError):
            parse(data)


@given(measurement_fields())
def test_measurement_never_publishes_a_special(fields: GlucoseMeasurementFields) -> None:
    measurement = parse_glucose_measurement(encode_glucose_measurement(fields))
    if isinstance(fields.concentration, SpecialValue) or fields.concentration is None:
        assert measurement.values is None
        assert measurement.disposition is Disposition.DEVICE_ERROR
