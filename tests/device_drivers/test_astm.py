"""ASTM E1381/E1394 as Contour meters speak it: recorded frames (docs/devices.md)."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.base import DeviceInfo
from device_drivers.errors import ChecksumMismatch, DriverError, InvalidFrame, ProtocolError
from device_drivers.measurement import Disposition
from device_drivers.serial_protocols import astm, decode_input, decode_transfer
from readings.units import Unit, mmol_per_l_to_mg_per_dl

FRAMES = Path(__file__).parent / "frames" / "astm"
HEADER = (
    r"H|\^&||7w3LBL|Bayer7390^01.24\01.04\09.02.20^7390-2336773^7403-|A=1^C=63^G=1^I=0200^R=0"
    r"^S=1^U=0^V=10600^X=070070070070180130150250^Y=360126090050099050300089^Z=1|1714||||||1"
    r"|201909221304"
)
HEADER_FRAME = b"\x021" + HEADER.encode() + b"\r\x17D7\r\n"
RESULT = "R|3|^^^Glucose|93|mg/dL^P||A/M0/T1||201505261150"
RESULT_FRAME = b"\x025" + RESULT.encode() + b"\r\x1774\r\n"


def record(text: str) -> astm.RecordText:
    return astm.RecordText(text)


def header() -> astm.AstmHeader:
    return astm.parse_header(record(HEADER))


def test_recorded_header_frame_checksum_d7() -> None:
    frame = astm.decode_frame(HEADER_FRAME)
    assert frame == astm.Frame(number=1, text=HEADER.encode() + b"\r", final=False)
    assert astm.frame_checksum(HEADER_FRAME[1:-4]) == 0xD7
    assert astm.encode_frame(1, HEADER.encode() + b"\r", final=False) == HEADER_FRAME


def test_recorded_result_frame_checksum_74() -> None:
    frame = astm.decode_frame(RESULT_FRAME)
    assert (frame.number, frame.text, frame.final) == (5, RESULT.encode() + b"\r", False)
    assert astm.encode_frame(5, RESULT.encode() + b"\r", final=False) == RESULT_FRAME


@pytest.mark.parametrize(
    ("frame", "field", "offset"),
    [
        (RESULT_FRAME.replace(b"\x1774", b"\x1775"), "checksum", len(RESULT_FRAME) - 4),
        (RESULT_FRAME.replace(b"\x025R", b"\x028R"), "frame_number", 1),
        (RESULT_FRAME.replace(b"\x1774", b"\x17G4"), "checksum", len(RESULT_FRAME) - 4),
        (RESULT_FRAME.replace(b"74\r\n", b"74\n\r"), "frame_trailer", len(RESULT_FRAME) - 2),
        (RESULT_FRAME.replace(b"Glucose", b"Gluc\x05se"), "text", 2 + RESULT.index("ose")),
        (RESULT_FRAME[:30] + b"\x02" + RESULT_FRAME, "terminator", 30),
        (b"R|3" + RESULT_FRAME, "start", 0),
        (RESULT_FRAME[:-1], "terminator", len(RESULT_FRAME) - 1),
        (RESULT_FRAME + b"\x06", "frame_trailer", len(RESULT_FRAME)),
    ],
)
def test_malformed_frame_names_field_and_offset(frame: bytes, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as caught:
        astm.decode_frame(frame)
    assert caught.value.field == field
    assert caught.value.offset == offset


def test_checksum_mismatch_carries_wire_and_calculated() -> None:
    with pytest.raises(ChecksumMismatch) as caught:
        astm.decode_frame(RESULT_FRAME.replace(b"\x1774", b"\x1775"))
    assert (caught.value.wire, caught.value.calculated) == (0x75, 0x74)


def test_header_fields_and_delimiters() -> None:
    parsed = header()
    assert parsed.delimiters == astm.Delimiters(field="|", repeat="\\", component="^", escape="&")
    assert parsed.product_code == "Bayer7390"
    assert parsed.versions == ("01.24", "01.04", "09.02.20")
    assert parsed.serial_number == "7390-2336773"
    assert parsed.sku == "7403-"
    assert parsed.settings["X"] == "070070070070180130150250"
    assert parsed.display_unit is Unit.MG_PER_DL
    assert parsed.range_mg_dl == (10, 600)
    assert parsed.record_count == 1714
    assert parsed.meter_time == datetime(2019, 9, 22, 13, 4)
    assert astm.header_device_identity(parsed) == ("Bayer", "Contour USB", "7390-2336773")
    info = DeviceInfo(*astm.header_device_identity(parsed))
    assert info.device_id == "Bayer-Contour_USB-7390_2336773"


def test_header_settings_u1_is_mmol() -> None:
    parsed = astm.parse_header(record(HEADER.replace("U=0", "U=1").replace("V=10600", "V=x")))
    assert parsed.display_unit is Unit.MMOL_PER_L
    assert parsed.range_mg_dl is None


def test_contour_branded_product_code_is_ascensia() -> None:
    parsed = astm.parse_header(record(HEADER.replace("Bayer7390", "Contour7800")))
    assert (parsed.manufacturer, parsed.model) == ("Ascensia", "Contour Next One")


def test_delimiters_are_read_from_the_header() -> None:
    text = (
        "H!~@$!!!Bayer7390@01.24~01.04@SN&1@SKU!A=1@U=1@V=10600!1!!!!!!1!201909221304\r"
        "R!1!@@@Glucose!5.4!mmol/L@P!!B!!201909221300\r"
        "L!1!!N\r"
    )
    transfer = astm.parse_transfer(text.encode())
    assert transfer.header.delimiters == astm.Delimiters("!", "~", "@", "$")
    assert transfer.header.versions == ("01.24", "01.04")
    assert transfer.header.serial_number == "SN&1"
    (measurement,) = astm.transfer_measurements(transfer)
    assert measurement.values is not None
    assert measurement.values.as_dict() == {"glucose": 5.4}
    assert measurement.context["meal"] == "preprandial"


def test_escape_sequences_are_replaced() -> None:
    delimiters = astm.Delimiters()
    assert delimiters.unescape("a&F&b&S&c&R&d&E&e") == "a|b^c\\d&e"
    parsed = astm.parse_header(record(HEADER.replace("7390-2336773", "7390&S&2336773")))
    assert parsed.serial_number == "7390^2336773"


def test_recorded_result_records() -> None:
    parsed = astm.parse_result(record(RESULT), astm.Delimiters())
    assert parsed == astm.AstmResult(
        seq=3,
        test="Glucose",
        value="93",
        unit="mg/dL",
        reference_method="P",
        markers="A/M0/T1",
        timestamp=datetime(2015, 5, 26, 11, 50),
    )
    assert parsed.marker_codes == {"A", "M0", "T1"}
    other = astm.parse_result(
        record("R|8|^^^Glucose|133|mg/dL^P||B/X||201202052034"), astm.Delimiters()
    )
    assert (other.seq, other.value, other.markers) == (8, "133", "B/X")


@pytest.mark.parametrize(
    ("markers", "flags", "context", "disposition", "value_mg_dl"),
    [
        ("B", set(), {"meal": "preprandial"}, Disposition.PATIENT_READING, 93),
        ("A", set(), {"meal": "postprandial"}, Disposition.PATIENT_READING, 93),
        ("D", set(), {"logbook": True}, Disposition.PATIENT_READING, 93),
        (">", {"result_high"}, {}, Disposition.PATIENT_READING, 600),
        ("<", {"result_low"}, {}, Disposition.PATIENT_READING, 10),
        (">\\T", {"result_high"}, {}, Disposition.PATIENT_READING, 600),
        ("E", {"control_solution"}, {}, Disposition.CONTROL_SOLUTION, 93),
        ("M0/T1", set(), {}, Disposition.PATIENT_READING, 93),
    ],
)
def test_result_markers(
    markers: str,
    flags: set[str],
    context: dict[str, object],
    disposition: Disposition,
    value_mg_dl: int,
) -> None:
    text = f"R|1|^^^Glucose|93|mg/dL^P||{markers}||201505261150"
    measurement = astm.result_to_measurement(
        astm.parse_result(record(text), astm.Delimiters()), header()
    )
    assert measurement is not None
    assert measurement.flags == flags
    assert measurement.disposition is disposition
    assert {k: v for k, v in measurement.context.items() if k in ("meal", "logbook")} == context
    assert measurement.context["markers"] == markers
    assert measurement.values is not None
    glucose = measurement.values.as_dict()["glucose"]
    assert isinstance(glucose, float)
    assert mmol_per_l_to_mg_per_dl(glucose) == pytest.approx(value_mg_dl)


def test_hi_without_header_range_keeps_the_sent_value() -> None:
    no_range = astm.parse_header(record(HEADER.replace("^V=10600", "")))
    result = astm.parse_result(
        record("R|1|^^^Glucose|601|mg/dL^P||>||201505261150"), no_range.delimiters
    )
    measurement = astm.result_to_measurement(result, no_range)
    assert measurement is not None
    assert measurement.values is not None
    glucose = measurement.values.as_dict()["glucose"]
    assert isinstance(glucose, float)
    assert mmol_per_l_to_mg_per_dl(glucose) == pytest.approx(601)


@pytest.mark.parametrize(
    ("method", "sample_type"),
    [("P", "capillary_plasma"), ("B", "capillary_whole_blood"), ("C", "capillary_whole_blood")],
)
def test_reference_method_is_the_sample_type(method: str, sample_type: str) -> None:
    text = f"R|1|^^^Glucose|5.5|mmol/L^{method}||||20150526115012"
    result = astm.parse_result(record(text), astm.Delimiters())
    assert result.timestamp == datetime(2015, 5, 26, 11, 50, 12)
    measurement = astm.result_to_measurement(result, header())
    assert measurement is not None
    assert measurement.values is not None
    assert measurement.source_unit is Unit.MMOL_PER_L
    assert measurement.values.as_dict() == {"glucose": 5.5}
    assert measurement.context["sample_type"] == sample_type
    assert measurement.context["reference_method"] == method


def test_zero_glucose_without_marker_is_a_device_error() -> None:
    result = astm.parse_result(
        record("R|1|^^^Glucose|0|mg/dL^P||||201505261150"), astm.Delimiters()
    )
    measurement = astm.result_to_measurement(result, header())
    assert measurement is not None
    assert measurement.values is None
    assert measurement.disposition is Disposition.DEVICE_ERROR


def test_results_of_other_tests_are_not_measurements() -> None:
    result = astm.parse_result(record("R|6|^^^Insulin|4|U^||||201505261231"), astm.Delimiters())
    assert astm.result_to_measurement(result, header()) is None


@pytest.mark.parametrize("case", sorted(p.stem for p in FRAMES.glob("*.bin")))
def test_recorded_transfers_decode_to_expected_readings(case: str) -> None:
    data = (FRAMES / f"{case}.bin").read_bytes()
    expected = json.loads((FRAMES / f"{case}.json").read_text())
    assert astm.parse_transfer(data).header.serial_number == "7390-2336773"
    measurements = decode_transfer("astm", data)
    assert len(measurements) == len(expected)
    for measurement, want in zip(measurements, expected, strict=True):
        assert measurement.values is not None
        glucose = measurement.values.as_dict()["glucose"]
        assert isinstance(glucose, float)
        assert mmol_per_l_to_mg_per_dl(glucose) == pytest.approx(want["glucose_mg_dl"])
        assert measurement.source_unit == Unit(want["source_unit"])
        assert measurement.seq == want["seq"]
        assert measurement.device_time == datetime.fromisoformat(want["device_time"])
        assert dict(measurement.context) == want["context"]
        assert sorted(measurement.flags) == want["flags"]
        assert measurement.disposition == Disposition(want["disposition"])


def test_recorded_session_holds_the_recorded_frames() -> None:
    data = (FRAMES / "contour_usb_session.bin").read_bytes()
    assert data.startswith(b"\x05" + HEADER_FRAME)
    assert RESULT_FRAME in data
    assert data.endswith(astm.EOT)
    assert astm.parse_transfer(data).terminated


def test_corrupted_frame_is_rejected_with_its_offset() -> None:
    data = bytearray((FRAMES / "contour_usb_session.bin").read_bytes())
    at = data.index(RESULT_FRAME)
    data[at + 10] ^= 0x01
    with pytest.raises(ChecksumMismatch) as caught:
        decode_transfer("astm", bytes(data))
    assert caught.value.offset == at + len(RESULT_FRAME) - 4
    assert caught.value.field == "checksum"


def test_transfer_cut_inside_a_frame_or_record() -> None:
    data = (FRAMES / "contour_usb_session.bin").read_bytes()
    cut = data.index(RESULT_FRAME) + 20
    with pytest.raises(InvalidFrame) as caught:
        decode_transfer("astm", data[:cut])
    assert (caught.value.field, caught.value.offset) == ("terminator", cut)
    split = astm.encode_frame(1, HEADER.encode()[:100], final=False)
    with pytest.raises(InvalidFrame) as caught:
        decode_transfer("astm", split)
    assert caught.value.field == "text"


def test_bare_records_decode_without_framing() -> None:
    text = f"{HEADER}\n{RESULT}\nL|1||N\n".encode()
    (measurement,) = decode_transfer("astm", text)
    assert measurement.seq == 0


def test_seq_is_stable_across_memory_wrap_and_separates_readings_of_one_minute() -> None:
    # R sequence numbers are positions in the transfer: after the meter's memory wraps
    # they shift. The reading's seq is the ordinal among records of the same minute.
    first = (
        f"{HEADER}\n"
        "R|1|^^^Glucose|93|mg/dL^P||A||201505261150\n"
        "R|2|^^^Glucose|95|mg/dL^P||A||201505261150\n"
        "R|3|^^^Glucose|120|mg/dL^P||B||201505261230\nL|1||N\n"
    ).encode()
    wrapped = (
        f"{HEADER}\n"
        "R|1|^^^Glucose|95|mg/dL^P||A||201505261150\n"
        "R|2|^^^Glucose|120|mg/dL^P||B||201505261230\nL|1||N\n"
    ).encode()
    before = decode_transfer("astm", first)
    after = decode_transfer("astm", wrapped)
    assert [m.seq for m in before] == [0, 1, 0]
    assert [(m.device_time, m.seq) for m in before[1:]] != [(m.device_time, m.seq) for m in after]
    assert (before[2].device_time, before[2].seq) == (after[1].device_time, after[1].seq)


@pytest.mark.parametrize(
    ("text", "field", "offset"),
    [
        (f"{RESULT}\r", "header", 0),
        (f"{HEADER}\rX|1\r", "record_type", len(HEADER) + 1),
        (
            f"{HEADER}\rR|3|^^^Glucose|9x3|mg/dL^P||||201505261150\r",
            "result.value",
            len(HEADER) + 1 + len("R|3|^^^Glucose|"),
        ),
        (
            f"{HEADER}\rR|3|^^^Glucose|93|mg^P||||201505261150\r",
            "result.unit",
            len(HEADER) + 1 + len("R|3|^^^Glucose|93|"),
        ),
        (
            f"{HEADER}\rR|a|^^^Glucose|93|mg/dL^P||||201505261150\r",
            "result.sequence",
            len(HEADER) + 3,
        ),
        (
            f"{HEADER}\rR|3|^^^Glucose|93|mg/dL^P||||201513261150\r",
            "result.date_time",
            len(HEADER) + 1 + len("R|3|^^^Glucose|93|mg/dL^P||||"),
        ),
        (f"{HEADER}\rR|3|^^^Glucose|93\r", "result", len(HEADER) + 1 + len("R|3|^^^Glucose|93")),
        ("H|\\^\\|x\r", "header.delimiters", 1),
        (HEADER.replace("|1714|", "|17x4|") + "\r", "header.record_count", HEADER.index("1714")),
    ],
)
def test_malformed_records_name_field_and_offset(text: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as caught:
        astm.parse_transfer(text.encode())
    assert caught.value.field == field
    assert caught.value.offset == offset


def test_record_offsets_are_stream_offsets_inside_frames() -> None:
    bad = "R|3|^^^Glucose|9x3|mg/dL^P||||201505261150"
    data = astm.ENQ + HEADER_FRAME + astm.encode_frame(2, bad.encode() + b"\r", final=True)
    with pytest.raises(InvalidFrame) as caught:
        astm.parse_transfer(data)
    assert caught.value.offset == 1 + len(HEADER_FRAME) + 2 + bad.index("9x3")


def test_missing_serial_cannot_identify_the_meter() -> None:
    with pytest.raises(ProtocolError):
        astm.header_device_identity(astm.parse_header(record(HEADER.replace("7390-2336773", ""))))


# --- the receiver state machine -------------------------------------------------------


def test_receiver_acknowledges_a_clean_transfer() -> None:
    receiver = astm.AstmReceiver()
    frames = astm.frames_for_records([HEADER, "P|1", RESULT, "L|1||N"])
    assert [s.reply for s in receiver.feed(astm.ENQ)] == [astm.ACK]
    for frame in frames:
        (step,) = receiver.feed(frame)
        assert step.reply == astm.ACK
        assert step.frame is not None
    (end,) = receiver.feed(astm.EOT)
    assert end.end_of_transmission
    assert receiver.finished
    assert [r.text for r in receiver.records] == [HEADER, "P|1", RESULT, "L|1||N"]


def test_receiver_naks_a_bad_frame_and_takes_the_resend() -> None:
    receiver = astm.AstmReceiver()
    receiver.feed(astm.ENQ + HEADER_FRAME)
    good = astm.encode_frame(2, RESULT.encode() + b"\r", final=False)
    bad = bytearray(good)
    bad[5] ^= 0x01
    (refused,) = receiver.feed(bytes(bad))
    assert refused.reply == astm.NAK
    assert isinstance(refused.rejected, ChecksumMismatch)
    assert refused.rejected.offset == 1 + len(HEADER_FRAME) + len(good) - 4
    (accepted,) = receiver.feed(good)
    assert accepted.reply == astm.ACK
    assert accepted.frame is not None
    assert [r.text for r in receiver.records] == [HEADER, RESULT]


def test_receiver_acks_and_drops_a_repeated_frame() -> None:
    receiver = astm.AstmReceiver()
    receiver.feed(astm.ENQ + HEADER_FRAME)
    (repeat,) = receiver.feed(HEADER_FRAME)
    assert repeat.reply == astm.ACK
    assert repeat.frame is None
    assert repeat.rejected is None
    assert len(receiver.records) == 1


def test_receiver_refuses_an_out_of_sequence_frame() -> None:
    receiver = astm.AstmReceiver()
    (_, refused) = receiver.feed(astm.ENQ + RESULT_FRAME)
    assert refused.reply == astm.NAK
    assert refused.rejected is not None
    assert refused.rejected.field == "frame_number"


def test_receiver_ignores_eot_before_any_frame_and_noise_between_frames() -> None:
    receiver = astm.AstmReceiver()
    assert receiver.feed(astm.EOT + b"\x06\x15junk") == []
    assert not receiver.finished


def test_frame_numbers_wrap_and_long_records_span_frames() -> None:
    long_result = "R|1|^^^Glucose|93|mg/dL^P||" + "A/" * 200 + "T1||201505261150"
    records = [HEADER, *["P|1"] * 8, long_result, "L|1||N"]
    frames = astm.frames_for_records(records)
    assert [f[1] - ord("0") for f in frames[6:9]] == [7, 0, 1]
    assert any(f[-5:-4] == astm.ETB and f[-6:-5] != astm.CR for f in frames)
    data = astm.encode_session(records)
    receiver = astm.AstmReceiver()
    steps = [step for byte in data for step in receiver.feed(bytes([byte]))]
    assert all(step.rejected is None for step in steps)
    assert [r.text for r in receiver.records] == records
    (measurement,) = decode_transfer("astm", data)
    assert measurement.context["meal"] == "postprandial"


# --- properties ---------------------------------------------------------------------

timestamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
marker_strings = st.lists(
    st.sampled_from(["A", "B", "D", ">", "<", "E", "M0", "T1", "X"]), max_size=4
)
results = st.builds(
    astm.AstmResult,
    seq=st.integers(0, 99999),
    test=st.just("Glucose"),
    value=st.one_of(
        st.integers(1, 999).map(str),
        st.decimals(min_value="0.1", max_value="99.9", places=1).map(str),
    ),
    unit=st.sampled_from(["mg/dL", "mmol/L"]),
    reference_method=st.sampled_from(["P", "B", "C", ""]),
    markers=marker_strings.map("/".join),
    timestamp=timestamps.map(lambda t: t.replace(second=0, microsecond=0)),
    timestamp_has_seconds=st.just(False),
) | st.builds(
    astm.AstmResult,
    seq=st.integers(0, 99999),
    test=st.just("Glucose"),
    value=st.integers(1, 999).map(str),
    unit=st.just("mg/dL"),
    reference_method=st.just("P"),
    markers=st.just(""),
    timestamp=timestamps.map(lambda t: t.replace(microsecond=0)),
    timestamp_has_seconds=st.just(True),
)


@given(results)
def test_result_encode_decode_round_trip(result: astm.AstmResult) -> None:
    assert astm.parse_result(record(astm.encode_result(result)), astm.Delimiters()) == result


@given(st.lists(results, max_size=12))
def test_session_encode_decode_round_trip(generated: list[astm.AstmResult]) -> None:
    records = [HEADER, "P|1", *(astm.encode_result(r) for r in generated), "L|1||N"]
    transfer = astm.parse_transfer(astm.encode_session(records))
    assert list(transfer.results) == generated
    assert transfer.terminated
    assert len(astm.transfer_measurements(transfer)) == len(generated)


@given(
    st.builds(
        astm.AstmHeader,
        delimiters=st.just(astm.Delimiters()),
        product_code=st.sampled_from(["Bayer7390", "Contour7800", "Bayer6210"]),
        versions=st.lists(
            st.from_regex(r"[0-9]{2}\.[0-9]{2}", fullmatch=True), min_size=1, max_size=3
        ).map(tuple),
        serial_number=st.from_regex(r"[0-9]{4}-[0-9]{7}", fullmatch=True),
        sku=st.from_regex(r"[0-9]{4}-", fullmatch=True),
        settings=st.dictionaries(
            st.sampled_from("ACGIRSUVXYZ"), st.from_regex(r"[0-9]{1,6}", fullmatch=True)
        ),
        record_count=st.none() | st.integers(0, 2000),
        meter_time=st.none() | timestamps.map(lambda t: t.replace(second=0, microsecond=0)),
        password=st.from_regex(r"[0-9a-zA-Z]{0,6}", fullmatch=True),
    )
)
def test_header_encode_decode_round_trip(generated: astm.AstmHeader) -> None:
    assert astm.parse_header(record(astm.encode_header(generated))) == generated


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    with contextlib.suppress(DriverError):
        decode_transfer("astm", data)


@given(
    st.lists(
        st.sampled_from([astm.ENQ, astm.EOT, HEADER_FRAME, RESULT_FRAME, b"\x02", b"|", b"\r"]),
        max_size=10,
    ),
    st.binary(max_size=20),
)
def test_near_valid_streams_never_break_the_receiver(parts: list[bytes], noise: bytes) -> None:
    data = b"".join(parts) + noise
    receiver = astm.AstmReceiver()
    for byte in data:
        for step in receiver.feed(bytes([byte])):
            assert step.reply in (astm.ACK, astm.NAK, b"")
    with contextlib.suppress(DriverError):
        decode_transfer("astm", data)


# --- Excerpts: one frame or one record cut out of a transfer ------------------------

SESSION = (FRAMES / "contour_usb_session.bin").read_bytes()


def test_one_recorded_frame_decodes_on_its_own() -> None:
    assert RESULT_FRAME in SESSION
    assert astm.describe_input(RESULT_FRAME) == "frame"
    (measurement,) = decode_input("astm", RESULT_FRAME)
    assert measurement.device_time == datetime(2015, 5, 26, 11, 50)
    assert measurement.values is not None
    glucose = measurement.values.as_dict()["glucose"]
    assert isinstance(glucose, float)
    assert mmol_per_l_to_mg_per_dl(glucose) == pytest.approx(93)
    assert dict(measurement.context)["meal"] == "postprandial"


def test_one_record_line_decodes_on_its_own_with_default_delimiters() -> None:
    assert astm.describe_input(RESULT.encode()) == "record"
    (measurement,) = decode_input("astm", RESULT.encode() + b"\r\n")
    assert (measurement.seq, measurement.source_unit) == (0, Unit.MG_PER_DL)
    assert measurement.device_time == datetime(2015, 5, 26, 11, 50)


def test_records_other_than_results_decode_to_no_reading() -> None:
    assert decode_input("astm", b"P|1") == []
    assert decode_input("astm", b"L|1||N") == []


def test_excerpt_hi_result_keeps_the_sent_value_without_the_header() -> None:
    (measurement,) = decode_input("astm", b"R|2|^^^Glucose|35.0|mmol/L^B||>/D||201505261140")
    assert "result_high" in measurement.flags
    assert measurement.values is not None
    assert measurement.values.as_dict()["glucose"] == pytest.approx(35.0)


def test_excerpt_frame_with_a_wrong_checksum_says_so() -> None:
    corrupted = RESULT_FRAME.replace(b"|93|", b"|98|")
    with pytest.raises(ChecksumMismatch) as caught:
        decode_input("astm", corrupted)
    assert caught.value.field == "checksum"
    assert caught.value.offset == len(RESULT_FRAME) - 4
    assert "checksum mismatch: frame says 0x74, contents give 0x79" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "field", "offset"),
    [
        # Pasted without CR LF: the checksum is there, the trailer is not.
        (RESULT_FRAME[:-2], "frame_trailer", len(RESULT_FRAME) - 2),
        (RESULT_FRAME[:-3], "checksum", len(RESULT_FRAME) - 3),
        (RESULT_FRAME[:25], "terminator", 25),
        # An ETB frame whose text has no CR: the record goes on in the next frame.
        (astm.encode_frame(3, RESULT.encode()[:20], final=False), "text", 27),
        (b"X|1|2", "record_type", 0),
        (b"R|3|^^^Glucose|9x3|mg/dL^P||A||201505261150", "result.value", 15),
        (b"\x06\x06", "record_type", 0),
    ],
)
def test_malformed_excerpt_names_field_and_offset(data: bytes, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode_input("astm", data)
    assert (caught.value.field, caught.value.offset) == (field, offset)


@pytest.mark.parametrize(
    ("data", "shape"),
    [
        (SESSION, "transfer"),
        (SESSION[1:-1], "transfer"),  # frames only, the first is the H record's
        (HEADER.encode(), "transfer"),
        (RESULT_FRAME + RESULT_FRAME.replace(b"\x025", b"\x026"), "frames"),
        (f"{RESULT}\nL|1||N".encode(), "records"),
    ],
)
def test_whole_transfers_are_told_from_excerpts(data: bytes, shape: str) -> None:
    assert astm.describe_input(data) == shape


def test_a_whole_transfer_still_decodes_strictly() -> None:
    assert decode_input("astm", SESSION) == decode_transfer("astm", SESSION)
    assert len(decode_input("astm", SESSION)) == 5
    with pytest.raises(InvalidFrame) as caught:
        decode_input("astm", SESSION.replace(b"\x023R|8", b"\x023X|8").replace(b"C3\r", b"C9\r"))
    assert caught.value.field == "record_type"


@given(st.binary(max_size=300))
def test_arbitrary_excerpts_raise_only_driver_errors(data: bytes) -> None:
    with contextlib.suppress(DriverError):
        decode_input("astm", data)
