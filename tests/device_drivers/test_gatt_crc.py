"""CRCs: check values and worked examples of docs/devices.md."""

from __future__ import annotations

import pytest

from device_drivers.gatt import crc16_ccitt_false, crc16_mcrf4xx


def test_mcrf4xx_check_value() -> None:
    assert crc16_mcrf4xx(b"123456789") == 0x6F91


def test_mcrf4xx_cgms_specification_example() -> None:
    # CGMS 1.0.1 §3.11: the PDF prints 0x012F in byte order; the value is 0x2F01.
    assert crc16_mcrf4xx(bytes.fromhex("3E 01 02 03 04 05 06 07 08 09")) == 0x2F01


@pytest.mark.parametrize(
    ("record", "crc"),
    [
        ("0F E3 D2 E4 05 00 02 14 FF 02 F0 E5 F3", 0x3F8E),  # Nordic CGM record, valid
        ("08 00 0C 10 06 00", 0x6F59),  # Nordic record whose wire CRC 0x6F58 is wrong
    ],
)
def test_mcrf4xx_nordic_cgm_records(record: str, crc: int) -> None:
    assert crc16_mcrf4xx(bytes.fromhex(record)) == crc


def test_ccitt_false_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


@pytest.mark.parametrize(("message", "crc"), [("02 06 06 03", 0x41CD), ("02 06 08 03", 0x62C2)])
def test_ccitt_false_lifescan_vectors(message: str, crc: int) -> None:
    assert crc16_ccitt_false(bytes.fromhex(message)) == crc


def test_empty_input_is_the_initial_value() -> None:
    assert crc16_mcrf4xx(b"") == 0xFFFF
    assert crc16_ccitt_false(b"") == 0xFFFF
