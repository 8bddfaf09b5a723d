"""Device Information strings and System ID 0x2A23 (docs/devices.md)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    SystemId,
    decode_characteristic,
    encode_dis_string,
    encode_system_id,
    parse_dis_string,
    parse_system_id,
)


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        (b"Roche", "Roche"),
        (b"Roche\x00\x00\x00", "Roche"),  # NUL padding seen on real devices
        (b"HEM-7361T  ", "HEM-7361T"),  # blessed strips trailing spaces too
        (b"A&D\x00garbage", "A&D"),  # leftovers after the first NUL
        ("血糖仪".encode(), "血糖仪"),
        (b"Caf\xe9", "Café"),  # not UTF-8: Latin-1 fallback
        (b"", ""),
    ],
)
def test_dis_strings(wire: bytes, text: str) -> None:
    assert parse_dis_string(wire) == text


def test_dis_strings_by_characteristic() -> None:
    assert decode_characteristic("2A29", b"Omron\x00") == {"manufacturer_name": "Omron"}
    assert decode_characteristic("2A24", b"HEM-7361T") == {"model_number": "HEM-7361T"}
    assert decode_characteristic("2A25", b"20031234") == {"serial_number": "20031234"}
    assert decode_characteristic("2A26", b"1.0.2") == {"firmware_revision": "1.0.2"}
    assert decode_characteristic("2A28", b"2.1") == {"software_revision": "2.1"}
    assert decode_characteristic("2A27", b"B") == {"hardware_revision": "B"}


def test_system_id_example() -> None:
    # From a Bluetooth address: OUI 0x123456, lower 0x9ABCDE → 0x123456FFFE9ABCDE, LSB first.
    wire = bytes.fromhex("DE BC 9A FE FF 56 34 12")
    system_id = parse_system_id(wire)
    assert system_id == SystemId(
        manufacturer_identifier=0xFFFE9ABCDE, organizationally_unique_identifier=0x123456
    )
    assert system_id.eui64 == "123456FFFE9ABCDE"
    assert decode_characteristic("2A23", wire) == {
        "manufacturer_identifier": 0xFFFE9ABCDE,
        "organizationally_unique_identifier": 0x123456,
        "eui64": "123456FFFE9ABCDE",
    }


def test_truncated_system_id() -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_system_id(bytes.fromhex("DE BC 9A FE FF 56 34"))
    assert (error.value.field, error.value.offset) == ("organizationally_unique_identifier", 5)


@given(st.text().filter(lambda text: "\x00" not in text and text == text.strip()))
def test_string_round_trip(text: str) -> None:
    assert parse_dis_string(encode_dis_string(text)) == text


@given(st.integers(0, 2**40 - 1), st.integers(0, 2**24 - 1))
def test_system_id_round_trip(manufacturer: int, oui: int) -> None:
    system_id = SystemId(manufacturer, oui)
    assert parse_system_id(encode_system_id(system_id)) == system_id


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    parse_dis_string(data)
    with contextlib.suppress(DriverError):
        parse_system_id(data)
