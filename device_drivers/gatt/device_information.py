"""Device Information Service 0x180A: the strings and System ID 0x2A23 (``docs/devices.md``).

Decisions: strings are cut at the first NUL (real devices pad fixed-size buffers with
NULs, sometimes followed by leftovers), decoded as UTF-8 with a Latin-1 fallback (every
byte sequence is valid Latin-1, so decoding never fails), and stripped of surrounding
white space as blessed does. Manufacturer + model + serial (or the System ID) identify a
device; BLE addresses may be random and never do. A string fills the whole value, so it
has no trailing bytes; a System ID is eight bytes and what follows is ignored
(:func:`device_drivers.gatt.decode_characteristic` counts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.gatt._wire import FieldReader, pack_uint

_MANUFACTURER_IDENTIFIER_BYTES: Final = 5
_OUI_BYTES: Final = 3
SYSTEM_ID_SIZE: Final = _MANUFACTURER_IDENTIFIER_BYTES + _OUI_BYTES


def parse_dis_string(data: bytes) -> str:
    """Decode a DIS string characteristic (manufacturer, model, serial, revisions)."""
    raw = bytes(data).split(b"\x00", 1)[0]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.strip()


def encode_dis_string(text: str) -> bytes:
    """A DIS string value: UTF-8, no terminator, no length prefix."""
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SystemId:
    """System ID 0x2A23: a 40-bit manufacturer-defined identifier and a 24-bit OUI."""

    manufacturer_identifier: int
    organizationally_unique_identifier: int

    @property
    def eui64(self) -> str:
        """The EUI-64 as 16 upper-case hex digits, OUI first (e.g. ``123456FFFE9ABCDE``)."""
        return f"{self.organizationally_unique_identifier:06X}{self.manufacturer_identifier:010X}"


def parse_system_id(data: bytes) -> SystemId:
    """Decode System ID (0x2A23): bytes 0–4 manufacturer identifier, 5–7 OUI, LSB first.

    Raises:
        InvalidFrame: fewer than eight bytes.
    """
    reader = FieldReader(data)
    manufacturer = reader.uint(_MANUFACTURER_IDENTIFIER_BYTES, "manufacturer_identifier")
    oui = reader.uint(_OUI_BYTES, "organizationally_unique_identifier")
    return SystemId(manufacturer, oui)


def encode_system_id(system_id: SystemId) -> bytes:
    """The eight bytes of a System ID value.

    Raises:
        UnencodableValue: a part does not fit its bytes.
    """
    return pack_uint(
        system_id.manufacturer_identifier,
        _MANUFACTURER_IDENTIFIER_BYTES,
        "manufacturer_identifier",
    ) + pack_uint(
        system_id.organizationally_unique_identifier,
        _OUI_BYTES,
        "organizationally_unique_identifier",
    )
