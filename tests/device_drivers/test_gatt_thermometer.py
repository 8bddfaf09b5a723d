"""Temperature Measurement 0x2A1C, Temperature Type 0x2A1D, Intermediate Temperature 0x2A1E
(docs/devices.md)."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    DateTimeFields,
    TemperatureMeasurementFields,
    decode_characteristic,
    encode_temperature,
    parse_temperature_fields,
    parse_temperature_measurement,
)
from device_drivers.measurement import Disposition, Measurement
from readings.model import BodyTemperatureValues, Kind
from readings.units import Unit
from tests.device_drivers.gatt_strategies import date_times, floats32, uint8


def _values(measurement: Measurement) -> dict[str, object]:
    assert measurement.values is not None
    return dict(measurement.values.as_dict())


def test_celsius_example_with_time_and_type() -> None:
    # Flags 0x06: °C, time stamp, type. B0 0E 00 FE = 3760 x 10^-2 = 37.60 °C;
    # 2012-12-05 11:50:27; type 4 = finger.
    wire = bytes.fromhex("06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04")
    assert parse_temperature_fields(wire) == TemperatureMeasurementFields(
        fahrenheit=False,
        temperature=37.6,
        timestamp=DateTimeFields(2012, 12, 5, 11, 50, 27),
        temperature_type=4,
    )
    measurement = parse_temperature_measurement(wire)
    assert measurement.kind is Kind.BODY_TEMPERATURE
    assert measurement.values == BodyTemperatureValues(temperature=37.6)
    assert measurement.source_unit is Unit.CELSIUS
    assert measurement.device_time == datetime(2012, 12, 5, 11, 50, 27)
    assert measurement.context == {"temperature_type": "finger"}
    assert measurement.disposition is Disposition.PATIENT_READING


def test_fahrenheit_example() -> None:
    # Flags 0x01: °F; DA 03 00 FF = 986 x 10^-1 = 98.6 °F = (98.6 - 32) x 5/9 = 37.0 °C.
    measurement = parse_temperature_measurement(bytes.fromhex("01 DA 03 00 FF"))
    assert measurement.source_unit is Unit.FAHRENHEIT
    assert _values(measurement) == pytest.approx({"temperature": 37.0})


@pytest.mark.parametrize(
    ("wire", "special"),
    [
        ("FF FF 7F 00", "NaN"),  # "no valid reading"
        ("00 00 80 00", "NRes"),
        ("FE FF 7F 00", "+INF"),
        ("02 00 80 00", "-INF"),
        ("01 00 80 00", "reserved"),
    ],
)
def test_special_temperature_is_a_device_error(wire: str, special: str) -> None:
    measurement = parse_temperature_measurement(bytes.fromhex(f"00 {wire}"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.flags == {"temperature_unavailable"}
    assert measurement.context == {"temperature_special": special}


def test_vendor_fever_bit_is_ignored() -> None:
    # Bit 7 (RFU; Beurer's "fever" flag) set on a plain °C reading.
    measurement = parse_temperature_measurement(bytes.fromhex("80 B0 0E 00 FE"))
    assert measurement.values == BodyTemperatureValues(temperature=37.6)
    assert measurement.flags == frozenset()


TYPE_NAMES = [
    (1, "armpit"),
    (2, "body"),
    (3, "ear"),
    (4, "finger"),
    (5, "gastrointestinal_tract"),
    (6, "mouth"),
    (7, "rectum"),
    (8, "toe"),
    (9, "tympanum"),
]


@pytest.mark.parametrize(("code", "name"), TYPE_NAMES)
def test_temperature_types(code: int, name: str) -> None:
    # Flags 0x04: type present.
    measurement = parse_temperature_measurement(
        bytes([0x04]) + bytes.fromhex("B0 0E 00 FE") + bytes([code])
    )
    assert measurement.context == {"temperature_type": name}
    assert decode_characteristic("2A1D", bytes([code])) == {"temperature_type": name}


@pytest.mark.parametrize("code", [0, 10, 255])
def test_rfu_temperature_types_are_left_out(code: int) -> None:
    measurement = parse_temperature_measurement(
        bytes([0x04]) + bytes.fromhex("B0 0E 00 FE") + bytes([code])
    )
    assert measurement.context == {}
    assert decode_characteristic("2A1D", bytes([code])) == {"temperature_type": code}


def test_intermediate_temperature_is_not_a_reading() -> None:
    decoded = decode_characteristic("2A1E", bytes.fromhex("00 B0 0E 00 FE"))
    assert decoded == {
        "fahrenheit": False,
        "temperature": 37.6,
        "timestamp": None,
        "temperature_type": None,
    }


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("", "flags", 0),
        ("00 B0 0E 00", "temperature", 1),
        ("02 B0 0E 00 FE DC 07", "time_stamp.month", 7),
        ("04 B0 0E 00 FE", "temperature_type", 5),
    ],
)
def test_truncation_names_field_and_offset(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_temperature_measurement(bytes.fromhex(wire))
    assert (error.value.field, error.value.offset) == (field, offset)


@given(
    st.builds(
        TemperatureMeasurementFields,
        fahrenheit=st.booleans(),
        temperature=floats32,
        timestamp=st.none() | date_times,
        temperature_type=st.none() | uint8,
    )
)
def test_round_trip(fields: TemperatureMeasurementFields) -> None:
    assert parse_temperature_fields(encode_temperature(fields)) == fields


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    with contextlib.suppress(DriverError):
        parse_temperature_measurement(data)
