"""Little-endian field reading and writing shared by the GATT parsers and encoders.

Every read names the field it decodes, so a short value fails with an
:class:`~device_drivers.errors.InvalidFrame` that says which field was cut off and at
which byte offset. Two rules every parser follows (``docs/devices.md``, "GATT values"):

* A field the flags promise is read unconditionally: if its bytes are missing the value
  is truncated and decoding fails naming that field; it never yields a reading without it.
* Bytes after the last field the value defines are not an error: they are ignored (the
  Bluetooth specifications let later versions append fields, and receivers must skip
  what they do not know) and their number is reported as ``trailing_bytes``.
"""

from __future__ import annotations

from typing import Final

from device_drivers.errors import InvalidFrame
from device_drivers.gatt.errors import UnencodableValue

UINT16_MAX: Final = 0xFFFF


class FieldReader:
    """A cursor over a characteristic value that reads named little-endian fields."""

    def __init__(self, data: bytes, *, base_offset: int = 0) -> None:
        """Read ``data``; ``base_offset`` is where it starts in the whole value, so errors
        name offsets in the value (a CGM notification holds several records)."""
        self._data = bytes(data)
        self._offset = 0
        self._base_offset = base_offset

    @property
    def offset(self) -> int:
        """Byte offset of the next field (in the whole value)."""
        return self._base_offset + self._offset

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self._data) - self._offset

    def take(self, size: int, field: str) -> bytes:
        """The next ``size`` bytes; raises InvalidFrame naming ``field`` when fewer are left."""
        if self.remaining < size:
            raise InvalidFrame(
                f"truncated: {size} byte(s) needed, {self.remaining} left "
                f"(value is {len(self._data)} byte(s) long)",
                offset=self.offset,
                field=field,
            )
        chunk = self._data[self._offset : self._offset + size]
        self._offset += size
        return chunk

    def trailing_bytes(self) -> int:
        """The number of bytes after the fields read so far: call it once the last field
        the value defines has been read (they are ignored, and reported by this count)."""
        return self.remaining

    def rest(self) -> bytes:
        """Every byte not read yet."""
        chunk = self._data[self._offset :]
        self._offset = len(self._data)
        return chunk

    def uint(self, size: int, field: str) -> int:
        """An unsigned little-endian integer of ``size`` bytes."""
        return int.from_bytes(self.take(size, field), "little")

    def sint(self, size: int, field: str) -> int:
        """A two's-complement little-endian integer of ``size`` bytes."""
        return int.from_bytes(self.take(size, field), "little", signed=True)

    def uint8(self, field: str) -> int:
        """An uint8."""
        return self.uint(1, field)

    def uint16(self, field: str) -> int:
        """An uint16."""
        return self.uint(2, field)

    def uint24(self, field: str) -> int:
        """An uint24."""
        return self.uint(3, field)

    def uint32(self, field: str) -> int:
        """An uint32."""
        return self.uint(4, field)


def pack_uint(value: int, size: int, field: str) -> bytes:
    """``value`` as an unsigned little-endian integer of ``size`` bytes."""
    if isinstance(value, bool) or not 0 <= value < 1 << (8 * size):
        raise UnencodableValue(f"{value!r} does not fit in uint{8 * size}", field=field)
    return value.to_bytes(size, "little")


def pack_sint(value: int, size: int, field: str) -> bytes:
    """``value`` as a two's-complement little-endian integer of ``size`` bytes."""
    bound = 1 << (8 * size - 1)
    if isinstance(value, bool) or not -bound <= value < bound:
        raise UnencodableValue(f"{value!r} does not fit in sint{8 * size}", field=field)
    return value.to_bytes(size, "little", signed=True)


def require_together(field: str, *values: object) -> bool:
    """Whether a group of fields that share one presence flag is present.

    Raises:
        UnencodableValue: some of the group are set and some are not.
    """
    present = [value is not None for value in values]
    if any(present) and not all(present):
        raise UnencodableValue("these fields share one flag bit: set all or none", field=field)
    return all(present)


def padding(count: int, field: str = "trailing_bytes") -> bytes:
    """``count`` zero bytes appended after the last field (encoders, for a device that pads).

    Raises:
        UnencodableValue: ``count`` is negative.
    """
    if isinstance(count, bool) or count < 0:
        raise UnencodableValue(f"{count!r} is not a byte count", field=field)
    return bytes(count)
