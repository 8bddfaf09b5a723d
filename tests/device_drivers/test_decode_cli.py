"""``vitalgate decode``: JSON on stdout, one clear line on stderr and exit 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vitalgate.commands.decode import app as decode_app
from vitalgate.commands.decode import parse_hex

runner = CliRunner()
cli = typer.Typer()
cli.add_typer(decode_app, name="decode")

NORDIC_BLOOD_PRESSURE = "1E8A00580078000000041114293B3C00012700"


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["decode", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_blood_pressure_reading() -> None:
    code, out, err = _run("--characteristic", "2A35", "--hex", NORDIC_BLOOD_PRESSURE)
    assert (code, err) == (0, "")
    assert json.loads(out) == [
        {
            "kind": "blood_pressure",
            "values": {"systolic": 138.0, "diastolic": 88.0, "mean_arterial": 120.0, "pulse": 60.0},
            "source_unit": "mm[Hg]",
            "device_time": None,
            "seq": None,
            "context": {"device_time_raw": "0000-04-17T20:41:59", "user_id": 1},
            "flags": ["body_movement", "cuff_too_loose", "improper_position", "irregular_pulse"],
            "disposition": "patient_reading",
        }
    ]


@pytest.mark.parametrize(
    "characteristic", ["2a35", "0x2A35", "00002A35-0000-1000-8000-00805F9B34FB"]
)
def test_characteristic_forms_and_short_option(characteristic: str) -> None:
    code, out, _ = _run(
        "-c", characteristic, "--hex", "1E 8A:00 58 00 78 00 00 00 04 11 14 29 3B 3C 00 01 27 00"
    )
    assert code == 0
    assert json.loads(out)[0]["values"]["systolic"] == 138.0


def test_other_characteristics_print_named_fields_with_special_names() -> None:
    # Intermediate cuff pressure NaN: the special is a string, never a number.
    code, out, _ = _run("-c", "2A36", "--hex", "00FF07FF07FF07")
    assert code == 0
    document = json.loads(out)
    assert document["cuff_pressure"] == "NaN"
    assert document["unit_kpa"] is False


def test_special_reading_value_is_a_device_error_without_numbers() -> None:
    code, out, _ = _run("-c", "2A18", "--hex", "02 0100 E807030F081E00 0008 12")
    assert code == 0
    [reading] = json.loads(out)
    assert reading["values"] is None
    assert reading["disposition"] == "device_error"
    assert reading["context"]["glucose_special"] == "NRes"


def test_text_input_for_string_characteristics() -> None:
    code, out, _ = _run("-c", "2A29", "--text", "Omron Healthcare")
    assert code == 0
    assert json.loads(out) == {"manufacturer_name": "Omron Healthcare"}


def test_cgm_notification_with_several_records() -> None:
    code, out, _ = _run("-c", "2AA7", "--hex", "06000C100600 0FE3D2E40500 0214FF02F0E5F38E3F")
    assert code == 0
    assert [reading["seq"] for reading in json.loads(out)] == [6, 5]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-c", "2A35", "--hex", "1E8A0"), "odd number of hex digits (5)"),
        (("-c", "2A35", "--hex", "1E8G"), "'G' at position 3 is not a hex digit"),
        (("-c", "2A35", "--hex", ""), "no hex digits"),
        (("-c", "2A99", "--hex", "00"), "no decoder for characteristic 0x2A99"),
        (("-c", "heart", "--hex", "00"), "'heart' is not a UUID"),
        (
            ("-c", "2A35", "--hex", "1E8A005800"),
            "0x2A35 Blood Pressure Measurement (5 bytes): "
            "mean_arterial_pressure at offset 5: truncated",
        ),
        (("-c", "2AA7", "--hex", "0800 0C10 0600 586F"), "checksum mismatch"),
        (("--hex", "00"), "exactly one of --characteristic or --protocol"),
        (("-c", "2A35"), "exactly one of --hex or --text"),
        (("-c", "2A35", "--hex", "00", "--text", "x"), "exactly one of --hex or --text"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = _run(*args)
    assert code == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1


def test_unknown_protocol_is_a_usage_error() -> None:
    code, _, _ = _run("--protocol", "dexcom", "--hex", "00")
    assert code == 2


def test_serial_protocol_transfer_from_stdin() -> None:
    # Contour USB header and result records of docs/devices.md, bare, one per line.
    transfer = (
        b"H|\\^&||7w3LBL|Bayer7390^01.24\\01.04\\09.02.20^7390-2336773^7403-|"
        b"A=1^C=63^G=1^I=0200^R=0^S=1^U=0^V=10600^X=070070070070180130150250"
        b"^Y=360126090050099050300089^Z=1|1714||||||1|201909221304\n"
        b"R|8|^^^Glucose|133|mg/dL^P||B/X||201202052034\nL|1\n"
    )
    code, out, err = _run("--protocol", "astm", "--text", "-", stdin=transfer)
    assert (code, err) == (0, "")
    [reading] = json.loads(out)
    assert (reading["kind"], reading["seq"], reading["source_unit"]) == ("glucose", 0, "mg/dL")


def test_hex_parser_accepts_separators_and_prefix() -> None:
    assert parse_hex("0x06 5A") == b"\x06\x5a"
    assert parse_hex("06:5a\n") == b"\x06\x5a"


def test_the_project_command_line() -> None:
    from vitalgate.cli import app as vitalgate_app

    result = runner.invoke(
        vitalgate_app, ["decode", "--characteristic", "2A35", "--hex", NORDIC_BLOOD_PRESSURE]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)[0]["kind"] == "blood_pressure"


FRAMES = Path(__file__).parent / "frames"
CONTOUR_RESULT_FRAME = (
    "02 35" + b"R|3|^^^Glucose|93|mg/dL^P||A/M0/T1||201505261150\r".hex() + "17 3734 0D0A"
)


def test_one_onetouch_record_line() -> None:
    dump = (FRAMES / "onetouch_ultra2" / "tidepool_dump.txt").read_bytes()
    line = dump.splitlines()[1].decode()
    code, out, err = _run("--protocol", "onetouch-ultra2", "--text", line)
    assert (code, err) == (0, "")
    [reading] = json.loads(out)
    assert (reading["device_time"], reading["context"]) == (
        "2015-03-21T16:45:24.000",
        {"comment": "mild_exercise"},
    )


def test_one_astm_frame_as_hex() -> None:
    code, out, err = _run("--protocol", "astm", "--hex", CONTOUR_RESULT_FRAME)
    assert (code, err) == (0, "")
    [reading] = json.loads(out)
    assert (reading["device_time"], reading["context"]["meal"]) == (
        "2015-05-26T11:50:00.000",
        "postprandial",
    )


def test_one_astm_record_as_text() -> None:
    code, out, err = _run(
        "--protocol", "astm", "--text", "R|8|^^^Glucose|133|mg/dL^P||B/X||201202052034"
    )
    assert (code, err) == (0, "")
    [reading] = json.loads(out)
    assert (reading["seq"], reading["context"]["meal"]) == (0, "preprandial")


def test_whole_recorded_session_from_stdin() -> None:
    session = (FRAMES / "astm" / "contour_usb_session.bin").read_bytes()
    code, out, err = _run("--protocol", "astm", "--text", "-", stdin=session)
    assert (code, err) == (0, "")
    assert len(json.loads(out)) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--protocol", "astm", "--hex", CONTOUR_RESULT_FRAME.replace("3734", "3735")),
            "cannot decode astm frame (56 bytes): checksum at offset 52: "
            "checksum mismatch: frame says 0x75, contents give 0x74",
        ),
        (
            (
                "--protocol",
                "onetouch-ultra2",
                "--text",
                'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B7',
            ),
            "cannot decode onetouch-ultra2 record line (59 bytes): checksum at offset 55: "
            "checksum mismatch",
        ),
        (
            ("--protocol", "astm", "--text", "R|3|^^^Glucose|93|mg/dL^P||A||2015052611"),
            "cannot decode astm record (40 bytes): result.date_time at offset 30",
        ),
    ],
)
def test_bad_serial_excerpt_names_what_it_was_taken_for(
    args: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(*args)
    assert (code, out) == (2, "")
    assert message in err
    assert err.count("\n") == 1
