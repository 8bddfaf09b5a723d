"""OneTouch Ultra 2 protocol: recorded replies (docs/devices.md, Tidepool, glucometerutils)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import ChecksumMismatch, DriverError, InvalidFrame, ProtocolError
from device_drivers.measurement import Disposition
from device_drivers.serial_protocols import UnknownProtocol, decode_input, decode_transfer
from device_drivers.serial_protocols import onetouch_ultra2 as otu2
from readings.units import Unit, mmol_per_l_to_mg_per_dl

FRAMES = Path(__file__).parent / "frames" / "onetouch_ultra2"
DUMP_HEADER = 'P 003,"GMF600DCY","MG/DL " 05A6'
RECORD_LINE = 'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B6'


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"T", 0x0054),
        (b'T "SAT","08/03/13","22:12:00   "', 0x0608),
        (b'P 003,"GMF600DCY","MG/DL "', 0x05A6),
        (b'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00', 0x09B6),
        (b'P "SAT","03/21/15","16:42:11   ","  105 ","B","02", 00', 0x099F),
    ],
)
def test_checksum_matches_recorded_lines(payload: bytes, expected: int) -> None:
    assert otu2.checksum(payload) == expected


def test_commands_are_framed_with_dc1_and_cr() -> None:
    assert otu2.build_command("DMF") == b"\x11\rDMF\r"
    assert otu2.build_command(otu2.Command.DUMP) == b"\x11\rDMP\r"
    assert otu2.build_set_clock(datetime(2015, 3, 21, 16, 45, 24)) == (
        b"\x11\rDMT03/21/15 16:45:24\r"
    )


def test_verify_line_returns_payload_of_recorded_header() -> None:
    assert otu2.verify_line((DUMP_HEADER + "\r\n").encode()) == 'P 003,"GMF600DCY","MG/DL "'


def test_checksum_mismatch_names_wire_calculated_and_offset() -> None:
    line = RECORD_LINE.replace("09B6", "09B7").encode() + b"\r\n"
    with pytest.raises(ChecksumMismatch) as caught:
        otu2.verify_line(line, offset=100)
    assert (caught.value.wire, caught.value.calculated) == (0x09B7, 0x09B6)
    assert caught.value.offset == 100 + RECORD_LINE.index("09B6")
    assert caught.value.field == "checksum"


@pytest.mark.parametrize("line", [b"INVALID\r\n", b"% 13AZ\r\n", b"% 13ab\r\n", b"\r\n"])
def test_line_without_checksum_is_invalid(line: bytes) -> None:
    with pytest.raises(InvalidFrame) as caught:
        otu2.verify_line(line)
    assert caught.value.field == "checksum"


def test_zero_byte_reply_means_meter_not_in_cable() -> None:
    with pytest.raises(otu2.MeterNotInCable):
        otu2.verify_line(b"\x00")


def test_serial_number_and_firmware_replies() -> None:
    assert otu2.parse_serial_number('@ "GMF600DCY"') == "GMF600DCY"
    assert otu2.parse_firmware("?P02.00.00 30/08/06") == "P02.00.00 30/08/06"


def test_serial_not_ending_in_y_is_not_an_ultra2() -> None:
    # glucometerutils' recorded reply from another meter of the family.
    payload = otu2.verify_line(b'@ "12345678O" 0297\r')
    with pytest.raises(ProtocolError, match="not a OneTouch Ultra 2"):
        otu2.parse_serial_number(payload)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('F "SAT","03/21/15","16:45:24   "', datetime(2015, 3, 21, 16, 45, 24)),
        ('T "SAT","08/03/13","22:12:00   "', datetime(2013, 8, 3, 22, 12, 0)),
    ],
)
def test_clock_replies_use_20yy(payload: str, expected: datetime) -> None:
    assert otu2.parse_clock(payload) == expected


@pytest.mark.parametrize(
    ("payload", "unit"), [('SU?,"MG/DL "', Unit.MG_PER_DL), ('SU?,"MMOL/L"', Unit.MMOL_PER_L)]
)
def test_display_unit_reply(payload: str, unit: Unit) -> None:
    assert otu2.parse_display_unit(payload) == unit
    assert otu2.encode_display_unit(unit) == payload


def test_dump_header() -> None:
    header = otu2.parse_dump_header('P 003,"GMF600DCY","MG/DL "')
    assert header == otu2.DumpHeader(3, "GMF600DCY", Unit.MG_PER_DL)


def test_recorded_record_line() -> None:
    record = otu2.parse_record(otu2.verify_line(RECORD_LINE.encode()))
    assert record == otu2.OneTouchRecord(
        device_time=datetime(2015, 3, 21, 16, 45, 24),
        value_mg_dl=81,
        meal=otu2.Meal.NONE,
        comment_code=3,
    )


@pytest.mark.parametrize("case", sorted(p.stem for p in FRAMES.glob("*.txt")))
def test_recorded_dumps_decode_to_expected_readings(case: str) -> None:
    data = (FRAMES / f"{case}.txt").read_bytes()
    expected = json.loads((FRAMES / f"{case}.json").read_text())
    measurements = decode_transfer("onetouch-ultra2", data)
    assert len(measurements) == len(expected)
    for measurement, want in zip(measurements, expected, strict=True):
        assert measurement.values is not None
        glucose = measurement.values.as_dict()["glucose"]
        assert isinstance(glucose, float)
        assert mmol_per_l_to_mg_per_dl(glucose) == pytest.approx(want["glucose_mg_dl"])
        assert measurement.source_unit is Unit.MG_PER_DL
        assert measurement.device_time == datetime.fromisoformat(want["device_time"])
        assert measurement.seq is None
        assert dict(measurement.context) == want["context"]
        assert sorted(measurement.flags) == want["flags"]
        assert measurement.disposition == Disposition(want["disposition"])


def test_dump_line_count_must_match_header() -> None:
    data = (FRAMES / "tidepool_dump.txt").read_bytes()
    truncated = data[: data.rindex(b'P "SAT"')]
    with pytest.raises(InvalidFrame) as caught:
        otu2.parse_dump(truncated)
    assert caught.value.field == "record_count"
    assert caught.value.offset == len(truncated) - 2


def test_corrupted_dump_line_names_its_absolute_offset() -> None:
    data = bytearray((FRAMES / "tidepool_dump.txt").read_bytes())
    third = data.index(b"16:39:46")
    data[third] = ord("7")
    with pytest.raises(ChecksumMismatch) as caught:
        decode_transfer("onetouch-ultra2", bytes(data))
    line_start = data.rindex(b"\n", 0, third) + 1
    assert caught.value.offset == line_start + RECORD_LINE.index("09B6")


@pytest.mark.parametrize(
    ("payload", "field", "offset"),
    [
        ('P "SAT","03/21/15","16:45:24   ","  081 ","X","03", 00', "meal", 43),
        ('P "SAT","13/21/15","16:45:24   ","  081 ","N","03", 00', "date", 9),
        ('P "SAT","03/21/15","25:45:24   ","  081 ","N","03", 00', "time", 20),
        ('P "SAT","03/21/15","16:45:24   ","  0x1 ","N","03", 00', "value", 36),
        ('P "SAT","03/21/15","16:45:24   ","X 081 ","N","03", 00', "control", 34),
        ('P "SAT","03/21/15","16:45:24   ","  081!","N","03", 00', "parity", 39),
        ('P "SAT","03/21/15","16:45:24   ","  081 ","N","03"', "comment", 49),
        ('P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 extra', "comment", 54),
        ('P "SAT";"03/21/15"', "day_of_week", 6),
    ],
)
def test_malformed_record_names_field_and_offset(payload: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as caught:
        otu2.parse_record(payload, offset=1000)
    assert caught.value.field == field
    assert caught.value.offset == 1000 + offset


def test_unknown_protocol_is_a_driver_error() -> None:
    with pytest.raises(UnknownProtocol) as caught:
        decode_transfer("onetouch-ultra3", b"")
    assert caught.value.protocol == "onetouch-ultra3"
    assert "onetouch-ultra2" in caught.value.known


device_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
records = st.builds(
    otu2.OneTouchRecord,
    device_time=device_times.map(lambda t: t.replace(microsecond=0)),
    value_mg_dl=st.integers(0, 999),
    control_solution=st.booleans(),
    parity_error=st.booleans(),
    meal=st.sampled_from(otu2.Meal),
    comment_code=st.integers(0, 99),
)


@given(records)
def test_record_encode_decode_round_trip(record: otu2.OneTouchRecord) -> None:
    line = otu2.encode_line(otu2.encode_record(record))
    assert otu2.parse_record(otu2.verify_line(line)) == record


@given(st.lists(records, max_size=20), st.sampled_from([Unit.MG_PER_DL, Unit.MMOL_PER_L]))
def test_dump_encode_decode_round_trip(dump: list[otu2.OneTouchRecord], unit: Unit) -> None:
    header, decoded = otu2.parse_dump(otu2.encode_dump("GMF600DCY", unit, dump))
    assert header == otu2.DumpHeader(len(dump), "GMF600DCY", unit)
    assert decoded == dump
    for measurement in otu2.decode_dump(otu2.encode_dump("GMF600DCY", unit, dump)):
        assert measurement.values is not None


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    with contextlib.suppress(DriverError):
        decode_transfer("onetouch-ultra2", data)


@given(
    st.lists(st.sampled_from([DUMP_HEADER, RECORD_LINE, "\r\n", "\x00", "P ", '"']), max_size=8),
    st.binary(max_size=8),
)
def test_near_valid_dumps_raise_only_driver_errors(parts: list[str], noise: bytes) -> None:
    with contextlib.suppress(DriverError):
        decode_transfer("onetouch-ultra2", "\r\n".join(parts).encode() + noise)


# --- Excerpts: record lines cut out of a dump ---------------------------------------


def test_one_recorded_record_line_decodes_on_its_own() -> None:
    dump = (FRAMES / "tidepool_dump.txt").read_bytes()
    line = dump.splitlines()[1]
    assert line == RECORD_LINE.encode()
    assert otu2.describe_input(line) == "record line"
    (measurement,) = decode_input("onetouch-ultra2", line + b"\r\n")
    assert measurement == decode_transfer("onetouch-ultra2", dump)[0]


def test_several_record_lines_decode_in_order() -> None:
    dump = (FRAMES / "tidepool_dump.txt").read_bytes()
    body = dump[dump.index(b"\n") + 1 :]
    assert otu2.describe_input(body) == "record lines"
    assert decode_input("onetouch-ultra2", body) == decode_transfer("onetouch-ultra2", dump)


def test_a_whole_dump_still_decodes_and_still_counts_its_lines() -> None:
    dump = (FRAMES / "tidepool_dump.txt").read_bytes()
    assert otu2.describe_input(dump) == "transfer"
    assert decode_input("onetouch-ultra2", dump) == decode_transfer("onetouch-ultra2", dump)
    with pytest.raises(InvalidFrame) as caught:
        decode_input("onetouch-ultra2", dump[: dump.rindex(b'P "SAT"')])
    assert caught.value.field == "record_count"


CHECKSUM_AT = RECORD_LINE.index("09B6")


@pytest.mark.parametrize(
    ("line", "error", "field", "offset"),
    [
        (RECORD_LINE.replace("09B6", "09B7"), ChecksumMismatch, "checksum", CHECKSUM_AT),
        (RECORD_LINE.replace("  081 ", "  091 "), ChecksumMismatch, "checksum", CHECKSUM_AT),
        # A mistyped meal flag is caught by the checksum before the field is read.
        (RECORD_LINE.replace('"N"', '"X"'), ChecksumMismatch, "checksum", CHECKSUM_AT),
        # Without its checksum a line cannot be trusted: refused, not guessed at.
        (RECORD_LINE.removesuffix(" 09B6"), InvalidFrame, "checksum", CHECKSUM_AT - 1),
    ],
)
def test_record_line_checksum_is_verified(
    line: str, error: type[InvalidFrame], field: str, offset: int
) -> None:
    with pytest.raises(error) as caught:
        decode_input("onetouch-ultra2", line.encode())
    assert (caught.value.field, caught.value.offset) == (field, offset)


def test_record_line_with_a_good_checksum_still_names_a_bad_field() -> None:
    payload = 'P "SAT","03/21/15","16:45:24   ","  081 ","X","03", 00'
    with pytest.raises(InvalidFrame) as caught:
        decode_input("onetouch-ultra2", otu2.encode_line(payload))
    assert (caught.value.field, caught.value.offset) == ("meal", 43)


@given(st.binary(max_size=300))
def test_arbitrary_line_excerpts_raise_only_driver_errors(data: bytes) -> None:
    with contextlib.suppress(DriverError):
        decode_input("onetouch-ultra2", b'P "' + data)
