"""Serial glucose-meter protocols: pure parsers and encoders, no I/O.

* :mod:`.onetouch_ultra2` — LifeScan OneTouch Ultra 2 ASCII commands.
* :mod:`.astm` — ASTM E1381 framing and E1394 records as Bayer / Ascensia Contour meters
  send them.

Byte formats, decisions and pitfalls of both: ``docs/devices.md``.

:func:`decode_transfer` decodes a recorded transfer of either protocol, strictly;
:func:`decode_input` also takes a piece of one (a OneTouch record line, an ASTM frame or
record), and is what ``vitalgate decode --protocol`` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from device_drivers.errors import DriverError
from device_drivers.measurement import Measurement
from device_drivers.serial_protocols import astm, onetouch_ultra2

_DECODERS: Final[dict[str, Callable[[bytes], list[Measurement]]]] = {
    "onetouch-ultra2": onetouch_ultra2.decode_dump,
    "astm": astm.decode_transfer,
}
_LENIENT_DECODERS: Final[dict[str, Callable[[bytes], list[Measurement]]]] = {
    "onetouch-ultra2": onetouch_ultra2.decode_lines,
    "astm": astm.decode_transfer_or_excerpt,
}

PROTOCOLS: Final = tuple(_DECODERS)
"""The protocol names :func:`decode_transfer` knows."""


class UnknownProtocol(DriverError):
    """No decoder has this protocol name.

    Attributes:
        protocol: the name asked for.
        known: the names that exist.
    """

    def __init__(self, protocol: str) -> None:
        super().__init__(f"unknown protocol {protocol!r}; known protocols: {', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self.known = PROTOCOLS


def decode_transfer(protocol: str, data: bytes) -> list[Measurement]:
    """Decode one recorded transfer into measurements, in the meter's order.

    Args:
        protocol: ``"onetouch-ultra2"`` — ``data`` is the full ``DMP`` reply (header line
            and record lines); or ``"astm"`` — ``data`` is the meter → host stream of a
            session (ENQ, frames, EOT), just the frames, or bare records one per line.
        data: the bytes.

    Returns:
        Every glucose record, including control-solution and HI/LO results (their
        ``disposition`` and ``flags`` say what they are).

    Raises:
        UnknownProtocol: ``protocol`` is not one of :data:`PROTOCOLS`.
        InvalidFrame: malformed input, naming the field and byte offset.
        ChecksumMismatch: a line or frame checksum is wrong, with its byte offset.
    """
    try:
        decoder = _DECODERS[protocol]
    except KeyError:
        raise UnknownProtocol(protocol) from None
    return decoder(data)


def describe_input(protocol: str, data: bytes) -> str:
    """What :func:`decode_input` takes ``data`` for, in words for messages.

    ``onetouch-ultra2``: ``transfer`` (header line first), ``record line`` or
    ``record lines``; ``astm``: ``transfer``, ``frame``, ``frames``, ``record`` or
    ``records``.

    Raises:
        UnknownProtocol: ``protocol`` is not one of :data:`PROTOCOLS`.
    """
    if protocol == "onetouch-ultra2":
        return onetouch_ultra2.describe_input(data)
    if protocol == "astm":
        return astm.describe_input(data)
    raise UnknownProtocol(protocol)


def decode_input(protocol: str, data: bytes) -> list[Measurement]:
    """Decode a whole transfer or a piece cut out of one (what a technician pastes).

    Args:
        protocol: ``"onetouch-ultra2"`` — the full ``DMP`` reply, or one or more of its
            record lines (``P "SAT","03/21/15",… 09B6``), each with its checksum; or
            ``"astm"`` — a transfer as :func:`decode_transfer` takes it, or an excerpt:
            one or more frames (checksums verified) or bare records such as an
            ``R|…`` line, without the H record.
        data: the bytes.

    Raises:
        UnknownProtocol: ``protocol`` is not one of :data:`PROTOCOLS`.
        InvalidFrame: malformed input, naming the field and byte offset.
        ChecksumMismatch: a line or frame checksum is wrong, with its byte offset.
    """
    try:
        decoder = _LENIENT_DECODERS[protocol]
    except KeyError:
        raise UnknownProtocol(protocol) from None
    return decoder(data)
