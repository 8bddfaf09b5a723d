"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) decimal floats (``docs/devices.md``).

value = mantissa x 10^exponent, both two's complement, **no exponent bias**. Five raw
words with exponent 0 are not numbers: NaN, NRes (not at this resolution), +INF, -INF and
one reserved word. They decode to a :class:`SpecialValue`, kept distinct from each other
(other public parsers fold NRes and reserved into NaN) and never into a float,
so a special can never be published as a number.

Decoding divides the integer mantissa by the integer power of ten, which IEEE 754 rounds
correctly: ``BD F0`` gives exactly the float nearest 18.9 (``189 * 0.1`` would not).

Encoding (for simulators and tests) follows the usual guidance: the largest exponent that
keeps the value exact, mantissa magnitude kept below the reserved words (≤ 2045 for
SFLOAT, like Nordic's encoder; ≤ 2^23 - 3 for FLOAT), and round half away from zero when
precision must be lost.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Final, TypeAlias

from device_drivers.gatt._wire import FieldReader
from device_drivers.gatt.errors import UnencodableValue


class SpecialValue(StrEnum):
    """A reserved SFLOAT/FLOAT word: a reason why there is no number."""

    NAN = "NaN"
    """Not a number: the device could not determine the value."""
    NRES = "NRes"
    """Not at this resolution: the value exists but cannot be represented."""
    POSITIVE_INFINITY = "+INF"
    """Above the representable range."""
    NEGATIVE_INFINITY = "-INF"
    """Below the representable range."""
    RESERVED = "reserved"
    """Reserved for future use by IEEE 11073."""


DecodedFloat: TypeAlias = float | SpecialValue
"""A decoded SFLOAT/FLOAT: a number, or the reason there is none."""

SFLOAT_SPECIALS: Final[dict[int, SpecialValue]] = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
FLOAT_SPECIALS: Final[dict[int, SpecialValue]] = {
    0x007F_FFFF: SpecialValue.NAN,
    0x0080_0000: SpecialValue.NRES,
    0x007F_FFFE: SpecialValue.POSITIVE_INFINITY,
    0x0080_0002: SpecialValue.NEGATIVE_INFINITY,
    0x0080_0001: SpecialValue.RESERVED,
}
_SFLOAT_WORD_OF: Final = {special: word for word, special in SFLOAT_SPECIALS.items()}
_FLOAT_WORD_OF: Final = {special: word for word, special in FLOAT_SPECIALS.items()}

SFLOAT_MAX_MANTISSA: Final = 2045
"""Largest mantissa magnitude the encoder writes: 2046 and 2047 (and -2046 … -2048) with
exponent 0 are reserved words, so staying below them never produces a special by accident."""
FLOAT_MAX_MANTISSA: Final = (1 << 23) - 3
"""Same rule for the 24-bit FLOAT mantissa."""
SFLOAT_EXPONENT_RANGE: Final = (-8, 7)
FLOAT_EXPONENT_RANGE: Final = (-128, 127)


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _scale(mantissa: int, exponent: int) -> float:
    if exponent >= 0:
        power: int = 10**exponent
        return float(mantissa * power)
    divisor: int = 10**-exponent
    return mantissa / divisor


def sfloat_from_word(word: int) -> DecodedFloat:
    """Decode a 16-bit SFLOAT word (already assembled little-endian)."""
    special = SFLOAT_SPECIALS.get(word)
    if special is not None:
        return special
    return _scale(_signed(word & 0x0FFF, 12), _signed(word >> 12, 4))


def float_from_word(word: int) -> DecodedFloat:
    """Decode a 32-bit FLOAT word (already assembled little-endian)."""
    special = FLOAT_SPECIALS.get(word)
    if special is not None:
        return special
    return _scale(_signed(word & 0xFF_FFFF, 24), _signed(word >> 24, 8))


def read_sfloat(reader: FieldReader, field: str) -> DecodedFloat:
    """Read one SFLOAT field from ``reader``."""
    return sfloat_from_word(reader.uint16(field))


def read_float(reader: FieldReader, field: str) -> DecodedFloat:
    """Read one FLOAT field from ``reader``."""
    return float_from_word(reader.uint32(field))


def decode_sfloat(data: bytes) -> DecodedFloat:
    """Decode the first two bytes of ``data`` as an SFLOAT.

    Raises:
        InvalidFrame: fewer than two bytes.
    """
    return read_sfloat(FieldReader(data), "sfloat")


def decode_float(data: bytes) -> DecodedFloat:
    """Decode the first four bytes of ``data`` as a FLOAT.

    Raises:
        InvalidFrame: fewer than four bytes.
    """
    return read_float(FieldReader(data), "float")


def _mantissa_exponent(
    value: float, *, max_mantissa: int, exponent_range: tuple[int, int], field: str
) -> tuple[int, int]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UnencodableValue(f"{value!r} is not a number", field=field)
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise UnencodableValue(
            f"{number!r} is not finite; pass a SpecialValue to send NaN or infinity", field=field
        )
    min_exponent, max_exponent = exponent_range
    decimal = Decimal(repr(number))
    if decimal.is_zero():
        return 0, 0
    exact_exponent = decimal.normalize().as_tuple().exponent
    assert isinstance(exact_exponent, int)  # finite decimals have an integer exponent
    exponent = min(max(exact_exponent, min_exponent), max_exponent)
    while exponent <= max_exponent:
        mantissa = int(decimal.scaleb(-exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        if abs(mantissa) <= max_mantissa:
            return mantissa, exponent
        exponent += 1
    raise UnencodableValue(f"{number!r} is too large in magnitude", field=field)


def encode_sfloat(value: DecodedFloat, *, field: str = "sfloat") -> bytes:
    """``value`` as the two bytes of an SFLOAT, least significant first.

    Raises:
        UnencodableValue: not finite, or larger than 2045 x 10^7 in magnitude.
    """
    if isinstance(value, SpecialValue):
        word = _SFLOAT_WORD_OF[value]
    else:
        mantissa, exponent = _mantissa_exponent(
            value,
            max_mantissa=SFLOAT_MAX_MANTISSA,
            exponent_range=SFLOAT_EXPONENT_RANGE,
            field=field,
        )
        word = ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
    return word.to_bytes(2, "little")


def encode_float(value: DecodedFloat, *, field: str = "float") -> bytes:
    """``value`` as the four bytes of a FLOAT, least significant first.

    Raises:
        UnencodableValue: not finite, or too large for a 24-bit mantissa and exponent 127.
    """
    if isinstance(value, SpecialValue):
        word = _FLOAT_WORD_OF[value]
    else:
        mantissa, exponent = _mantissa_exponent(
            value,
            max_mantissa=FLOAT_MAX_MANTISSA,
            exponent_range=FLOAT_EXPONENT_RANGE,
            field=field,
        )
        word = ((exponent & 0xFF) << 24) | (mantissa & 0xFF_FFFF)
    return word.to_bytes(4, "little")
