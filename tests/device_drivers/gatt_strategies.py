"""Hypothesis strategies for GATT characteristic fields (round-trip and robustness tests).

Numbers are generated as the decimal an SFLOAT/FLOAT can carry (mantissa x 10^exponent,
computed with :mod:`decimal`, independently of the decoder), so decode(encode(x)) == x
holds exactly.
"""

from __future__ import annotations

from decimal import Decimal
from enum import IntFlag
from functools import reduce
from operator import or_
from typing import TypeVar

from hypothesis import strategies as st

from device_drivers.gatt import DateTimeFields, SpecialValue

FlagT = TypeVar("FlagT", bound=IntFlag)


def _decimal_float(mantissa: int, exponent: int) -> float:
    return float(Decimal(mantissa).scaleb(exponent))


sfloat_numbers = st.builds(_decimal_float, st.integers(-2045, 2045), st.integers(-8, 7))
"""Every number an SFLOAT encoder may write (|mantissa| ≤ 2045, docs/devices.md)."""
float_numbers = st.builds(
    _decimal_float, st.integers(-(2**23) + 3, 2**23 - 3), st.integers(-128, 127)
)
"""Every number a FLOAT encoder may write."""
specials = st.sampled_from(list(SpecialValue))
sfloats = st.one_of(sfloat_numbers, specials)
floats32 = st.one_of(float_numbers, specials)

uint8 = st.integers(0, 0xFF)
uint16 = st.integers(0, 0xFFFF)
nibbles = st.integers(0, 0x0F)

date_times = st.builds(
    DateTimeFields,
    year=uint16,
    month=uint8,
    day=uint8,
    hours=uint8,
    minutes=uint8,
    seconds=uint8,
)
"""Any seven octets: the codec keeps raw fields, valid calendar times or not."""


def flags_of(flag_type: type[FlagT]) -> st.SearchStrategy[FlagT]:
    """Any combination of the defined members of ``flag_type`` (no RFU bits)."""
    return st.sets(st.sampled_from(list(flag_type))).map(
        lambda members: reduce(or_, members, flag_type(0))
    )


def optional(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``strategy`` or ``None``."""
    return st.none() | strategy
