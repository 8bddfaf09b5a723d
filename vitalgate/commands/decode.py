"""``vitalgate decode``: recorded device bytes → one JSON document on stdout.

Examples::

    vitalgate decode --characteristic 2A35 --hex 1E8A00580078000000041114293B3C00012700
    vitalgate decode -c 0x2A18 --hex "1B:01:00:E3:07:02:1B:0B:0A:1E:FB:FF:1E:00:12:05:01"
    vitalgate decode --protocol astm --text - < contour-session.txt
    vitalgate decode --protocol astm --text 'R|3|^^^Glucose|93|mg/dL^P||A/M0/T1||201505261150'
    vitalgate decode --protocol onetouch-ultra2 \
        --text 'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B6'

``--protocol`` takes a whole transfer or a piece of one: OneTouch record lines (each with
its checksum), ASTM frames (STX … checksum CR LF; every checksum is verified) or bare ASTM
records without the H record. Measurement characteristics and serial input print a list
of readings in the contract's form; other characteristics print an object of named
fields, with special SFLOAT values as their names ("NaN", "NRes" …), never as numbers.
Bad input prints one line on stderr naming the problem (field and byte offset for
frames) and exits with 2. The byte formats and the decisions behind them are in
``docs/devices.md``.
"""

from __future__ import annotations

import json
import string
import sys
from enum import StrEnum
from typing import Annotated, Any, Final

import typer

from device_drivers.errors import DriverError
from device_drivers.measurement import Measurement
from vitalgate.errors import VitalgateError

EXIT_BAD_INPUT: Final = 2
"""The CLI convention for input the command cannot use (click's usage errors use 2 too)."""

_HEX_SEPARATORS: Final = frozenset(" \t\r\n:")


class SerialProtocol(StrEnum):
    """Serial meter protocols ``--protocol`` can decode."""

    ONETOUCH_ULTRA2 = "onetouch-ultra2"
    ASTM = "astm"


app = typer.Typer(
    help=(
        "Decode device bytes (a GATT characteristic value, or a serial meter transfer) "
        "into readings, printed as JSON."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
)


class BadInput(VitalgateError):
    """Input the command cannot decode; the message is printed as is."""


def parse_hex(text: str) -> bytes:
    """Hex digits to bytes; spaces and colons between digits are allowed, as is ``0x``.

    Raises:
        BadInput: a character is not a hex digit, or the digit count is odd.
    """
    stripped = text.strip()
    if stripped[:2].lower() == "0x":
        stripped = stripped[2:]
    digits: list[str] = []
    for position, character in enumerate(stripped):
        if character in _HEX_SEPARATORS:
            continue
        if character not in string.hexdigits:
            raise BadInput(f"--hex: {character!r} at position {position} is not a hex digit")
        digits.append(character)
    if not digits:
        raise BadInput("--hex: no hex digits given")
    if len(digits) % 2:
        raise BadInput(
            f"--hex: odd number of hex digits ({len(digits)}); every byte needs two digits"
        )
    return bytes.fromhex("".join(digits))


def _input_bytes(hex_text: str | None, text: str | None) -> bytes:
    if (hex_text is None) == (text is None):
        raise BadInput("give the bytes with exactly one of --hex or --text")
    if hex_text is not None:
        return parse_hex(hex_text)
    assert text is not None
    if text == "-":
        return sys.stdin.buffer.read()
    return text.encode("utf-8")


def _decode_characteristic(characteristic: str, data: bytes) -> Any:
    from device_drivers.gatt import decode_characteristic
    from device_drivers.gatt.uuids import CHARACTERISTIC_NAMES, normalize_uuid, short_form

    try:
        decoded = decode_characteristic(characteristic, data)
    except DriverError as exc:
        try:
            uuid = normalize_uuid(characteristic)
        except DriverError:
            raise BadInput(str(exc)) from None
        name = CHARACTERISTIC_NAMES.get(uuid, "")
        label = f"{short_form(uuid)} {name}".strip()
        raise BadInput(f"cannot decode {label} ({len(data)} bytes): {exc}") from None
    if isinstance(decoded, list):
        return [measurement.to_json_dict() for measurement in decoded]
    return decoded


def _decode_serial(protocol: SerialProtocol, data: bytes) -> list[Measurement]:
    from device_drivers.serial_protocols import decode_input, describe_input

    try:
        return decode_input(protocol.value, data)
    except DriverError as exc:
        shape = describe_input(protocol.value, data)
        raise BadInput(
            f"cannot decode {protocol.value} {shape} ({len(data)} bytes): {exc}"
        ) from None


@app.callback(invoke_without_command=True)
def decode(
    characteristic: Annotated[
        str | None,
        typer.Option(
            "--characteristic",
            "-c",
            help="GATT characteristic: 2A35, 0x2A35 or a 128-bit UUID.",
        ),
    ] = None,
    hex_text: Annotated[
        str | None,
        typer.Option("--hex", help="The bytes as hex digits; spaces and colons allowed."),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(
            "--text",
            help="The bytes as text (UTF-8), or '-' to read raw bytes from standard input.",
        ),
    ] = None,
    protocol: Annotated[
        SerialProtocol | None,
        typer.Option(
            "--protocol",
            help=(
                "Serial meter protocol of the bytes: a whole transfer, or a piece of one "
                "(OneTouch record line; ASTM frame or record)."
            ),
        ),
    ] = None,
) -> None:
    """Decode a characteristic value, or a serial transfer or piece of one, as JSON."""
    try:
        if (characteristic is None) == (protocol is None):
            raise BadInput(
                "say what the bytes are with exactly one of --characteristic or --protocol"
            )
        data = _input_bytes(hex_text, text)
        document: Any
        if characteristic is not None:
            document = _decode_characteristic(characteristic, data)
        else:
            assert protocol is not None
            document = [m.to_json_dict() for m in _decode_serial(protocol, data)]
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo(json.dumps(document, ensure_ascii=False, indent=2))
