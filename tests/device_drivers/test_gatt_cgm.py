"""CGM Measurement 0x2AA7, CGM Feature 0x2AA8, Session Start Time 0x2AAA (docs/devices.md).

Records with an E2E-CRC built by hand get their CRC from ``crc16_mcrf4xx``, which
``test_gatt_crc`` pins to the check value 0x6F91 and the CGMS §3.11 example.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import ChecksumMismatch, DriverError, InvalidFrame
from device_drivers.gatt import (
    CgmCrcError,
    CgmFeature,
    CgmFeatureFields,
    CgmRecordFields,
    CgmSensorStatus,
    DateTimeFields,
    SessionStartTimeFields,
    crc16_mcrf4xx,
    decode_characteristic,
    encode_cgm_feature,
    encode_cgm_records,
    encode_session_start_time,
    parse_cgm_feature,
    parse_cgm_measurements,
    parse_cgm_notification,
    parse_cgm_record_fields,
    parse_session_start_time,
)
from device_drivers.measurement import Disposition, Measurement
from readings.model import Kind, new_reading
from readings.units import Unit
from tests.device_drivers.gatt_strategies import date_times, flags_of, sfloats, uint16

MG_PER_DL_PER_MMOL_PER_L = 18.0156
NORDIC_RECORD = "0F E3 D2 E4 05 00 02 14 FF 02 F0 E5 F3 8E 3F"
BAD_CRC_RECORD = "08 00 0C 10 06 00 58 6F"
# Size 6, flags 0: glucose 0x100C = 12 x 10^1 = 120 mg/dL, time offset 6 min, no CRC.
PLAIN_RECORD = "06 00 0C 10 06 00"


def _with_crc(record: str) -> str:
    body = bytes.fromhex(record)
    return (body + crc16_mcrf4xx(body).to_bytes(2, "little")).hex()


def _values(measurement: Measurement) -> dict[str, object]:
    assert measurement.values is not None
    return dict(measurement.values.as_dict())


def test_nordic_example() -> None:
    [fields] = parse_cgm_record_fields(bytes.fromhex(NORDIC_RECORD))
    # Size 15 = 13 computed (6 + 3 octets + trend + quality) + 2: CRC 0x3F8E present.
    assert fields == CgmRecordFields(
        glucose=12.34,  # 0xE4D2: 1234 x 10^-2 mg/dL
        time_offset_minutes=5,
        status=CgmSensorStatus.BATTERY_LOW,  # Status octet 0x02
        cal_temp=CgmSensorStatus.CALIBRATION_RECOMMENDED
        | CgmSensorStatus.SENSOR_TEMPERATURE_HIGH,  # Cal/Temp octet 0x14: bits 10, 12
        warning=CgmSensorStatus(0xFF0000),  # Warning octet 0xFF: bits 16–23
        trend=0.2,  # 0xF002: 2 x 10^-1 mg/dL/min
        quality=99.7,  # 0xF3E5: 997 x 10^-1 %
        e2e_crc=True,
    )
    [measurement] = parse_cgm_measurements(bytes.fromhex(NORDIC_RECORD), session_start=None)
    assert measurement.kind is Kind.CGM_GLUCOSE
    assert measurement.source_unit is Unit.MG_PER_DL
    assert measurement.seq == 5
    assert measurement.device_time is None
    assert measurement.context == {"time_offset_minutes": 5}
    assert _values(measurement) == pytest.approx(
        {
            "glucose": 12.34 / MG_PER_DL_PER_MMOL_PER_L,
            "trend": 0.2 / MG_PER_DL_PER_MMOL_PER_L,
            "quality": 99.7,
        }
    )
    assert measurement.flags == {
        "battery_low",
        "calibration_recommended",
        "sensor_temperature_high",
        "below_patient_low",
        "above_patient_high",
        "below_hypo_level",
        "above_hyper_level",
        "rate_of_decrease_exceeded",
        "rate_of_increase_exceeded",
        "result_low",
        "result_high",
    }
    # Sensor temperature too high: the result is not valid.
    assert measurement.disposition is Disposition.DEVICE_ERROR


def test_bad_crc_is_rejected() -> None:
    # Wire CRC 0x6F58, contents give 0x6F59.
    with pytest.raises(CgmCrcError) as error:
        parse_cgm_record_fields(bytes.fromhex(BAD_CRC_RECORD))
    assert isinstance(error.value, ChecksumMismatch)
    assert (error.value.wire, error.value.calculated) == (0x6F58, 0x6F59)
    assert (error.value.offset, error.value.record_index) == (6, 0)


def test_plain_record_with_session_start() -> None:
    [measurement] = parse_cgm_measurements(
        bytes.fromhex(PLAIN_RECORD), session_start=datetime(2024, 3, 15, 8, 0)
    )
    # Absolute time = session start + time offset (6 min).
    assert measurement.device_time == datetime(2024, 3, 15, 8, 6)
    assert _values(measurement) == pytest.approx({"glucose": 120 / MG_PER_DL_PER_MMOL_PER_L})
    assert measurement.flags == frozenset()
    assert measurement.disposition is Disposition.PATIENT_READING


def test_several_records_per_notification() -> None:
    measurements = parse_cgm_measurements(
        bytes.fromhex(PLAIN_RECORD + NORDIC_RECORD + _with_crc("08 00 0C 10 0B 00")),
        session_start=None,
    )
    assert [measurement.seq for measurement in measurements] == [6, 5, 11]


def test_one_bad_crc_does_not_lose_the_good_records() -> None:
    result = parse_cgm_notification(
        bytes.fromhex(PLAIN_RECORD + BAD_CRC_RECORD + NORDIC_RECORD), session_start=None
    )
    assert [measurement.seq for measurement in result.measurements] == [6, 5]
    assert result.crc_failures == 1


def test_strict_decoding_names_the_bad_record() -> None:
    with pytest.raises(CgmCrcError) as error:
        decode_characteristic("2AA7", bytes.fromhex(PLAIN_RECORD + BAD_CRC_RECORD))
    # The second record starts at byte 6; its CRC at byte 6 + 6.
    assert (error.value.record_index, error.value.offset) == (1, 12)


@pytest.mark.parametrize(
    ("record", "flags"),
    [
        # Only one octet present: it is the octet its flag names (LSO-first order).
        ("07 20 0C 10 06 00 80", {"result_high"}),  # Warning octet 0x80 → bit 23
        ("07 40 0C 10 06 00 04", {"calibration_recommended"}),  # Cal/Temp 0x04 → bit 10
        ("07 80 0C 10 06 00 02", {"battery_low"}),  # Status 0x02 → bit 1
        # Status and Warning: Status first, then Warning.
        ("08 A0 0C 10 06 00 02 01", {"battery_low", "below_patient_low"}),
        # Cal/Temp and Warning: Cal/Temp first.
        ("08 60 0C 10 06 00 01 40", {"time_synchronization_required", "result_low"}),
        # RFU bits: Status 6–7 (0xC0), Cal/Temp 15 (0x80).
        ("08 C0 0C 10 06 00 C0 80", set()),
    ],
)
def test_annunciation_octets_in_lso_first_order(record: str, flags: set[str]) -> None:
    [measurement] = parse_cgm_measurements(bytes.fromhex(record), session_start=None)
    assert measurement.flags == flags


CGM_STATUS_BITS = [
    (0, "session_stopped", Disposition.DEVICE_ERROR),
    (1, "battery_low", Disposition.PATIENT_READING),
    (2, "sensor_type_incorrect", Disposition.DEVICE_ERROR),
    (3, "sensor_malfunction", Disposition.DEVICE_ERROR),
    (4, "device_specific_alert", Disposition.PATIENT_READING),
    (5, "general_device_fault", Disposition.DEVICE_ERROR),
    (8, "time_synchronization_required", Disposition.PATIENT_READING),
    (9, "calibration_not_allowed", Disposition.PATIENT_READING),
    (10, "calibration_recommended", Disposition.PATIENT_READING),
    (11, "calibration_required", Disposition.PATIENT_READING),
    (12, "sensor_temperature_high", Disposition.DEVICE_ERROR),
    (13, "sensor_temperature_low", Disposition.DEVICE_ERROR),
    (14, "calibration_pending", Disposition.PATIENT_READING),
    (16, "below_patient_low", Disposition.PATIENT_READING),
    (17, "above_patient_high", Disposition.PATIENT_READING),
    (18, "below_hypo_level", Disposition.PATIENT_READING),
    (19, "above_hyper_level", Disposition.PATIENT_READING),
    (20, "rate_of_decrease_exceeded", Disposition.PATIENT_READING),
    (21, "rate_of_increase_exceeded", Disposition.PATIENT_READING),
    (22, "result_low", Disposition.PATIENT_READING),
    (23, "result_high", Disposition.PATIENT_READING),
]


@pytest.mark.parametrize(("bit", "flag", "disposition"), CGM_STATUS_BITS)
def test_each_annunciation_bit(bit: int, flag: str, disposition: Disposition) -> None:
    # Flags 0xE0: all three octets (Status, Cal/Temp, Warning = the 24 bits LSO first).
    annunciation = (1 << bit).to_bytes(3, "little").hex()
    [measurement] = parse_cgm_measurements(
        bytes.fromhex(f"09 E0 0C 10 06 00 {annunciation}"), session_start=None
    )
    assert measurement.flags == {flag}
    assert measurement.disposition is disposition


@pytest.mark.parametrize(
    ("glucose", "special"), [("FF 07", "NaN"), ("00 08", "NRes"), ("FE 07", "+INF")]
)
def test_special_glucose_is_a_device_error(glucose: str, special: str) -> None:
    [measurement] = parse_cgm_measurements(
        bytes.fromhex(f"06 00 {glucose} 06 00"), session_start=None
    )
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR
    assert measurement.context["glucose_special"] == special


def test_special_trend_and_bad_quality_are_left_out() -> None:
    # Flags 0x03: trend NaN, quality 0x03F5 = 1013 x 10^0 % (beyond 100 %).
    [measurement] = parse_cgm_measurements(
        bytes.fromhex("0A 03 0C 10 06 00 FF 07 F5 03"), session_start=None
    )
    assert _values(measurement) == pytest.approx({"glucose": 120 / MG_PER_DL_PER_MMOL_PER_L})
    assert measurement.flags == {"trend_unavailable", "quality_out_of_range"}
    assert measurement.context["trend_special"] == "NaN"
    assert measurement.context["quality_as_sent"] == 1013.0


def test_out_of_range_glucose_is_flagged() -> None:
    # 0x2064 = 100 x 10^2 = 10 000 mg/dL = 555 mmol/L.
    [measurement] = parse_cgm_measurements(bytes.fromhex("06 00 64 20 06 00"), session_start=None)
    assert measurement.flags == {"glucose_out_of_range"}
    assert measurement.disposition is Disposition.DEVICE_ERROR


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("", "record[0].size", 0),
        ("05 00 0C 10 06", "record[0].size", 0),  # below the 6-byte minimum
        ("09 00 0C 10 06 00 00 00 00", "record[0].size", 0),  # flags 0 → size 6 or 8
        ("0F E3 D2", "record[0]", 0),  # record longer than the notification
        (PLAIN_RECORD + " 00", "record[1].size", 6),  # a trailing 0 is not a record
    ],
)
def test_framing_errors(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_cgm_notification(bytes.fromhex(wire), session_start=None)
    assert (error.value.field, error.value.offset) == (field, offset)


def test_feature() -> None:
    # Features 0x018000: bits 15 (trend) and 16 (quality); 0x59: type 9 (ISF), location 5
    # (subcutaneous); E2E-CRC 0xFFFF: not supported.
    fields = parse_cgm_feature(bytes.fromhex("00 80 01 59 FF FF"))
    assert fields == CgmFeatureFields(
        features=CgmFeature.TREND_INFORMATION | CgmFeature.QUALITY,
        sample_type=9,
        sample_location=5,
        e2e_crc=0xFFFF,
    )
    assert not fields.e2e_crc_supported
    decoded = decode_characteristic("2AA8", bytes.fromhex("00 10 00 59 FF FF"))
    assert isinstance(decoded, dict)
    assert decoded["features"] == ["e2e_crc"]
    assert decoded["e2e_crc_supported"] is True


def test_feature_encoder_writes_crc_only_when_supported() -> None:
    assert encode_cgm_feature(CgmFeature.QUALITY) == bytes.fromhex("00 00 01 59 FF FF")
    body = bytes.fromhex("00 10 00 59")
    expected_crc = crc16_mcrf4xx(body).to_bytes(2, "little")
    assert encode_cgm_feature(CgmFeature.E2E_CRC) == body + expected_crc


def test_session_start_time() -> None:
    # 2024-03-15 08:00:00; time zone 0x20 = +32 quarter hours (UTC+8); DST 0.
    fields = parse_session_start_time(bytes.fromhex("E8 07 03 0F 08 00 00 20 00"))
    assert fields == SessionStartTimeFields(DateTimeFields(2024, 3, 15, 8, 0, 0), 32, 0)
    assert fields.to_datetime() == datetime(2024, 3, 15, 8, 0)
    # Unknown zone -128 (0x80) and DST 255.
    unknown = parse_session_start_time(bytes.fromhex("E8 07 03 0F 08 00 00 80 FF"))
    assert (unknown.time_zone_quarter_hours, unknown.dst_offset_quarter_hours) == (-128, 255)


@st.composite
def records(draw: st.DrawFn) -> CgmRecordFields:
    def octet(shift: int, mask: int) -> st.SearchStrategy[CgmSensorStatus]:
        return flags_of(CgmSensorStatus).map(
            lambda status: CgmSensorStatus(int(status) & (mask << shift))
        )

    return CgmRecordFields(
        glucose=draw(sfloats),
        time_offset_minutes=draw(uint16),
        status=draw(st.none() | octet(0, 0xFF)),
        cal_temp=draw(st.none() | octet(8, 0xFF)),
        warning=draw(st.none() | octet(16, 0xFF)),
        trend=draw(st.none() | sfloats),
        quality=draw(st.none() | sfloats),
        e2e_crc=draw(st.booleans()),
    )


@given(st.lists(records(), min_size=1, max_size=4))
def test_records_round_trip(fields: list[CgmRecordFields]) -> None:
    assert parse_cgm_record_fields(encode_cgm_records(fields)) == fields


@given(st.lists(records(), min_size=1, max_size=4), st.data())
def test_any_flipped_crc_byte_loses_only_its_record(
    fields: list[CgmRecordFields], data: st.DataObject
) -> None:
    victim = data.draw(st.integers(0, len(fields) - 1))
    fields[victim] = dataclasses.replace(fields[victim], e2e_crc=True)
    chunks = [bytearray(encode_cgm_records([record])) for record in fields]
    chunks[victim][-1] ^= 0xFF
    result = parse_cgm_notification(b"".join(chunks), session_start=None)
    assert result.crc_failures == 1
    assert len(result.measurements) == len(fields) - 1


@given(st.lists(records(), min_size=1, max_size=3), st.none() | st.datetimes())
def test_patient_readings_obey_the_contract(
    fields: list[CgmRecordFields], start: datetime | None
) -> None:
    received = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    for measurement in parse_cgm_measurements(encode_cgm_records(fields), session_start=start):
        if measurement.disposition is not Disposition.PATIENT_READING:
            continue
        assert measurement.values is not None
        new_reading(
            values=measurement.values,
            source_unit=measurement.source_unit,
            measured_at=received,
            received_at=received,
            device_id="Dexcom-G7-ABC123",
            patient_id="patient-0001",
            gateway_id="gw-0001",
            device_time=measurement.device_time,
            context=measurement.context,
            flags=measurement.flags,
            seq=measurement.seq,
        )


@given(date_times, st.integers(-128, 127), st.integers(0, 255))
def test_session_start_round_trip(start: DateTimeFields, zone: int, dst: int) -> None:
    fields = SessionStartTimeFields(start, zone, dst)
    assert parse_session_start_time(encode_session_start_time(fields)) == fields


@given(flags_of(CgmFeature))
def test_feature_round_trip(features: CgmFeature) -> None:
    assert parse_cgm_feature(encode_cgm_feature(features)).features == features


@given(st.binary(max_size=40), st.none() | st.datetimes())
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes, start: datetime | None) -> None:
    for parse in (parse_cgm_feature, parse_session_start_time):
        with contextlib.suppress(DriverError):
            parse(data)
    with contextlib.suppress(DriverError):
        parse_cgm_notification(data, session_start=start)
