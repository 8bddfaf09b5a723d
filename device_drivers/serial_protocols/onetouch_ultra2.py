"""LifeScan OneTouch Ultra 2: the ASCII command protocol over RS-232 (``docs/devices.md``).

Pure functions only: command builders, reply-line checksums, parsers for every reply the
driver uses, the record → :class:`~device_drivers.measurement.Measurement` mapping, and
encoders for the simulator. The driver (:mod:`device_drivers.onetouch_ultra2`) moves the
bytes.

Every reply line is ``<payload> <CCCC>\\r\\n``; ``CCCC`` is the 16-bit sum of the payload
bytes as 4 uppercase hex digits. Decisions:

* Glucose is stored and dumped in mg/dL whatever the display unit; it is converted to
  mmol/L through :mod:`readings.units` and ``source_unit`` is ``mg/dL``.
* Values below 20 mg/dL are the meter's LO and above 600 its HI (as Tidepool maps them):
  patient readings flagged ``result_low``/``result_high`` with the range limit as value.
* ``C`` (control solution) makes a ``CONTROL_SOLUTION`` record, flagged
  ``control_solution``; ``?`` (parity error on the meter's link) flags
  ``communication_error``.
* Meal flag ``B``/``A`` → context ``meal`` ``preprandial``/``postprandial`` (the Glucose
  Service's names); ``N`` adds nothing. Comment codes → context ``comment``; unknown
  codes are kept as ``comment_code`` rather than rejected.
* The firmware writes 2-digit years: ``yy`` → ``20yy``. The day of week is not checked.
* The protocol has no record numbers: ``seq`` is ``None`` and identity uses device time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from device_drivers.errors import ChecksumMismatch, DeviceNotFound, InvalidFrame, ProtocolError
from device_drivers.measurement import Disposition, Measurement
from readings.model import GlucoseValues, Kind
from readings.units import Unit, mg_per_dl_to_mmol_per_l

COMMAND_PREFIX: Final = b"\x11\r"
"""DC1 then CR: wakes the meter's command parser before each command."""
COMMAND_SUFFIX: Final = b"\r"

LO_LIMIT_MG_PER_DL: Final = 20
"""Bottom of the meter's measuring range: lower values are displayed as LO."""
HI_LIMIT_MG_PER_DL: Final = 600
"""Top of the meter's measuring range: higher values are displayed as HI."""

SERIAL_NUMBER_LENGTH: Final = 9
DISPLAY_UNITS: Final[dict[str, Unit]] = {"MG/DL ": Unit.MG_PER_DL, "MMOL/L": Unit.MMOL_PER_L}
_UNIT_TEXT: Final = {unit: text for text, unit in DISPLAY_UNITS.items()}

COMMENT_NAMES: Final[dict[int, str]] = {
    1: "not_enough_food",
    2: "too_much_food",
    3: "mild_exercise",
    4: "hard_exercise",
    5: "medication",
    6: "stress",
    7: "illness",
    8: "feel_hypo",
    9: "menses",
    10: "vacation",
    11: "other",
}
"""LifeScan's comment codes; 00 is "no comment"."""

_DAY_NAMES: Final = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_Y2K_CENTURY: Final = 2000
"""The firmware is not Y2K-aware: it keeps two year digits."""
_CHECKSUM_TRAILER: Final = re.compile(rb" ([0-9A-F]{4})\r?\n?$")
_RECORD_LINE_START: Final = b'P "'
"""A record line starts ``P "`` (a quoted day of week); the header ``P `` and digits."""
_NOT_IN_CABLE: Final = b"\x00"
"""Tidepool: a reply of one zero byte means the meter is not in its cable or is switched on."""


class Command(StrEnum):
    """Command texts (without framing)."""

    FIRMWARE = "DM?"
    SERIAL_NUMBER = "DM@"
    READ_CLOCK = "DMF"
    DISPLAY_UNIT = "DMSU?"
    DUMP = "DMP"
    SET_CLOCK = "DMT"
    """Followed by ``mm/dd/yy hh:mm:ss``."""


class Meal(StrEnum):
    """The meal flag of a record."""

    NONE = "N"
    BEFORE = "B"
    AFTER = "A"


_MEAL_CONTEXT: Final = {Meal.BEFORE: "preprandial", Meal.AFTER: "postprandial"}


class MeterNotInCable(DeviceNotFound):
    """The port answered with one zero byte: the meter is not in its cable, or is on.

    The meter only talks while it is switched off and plugged into the cable.
    """


@dataclass(frozen=True, slots=True)
class DumpHeader:
    """The first line of a ``DMP`` reply."""

    record_count: int
    serial_number: str
    display_unit: Unit


@dataclass(frozen=True, slots=True)
class OneTouchRecord:
    """One stored reading, as the meter dumps it.

    Attributes:
        device_time: meter wall-clock time of the test (seconds resolution).
        value_mg_dl: the 3-digit value, always mg/dL.
        control_solution: ``C`` marker.
        parity_error: ``?`` marker: the meter saw a parity error on its link.
        meal: meal flag.
        comment_code: 0 (none) to 11; other numbers are passed through.
    """

    device_time: datetime
    value_mg_dl: int
    control_solution: bool = False
    parity_error: bool = False
    meal: Meal = Meal.NONE
    comment_code: int = 0


def build_command(command: str) -> bytes:
    """The bytes that send ``command`` (e.g. ``"DMF"``) to the meter."""
    return COMMAND_PREFIX + command.encode("ascii") + COMMAND_SUFFIX


def build_set_clock(device_time: datetime) -> bytes:
    """The ``DMT`` command setting the meter clock to ``device_time`` (naive local time)."""
    return build_command(Command.SET_CLOCK + device_time.strftime("%m/%d/%y %H:%M:%S"))


def checksum(payload: bytes) -> int:
    """The reply-line checksum: the sum of the payload bytes modulo 65536."""
    return sum(payload) & 0xFFFF


def encode_line(payload: str) -> bytes:
    """A reply line as the meter sends it: payload, space, checksum, CR LF."""
    raw = payload.encode("ascii")
    return raw + f" {checksum(raw):04X}\r\n".encode("ascii")


def verify_line(line: bytes, *, offset: int = 0) -> str:
    """Check a reply line's checksum and return its payload.

    Args:
        line: one line, with or without its CR LF.
        offset: where ``line`` starts in the reply, so errors name absolute offsets.

    Raises:
        MeterNotInCable: the line is a single zero byte.
        InvalidFrame: no checksum, or a byte that is not ASCII.
        ChecksumMismatch: the checksum does not match the payload.
    """
    if line.rstrip(b"\r\n") == _NOT_IN_CABLE:
        raise MeterNotInCable(
            "the meter answered with a zero byte: switch it off and seat it in its cable"
        )
    match = _CHECKSUM_TRAILER.search(line)
    if match is None:
        raise InvalidFrame(
            "line does not end with a space and 4 uppercase hex digits",
            offset=offset + len(line.rstrip(b"\r\n")),
            field="checksum",
        )
    payload = line[: match.start()]
    wire = int(match.group(1), 16)
    calculated = checksum(payload)
    if wire != calculated:
        raise ChecksumMismatch(
            wire=wire, calculated=calculated, offset=offset + match.start(1), field="checksum"
        )
    for index, byte in enumerate(payload):
        if byte >= 0x80:
            raise InvalidFrame("byte is not ASCII", offset=offset + index, field="payload")
    return payload.decode("ascii")


# Fixed-width layouts: a literal, or (field name, width). Field names appear in errors.
_Segment = str | tuple[str, int]

_CLOCK_LAYOUT: Final[tuple[_Segment, ...]] = (
    ("command", 1),
    ' "',
    ("day_of_week", 3),
    '","',
    ("date", 8),
    '","',
    ("time", 8),
    '   "',
)
_SERIAL_LAYOUT: Final[tuple[_Segment, ...]] = ('@ "', ("serial_number", SERIAL_NUMBER_LENGTH), '"')
_UNIT_LAYOUT: Final[tuple[_Segment, ...]] = ('SU?,"', ("display_unit", 6), '"')
_HEADER_LAYOUT: Final[tuple[_Segment, ...]] = (
    "P ",
    ("record_count", 3),
    ',"',
    ("serial_number", SERIAL_NUMBER_LENGTH),
    '","',
    ("display_unit", 6),
    '"',
)
_RECORD_LAYOUT: Final[tuple[_Segment, ...]] = (
    'P "',
    ("day_of_week", 3),
    '","',
    ("date", 8),
    '","',
    ("time", 8),
    '   ","',
    ("control", 1),
    " ",
    ("value", 3),
    ("parity", 1),
    '","',
    ("meal", 1),
    '","',
    ("comment", 2),
    '", 00',
)


@dataclass(frozen=True, slots=True)
class _Field:
    text: str
    offset: int


def _split_fixed(payload: str, layout: Sequence[_Segment], offset: int) -> dict[str, _Field]:
    fields: dict[str, _Field] = {}
    position = 0
    previous = "start of line"
    for segment in layout:
        if isinstance(segment, str):
            found = payload[position : position + len(segment)]
            if found != segment:
                raise InvalidFrame(
                    f"expected {segment!r} after {previous}",
                    offset=offset + position,
                    field=previous,
                )
            position += len(segment)
        else:
            name, width = segment
            text = payload[position : position + width]
            if len(text) != width:
                raise InvalidFrame(
                    f"line ends inside {name} ({width} characters expected)",
                    offset=offset + position,
                    field=name,
                )
            fields[name] = _Field(text, offset + position)
            position += width
            previous = name
    if position != len(payload):
        raise InvalidFrame(
            f"{len(payload) - position} unexpected characters after {previous}",
            offset=offset + position,
            field=previous,
        )
    return fields


def _digits(found: _Field, name: str) -> int:
    if not (found.text.isascii() and found.text.isdigit()):
        # The text is not echoed: it may be (part of) a glucose value, which must stay out
        # of logs.
        raise InvalidFrame("must be decimal digits", offset=found.offset, field=name)
    return int(found.text)


def _parse_datetime(date: _Field, time: _Field) -> datetime:
    date_parts = date.text.split("/")
    time_parts = time.text.split(":")
    if len(date_parts) != 3 or not all(len(p) == 2 and p.isdigit() for p in date_parts):
        raise InvalidFrame(f"{date.text!r} is not MM/DD/YY", offset=date.offset, field="date")
    if len(time_parts) != 3 or not all(len(p) == 2 and p.isdigit() for p in time_parts):
        raise InvalidFrame(f"{time.text!r} is not HH:MM:SS", offset=time.offset, field="time")
    month, day, year = (int(p) for p in date_parts)
    hour, minute, second = (int(p) for p in time_parts)
    try:
        date_value = datetime(_Y2K_CENTURY + year, month, day)  # noqa: DTZ001 - meter local time
    except ValueError as exc:
        raise InvalidFrame(str(exc), offset=date.offset, field="date") from None
    try:
        return date_value.replace(hour=hour, minute=minute, second=second)
    except ValueError as exc:
        raise InvalidFrame(str(exc), offset=time.offset, field="time") from None


def _format_datetime(value: datetime) -> str:
    return f'"{_DAY_NAMES[value.weekday()]}","{value:%m/%d/%y}","{value:%H:%M:%S}   "'


def parse_firmware(payload: str, *, offset: int = 0) -> str:
    """The firmware version from a ``DM?`` reply payload (``?P02.00.00 30/08/06``)."""
    if not payload.startswith("?") or len(payload) < 2:
        raise InvalidFrame("firmware reply must start with '?'", offset=offset, field="firmware")
    return payload[1:]


def parse_serial_number(payload: str, *, offset: int = 0) -> str:
    """The serial number from a ``DM@`` reply payload (``@ "GMF600DCY"``).

    Raises:
        InvalidFrame: the reply is malformed.
        ProtocolError: the serial does not end in ``Y``: another meter of the family,
            which this driver must not report as an Ultra 2.
    """
    found = _split_fixed(payload, _SERIAL_LAYOUT, offset)["serial_number"]
    if not found.text.isascii() or not found.text.isalnum():
        raise InvalidFrame(
            f"{found.text!r} is not alphanumeric", offset=found.offset, field="serial_number"
        )
    if not found.text.endswith("Y"):
        raise ProtocolError(
            f"serial {found.text} does not end in 'Y': not a OneTouch Ultra 2 "
            "(choose the driver of this meter model)"
        )
    return found.text


def parse_clock(payload: str, *, offset: int = 0) -> datetime:
    """The meter time from a ``DMF`` (``F ...``) or ``DMT`` (``T ...``) reply payload."""
    fields = _split_fixed(payload, _CLOCK_LAYOUT, offset)
    if fields["command"].text not in ("F", "T"):
        raise InvalidFrame("clock reply must start with 'F' or 'T'", offset=offset, field="command")
    return _parse_datetime(fields["date"], fields["time"])


def _parse_unit(found: _Field) -> Unit:
    try:
        return DISPLAY_UNITS[found.text]
    except KeyError:
        raise InvalidFrame(
            f"unknown display unit {found.text!r}", offset=found.offset, field="display_unit"
        ) from None


def parse_display_unit(payload: str, *, offset: int = 0) -> Unit:
    """The display unit from a ``DMSU?`` reply payload (``SU?,"MG/DL "``)."""
    return _parse_unit(_split_fixed(payload, _UNIT_LAYOUT, offset)["display_unit"])


def parse_dump_header(payload: str, *, offset: int = 0) -> DumpHeader:
    """The first line of a ``DMP`` reply (``P 003,"GMF600DCY","MG/DL "``)."""
    fields = _split_fixed(payload, _HEADER_LAYOUT, offset)
    return DumpHeader(
        record_count=_digits(fields["record_count"], "record_count"),
        serial_number=fields["serial_number"].text,
        display_unit=_parse_unit(fields["display_unit"]),
    )


def parse_record(payload: str, *, offset: int = 0) -> OneTouchRecord:
    """One record line of a ``DMP`` reply, checksum already stripped."""
    fields = _split_fixed(payload, _RECORD_LAYOUT, offset)
    control = fields["control"]
    if control.text not in ("C", " "):
        raise InvalidFrame(
            "control marker must be 'C' or space", offset=control.offset, field="control"
        )
    parity = fields["parity"]
    if parity.text not in ("?", " "):
        raise InvalidFrame(
            "parity marker must be '?' or space", offset=parity.offset, field="parity"
        )
    meal = fields["meal"]
    try:
        meal_flag = Meal(meal.text)
    except ValueError:
        raise InvalidFrame(
            f"meal flag {meal.text!r} is not N, B or A", offset=meal.offset, field="meal"
        ) from None
    return OneTouchRecord(
        device_time=_parse_datetime(fields["date"], fields["time"]),
        value_mg_dl=_digits(fields["value"], "value"),
        control_solution=control.text == "C",
        parity_error=parity.text == "?",
        meal=meal_flag,
        comment_code=_digits(fields["comment"], "comment"),
    )


def record_to_measurement(record: OneTouchRecord) -> Measurement:
    """The measurement a record stands for (see the module docstring for the rules)."""
    flags: set[str] = set()
    value = record.value_mg_dl
    if value < LO_LIMIT_MG_PER_DL:
        flags.add("result_low")
        value = LO_LIMIT_MG_PER_DL
    elif value > HI_LIMIT_MG_PER_DL:
        flags.add("result_high")
        value = HI_LIMIT_MG_PER_DL
    if record.parity_error:
        flags.add("communication_error")
    disposition = Disposition.PATIENT_READING
    if record.control_solution:
        flags.add("control_solution")
        disposition = Disposition.CONTROL_SOLUTION
    context: dict[str, str | int | float | bool] = {}
    if record.meal in _MEAL_CONTEXT:
        context["meal"] = _MEAL_CONTEXT[record.meal]
    if record.comment_code in COMMENT_NAMES:
        context["comment"] = COMMENT_NAMES[record.comment_code]
    elif record.comment_code != 0:
        context["comment_code"] = record.comment_code
    return Measurement(
        kind=Kind.GLUCOSE,
        values=GlucoseValues(glucose=mg_per_dl_to_mmol_per_l(value)),
        source_unit=Unit.MG_PER_DL,
        device_time=record.device_time,
        seq=None,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def _lines(data: bytes) -> list[tuple[bytes, int]]:
    """Split on CR LF, LF or CR; each line with its start offset; blank lines dropped."""
    out = []
    for match in re.finditer(rb"[^\r\n]+", data):
        out.append((match.group(0), match.start()))
    return out


def parse_dump(data: bytes) -> tuple[DumpHeader, list[OneTouchRecord]]:
    """A complete ``DMP`` reply: header line then ``record_count`` record lines.

    Raises:
        InvalidFrame: a line is malformed, or the number of lines is not the header's.
        ChecksumMismatch: a line's checksum is wrong (offset of the checksum in ``data``).
    """
    lines = _lines(data)
    if not lines:
        raise InvalidFrame("empty dump: no header line", offset=0, field="header")
    header_line, header_offset = lines[0]
    header = parse_dump_header(verify_line(header_line, offset=header_offset), offset=header_offset)
    body = lines[1:]
    if len(body) != header.record_count:
        end = body[-1][1] + len(body[-1][0]) if body else header_offset + len(header_line)
        raise InvalidFrame(
            f"header announces {header.record_count} records, dump has {len(body)}",
            offset=end,
            field="record_count",
        )
    records = [parse_record(verify_line(line, offset=start), offset=start) for line, start in body]
    return header, records


def decode_dump(data: bytes) -> list[Measurement]:
    """The measurements of a complete ``DMP`` reply, in the meter's order."""
    _, records = parse_dump(data)
    return [record_to_measurement(record) for record in records]


def starts_with_record_line(data: bytes) -> bool:
    """Whether the first non-blank line of ``data`` is a record line (``P "…``) rather
    than the dump header (``P 003,…``): how an excerpt is told from a whole dump."""
    lines = _lines(data)
    return bool(lines) and lines[0][0].startswith(_RECORD_LINE_START)


def describe_input(data: bytes) -> str:
    """What :func:`decode_lines` takes ``data`` for: ``transfer`` (header line first),
    ``record line`` or ``record lines``."""
    if not starts_with_record_line(data):
        return "transfer"
    return "record line" if len(_lines(data)) == 1 else "record lines"


def parse_record_lines(data: bytes) -> list[OneTouchRecord]:
    """Record lines cut out of a ``DMP`` reply (one or more, no header line).

    Each line must carry its checksum, as the meter sent it: the checksum is what tells
    a faithful copy from a mistyped one.

    Raises:
        InvalidFrame: no line, or a malformed line (field and offset in ``data``).
        ChecksumMismatch: a line's checksum is wrong (offset of the checksum in ``data``).
    """
    lines = _lines(data)
    if not lines:
        raise InvalidFrame("no record line", offset=0, field="record")
    return [parse_record(verify_line(line, offset=start), offset=start) for line, start in lines]


def decode_record_lines(data: bytes) -> list[Measurement]:
    """The measurements of record lines cut out of a dump (see :func:`parse_record_lines`)."""
    return [record_to_measurement(record) for record in parse_record_lines(data)]


def decode_lines(data: bytes) -> list[Measurement]:
    """A whole ``DMP`` reply, or record lines cut out of one, decoded.

    Raises:
        InvalidFrame: as :func:`parse_dump` or :func:`parse_record_lines`.
        ChecksumMismatch: a line's checksum is wrong.
    """
    if starts_with_record_line(data):
        return decode_record_lines(data)
    return decode_dump(data)


# Encoders (simulator, tests).


def encode_firmware(version: str) -> str:
    """``DM?`` reply payload."""
    return "?" + version


def encode_serial_number(serial_number: str) -> str:
    """``DM@`` reply payload."""
    return f'@ "{serial_number}"'


def encode_clock(command: str, device_time: datetime) -> str:
    """``DMF`` (``command="F"``) or ``DMT`` (``"T"``) reply payload."""
    return f"{command} {_format_datetime(device_time)}"


def encode_display_unit(unit: Unit) -> str:
    """``DMSU?`` reply payload."""
    return f'SU?,"{_UNIT_TEXT[unit]}"'


def encode_dump_header(record_count: int, serial_number: str, unit: Unit) -> str:
    """First ``DMP`` line payload."""
    return f'P {record_count:03d},"{serial_number}","{_UNIT_TEXT[unit]}"'


def encode_record(record: OneTouchRecord) -> str:
    """A ``DMP`` record line payload (without checksum)."""
    control = "C" if record.control_solution else " "
    parity = "?" if record.parity_error else " "
    return (
        f"P {_format_datetime(record.device_time)},"
        f'"{control} {record.value_mg_dl:03d}{parity}","{record.meal.value}",'
        f'"{record.comment_code:02d}", 00'
    )


def encode_dump(serial_number: str, unit: Unit, records: Sequence[OneTouchRecord]) -> bytes:
    """A complete ``DMP`` reply."""
    lines = [encode_line(encode_dump_header(len(records), serial_number, unit))]
    lines.extend(encode_line(encode_record(record)) for record in records)
    return b"".join(lines)
