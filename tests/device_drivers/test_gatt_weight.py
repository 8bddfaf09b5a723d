"""Weight Measurement 0x2A9D and Weight Scale Feature 0x2A9E (docs/devices.md).

Imperial values in kg/m use the exact definitions 1 lb = 0.45359237 kg, 1 in = 0.0254 m.
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
    UnencodableValue,
    WeightMeasurementFields,
    WeightScaleFeature,
    WeightScaleFeatureFields,
    decode_characteristic,
    encode_weight,
    encode_weight_scale_feature,
    parse_weight_fields,
    parse_weight_measurement,
    parse_weight_scale_feature,
)
from device_drivers.measurement import Disposition, Measurement
from readings.model import Kind, WeightValues
from readings.units import Unit
from tests.device_drivers.gatt_strategies import date_times, flags_of, uint8

KG_PER_POUND = 0.45359237
METRE_PER_INCH = 0.0254


def _values(measurement: Measurement) -> dict[str, object]:
    assert measurement.values is not None
    return dict(measurement.values.as_dict())


def test_si_example() -> None:
    # 00 B0 36: flags 0 (SI); 0x36B0 = 14000 x 0.005 kg = 70.0 kg.
    measurement = parse_weight_measurement(bytes.fromhex("00 B0 36"))
    assert measurement.kind is Kind.WEIGHT
    assert measurement.values == WeightValues(weight=70.0)
    assert measurement.source_unit is Unit.KG
    assert measurement.disposition is Disposition.PATIENT_READING


def test_imperial_example() -> None:
    # 01 54 3D: imperial; 0x3D54 = 15700 x 0.01 lb = 157.00 lb.
    fields = parse_weight_fields(bytes.fromhex("01 54 3D"))
    assert fields == WeightMeasurementFields(imperial=True, weight=157.0)
    measurement = parse_weight_measurement(bytes.fromhex("01 54 3D"))
    assert measurement.source_unit is Unit.POUND
    assert _values(measurement) == pytest.approx({"weight": 157 * KG_PER_POUND})


def test_imperial_full_example() -> None:
    # Flags 0x0F: imperial, time stamp, user id, BMI + height.
    wire = bytes.fromhex("0F 54 3D E7 07 0C 19 0E 1E 2D 03 F5 00 A8 02")
    assert parse_weight_fields(wire) == WeightMeasurementFields(
        imperial=True,
        weight=157.0,
        timestamp=DateTimeFields(2023, 12, 25, 14, 30, 45),
        user_id=3,
        bmi=24.5,  # 0x00F5 = 245 x 0.1
        height=68.0,  # 0x02A8 = 680 x 0.1 in
    )
    measurement = parse_weight_measurement(wire)
    assert measurement.device_time == datetime(2023, 12, 25, 14, 30, 45)
    assert measurement.context == {"user_id": 3}
    assert _values(measurement) == pytest.approx(
        {"weight": 157 * KG_PER_POUND, "bmi": 24.5, "height": 68 * METRE_PER_INCH}
    )


def test_si_bmi_and_height() -> None:
    # Flags 0x08; 70 kg; BMI 0x00F5 = 24.5; height 0x06BE = 1726 x 0.001 m = 1.726 m.
    measurement = parse_weight_measurement(bytes.fromhex("08 B0 36 F5 00 BE 06"))
    assert measurement.values == WeightValues(weight=70.0, bmi=24.5, height=1.726)


def test_zero_bmi_and_height_are_left_out() -> None:
    measurement = parse_weight_measurement(bytes.fromhex("08 B0 36 00 00 00 00"))
    assert measurement.values == WeightValues(weight=70.0)


def test_measurement_unsuccessful() -> None:
    # Flags 0x06: time stamp + user; weight 0xFFFF = measurement unsuccessful (WSS 1.0),
    # never 327.675 kg.
    measurement = parse_weight_measurement(bytes.fromhex("06 FF FF E8 07 03 0F 08 1E 00 02"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.flags == {"measurement_unsuccessful"}
    assert measurement.device_time == datetime(2024, 3, 15, 8, 30)
    assert measurement.context == {"user_id": 2}


def test_unknown_user_and_rfu_flags() -> None:
    # Flags 0xF4: user id present (bit 2) and RFU bits 4–7; user 0xFF = unknown.
    measurement = parse_weight_measurement(bytes.fromhex("F4 B0 36 FF"))
    assert measurement.values == WeightValues(weight=70.0)
    assert measurement.context == {}


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("00", "weight", 1),
        ("00 B0", "weight", 1),
        ("02 B0 36 E8 07", "time_stamp.month", 5),
        ("04 B0 36", "user_id", 3),
        ("08 B0 36 F5 00", "height", 5),
    ],
)
def test_truncation_names_field_and_offset(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_weight_measurement(bytes.fromhex(wire))
    assert (error.value.field, error.value.offset) == (field, offset)


def test_feature() -> None:
    # 0x000001BF: bits 0–2 set; weight resolution code 7 (bits 3–6 = 0x38);
    # height resolution code 3 (bits 7–9 = 0x180).
    fields = parse_weight_scale_feature(bytes.fromhex("BF 01 00 00"))
    assert fields == WeightScaleFeatureFields(
        features=WeightScaleFeature(0x07), weight_resolution_code=7, height_resolution_code=3
    )
    assert fields.weight_resolution == (0.005, 0.01)
    assert fields.height_resolution == (0.001, 0.1)
    decoded = decode_characteristic("2A9E", bytes.fromhex("BF 01 00 00"))
    assert isinstance(decoded, dict)
    assert decoded["features"] == [
        "bmi_supported",
        "multiple_users_supported",
        "time_stamp_supported",
    ]
    assert decoded["weight_resolution_kg"] == 0.005
    assert decoded["height_resolution_in"] == 0.1


def test_feature_unspecified_resolution() -> None:
    # Resolution codes 0: unspecified; RFU bits 10–31 dropped.
    fields = parse_weight_scale_feature(bytes.fromhex("01 FC FF FF"))
    assert fields.features == WeightScaleFeature.TIME_STAMP_SUPPORTED
    assert fields.weight_resolution is None
    assert fields.height_resolution is None


def test_encoder_refuses_weight_beyond_the_field() -> None:
    with pytest.raises(UnencodableValue) as error:
        encode_weight(WeightMeasurementFields(imperial=False, weight=400.0))
    assert error.value.field == "weight"


def test_encoder_rounds_to_the_resolution() -> None:
    # 70.0012 kg → 14000.24 steps of 0.005 kg → 14000 = 0x36B0.
    assert encode_weight(WeightMeasurementFields(False, 70.0012)) == bytes.fromhex("00 B0 36")


@st.composite
def measurement_fields(draw: st.DrawFn) -> WeightMeasurementFields:
    imperial = draw(st.booleans())
    has_bmi = draw(st.booleans())
    weight_steps = draw(st.none() | st.integers(0, 0xFFFE))
    return WeightMeasurementFields(
        imperial=imperial,
        weight=None if weight_steps is None else weight_steps / (100 if imperial else 200),
        timestamp=draw(st.none() | date_times),
        user_id=draw(st.none() | uint8),
        bmi=draw(st.integers(0, 0xFFFE)) / 10 if has_bmi else None,
        height=draw(st.integers(0, 0xFFFE)) / (10 if imperial else 1000) if has_bmi else None,
    )


@given(measurement_fields())
def test_round_trip(fields: WeightMeasurementFields) -> None:
    assert parse_weight_fields(encode_weight(fields)) == fields


@given(flags_of(WeightScaleFeature), st.integers(0, 15), st.integers(0, 7))
def test_feature_round_trip(features: WeightScaleFeature, weight: int, height: int) -> None:
    fields = WeightScaleFeatureFields(features, weight, height)
    assert parse_weight_scale_feature(encode_weight_scale_feature(fields)) == fields


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for parse in (parse_weight_measurement, parse_weight_scale_feature):
        with contextlib.suppress(DriverError):
            parse(data)


def test_zero_weight_is_a_device_error() -> None:
    measurement = parse_weight_measurement(bytes.fromhex("00 00 00"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.flags == {"weight_not_positive"}
