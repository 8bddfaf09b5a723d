"""Date Time 0x2A08 and Current Time 0x2A2B (docs/devices.md)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    AdjustReason,
    CurrentTimeFields,
    DateTimeFields,
    UnencodableValue,
    current_time_from_datetime,
    decode_characteristic,
    encode_current_time,
    encode_date_time,
    parse_current_time,
    parse_date_time,
)
from tests.device_drivers.gatt_strategies import date_times, flags_of, uint8


def test_date_time_example() -> None:
    # E2 07 = 2018, 04 April, 11 = 17th, 0F:33:00 = 15:51:00.
    fields = parse_date_time(bytes.fromhex("E2 07 04 11 0F 33 00"))
    assert fields == DateTimeFields(2018, 4, 17, 15, 51, 0)
    assert fields.to_datetime() == datetime(2018, 4, 17, 15, 51, 0)


def test_unknown_date_keeps_the_time_of_day() -> None:
    # Year, month and day 0 = unknown; 12:1A:20 = 18:26:32.
    fields = parse_date_time(bytes.fromhex("00 00 00 00 12 1A 20"))
    assert fields == DateTimeFields(0, 0, 0, 18, 26, 32)
    assert fields.date_unknown
    assert fields.to_datetime() is None
    assert fields.as_text() == "0000-00-00T18:26:32"


@pytest.mark.parametrize(
    "wire",
    [
        "E8 07 00 0F 08 1E 00",  # month 0 alone means unknown
        "E8 07 03 00 08 1E 00",  # day 0 alone means unknown
        "00 00 03 0F 08 1E 00",  # year 0 alone means unknown
    ],
)
def test_any_zero_date_field_means_unknown(wire: str) -> None:
    assert parse_date_time(bytes.fromhex(wire)).to_datetime() is None


@pytest.mark.parametrize(
    "wire",
    [
        "E8 07 0D 0F 08 1E 00",  # month 13
        "E8 07 02 1E 08 1E 00",  # 30 February
        "E8 07 03 0F 18 1E 00",  # hour 24
    ],
)
def test_out_of_range_fields_are_kept_raw_without_a_datetime(wire: str) -> None:
    fields = parse_date_time(bytes.fromhex(wire))
    assert not fields.date_unknown
    assert fields.to_datetime() is None


def test_trailing_bytes_are_tolerated() -> None:
    # eisaev rejects 8-byte Date Time values; we ignore the extra byte (docs/devices.md).
    assert parse_date_time(bytes.fromhex("E2 07 04 11 0F 33 00 FF")).year == 2018


def test_truncated_date_time_names_field_and_offset() -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_date_time(bytes.fromhex("E2 07 04 11 0F 33"))
    assert (error.value.field, error.value.offset) == ("date_time.seconds", 6)


def test_current_time_example() -> None:
    # 2023-01-02 20:22:07, day of week 1 (Monday), 0xFF/256 s, adjust reason b0 manual.
    fields = parse_current_time(bytes.fromhex("E7 07 01 02 14 16 07 01 FF 01"))
    assert fields == CurrentTimeFields(
        DateTimeFields(2023, 1, 2, 20, 22, 7), 1, 255, AdjustReason.MANUAL_TIME_UPDATE
    )
    # 255/256 s = 996 093.75 µs, truncated to whole microseconds.
    assert fields.to_datetime() == datetime(2023, 1, 2, 20, 22, 7, 996093)


def test_current_time_ignores_rfu_adjust_reason_bits() -> None:
    # 0xF6: bits 1 and 2 (external reference, time zone) plus RFU bits 4–7.
    fields = parse_current_time(bytes.fromhex("E7 07 01 02 14 16 07 01 00 F6"))
    assert fields.adjust_reason == (
        AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE | AdjustReason.CHANGE_OF_TIME_ZONE
    )


def test_truncated_current_time_names_adjust_reason() -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_current_time(bytes.fromhex("E7 07 01 02 14 16 07 01 FF"))
    assert (error.value.field, error.value.offset) == ("adjust_reason", 9)


def test_current_time_to_set_a_clock() -> None:
    # 2023-01-02 was a Monday (1); 996 ms = 254.976/256 s → 254.
    fields = current_time_from_datetime(datetime(2023, 1, 2, 20, 22, 7, 996_000))
    assert encode_current_time(fields) == bytes.fromhex("E7 07 01 02 14 16 07 01 FE 01")


def test_date_time_encoder_refuses_out_of_range_fields() -> None:
    with pytest.raises(UnencodableValue) as error:
        encode_date_time(DateTimeFields(70000, 1, 1, 0, 0, 0))
    assert error.value.field == "date_time.year"


def test_decode_characteristic_gives_named_fields() -> None:
    assert decode_characteristic("2A08", bytes.fromhex("E2 07 04 11 0F 33 00")) == {
        "year": 2018,
        "month": 4,
        "day": 17,
        "hours": 15,
        "minutes": 51,
        "seconds": 0,
        "datetime": "2018-04-17T15:51:00",
    }
    current = decode_characteristic("2A2B", bytes.fromhex("E7 07 01 02 14 16 07 01 FF 01"))
    assert isinstance(current, dict)
    assert current["datetime"] == "2023-01-02T20:22:07.996"
    assert current["adjust_reason"] == ["manual_time_update"]


@given(date_times)
def test_date_time_round_trip(fields: DateTimeFields) -> None:
    assert parse_date_time(encode_date_time(fields)) == fields


@given(date_times, uint8, uint8, flags_of(AdjustReason))
def test_current_time_round_trip(
    date_time: DateTimeFields, day_of_week: int, fractions: int, reason: AdjustReason
) -> None:
    fields = CurrentTimeFields(date_time, day_of_week, fractions, reason)
    assert parse_current_time(encode_current_time(fields)) == fields


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for parse in (parse_date_time, parse_current_time):
        try:
            fields = parse(data)
        except DriverError:
            continue
        fields.to_datetime()
