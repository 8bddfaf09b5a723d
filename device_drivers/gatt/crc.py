"""CRCs of the health-device protocols (parameters and check values in ``docs/devices.md``).

* CRC-16/MCRF4XX protects CGMS records (E2E-CRC): check value 0x6F91; CGMS 1.0.1 §3.11
  example ``3E 01 … 09`` → 0x2F01, sent least significant byte first.
* CRC-16/CCITT-FALSE protects the LifeScan binary protocol (OneTouch UltraEasy/Mini/Verio):
  check value 0x29B1.
"""

from __future__ import annotations

from typing import Final

_MCRF4XX_POLYNOMIAL_REFLECTED: Final = 0x8408
_CCITT_POLYNOMIAL: Final = 0x1021
_CRC16_INITIAL: Final = 0xFFFF


def crc16_mcrf4xx(data: bytes) -> int:
    """CRC-16/MCRF4XX: polynomial 0x1021 reflected, init 0xFFFF, no final XOR."""
    crc = _CRC16_INITIAL
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ _MCRF4XX_POLYNOMIAL_REFLECTED if crc & 1 else crc >> 1
    return crc


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021 MSB first, init 0xFFFF, no final XOR."""
    crc = _CRC16_INITIAL
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _CCITT_POLYNOMIAL if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc
