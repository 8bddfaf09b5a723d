"""IEEE 11073-20601 SFLOAT/FLOAT: the worked examples of docs/devices.md"""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame
from device_drivers.gatt import (
    SpecialValue,
    UnencodableValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from tests.device_drivers.gatt_strategies import float_numbers, floats32, sfloat_numbers, sfloats

# (bytes on air, value) — docs/devices.md table; value = mantissa x 10^exponent.
SFLOAT_EXAMPLES = [
    ("72 00", 114.0),  # 0x0072: exponent 0, mantissa 114
    ("BD F0", 18.9),  # 0xF0BD: exponent -1, mantissa 189
    ("01 FE", -51.1),  # 0xFE01: exponent -1, mantissa 0xE01 = -511
    ("0C 10", 120.0),  # 0x100C: exponent +1, mantissa 12
    ("64 B0", 0.001),  # 0xB064: exponent -5, mantissa 100
    ("26 B2", 0.0055),  # 0xB226: exponent -5, mantissa 550
    ("E8 F3", 100.0),  # 0xF3E8: exponent -1, mantissa 1000
    ("64 00", 100.0),  # 0x0064: exponent 0, mantissa 100
]

SFLOAT_SPECIALS = [
    ("FF 07", SpecialValue.NAN),
    ("00 08", SpecialValue.NRES),
    ("FE 07", SpecialValue.POSITIVE_INFINITY),
    ("02 08", SpecialValue.NEGATIVE_INFINITY),
    ("01 08", SpecialValue.RESERVED),
]

# docs/devices.md
FLOAT_EXAMPLES = [
    ("B0 0E 00 FE", 37.6),  # 0xFE000EB0: exponent -2, mantissa 3760
    ("DA 03 00 FF", 98.6),  # exponent -1, mantissa 986
    ("01 FE 03 FC", 26.1633),  # exponent -4, mantissa 0x03FE01 = 261633
    ("FF 02 FD 04", -1_958_410_000.0),  # exponent +4, mantissa 0xFD02FF = -195841
]

FLOAT_SPECIALS = [
    ("FF FF 7F 00", SpecialValue.NAN),
    ("00 00 80 00", SpecialValue.NRES),
    ("FE FF 7F 00", SpecialValue.POSITIVE_INFINITY),
    ("02 00 80 00", SpecialValue.NEGATIVE_INFINITY),
    ("01 00 80 00", SpecialValue.RESERVED),
]


@pytest.mark.parametrize(("wire", "value"), SFLOAT_EXAMPLES)
def test_sfloat_examples_decode_to_their_values(wire: str, value: float) -> None:
    assert decode_sfloat(bytes.fromhex(wire)) == value


@pytest.mark.parametrize(("wire", "special"), SFLOAT_SPECIALS)
def test_sfloat_reserved_words_decode_to_distinct_specials(
    wire: str, special: SpecialValue
) -> None:
    decoded = decode_sfloat(bytes.fromhex(wire))
    assert decoded is special


@pytest.mark.parametrize(("wire", "value"), FLOAT_EXAMPLES)
def test_float_examples_decode_to_their_values(wire: str, value: float) -> None:
    assert decode_float(bytes.fromhex(wire)) == value


@pytest.mark.parametrize(("wire", "special"), FLOAT_SPECIALS)
def test_float_reserved_words_decode_to_distinct_specials(wire: str, special: SpecialValue) -> None:
    assert decode_float(bytes.fromhex(wire)) is special


def test_biased_exponent_vector_is_not_98_percent() -> None:
    # Pitfall: bluetooth-sig-python writes 98 % as 62 80; without bias that is
    # exponent 0x8 = -8, mantissa 0x062 = 98 → 98e-8.
    assert decode_sfloat(bytes.fromhex("62 80")) == pytest.approx(98e-8)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (120.0, "0C 10"),  # largest exact exponent: 12 x 10^1
        (18.9, "BD F0"),  # 189 x 10^-1
        (-51.1, "01 FE"),  # -511 x 10^-1
        (0.0055, "37 C0"),  # 55 x 10^-4 (largest exact exponent)
        (0.0, "00 00"),
        (2046.0, "CD 10"),  # 2046 > 2045: 204.6 → 205 x 10^1 (half away from zero)
        (-2046.0, "33 1F"),  # -205 x 10^1: 0xF33 is -205 in 12 bits, exponent 1
    ],
)
def test_sfloat_encoder_follows_the_guidance(value: float, wire: str) -> None:
    assert encode_sfloat(value) == bytes.fromhex(wire)


@pytest.mark.parametrize(("wire", "special"), SFLOAT_SPECIALS)
def test_sfloat_encoder_writes_specials(wire: str, special: SpecialValue) -> None:
    assert encode_sfloat(special) == bytes.fromhex(wire)


@pytest.mark.parametrize(("wire", "special"), FLOAT_SPECIALS)
def test_float_encoder_writes_specials(wire: str, special: SpecialValue) -> None:
    assert encode_float(special) == bytes.fromhex(wire)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2046e7, True])
def test_sfloat_encoder_refuses_what_it_cannot_carry(value: float) -> None:
    with pytest.raises(UnencodableValue) as error:
        encode_sfloat(value, field="systolic")
    assert error.value.field == "systolic"


def test_truncated_sfloat_names_offset() -> None:
    with pytest.raises(InvalidFrame) as error:
        decode_sfloat(b"\x01")
    assert error.value.offset == 0


@given(sfloat_numbers)
def test_sfloat_encoder_never_writes_a_reserved_word(value: float) -> None:
    word = int.from_bytes(encode_sfloat(value), "little")
    assert word not in {0x07FF, 0x0800, 0x07FE, 0x0802, 0x0801}


@given(sfloats)
def test_sfloat_round_trip(value: float | SpecialValue) -> None:
    assert decode_sfloat(encode_sfloat(value)) == value


@given(floats32)
def test_float_round_trip(value: float | SpecialValue) -> None:
    assert decode_float(encode_float(value)) == value


@given(float_numbers)
def test_float_encoder_never_writes_a_reserved_word(value: float) -> None:
    word = int.from_bytes(encode_float(value), "little")
    assert word not in {0x007FFFFF, 0x00800000, 0x007FFFFE, 0x00800002, 0x00800001}


@given(st.floats(min_value=-2045e7, max_value=2045e7, allow_nan=False))
def test_sfloat_encoder_rounds_to_within_half_a_step(value: float) -> None:
    decoded = decode_sfloat(encode_sfloat(value))
    assert isinstance(decoded, float)
    # The encoder keeps the smallest exponent whose mantissa fits (|m| ≤ 2045), so a
    # rounded value has |value| ≥ 204.5 steps and the error of half a step is at most
    # |value| / 409; below the smallest step (10^-8) the error is at most 0.5e-8.
    assert abs(decoded - value) <= max(abs(value) / 409, 0.5e-8) * (1 + 1e-9)


@given(st.binary(min_size=2, max_size=2))
def test_every_sfloat_word_is_a_finite_number_or_a_special(data: bytes) -> None:
    decoded = decode_sfloat(data)
    assert isinstance(decoded, SpecialValue) or math.isfinite(decoded)


@given(st.binary(max_size=6))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for decode in (decode_sfloat, decode_float):
        with contextlib.suppress(DriverError):
            decode(data)
