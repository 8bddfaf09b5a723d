"""PLX Spot-Check 0x2A5E, PLX Continuous 0x2A5F and PLX Features 0x2A60 (docs/devices.md)."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    DateTimeFields,
    PlxContinuousFields,
    PlxDeviceSensorStatus,
    PlxFeaturesFields,
    PlxMeasurementStatus,
    PlxSpotCheckFields,
    PlxSupportedFeatures,
    decode_characteristic,
    encode_plx_continuous,
    encode_plx_features,
    encode_plx_spot_check,
    parse_plx_continuous,
    parse_plx_continuous_fields,
    parse_plx_features,
    parse_plx_spot_check,
    parse_plx_spot_check_fields,
)
from device_drivers.measurement import Disposition
from readings.model import Kind, Spo2Values
from readings.units import Unit
from tests.device_drivers.gatt_strategies import date_times, flags_of, sfloats

SPEZI_SPOT_CHECK = "0F AC F3 BE F5 E8 07 0B 1D 17 08 39 20 40 22 00 00 66 E3"
CONTINUOUS = "1F DE F3 CA F3 CA F3 5A F5 D4 F3 B2 F2 20 01 00 00 00 7A E3"
# SpO2 0x0062 = 98 %, pulse 0x0048 = 72 bpm (exponent 0).
SPO2_PULSE = "62 00 48 00"


def test_spezi_spot_check_example() -> None:
    fields = parse_plx_spot_check_fields(bytes.fromhex(SPEZI_SPOT_CHECK))
    assert fields == PlxSpotCheckFields(
        spo2=94.0,  # 0xF3AC: 940 x 10^-1
        pulse_rate=147.0,  # 0xF5BE: 1470 x 10^-1
        timestamp=DateTimeFields(2024, 11, 29, 23, 8, 57),
        measurement_status=PlxMeasurementStatus.MEASUREMENT_ONGOING
        | PlxMeasurementStatus.QUESTIONABLE_MEASUREMENT,  # 0x4020: bits 5, 14
        device_sensor_status=PlxDeviceSensorStatus.EQUIPMENT_MALFUNCTION
        | PlxDeviceSensorStatus.LOW_PERFUSION,  # 0x000022: bits 1, 5
        pulse_amplitude_index=8.7,  # 0xE366: 870 x 10^-2
        clock_not_set=False,
    )
    measurement = parse_plx_spot_check(bytes.fromhex(SPEZI_SPOT_CHECK))
    assert measurement.kind is Kind.SPO2
    assert measurement.values == Spo2Values(spo2=94.0, pulse=147.0)
    assert measurement.source_unit is Unit.PERCENT
    assert measurement.device_time == datetime(2024, 11, 29, 23, 8, 57)
    assert measurement.context == {"pulse_amplitude_index_percent": 8.7}
    assert measurement.flags == {
        "measurement_ongoing",
        "questionable_measurement",
        "equipment_malfunction",
        "low_perfusion",
    }
    # Equipment malfunction: not a valid measurement of the patient.
    assert measurement.disposition is Disposition.DEVICE_ERROR


def test_continuous_example() -> None:
    fields = parse_plx_continuous_fields(bytes.fromhex(CONTINUOUS))
    assert fields == PlxContinuousFields(
        spo2=99.0,  # 0xF3DE: 990 x 10^-1
        pulse_rate=97.0,  # 0xF3CA
        spo2_fast=97.0,  # 0xF3CA
        pulse_rate_fast=137.0,  # 0xF55A: 1370 x 10^-1
        spo2_slow=98.0,  # 0xF3D4
        pulse_rate_slow=69.0,  # 0xF2B2: 690 x 10^-1
        measurement_status=PlxMeasurementStatus(0x0120),  # bits 5, 8
        device_sensor_status=PlxDeviceSensorStatus(0),
        pulse_amplitude_index=8.9,  # 0xE37A: 890 x 10^-2
    )
    measurement = parse_plx_continuous(bytes.fromhex(CONTINUOUS))
    assert measurement.values == Spo2Values(spo2=99.0, pulse=97.0)
    assert measurement.device_time is None
    assert measurement.context == {
        "spo2_fast": 97.0,
        "pulse_fast": 137.0,
        "spo2_slow": 98.0,
        "pulse_slow": 69.0,
        "pulse_amplitude_index_percent": 8.9,
    }
    assert measurement.flags == {"measurement_ongoing", "fully_qualified_data"}
    assert measurement.disposition is Disposition.PATIENT_READING


def test_minimal_spot_check() -> None:
    measurement = parse_plx_spot_check(bytes.fromhex(f"00 {SPO2_PULSE}"))
    assert measurement.values == Spo2Values(spo2=98.0, pulse=72.0)
    assert measurement.flags == frozenset()
    assert measurement.device_time is None


def test_clock_not_set_keeps_the_device_time_flagged() -> None:
    # Flags 0x11: timestamp + device clock not set.
    measurement = parse_plx_spot_check(bytes.fromhex(f"11 {SPO2_PULSE} E8 07 03 0F 08 1E 00"))
    assert measurement.flags == {"clock_not_set"}
    assert measurement.device_time == datetime(2024, 3, 15, 8, 30)


def test_special_spo2_is_a_device_error() -> None:
    measurement = parse_plx_spot_check(bytes.fromhex("00 FF 07 48 00"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.context == {"spo2_special": "NaN"}


def test_special_pulse_is_dropped() -> None:
    measurement = parse_plx_spot_check(bytes.fromhex("00 62 00 00 08"))
    assert measurement.values == Spo2Values(spo2=98.0)
    assert measurement.flags == {"pulse_unavailable"}
    assert measurement.context == {"pulse_special": "NRes"}


def test_special_fast_value_is_left_out() -> None:
    # Flags 0x01: fast pair present; SpO2-fast NaN, PR-fast 0x0048 = 72.
    measurement = parse_plx_continuous(bytes.fromhex(f"01 {SPO2_PULSE} FF 07 48 00"))
    assert measurement.context == {"spo2_fast_special": "NaN", "pulse_fast": 72.0}
    assert "spo2_fast_unavailable" in measurement.flags


MEASUREMENT_STATUS_BITS = [
    (5, "measurement_ongoing", Disposition.PATIENT_READING),
    (6, "early_estimated_data", Disposition.PATIENT_READING),
    (7, "validated_data", Disposition.PATIENT_READING),
    (8, "fully_qualified_data", Disposition.PATIENT_READING),
    (9, "data_from_storage", Disposition.PATIENT_READING),
    (10, "demonstration_data", Disposition.CONTROL_SOLUTION),
    (11, "testing_data", Disposition.CONTROL_SOLUTION),
    (12, "calibration_ongoing", Disposition.PATIENT_READING),
    (13, "measurement_unavailable", Disposition.DEVICE_ERROR),
    (14, "questionable_measurement", Disposition.PATIENT_READING),
    (15, "invalid_measurement", Disposition.DEVICE_ERROR),
]


@pytest.mark.parametrize(("bit", "flag", "disposition"), MEASUREMENT_STATUS_BITS)
def test_each_measurement_status_bit(bit: int, flag: str, disposition: Disposition) -> None:
    status = (1 << bit).to_bytes(2, "little").hex()
    # Spot-check flags 0x02, continuous flags 0x04: measurement status present.
    for parse, flags in ((parse_plx_spot_check, "02"), (parse_plx_continuous, "04")):
        measurement = parse(bytes.fromhex(f"{flags} {SPO2_PULSE} {status}"))
        assert measurement.flags == {flag}
        assert measurement.disposition is disposition


DEVICE_STATUS_BITS = [
    (0, "extended_display_update_ongoing", Disposition.PATIENT_READING),
    (1, "equipment_malfunction", Disposition.DEVICE_ERROR),
    (2, "signal_processing_irregularity", Disposition.PATIENT_READING),
    (3, "inadequate_signal", Disposition.PATIENT_READING),
    (4, "poor_signal", Disposition.PATIENT_READING),
    (5, "low_perfusion", Disposition.PATIENT_READING),
    (6, "erratic_signal", Disposition.PATIENT_READING),
    (7, "non_pulsatile_signal", Disposition.PATIENT_READING),
    (8, "questionable_pulse", Disposition.PATIENT_READING),
    (9, "signal_analysis_ongoing", Disposition.PATIENT_READING),
    (10, "sensor_interference", Disposition.PATIENT_READING),
    (11, "sensor_unconnected", Disposition.DEVICE_ERROR),
    (12, "unknown_sensor", Disposition.PATIENT_READING),
    (13, "sensor_displaced", Disposition.PATIENT_READING),
    (14, "sensor_malfunction", Disposition.DEVICE_ERROR),
    (15, "sensor_disconnected", Disposition.DEVICE_ERROR),
]


@pytest.mark.parametrize(("bit", "flag", "disposition"), DEVICE_STATUS_BITS)
def test_each_device_and_sensor_status_bit(bit: int, flag: str, disposition: Disposition) -> None:
    status = (1 << bit).to_bytes(3, "little").hex()
    # Spot-check flags 0x04, continuous flags 0x08: device and sensor status present.
    for parse, flags in ((parse_plx_spot_check, "04"), (parse_plx_continuous, "08")):
        measurement = parse(bytes.fromhex(f"{flags} {SPO2_PULSE} {status}"))
        assert measurement.flags == {flag}
        assert measurement.disposition is disposition


def test_rfu_status_bits_are_ignored() -> None:
    # Measurement status bits 0–4 and device status bits 16–23 are RFU; flags bits 5–7 too.
    measurement = parse_plx_spot_check(bytes.fromhex(f"E6 {SPO2_PULSE} 1F 00 00 00 FF"))
    assert measurement.flags == frozenset()
    assert measurement.disposition is Disposition.PATIENT_READING


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("00 62 00", "pulse_rate", 3),
        ("01 62 00 48 00 E8", "timestamp.year", 5),
        ("02 62 00 48 00 20", "measurement_status", 5),
        ("04 62 00 48 00 22 00", "device_and_sensor_status", 5),
        ("08 62 00 48 00 66", "pulse_amplitude_index", 5),
    ],
)
def test_spot_check_truncation(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_plx_spot_check(bytes.fromhex(wire))
    assert (error.value.field, error.value.offset) == (field, offset)


@pytest.mark.parametrize(
    ("length", "field", "offset"),
    [
        (3, "pulse_rate_normal", 3),
        (7, "pulse_rate_fast", 7),
        (9, "spo2_slow", 9),
        (18, "pulse_amplitude_index", 18),
    ],
)
def test_continuous_truncation(length: int, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_plx_continuous(bytes.fromhex(CONTINUOUS)[:length])
    assert (error.value.field, error.value.offset) == (field, offset)


def test_features() -> None:
    # Supported 0x007F (bits 0–6) → measurement-status support 0xFFE0 (bits 5–15) and
    # device-status support 0x00FFFF (bits 0–15).
    fields = parse_plx_features(bytes.fromhex("7F 00 E0 FF FF FF 00"))
    assert fields == PlxFeaturesFields(
        supported=PlxSupportedFeatures(0x7F),
        measurement_status_support=PlxMeasurementStatus(0xFFE0),
        device_sensor_status_support=PlxDeviceSensorStatus(0xFFFF),
    )
    # Nothing but multiple bonds: no support fields follow.
    assert parse_plx_features(bytes.fromhex("80 00")) == PlxFeaturesFields(
        PlxSupportedFeatures.MULTIPLE_BONDS
    )
    decoded = decode_characteristic("2A60", bytes.fromhex("0C 00"))
    assert decoded == {
        "supported": ["spot_check_storage", "spot_check_timestamp"],
        "measurement_status_support": None,
        "device_sensor_status_support": None,
    }


def test_features_truncated() -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_plx_features(bytes.fromhex("03 00 E0 FF FF"))
    assert (error.value.field, error.value.offset) == ("device_and_sensor_status", 4)


@st.composite
def spot_check_fields(draw: st.DrawFn) -> PlxSpotCheckFields:
    return PlxSpotCheckFields(
        spo2=draw(sfloats),
        pulse_rate=draw(sfloats),
        timestamp=draw(st.none() | date_times),
        measurement_status=draw(st.none() | flags_of(PlxMeasurementStatus)),
        device_sensor_status=draw(st.none() | flags_of(PlxDeviceSensorStatus)),
        pulse_amplitude_index=draw(st.none() | sfloats),
        clock_not_set=draw(st.booleans()),
    )


@st.composite
def continuous_fields(draw: st.DrawFn) -> PlxContinuousFields:
    fast, slow = draw(st.booleans()), draw(st.booleans())
    return PlxContinuousFields(
        spo2=draw(sfloats),
        pulse_rate=draw(sfloats),
        spo2_fast=draw(sfloats) if fast else None,
        pulse_rate_fast=draw(sfloats) if fast else None,
        spo2_slow=draw(sfloats) if slow else None,
        pulse_rate_slow=draw(sfloats) if slow else None,
        measurement_status=draw(st.none() | flags_of(PlxMeasurementStatus)),
        device_sensor_status=draw(st.none() | flags_of(PlxDeviceSensorStatus)),
        pulse_amplitude_index=draw(st.none() | sfloats),
    )


@st.composite
def features_fields(draw: st.DrawFn) -> PlxFeaturesFields:
    supported = draw(flags_of(PlxSupportedFeatures))
    return PlxFeaturesFields(
        supported=supported,
        measurement_status_support=draw(flags_of(PlxMeasurementStatus))
        if supported & PlxSupportedFeatures.MEASUREMENT_STATUS
        else None,
        device_sensor_status_support=draw(flags_of(PlxDeviceSensorStatus))
        if supported & PlxSupportedFeatures.DEVICE_SENSOR_STATUS
        else None,
    )


@given(spot_check_fields())
def test_spot_check_round_trip(fields: PlxSpotCheckFields) -> None:
    assert parse_plx_spot_check_fields(encode_plx_spot_check(fields)) == fields


@given(continuous_fields())
def test_continuous_round_trip(fields: PlxContinuousFields) -> None:
    assert parse_plx_continuous_fields(encode_plx_continuous(fields)) == fields


@given(features_fields())
def test_features_round_trip(fields: PlxFeaturesFields) -> None:
    assert parse_plx_features(encode_plx_features(fields)) == fields


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for parse in (parse_plx_spot_check, parse_plx_continuous, parse_plx_features):
        with contextlib.suppress(DriverError):
            parse(data)


def test_non_positive_values_are_never_published() -> None:
    # Pulse 0: dropped; SpO2 0 %: no measurement.
    measurement = parse_plx_spot_check(bytes.fromhex("00 62 00 00 00"))
    assert measurement.values == Spo2Values(spo2=98.0)
    assert measurement.flags == {"pulse_not_positive"}
    measurement = parse_plx_spot_check(bytes.fromhex("00 00 00 48 00"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
