"""Heart Rate Measurement 0x2A37 and Body Sensor Location 0x2A38 (docs/devices.md)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    HeartRateMeasurementFields,
    UnencodableValue,
    decode_characteristic,
    encode_heart_rate,
    parse_heart_rate_fields,
    parse_heart_rate_measurement,
)
from device_drivers.measurement import Disposition
from readings.model import HeartRateValues, Kind
from readings.units import Unit
from tests.device_drivers.gatt_strategies import uint16


def test_zephyr_example() -> None:
    # 06 5A: flags 0x06 = uint8 format, contact code 3 (supported, contact); 0x5A = 90 bpm.
    measurement = parse_heart_rate_measurement(bytes.fromhex("06 5A"))
    assert measurement.kind is Kind.HEART_RATE
    assert measurement.values == HeartRateValues(heart_rate=90.0)
    assert measurement.source_unit is Unit.PER_MIN
    assert measurement.context == {"sensor_contact": "contact"}
    assert measurement.flags == frozenset()
    assert measurement.disposition is Disposition.PATIENT_READING
    assert measurement.device_time is None


def test_uint16_energy_and_rr_example() -> None:
    # Flags 0x1F: uint16, contact, energy, RR. 0x0101 = 257 bpm; 0x0132 = 306 kJ;
    # RR 0x0001, 0x0102 = 258, 0xFFFF = 65535, each in 1/1024 s.
    wire = bytes.fromhex("1F 01 01 32 01 01 00 02 01 FF FF")
    assert parse_heart_rate_fields(wire) == HeartRateMeasurementFields(
        heart_rate=257,
        uint16_format=True,
        sensor_contact=3,
        energy_expended_kj=306,
        rr_intervals_1024=(1, 258, 65535),
    )
    assert parse_heart_rate_measurement(wire).values == HeartRateValues(
        heart_rate=257.0,
        rr_intervals=(1 / 1024, 258 / 1024, 65535 / 1024),
        energy_expended=306.0,
    )


@pytest.mark.parametrize(
    ("flags", "contact", "extra_flags"),
    [
        ("00", "not_supported", set()),  # code 0
        ("02", "not_supported", set()),  # code 1
        ("04", "no_contact", {"no_sensor_contact"}),  # code 2
        ("06", "contact", set()),  # code 3
    ],
)
def test_sensor_contact_codes(flags: str, contact: str, extra_flags: set[str]) -> None:
    measurement = parse_heart_rate_measurement(bytes.fromhex(f"{flags} 48"))
    assert measurement.values == HeartRateValues(heart_rate=72.0)  # 0x48
    assert measurement.context == {"sensor_contact": contact}
    assert measurement.flags == extra_flags


def test_rr_interval_to_seconds() -> None:
    # Flags 0x10; RR 0x01CC = 460/1024 s = 449.2 ms.
    measurement = parse_heart_rate_measurement(bytes.fromhex("10 48 CC 01"))
    assert measurement.values == HeartRateValues(heart_rate=72.0, rr_intervals=(0.44921875,))


def test_nine_rr_intervals_fill_a_default_mtu_value() -> None:
    # 20 bytes: flags, uint8 rate, nine RR values of 0x0400 = 1024/1024 = 1 s.
    measurement = parse_heart_rate_measurement(bytes.fromhex("10 3C" + " 00 04" * 9))
    assert measurement.values == HeartRateValues(heart_rate=60.0, rr_intervals=(1.0,) * 9)


def test_energy_without_rr() -> None:
    # Flags 0x08; energy 0x0010 = 16 kJ.
    measurement = parse_heart_rate_measurement(bytes.fromhex("08 48 10 00"))
    assert measurement.values == HeartRateValues(heart_rate=72.0, energy_expended=16.0)


def test_rr_flag_without_rr_bytes_is_a_truncated_value() -> None:
    # The flag promises RR intervals: none at all is a truncated value (Nordic agrees),
    # never a reading that silently lacks them.
    with pytest.raises(InvalidFrame) as error:
        parse_heart_rate_fields(bytes.fromhex("10 48"))
    assert (error.value.field, error.value.offset) == ("rr_interval[0]", 2)
    with pytest.raises(UnencodableValue) as refused:
        encode_heart_rate(HeartRateMeasurementFields(heart_rate=72, rr_intervals_1024=()))
    assert refused.value.field == "rr_interval"


def test_zero_rr_interval_is_dropped_and_flagged() -> None:
    measurement = parse_heart_rate_measurement(bytes.fromhex("10 48 00 00 CC 01"))
    assert measurement.values == HeartRateValues(heart_rate=72.0, rr_intervals=(460 / 1024,))
    assert measurement.flags == {"rr_interval_invalid"}


def test_rfu_flag_bits_are_ignored() -> None:
    assert parse_heart_rate_measurement(bytes.fromhex("E6 5A")) == parse_heart_rate_measurement(
        bytes.fromhex("06 5A")
    )


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("", "flags", 0),
        ("06", "heart_rate", 1),
        ("01 48", "heart_rate", 1),  # uint16 format needs two bytes
        ("08 48 10", "energy_expended", 2),
        ("10 48 CC", "rr_interval", 2),  # half an RR interval
        ("10 48 CC 01 02", "rr_interval", 4),
    ],
)
def test_truncation_names_field_and_offset(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_heart_rate_measurement(bytes.fromhex(wire))
    assert (error.value.field, error.value.offset) == (field, offset)


@pytest.mark.parametrize(("code", "name"), [("01", "chest"), ("02", "wrist"), ("07", 7)])
def test_body_sensor_location(code: str, name: str | int) -> None:
    assert decode_characteristic("2A38", bytes.fromhex(code)) == {"body_sensor_location": name}


def test_encoder_refuses_rate_above_uint8() -> None:
    with pytest.raises(UnencodableValue) as error:
        encode_heart_rate(HeartRateMeasurementFields(heart_rate=300))
    assert error.value.field == "heart_rate"


@st.composite
def measurement_fields(draw: st.DrawFn) -> HeartRateMeasurementFields:
    uint16_format = draw(st.booleans())
    return HeartRateMeasurementFields(
        heart_rate=draw(uint16 if uint16_format else st.integers(0, 0xFF)),
        uint16_format=uint16_format,
        sensor_contact=draw(st.integers(0, 3)),
        energy_expended_kj=draw(st.none() | uint16),
        rr_intervals_1024=draw(st.none() | st.lists(uint16, min_size=1, max_size=9).map(tuple)),
    )


@given(measurement_fields())
def test_round_trip(fields: HeartRateMeasurementFields) -> None:
    assert parse_heart_rate_fields(encode_heart_rate(fields)) == fields


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    with contextlib.suppress(DriverError):
        parse_heart_rate_measurement(data)
