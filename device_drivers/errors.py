"""Errors of the device drivers: one root, typed subclasses carrying what went wrong where.

Protocol modules define narrower subclasses next to their parsers; every error a parser
or driver raises derives from :class:`DriverError`, so a caller (the gateway's device
session) can tell device problems from its own bugs.
"""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error raised by :mod:`device_drivers`."""


class InvalidFrame(DriverError):
    """Bytes that do not decode as the protocol says.

    Attributes:
        offset: byte offset in the frame or characteristic value where decoding failed.
        field: the protocol field being decoded there (e.g. ``"systolic"``, ``"checksum"``).
        reason: what is wrong, in words.
    """

    def __init__(self, reason: str, *, offset: int, field: str) -> None:
        super().__init__(f"{field} at offset {offset}: {reason}")
        self.offset = offset
        self.field = field
        self.reason = reason


class ChecksumMismatch(InvalidFrame):
    """A frame's checksum or CRC does not match its contents.

    Attributes:
        wire: the checksum carried by the frame.
        calculated: the checksum computed over the frame.

    ``hex_digits`` is the checksum's width in the message (2 for an 8-bit sum).
    """

    def __init__(
        self,
        *,
        wire: int,
        calculated: int,
        offset: int,
        field: str = "checksum",
        hex_digits: int = 4,
    ) -> None:
        super().__init__(
            f"checksum mismatch: frame says 0x{wire:0{hex_digits}X}, "
            f"contents give 0x{calculated:0{hex_digits}X}",
            offset=offset,
            field=field,
        )
        self.wire = wire
        self.calculated = calculated


class UnsupportedCharacteristic(DriverError):
    """No parser exists for this characteristic UUID."""


class TransportError(DriverError):
    """The link to the device failed (connect, read, write, notification)."""


class DeviceNotFound(TransportError):
    """The device is not in range, not advertising, or the port does not exist."""


class DeviceTimeout(TransportError):
    """The device did not answer within the deadline."""


class ProtocolError(DriverError):
    """The device answered, but not as the protocol requires (e.g. an RACP error code)."""
