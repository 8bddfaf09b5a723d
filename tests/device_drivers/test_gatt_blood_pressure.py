"""Blood Pressure Measurement 0x2A35, Intermediate Cuff Pressure 0x2A36, Feature 0x2A49
(docs/devices.md). kPa → mmHg with 1 kPa = 7.50062 mmHg."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    BloodPressureFeature,
    BloodPressureMeasurementFields,
    BloodPressureStatus,
    DateTimeFields,
    IntermediateCuffPressureFields,
    SpecialValue,
    UnencodableValue,
    decode_characteristic,
    encode_blood_pressure_feature,
    encode_blood_pressure_measurement,
    encode_intermediate_cuff_pressure,
    parse_blood_pressure_feature,
    parse_blood_pressure_fields,
    parse_blood_pressure_measurement,
    parse_intermediate_cuff_pressure,
)
from device_drivers.measurement import Disposition, Measurement
from readings.model import BloodPressureValues, Kind
from readings.units import Unit
from tests.device_drivers.gatt_strategies import date_times, flags_of, sfloats, uint8

MMHG_PER_KPA = 7.50062
NORDIC_MMHG = "1E 8A 00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00"
NORDIC_KPA = "15 BD F0 0B 00 9F F0 3C 00 12 00"
# Systolic 0x0078 = 120, diastolic 0x0050 = 80, MAP 0x005D = 93 (mmHg, exponent 0).
PRESSURES = "78 00 50 00 5D 00"


def _values(measurement: Measurement) -> dict[str, object]:
    assert measurement.values is not None
    return dict(measurement.values.as_dict())


def test_nordic_mmhg_example() -> None:
    fields = parse_blood_pressure_fields(bytes.fromhex(NORDIC_MMHG))
    # Flags 0x1E: mmHg, time stamp, pulse, user id, status.
    assert fields == BloodPressureMeasurementFields(
        unit_kpa=False,
        systolic=138.0,  # 0x008A
        diastolic=88.0,  # 0x0058
        mean_arterial=120.0,  # 0x0078
        timestamp=DateTimeFields(0, 4, 17, 20, 41, 59),  # year 0 = unknown
        pulse=60.0,  # 0x003C
        user_id=1,
        status=BloodPressureStatus(0x0027),  # bits 0, 1, 2, 5; pulse range code 0
    )
    measurement = parse_blood_pressure_measurement(bytes.fromhex(NORDIC_MMHG))
    assert measurement.kind is Kind.BLOOD_PRESSURE
    assert measurement.values == BloodPressureValues(
        systolic=138.0, diastolic=88.0, mean_arterial=120.0, pulse=60.0
    )
    assert measurement.source_unit is Unit.MMHG
    assert measurement.device_time is None
    assert measurement.context == {"device_time_raw": "0000-04-17T20:41:59", "user_id": 1}
    assert measurement.flags == {
        "body_movement",
        "cuff_too_loose",
        "irregular_pulse",
        "improper_position",
    }
    assert measurement.disposition is Disposition.PATIENT_READING


def test_nordic_kpa_example() -> None:
    # Flags 0x15: kPa, pulse, status. BD F0 = 18.9, 0B 00 = 11, 9F F0 = 15.9 kPa.
    measurement = parse_blood_pressure_measurement(bytes.fromhex(NORDIC_KPA))
    assert measurement.source_unit is Unit.KPA
    assert _values(measurement) == pytest.approx(
        {
            "systolic": 18.9 * MMHG_PER_KPA,
            "diastolic": 11.0 * MMHG_PER_KPA,
            "mean_arterial": 15.9 * MMHG_PER_KPA,
            "pulse": 60.0,
        },
        rel=1e-6,
    )
    # Status 0x0012: bit 1 loose cuff; bits 3–4 = 0b10 → pulse below lower limit.
    assert measurement.flags == {"cuff_too_loose", "pulse_rate_below_range"}


@pytest.mark.parametrize(
    ("status", "flags"),
    [
        ("01 00", {"body_movement"}),
        ("02 00", {"cuff_too_loose"}),
        ("04 00", {"irregular_pulse"}),
        ("08 00", {"pulse_rate_above_range"}),  # range code 1
        ("10 00", {"pulse_rate_below_range"}),  # range code 2
        ("18 00", set()),  # range code 3 is RFU: ignored
        ("20 00", {"improper_position"}),
        ("C0 FF", set()),  # bits 6–15 RFU
        ("00 00", set()),
    ],
)
def test_each_status_value(status: str, flags: set[str]) -> None:
    # Flags 0x10: status present.
    measurement = parse_blood_pressure_measurement(bytes.fromhex(f"10 {PRESSURES} {status}"))
    assert measurement.flags == flags
    assert measurement.disposition is Disposition.PATIENT_READING


def test_minimal_measurement() -> None:
    # 7 bytes: flags 0 (mmHg), three pressures; RFU flag bits 5–7 ignored in the second.
    for flags in ("00", "E0"):
        measurement = parse_blood_pressure_measurement(bytes.fromhex(f"{flags} {PRESSURES}"))
        assert measurement.values == BloodPressureValues(
            systolic=120.0, diastolic=80.0, mean_arterial=93.0
        )
        assert measurement.device_time is None
        assert measurement.context == {}


def test_time_stamp() -> None:
    # Flags 0x02; 2024-03-15 08:30:00.
    measurement = parse_blood_pressure_measurement(
        bytes.fromhex(f"02 {PRESSURES} E8 07 03 0F 08 1E 00")
    )
    assert measurement.device_time == datetime(2024, 3, 15, 8, 30)


def test_unknown_user_is_left_out() -> None:
    # Flags 0x08; user 0xFF = unknown user.
    measurement = parse_blood_pressure_measurement(bytes.fromhex(f"08 {PRESSURES} FF"))
    assert "user_id" not in measurement.context


def test_nan_mean_arterial_pressure_is_absent_and_flagged() -> None:
    measurement = parse_blood_pressure_measurement(bytes.fromhex("00 78 00 50 00 FF 07"))
    assert measurement.values == BloodPressureValues(systolic=120.0, diastolic=80.0)
    assert measurement.flags == {"mean_arterial_unavailable"}
    assert measurement.context == {"mean_arterial_special": "NaN"}
    assert measurement.disposition is Disposition.PATIENT_READING


def test_nres_pulse_is_absent_and_flagged() -> None:
    # Flags 0x04; pulse 00 08 = NRes.
    measurement = parse_blood_pressure_measurement(bytes.fromhex(f"04 {PRESSURES} 00 08"))
    assert measurement.values == BloodPressureValues(
        systolic=120.0, diastolic=80.0, mean_arterial=93.0
    )
    assert measurement.flags == {"pulse_unavailable"}
    assert measurement.context == {"pulse_special": "NRes"}


@pytest.mark.parametrize(
    ("wire", "field", "special"),
    [
        ("00 FF 07 50 00 5D 00", "systolic", "NaN"),
        ("00 78 00 FE 07 5D 00", "diastolic", "+INF"),
        ("00 02 08 50 00 5D 00", "systolic", "-INF"),
        ("00 78 00 01 08 5D 00", "diastolic", "reserved"),
    ],
)
def test_special_systolic_or_diastolic_is_a_device_error(
    wire: str, field: str, special: str
) -> None:
    measurement = parse_blood_pressure_measurement(bytes.fromhex(wire))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert f"{field}_unavailable" in measurement.flags
    assert measurement.context[f"{field}_special"] == special


@pytest.mark.parametrize(
    ("length", "field", "offset"),
    [
        (0, "flags", 0),
        (1, "systolic", 1),
        (3, "diastolic", 3),
        (5, "mean_arterial_pressure", 5),
        (7, "time_stamp.year", 7),
        (14, "pulse_rate", 14),
        (16, "user_id", 16),
        (17, "measurement_status", 17),
        (18, "measurement_status", 17),
    ],
)
def test_truncation_names_field_and_offset(length: int, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_blood_pressure_measurement(bytes.fromhex(NORDIC_MMHG)[:length])
    assert (error.value.field, error.value.offset) == (field, offset)


def test_intermediate_cuff_pressure_is_not_a_reading() -> None:
    # Flags 0x04 (pulse); cuff 0x0096 = 150 mmHg; unused slots 0x0000 (Nordic); pulse 60.
    fields = parse_intermediate_cuff_pressure(bytes.fromhex("04 96 00 00 00 00 00 3C 00"))
    assert fields == IntermediateCuffPressureFields(unit_kpa=False, cuff_pressure=150.0, pulse=60.0)
    decoded = decode_characteristic("2A36", bytes.fromhex("04 96 00 00 00 00 00 3C 00"))
    assert isinstance(decoded, dict)
    assert decoded["cuff_pressure_mmhg"] == 150.0


def test_intermediate_cuff_pressure_in_kpa_with_nan_slots() -> None:
    # Flags 0x01 (kPa); 18.9 kPa; unused slots NaN (other firmware): ignored.
    decoded = decode_characteristic("0x2A36", bytes.fromhex("01 BD F0 FF 07 FF 07"))
    assert isinstance(decoded, dict)
    assert decoded["cuff_pressure"] == 18.9
    assert decoded["cuff_pressure_mmhg"] == pytest.approx(18.9 * MMHG_PER_KPA, rel=1e-6)


def test_intermediate_cuff_pressure_special_is_a_name() -> None:
    decoded = decode_characteristic("2A36", bytes.fromhex("00 FF 07 FF 07 FF 07"))
    assert isinstance(decoded, dict)
    assert decoded["cuff_pressure"] == "NaN"
    assert "cuff_pressure_mmhg" not in decoded


def test_feature() -> None:
    # 0x003F: bits 0–5 (BLS 1.0); 0x01FF adds E2E-CRC, UDS, user-facing time (BLS 1.1).
    assert parse_blood_pressure_feature(bytes.fromhex("3F 00")) == BloodPressureFeature(0x3F)
    assert decode_characteristic("2A49", bytes.fromhex("FF FF")) == {
        "features": [
            "body_movement_detection",
            "cuff_fit_detection",
            "e2e_crc",
            "irregular_pulse_detection",
            "measurement_position_detection",
            "multiple_bond",
            "pulse_rate_range_detection",
            "user_data_service",
            "user_facing_time",
        ]
    }


def test_encoder_refuses_rfu_pulse_range() -> None:
    fields = BloodPressureMeasurementFields(
        False, 120.0, 80.0, 93.0, status=BloodPressureStatus(0x18)
    )
    with pytest.raises(UnencodableValue):
        encode_blood_pressure_measurement(fields)


statuses = flags_of(BloodPressureStatus).filter(
    lambda status: status & 0x18 != 0x18  # pulse-range code 3 is RFU
)


@st.composite
def measurement_fields(draw: st.DrawFn) -> BloodPressureMeasurementFields:
    return BloodPressureMeasurementFields(
        unit_kpa=draw(st.booleans()),
        systolic=draw(sfloats),
        diastolic=draw(sfloats),
        mean_arterial=draw(sfloats),
        timestamp=draw(st.none() | date_times),
        pulse=draw(st.none() | sfloats),
        user_id=draw(st.none() | uint8),
        status=draw(st.none() | statuses),
    )


@given(measurement_fields())
def test_measurement_round_trip(fields: BloodPressureMeasurementFields) -> None:
    assert parse_blood_pressure_fields(encode_blood_pressure_measurement(fields)) == fields


@given(
    st.builds(
        IntermediateCuffPressureFields,
        unit_kpa=st.booleans(),
        cuff_pressure=sfloats,
        timestamp=st.none() | date_times,
        pulse=st.none() | sfloats,
        user_id=st.none() | uint8,
        status=st.none() | statuses,
    )
)
def test_intermediate_cuff_pressure_round_trip(fields: IntermediateCuffPressureFields) -> None:
    assert parse_intermediate_cuff_pressure(encode_intermediate_cuff_pressure(fields)) == fields


@given(flags_of(BloodPressureFeature))
def test_feature_round_trip(features: BloodPressureFeature) -> None:
    assert parse_blood_pressure_feature(encode_blood_pressure_feature(features)) == features


@given(measurement_fields())
def test_specials_are_never_published(fields: BloodPressureMeasurementFields) -> None:
    measurement = parse_blood_pressure_measurement(encode_blood_pressure_measurement(fields))
    published = measurement.values.as_dict() if measurement.values is not None else {}
    for name, value in (
        ("systolic", fields.systolic),
        ("diastolic", fields.diastolic),
        ("mean_arterial", fields.mean_arterial),
        ("pulse", fields.pulse),
    ):
        if isinstance(value, SpecialValue):
            assert name not in published
            assert measurement.context[f"{name}_special"] == value.value
    if measurement.values is None:
        assert measurement.disposition is Disposition.DEVICE_ERROR


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for parse in (
        parse_blood_pressure_measurement,
        parse_intermediate_cuff_pressure,
        parse_blood_pressure_feature,
    ):
        with contextlib.suppress(DriverError):
            parse(data)


def test_non_positive_values_are_never_published() -> None:
    # Systolic 0x0000 = 0 mmHg: no measurement.
    measurement = parse_blood_pressure_measurement(bytes.fromhex("00 00 00 50 00 5D 00"))
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.flags == {"systolic_not_positive"}
    # Pulse 0xFFF6 = -10 x 10^0 (flags 0x04): dropped.
    measurement = parse_blood_pressure_measurement(bytes.fromhex(f"04 {PRESSURES} F6 0F"))
    assert measurement.values == BloodPressureValues(
        systolic=120.0, diastolic=80.0, mean_arterial=93.0
    )
    assert measurement.flags == {"pulse_not_positive"}
    assert measurement.context == {"pulse_as_sent": -10.0}
