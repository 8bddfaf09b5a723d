"""Reading → line protocol: the schema, escaping and point identity (docs/storage.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.stores import PointEncodingError
from ingest.stores.points import (
    META_FIELDS,
    SUB_MILLISECOND_SLOTS,
    TAG_KEYS,
    VALUE_FIELDS,
    bound_ns,
    encode_point,
    escape_tag_value,
    from_timestamp_ns,
    quote_string_field,
    sub_millisecond_offset_ns,
    timestamp_ns,
    to_line,
)
from readings.model import GlucoseValues, HeartRateValues, Kind, Reading, new_reading
from readings.units import Unit

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def glucose(seq: int, at: datetime = T0, **extra: object) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=5.6),
        source_unit=Unit.MMOL_PER_L,
        measured_at=at,
        received_at=at + timedelta(seconds=30),
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=seq,
        **extra,  # type: ignore[arg-type]
    )


def test_a_reading_becomes_one_line_of_the_documented_schema() -> None:
    reading = new_reading(
        values=HeartRateValues(heart_rate=64.0, rr_intervals=(0.9375, 0.921875)),
        source_unit=Unit.PER_MIN,
        measured_at=T0,
        received_at=T0,
        device_id="Polar-H10-0002",
        patient_id="patient-0001",
        gateway_id="gw-0001",
        seq=14,
        device_time=datetime(2026, 3, 1, 16, 0),
        flags=("irregular_pulse", "clock_corrected"),
        context={"activity": 'walk "slow"'},
    )

    assert to_line(reading) == (
        "heart_rate,patient_id=patient-0001,device_id=Polar-H10-0002 "
        'heart_rate=64.0,rr_intervals="0.9375,0.921875",'
        f'id="{reading.id}",gateway_id="gw-0001",source_unit="/min",seq=14i,'
        'device_time="2026-03-01T16:00:00.000",flags="clock_corrected,irregular_pulse",'
        'context="{\\"activity\\":\\"walk \\\\\\"slow\\\\\\"\\"}" '
        f"{1772352000000 * 1_000_000 + sub_millisecond_offset_ns(reading.id)}"
    )


def test_absent_optional_fields_are_left_out() -> None:
    reading = new_reading(
        values=GlucoseValues(glucose=5.6),
        source_unit=Unit.MMOL_PER_L,
        measured_at=T0,
        received_at=T0,
        device_id="Roche-Accu_Chek_Guide-92310000123",
        patient_id="patient-0001",
        gateway_id="gw-0001",
    )

    fields = to_line(reading).split(" ")[1]

    assert fields == f'glucose=5.6,id="{reading.id}",gateway_id="gw-0001",source_unit="mmol/L"'


def test_the_same_reading_is_the_same_point_and_two_records_in_one_millisecond_are_two() -> None:
    first, again, second = glucose(1), glucose(1), glucose(2)

    first_time = int(to_line(first).rsplit(" ", 1)[1])
    second_time = int(to_line(second).rsplit(" ", 1)[1])

    assert to_line(first) == to_line(again)
    assert first_time != second_time
    assert first_time // 1_000_000 == second_time // 1_000_000 == 1772352000000


def test_the_reading_id_is_never_a_tag() -> None:
    tags = to_line(glucose(1)).split(" ")[0].split(",")[1:]

    assert [tag.split("=")[0] for tag in tags] == list(TAG_KEYS)


def test_no_value_field_shares_a_name_with_a_tag_or_metadata_field() -> None:
    reserved = set(TAG_KEYS) | set(META_FIELDS)
    for kind, fields in VALUE_FIELDS.items():
        assert not reserved & set(fields), kind


@given(
    at=st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(UTC),
    ),
    seq=st.integers(min_value=0, max_value=2**32),
)
def test_the_line_timestamp_is_measured_at_plus_the_id_offset(at: datetime, seq: int) -> None:
    reading = glucose(seq, at)

    timestamp = int(to_line(reading).rsplit(" ", 1)[1])

    assert timestamp == timestamp_ns(reading)
    assert 0 <= timestamp - bound_ns(reading.measured_at) < SUB_MILLISECOND_SLOTS
    assert from_timestamp_ns(timestamp) == reading.measured_at


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        (T0, 1772352000000 * 1_000_000),
        (T0 + timedelta(microseconds=1), 1772352000001 * 1_000_000),
        (T0 - timedelta(microseconds=999), 1772352000000 * 1_000_000),
        (T0 - timedelta(milliseconds=1), 1772351999999 * 1_000_000),
    ],
)
def test_a_range_bound_rounds_up_to_the_millisecond(bound: datetime, expected: int) -> None:
    assert bound_ns(bound) == expected


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("patient-0001", "patient-0001"),
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ("病人 1,2=3", "病人\\ 1\\,2\\=3"),
    ],
)
def test_tag_values_escape_space_comma_and_equals(value: str, escaped: str) -> None:
    assert escape_tag_value(value, field="patient_id") == escaped


@pytest.mark.parametrize("value", ["", "a\\b", "a\nb", "a\rb"])
def test_tag_values_line_protocol_cannot_carry_are_refused(value: str) -> None:
    with pytest.raises(PointEncodingError) as error:
        escape_tag_value(value, field="device_id")

    assert error.value.field == "device_id"


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("mmol/L", '"mmol/L"'), ('say "hi"', '"say \\"hi\\""'), ("a\\b", '"a\\\\b"')],
)
def test_string_fields_escape_backslash_and_quote(value: str, quoted: str) -> None:
    assert quote_string_field(value) == quoted


def test_a_reading_that_bypassed_validation_cannot_be_encoded() -> None:
    # Built in Python without the contract's pattern checks (see readings.new_reading).
    broken = msgspec.structs.replace(glucose(1), patient_id="bad\\id")

    with pytest.raises(PointEncodingError) as error:
        to_line(broken)

    assert error.value.field == "patient_id"


def test_every_kind_has_value_fields() -> None:
    assert set(VALUE_FIELDS) == set(Kind)
    assert VALUE_FIELDS[Kind.HEART_RATE]["rr_intervals"] is True
    assert VALUE_FIELDS[Kind.GLUCOSE] == {"glucose": False}


def test_a_batch_shares_series_keys_without_mixing_them_up() -> None:
    """encode_point with one cache for the batch writes each reading's own series (kind,
    patient, device) and timestamp, exactly as to_line does for it alone."""
    base = glucose(1)
    batch = [
        base,
        msgspec.structs.replace(base, patient_id="patient 2,x"),  # escaped tag
        new_reading(
            values=GlucoseValues(glucose=5.6),
            source_unit=Unit.MMOL_PER_L,
            measured_at=T0,
            received_at=T0,
            device_id="Roche-Accu_Chek_Guide-999",
            patient_id="patient-0001",
            gateway_id="gw-0001",
            seq=1,
        ),
        glucose(2),
        new_reading(
            values=HeartRateValues(heart_rate=61.0),
            source_unit=Unit.PER_MIN,
            measured_at=T0,
            received_at=T0,
            device_id="Roche-Accu_Chek_Guide-92310000123",
            patient_id="patient-0001",
            gateway_id="gw-0001",
            seq=3,
        ),
    ]
    series: dict[tuple[type[Reading], str, str], str] = {}
    encoded = [encode_point(reading, series) for reading in batch]
    assert [line for line, _ in encoded] == [to_line(reading) for reading in batch]
    assert [stamp for _, stamp in encoded] == [timestamp_ns(reading) for reading in batch]
    assert len(series) == 4
