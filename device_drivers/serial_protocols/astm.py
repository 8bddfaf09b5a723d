"""ASTM E1381 framing and E1394 records, as Bayer / Ascensia Contour meters send them.

Byte formats and pitfalls: ``docs/devices.md``. Pure code: frame encode/decode, a
receiver state machine that is fed bytes and says what to answer, E1394 record parsing
with the delimiters read from each H record, the record →
:class:`~device_drivers.measurement.Measurement` mapping, and encoders for the simulator.
The driver (:mod:`device_drivers.astm_contour`) moves bytes.

Low level (E1381): the meter sends ENQ, the host answers ACK; each frame is
``STX FN text ETB|ETX C1 C2 CR LF`` with FN = ``'0'``–``'7'`` (first frame ``'1'``) and the
checksum the sum of FN through ETB/ETX modulo 256 as two hex digits; the host answers each
frame ACK (next) or NAK (send it again); the meter ends with EOT. Decisions:

* Records end with CR. Frame texts are concatenated and cut at each CR, so a record split
  over ETB frames and Contour's one-record-per-frame ``CR ETB`` style both work; an ETX
  frame also ends a record.
* A repeated frame number (the meter did not see our ACK) is acknowledged and dropped;
  any other out-of-sequence number is refused with NAK. The first frame's number is
  trusted when no ENQ was seen (decoding bare frames).
* Bytes outside frames (stray ACK/NAK, line noise) are ignored, as E1381 prescribes.

Record level (E1394): field, repeat, component and escape delimiters are the four
characters after ``H``. Result markers (``B`` before food, ``A`` after food, ``D``
logbook, ``>``/``<`` above/below range, ``E`` control solution) map to context, flags and
disposition; the raw markers stay in context ``markers``. HI/LO results get the meter
range limit from the header's ``V=`` setting (mg/dL) when the header has one. Results of
other tests than glucose (insulin, carbohydrate notes) are not measurements and are
skipped.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from device_drivers.errors import ChecksumMismatch, InvalidFrame, ProtocolError
from device_drivers.measurement import Disposition, Measurement
from readings.model import GlucoseValues, Kind
from readings.units import Unit, to_canonical

ENQ: Final = b"\x05"
ACK: Final = b"\x06"
NAK: Final = b"\x15"
EOT: Final = b"\x04"
STX: Final = b"\x02"
ETX: Final = b"\x03"
ETB: Final = b"\x17"
CR: Final = b"\r"
LF: Final = b"\n"

MAX_FRAME_TEXT_BYTES: Final = 240
"""E1381: at most 240 text characters per frame (247 bytes with the framing)."""
FRAME_BYTES_LIMIT: Final = 1024
"""A frame with no ETB/ETX within this many bytes is refused: E1381 frames are at most
247 bytes, so this only bounds the buffer when a line drops the end of a frame."""
FRAME_NUMBER_MODULUS: Final = 8
FIRST_FRAME_NUMBER: Final = 1

_FRAME_TRAILER_BYTES: Final = 4  # C1 C2 CR LF
_CHECKSUM_DIGITS: Final = 2  # C1 C2: the 8-bit checksum as two hex digits
_HEX_DIGITS: Final = frozenset(b"0123456789ABCDEFabcdef")
_FORBIDDEN_IN_TEXT: Final = frozenset(
    {0x01, 0x02, 0x04, 0x05, 0x06, 0x0A, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16}
)
"""E1381 forbids these control characters inside frame text (SOH, STX, EOT, ENQ, ACK,
LF, DLE, DC1–DC4, NAK, SYN); ETX/ETB end the text."""
_KNOWN_RECORD_TYPES: Final = frozenset("HPORCMQLS")
_MIN_RESULT_FIELDS: Final = 9
"""``R|seq|test|value|unit^method|ranges|markers|…|timestamp``: Contour USB sends 9."""
_SENDER_FIELD: Final = 4
_SETTINGS_FIELD: Final = 5
_RECORD_COUNT_FIELD: Final = 6
_MARKERS_FIELD: Final = 6

SAMPLE_TYPE_OF_METHOD: Final[dict[str, str]] = {
    "P": "capillary_plasma",
    "B": "capillary_whole_blood",
    "C": "capillary_whole_blood",
}
"""Reference method → the Glucose Service's sample-type names (P: plasma-equivalent)."""
_MEAL_OF_MARKER: Final = {"B": "preprandial", "A": "postprandial"}
GLUCOSE_UNITS: Final[dict[str, Unit]] = {"mg/dl": Unit.MG_PER_DL, "mmol/l": Unit.MMOL_PER_L}
DISPLAY_UNIT_SETTING: Final[dict[str, Unit]] = {"0": Unit.MG_PER_DL, "1": Unit.MMOL_PER_L}

CONTOUR_MODELS: Final[dict[str, str]] = {
    "6200": "Contour Next Link",
    "6210": "Contour Next Link 2.4",
    "6300": "Contour Next Link",
    "7150": "Contour",
    "7160": "Contour Next EZ",
    "7220": "Contour",
    "7350": "Contour Next",
    "7390": "Contour USB",
    "7410": "Contour Next USB",
    "7600": "Contour Plus",
    "7800": "Contour Next One",
    "7900": "Contour Next",
}
"""Product-code numbers (after ``Bayer``/``Contour``) → model names (Tidepool's table)."""


# --- E1381 frames -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame.

    Attributes:
        number: frame number 0–7.
        text: the text between FN and ETB/ETX (records end with CR inside it).
        final: ETX (end frame) rather than ETB (intermediate frame).
        offset: offset of its STX in the stream.
    """

    number: int
    text: bytes
    final: bool
    offset: int = 0


def frame_checksum(body: bytes) -> int:
    """E1381 checksum of ``body`` (FN through ETB/ETX inclusive): byte sum modulo 256."""
    return sum(body) % 256


def encode_frame(number: int, text: bytes, *, final: bool) -> bytes:
    """A frame: ``STX FN text ETB|ETX C1 C2 CR LF``.

    Raises:
        ValueError: ``text`` is longer than a frame may carry or contains a forbidden
            control character (a simulator bug, not device input).
    """
    if len(text) > MAX_FRAME_TEXT_BYTES or any(b in _FORBIDDEN_IN_TEXT for b in text):
        raise ValueError("frame text too long or contains a forbidden control character")
    body = str(number % FRAME_NUMBER_MODULUS).encode("ascii") + text + (ETX if final else ETB)
    return STX + body + f"{frame_checksum(body):02X}".encode("ascii") + CR + LF


def _scan_frame(buffer: bytes, base: int) -> tuple[Frame | InvalidFrame | None, int]:
    """Decode the frame starting at ``buffer[0]`` (an STX).

    Returns the frame or the error, and how many bytes it used; ``(None, 0)`` when more
    bytes are needed.
    """
    terminator = -1
    for index in range(1, len(buffer)):
        byte = buffer[index]
        if byte in (ETX[0], ETB[0]):
            terminator = index
            break
        if byte == STX[0]:
            return (
                InvalidFrame(
                    "frame cut short: a new STX came before ETB/ETX",
                    offset=base + index,
                    field="terminator",
                ),
                index,
            )
        if index >= FRAME_BYTES_LIMIT:
            return (
                InvalidFrame(
                    f"no ETB/ETX within {FRAME_BYTES_LIMIT} bytes",
                    offset=base + index,
                    field="terminator",
                ),
                index,
            )
    if terminator < 0 or len(buffer) < terminator + 1 + _FRAME_TRAILER_BYTES:
        return None, 0
    used = terminator + 1 + _FRAME_TRAILER_BYTES
    if terminator < 2 or buffer[1] not in b"01234567":
        return (
            InvalidFrame("frame number must be '0'-'7'", offset=base + 1, field="frame_number"),
            used,
        )
    text = buffer[2:terminator]
    for index, byte in enumerate(text):
        if byte in _FORBIDDEN_IN_TEXT:
            return (
                InvalidFrame(
                    f"control character 0x{byte:02X} inside frame text",
                    offset=base + 2 + index,
                    field="text",
                ),
                used,
            )
    checksum_text = buffer[terminator + 1 : terminator + 3]
    if not all(byte in _HEX_DIGITS for byte in checksum_text):
        return (
            InvalidFrame(
                f"checksum {checksum_text!r} is not two hex digits",
                offset=base + terminator + 1,
                field="checksum",
            ),
            used,
        )
    if buffer[terminator + 3 : terminator + 5] != CR + LF:
        return (
            InvalidFrame(
                "frame must end with CR LF after the checksum",
                offset=base + terminator + 3,
                field="frame_trailer",
            ),
            used,
        )
    wire = int(checksum_text, 16)
    calculated = frame_checksum(buffer[1 : terminator + 1])
    if wire != calculated:
        return (
            ChecksumMismatch(
                wire=wire,
                calculated=calculated,
                offset=base + terminator + 1,
                field="checksum",
                hex_digits=_CHECKSUM_DIGITS,
            ),
            used,
        )
    frame = Frame(
        number=buffer[1] - ord("0"),
        text=bytes(text),
        final=buffer[terminator] == ETX[0],
        offset=base,
    )
    return frame, used


def decode_frame(data: bytes, *, offset: int = 0) -> Frame:
    """Decode exactly one complete frame.

    Raises:
        InvalidFrame: malformed or incomplete frame, or bytes after it.
        ChecksumMismatch: the checksum does not match.
    """
    if not data.startswith(STX):
        raise InvalidFrame("frame must start with STX", offset=offset, field="start")
    result, used = _scan_frame(data, offset)
    if result is None:
        raise InvalidFrame("frame is incomplete", offset=offset + len(data), field="terminator")
    if isinstance(result, InvalidFrame):
        raise result
    if used != len(data):
        raise InvalidFrame("bytes after the frame", offset=offset + used, field="frame_trailer")
    return result


# --- Reassembled records ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordText:
    """One E1394 record (without its CR) and where its characters came from.

    Attributes:
        text: the record.
        segments: ``(index in text, stream offset)`` of each piece, in order; a record
            split over frames has one piece per frame.
    """

    text: str
    segments: tuple[tuple[int, int], ...] = ((0, 0),)

    def offset_of(self, index: int) -> int:
        """Stream offset of character ``index`` of the record."""
        starts = [start for start, _ in self.segments]
        piece = max(bisect.bisect_right(starts, index) - 1, 0)
        start, offset = self.segments[piece]
        return offset + index - start


@dataclass(frozen=True, slots=True)
class ReceiverStep:
    """What one unit of input (ENQ, frame, EOT) did.

    Attributes:
        reply: what to send the meter (ACK or NAK), empty when nothing.
        frame: the frame accepted, if any.
        rejected: why a frame was refused (the reply is NAK).
        established: an ENQ opened a transfer.
        end_of_transmission: EOT ended the transfer.
    """

    reply: bytes
    frame: Frame | None = None
    rejected: InvalidFrame | None = None
    established: bool = False
    end_of_transmission: bool = False


class AstmReceiver:
    """The host side of an E1381 transfer: fed bytes, it answers and reassembles records.

    The receiver never raises on device input: a bad frame becomes a step with
    ``rejected`` set and a NAK to send; the caller bounds the retries.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._buffer_offset = 0
        self._expected: int | None = None
        self._frames_seen = 0
        self._frames_accepted = 0
        self._pieces: list[tuple[str, int]] = []
        self._records: list[RecordText] = []
        self.finished = False

    @property
    def records(self) -> tuple[RecordText, ...]:
        """Records completed so far, in order."""
        return tuple(self._records)

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unfinished frame still buffered."""
        return len(self._buffer)

    @property
    def inside_record(self) -> bool:
        """Whether accepted text awaits the CR that ends its record."""
        return bool(self._pieces)

    @property
    def stream_offset(self) -> int:
        """Offset of the next byte to be fed."""
        return self._buffer_offset + len(self._buffer)

    def feed(self, data: bytes) -> list[ReceiverStep]:
        """Take bytes from the meter; return one step per ENQ, frame or EOT completed."""
        self._buffer.extend(data)
        steps: list[ReceiverStep] = []
        while self._buffer:
            first = self._buffer[0]
            if first == STX[0]:
                window = bytes(self._buffer[: FRAME_BYTES_LIMIT + _FRAME_TRAILER_BYTES + 1])
                result, used = _scan_frame(window, self._buffer_offset)
                if result is None:
                    break
                self._consume(used)
                self._frames_seen += 1
                if isinstance(result, InvalidFrame):
                    steps.append(ReceiverStep(reply=NAK, rejected=result))
                else:
                    steps.append(self._accept(result))
                continue
            self._consume(1)
            if first == ENQ[0]:
                if self._frames_seen == 0:
                    self._expected = FIRST_FRAME_NUMBER
                steps.append(ReceiverStep(reply=ACK, established=True))
            elif first == EOT[0] and self._frames_seen > 0:
                self._flush_record()
                self.finished = True
                steps.append(ReceiverStep(reply=b"", end_of_transmission=True))
        return steps

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        self._buffer_offset += count

    def _accept(self, frame: Frame) -> ReceiverStep:
        expected = self._expected
        if expected is not None and frame.number != expected:
            if self._frames_accepted and frame.number == (expected - 1) % FRAME_NUMBER_MODULUS:
                # The meter repeats a frame we accepted when our ACK got lost.
                return ReceiverStep(reply=ACK)
            return ReceiverStep(
                reply=NAK,
                rejected=InvalidFrame(
                    f"frame number {frame.number}, expected {expected}",
                    offset=frame.offset + 1,
                    field="frame_number",
                ),
            )
        self._expected = (frame.number + 1) % FRAME_NUMBER_MODULUS
        self._frames_accepted += 1
        self._add_text(frame.text.decode("latin-1"), frame.offset + 2)
        if frame.final:
            self._flush_record()
        return ReceiverStep(reply=ACK, frame=frame)

    def _add_text(self, text: str, offset: int) -> None:
        start = 0
        while True:
            end = text.find("\r", start)
            piece = text[start:] if end < 0 else text[start:end]
            if piece:
                self._pieces.append((piece, offset + start))
            if end < 0:
                return
            self._flush_record()
            start = end + 1

    def _flush_record(self) -> None:
        if not self._pieces:
            return
        segments = []
        position = 0
        for piece, offset in self._pieces:
            segments.append((position, offset))
            position += len(piece)
        text = "".join(piece for piece, _ in self._pieces)
        self._records.append(RecordText(text, tuple(segments)))
        self._pieces = []


def frames_for_records(
    records: Sequence[str], *, first_number: int = FIRST_FRAME_NUMBER
) -> list[bytes]:
    """Frame records the way a Contour does: each record ends with ``CR ETB`` (the last
    one with ``CR ETX``); a record longer than a frame continues in ETB frames."""
    frames: list[bytes] = []
    number = first_number
    for index, record in enumerate(records):
        data = record.encode("latin-1") + CR
        chunks = [
            data[i : i + MAX_FRAME_TEXT_BYTES] for i in range(0, len(data), MAX_FRAME_TEXT_BYTES)
        ]
        for chunk_index, chunk in enumerate(chunks):
            final = index == len(records) - 1 and chunk_index == len(chunks) - 1
            frames.append(encode_frame(number, chunk, final=final))
            number = (number + 1) % FRAME_NUMBER_MODULUS
    return frames


def encode_session(records: Sequence[str]) -> bytes:
    """The meter → host bytes of a clean transfer: ENQ, frames, EOT."""
    return ENQ + b"".join(frames_for_records(records)) + EOT


# --- E1394 records ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four delimiter characters an H record declares."""

    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    def unescape(self, text: str) -> str:
        """Replace E1394 escape sequences (``&F&``, ``&S&``, ``&R&``, ``&E&``)."""
        if self.escape not in text:
            return text
        replacements = {"F": self.field, "S": self.component, "R": self.repeat, "E": self.escape}
        pattern = re.escape(self.escape) + "([FSRE])" + re.escape(self.escape)
        return re.sub(pattern, lambda m: replacements[m.group(1)], text)


@dataclass(frozen=True, slots=True)
class _Field:
    text: str
    index: int  # in the record text


def _split(text: str, separator: str, start: int = 0) -> list[_Field]:
    out = []
    position = 0
    for part in text.split(separator):
        out.append(_Field(part, start + position))
        position += len(part) + len(separator)
    return out


def parse_delimiters(record: RecordText) -> Delimiters:
    """The delimiters declared by an H record (``H|\\^&``).

    Raises:
        InvalidFrame: not an H record, or the four delimiters are not distinct
            printable characters.
    """
    text = record.text
    if not text.startswith("H"):
        raise InvalidFrame(
            "transfer must start with an H record", offset=record.offset_of(0), field="header"
        )
    declared = text[1:5]
    if (
        len(declared) != 4
        or len(set(declared)) != 4
        or any(not c.isprintable() or c.isalnum() or c == " " for c in declared)
    ):
        raise InvalidFrame(
            f"delimiters {declared!r} must be 4 distinct punctuation characters",
            offset=record.offset_of(1),
            field="header.delimiters",
        )
    return Delimiters(
        field=declared[0], repeat=declared[1], component=declared[2], escape=declared[3]
    )


def _parse_timestamp(found: _Field, record: RecordText, name: str) -> datetime:
    text = found.text
    if not (text.isascii() and text.isdigit() and len(text) in (12, 14)):
        raise InvalidFrame(
            f"{text!r} is not YYYYMMDDHHMM or YYYYMMDDHHMMSS",
            offset=record.offset_of(found.index),
            field=name,
        )
    try:
        return datetime(  # noqa: DTZ001 - meter local time
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[8:10]),
            int(text[10:12]),
            int(text[12:14] or "0"),
        )
    except ValueError as exc:
        raise InvalidFrame(str(exc), offset=record.offset_of(found.index), field=name) from None


@dataclass(frozen=True, slots=True)
class AstmHeader:
    """What a Contour H record says about the meter.

    Attributes:
        delimiters: the session's delimiters.
        product_code: e.g. ``Bayer7390``.
        versions: digital, analog and AGP versions (``01.24``, ``01.04``, ``09.02.20``).
        serial_number: e.g. ``7390-2336773``.
        sku: stock-keeping unit, may be empty.
        settings: ``A=1^C=63^…`` as a mapping (``U`` display unit, ``V`` range …).
        record_count: number of result records the meter holds, when sent.
        meter_time: the meter clock when the transfer started.
        password: access password field, kept for faithful re-encoding.
    """

    delimiters: Delimiters
    product_code: str
    versions: tuple[str, ...]
    serial_number: str
    sku: str = ""
    settings: dict[str, str] = dataclasses.field(default_factory=dict)
    record_count: int | None = None
    meter_time: datetime | None = None
    password: str = ""

    @property
    def display_unit(self) -> Unit | None:
        """``U=0`` mg/dL, ``U=1`` mmol/L."""
        return DISPLAY_UNIT_SETTING.get(self.settings.get("U", ""))

    @property
    def range_mg_dl(self) -> tuple[int, int] | None:
        """The measuring range from ``V=`` (``10600`` → 10–600 mg/dL)."""
        value = self.settings.get("V", "")
        if len(value) < 4 or not (value.isascii() and value.isdigit()):
            return None
        return int(value[:-3]), int(value[-3:])

    @property
    def manufacturer(self) -> str:
        """``Bayer`` for Bayer-branded product codes, ``Ascensia`` otherwise."""
        return "Bayer" if self.product_code.startswith("Bayer") else "Ascensia"

    @property
    def model(self) -> str:
        """Model name from the product code (the code itself when unknown)."""
        number = self.product_code.removeprefix("Bayer").removeprefix("Contour")
        return CONTOUR_MODELS.get(number, self.product_code)


def parse_header(record: RecordText) -> AstmHeader:
    """Parse an H record, reading its delimiters first.

    Raises:
        InvalidFrame: naming the field and its stream offset.
    """
    delimiters = parse_delimiters(record)
    fields = _split(record.text, delimiters.field)
    if len(fields) <= _RECORD_COUNT_FIELD:
        raise InvalidFrame(
            f"header has {len(fields)} fields, at least {_RECORD_COUNT_FIELD + 1} expected",
            offset=record.offset_of(len(record.text)),
            field="header",
        )
    sender = fields[_SENDER_FIELD]
    parts = _split(sender.text, delimiters.component, sender.index)
    product = delimiters.unescape(parts[0].text)
    if not product:
        raise InvalidFrame(
            "sender has no product code",
            offset=record.offset_of(sender.index),
            field="header.sender",
        )
    versions = (
        tuple(delimiters.unescape(v) for v in parts[1].text.split(delimiters.repeat))
        if len(parts) > 1
        else ()
    )
    serial = delimiters.unescape(parts[2].text) if len(parts) > 2 else ""
    sku = delimiters.unescape(parts[3].text) if len(parts) > 3 else ""
    settings: dict[str, str] = {}
    settings_field = fields[_SETTINGS_FIELD]
    if settings_field.text:
        for item in settings_field.text.split(delimiters.component):
            key, _, value = item.partition("=")
            settings[delimiters.unescape(key)] = delimiters.unescape(value)
    count_field = fields[_RECORD_COUNT_FIELD]
    record_count = None
    if count_field.text:
        if not (count_field.text.isascii() and count_field.text.isdigit()):
            raise InvalidFrame(
                f"record count {count_field.text!r} is not a number",
                offset=record.offset_of(count_field.index),
                field="header.record_count",
            )
        record_count = int(count_field.text)
    meter_time = None
    if len(fields) > _RECORD_COUNT_FIELD + 1 and fields[-1].text:
        meter_time = _parse_timestamp(fields[-1], record, "header.date_time")
    return AstmHeader(
        delimiters=delimiters,
        product_code=product,
        versions=versions,
        serial_number=serial,
        sku=sku,
        settings=settings,
        record_count=record_count,
        meter_time=meter_time,
        password=fields[3].text,
    )


@dataclass(frozen=True, slots=True)
class AstmResult:
    """An R record, fields as sent.

    Attributes:
        seq: the record's sequence number within the transfer.
        test: the test name (last component of the universal test id), e.g. ``Glucose``.
        value: the value text (integer mg/dL or decimal mmol/L).
        unit: the unit text (``mg/dL``, ``mmol/L``).
        reference_method: ``P`` plasma, ``B`` whole blood, ``C`` capillary, or other.
        markers: the result-abnormal field(s), raw (``A/M0/T1``).
        timestamp: when the test was taken (meter local time).
        timestamp_has_seconds: the meter sent 14 digits rather than 12.
    """

    seq: int
    test: str
    value: str
    unit: str
    reference_method: str
    markers: str
    timestamp: datetime
    timestamp_has_seconds: bool = False

    @property
    def is_glucose(self) -> bool:
        """Whether this is a blood-glucose result."""
        return self.test.lower() == "glucose"

    @property
    def marker_codes(self) -> frozenset[str]:
        """The individual marker codes."""
        return frozenset(_MARKER_CODE.findall(self.markers))


_VALUE_PATTERN: Final = re.compile(r"\d{1,5}(\.\d{1,3})?")
_MARKER_CODE: Final = re.compile(r"[A-Za-z0-9]+|[<>]")
"""Marker codes are letters/digits or ``<``/``>``, whatever separates them (``/``, the
repeat or field delimiter)."""


def parse_result(record: RecordText, delimiters: Delimiters) -> AstmResult:
    """Parse an R record with the session's delimiters.

    Raises:
        InvalidFrame: naming the field and its stream offset.
    """
    fields = _split(record.text, delimiters.field)
    if len(fields) < _MIN_RESULT_FIELDS:
        raise InvalidFrame(
            f"result has {len(fields)} fields, at least {_MIN_RESULT_FIELDS} expected",
            offset=record.offset_of(len(record.text)),
            field="result",
        )
    seq_field = fields[1]
    if not (seq_field.text.isascii() and seq_field.text.isdigit() and len(seq_field.text) <= 9):
        raise InvalidFrame(
            f"sequence number {seq_field.text!r} is not a number",
            offset=record.offset_of(seq_field.index),
            field="result.sequence",
        )
    test = delimiters.unescape(fields[2].text.split(delimiters.component)[-1])
    value_field = fields[3]
    units = _split(fields[4].text, delimiters.component, fields[4].index)
    unit_field = units[0]
    method = delimiters.unescape(units[1].text) if len(units) > 1 else ""
    if test.lower() == "glucose":
        if not (value_field.text.isascii() and _VALUE_PATTERN.fullmatch(value_field.text)):
            raise InvalidFrame(
                # The text is not echoed: a glucose value must stay out of logs.
                "glucose value is not a decimal number",
                offset=record.offset_of(value_field.index),
                field="result.value",
            )
        if unit_field.text.lower() not in GLUCOSE_UNITS:
            raise InvalidFrame(
                f"glucose unit {unit_field.text!r} is not mg/dL or mmol/L",
                offset=record.offset_of(unit_field.index),
                field="result.unit",
            )
    markers = delimiters.field.join(f.text for f in fields[_MARKERS_FIELD:-1]).rstrip(
        delimiters.field
    )
    timestamp_field = fields[-1]
    return AstmResult(
        seq=int(seq_field.text),
        test=test,
        value=delimiters.unescape(value_field.text),
        unit=delimiters.unescape(unit_field.text),
        reference_method=method,
        markers=markers,
        timestamp=_parse_timestamp(timestamp_field, record, "result.date_time"),
        timestamp_has_seconds=len(timestamp_field.text) == 14,
    )


@dataclass(frozen=True, slots=True)
class AstmTransfer:
    """Everything one transfer carried."""

    header: AstmHeader
    results: tuple[AstmResult, ...]
    terminated: bool
    """Whether an L record closed the message."""


def parse_records(records: Sequence[RecordText]) -> AstmTransfer:
    """Parse the records of a transfer: an H record first, then P/O/R/C/M…/L records.

    A second H record starts a new message with its own delimiters; results of all
    messages are kept, the first header describes the meter.

    Raises:
        InvalidFrame: no records, no leading H record, an unknown record type or a bad
            field (named, with its stream offset).
    """
    if not records:
        raise InvalidFrame("transfer holds no records", offset=0, field="header")
    first = parse_header(records[0])
    results, terminated = _parse_body(records[1:], first.delimiters)
    return AstmTransfer(header=first, results=results, terminated=terminated)


def _parse_body(
    records: Sequence[RecordText], delimiters: Delimiters
) -> tuple[tuple[AstmResult, ...], bool]:
    """The results of the records after a header, and whether an L record closed them."""
    results: list[AstmResult] = []
    terminated = False
    for record in records:
        kind = record.text[:1]
        if kind not in _KNOWN_RECORD_TYPES:
            raise InvalidFrame(
                f"unknown record type {kind!r}", offset=record.offset_of(0), field="record_type"
            )
        if kind == "H":
            delimiters = parse_header(record).delimiters
            terminated = False
        elif kind == "R":
            results.append(parse_result(record, delimiters))
        elif kind == "L":
            terminated = True
    return tuple(results), terminated


def result_to_measurement(result: AstmResult, header: AstmHeader | None) -> Measurement | None:
    """The measurement an R record stands for; ``None`` for results of other tests.

    Without the session's header (an R record decoded on its own) the meter's range is
    unknown, so a HI/LO result keeps the value the meter sent.
    """
    if not result.is_glucose:
        return None
    unit = GLUCOSE_UNITS[result.unit.lower()]
    codes = result.marker_codes
    flags: set[str] = set()
    context: dict[str, str | int | float | bool] = {}
    if result.markers:
        context["markers"] = result.markers
    if result.reference_method:
        context["reference_method"] = result.reference_method
        if result.reference_method in SAMPLE_TYPE_OF_METHOD:
            context["sample_type"] = SAMPLE_TYPE_OF_METHOD[result.reference_method]
    for code, meal in _MEAL_OF_MARKER.items():
        if code in codes:
            context["meal"] = meal
    if "D" in codes:
        context["logbook"] = True
    value = to_canonical(float(result.value), unit)
    meter_range = header.range_mg_dl if header is not None else None
    if ">" in codes:
        flags.add("result_high")
        if meter_range is not None:
            value = to_canonical(meter_range[1], Unit.MG_PER_DL)
    elif "<" in codes:
        flags.add("result_low")
        if meter_range is not None:
            value = to_canonical(meter_range[0], Unit.MG_PER_DL)
    disposition = Disposition.PATIENT_READING
    if "E" in codes:
        flags.add("control_solution")
        disposition = Disposition.CONTROL_SOLUTION
    values: GlucoseValues | None = None
    if value > 0:
        values = GlucoseValues(glucose=value)
    else:
        disposition = Disposition.DEVICE_ERROR
    return Measurement(
        kind=Kind.GLUCOSE,
        values=values,
        source_unit=unit,
        device_time=result.timestamp,
        seq=result.seq,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def transfer_measurements(transfer: AstmTransfer) -> list[Measurement]:
    """The glucose measurements of a transfer, in the meter's order.

    The R record's sequence number is the record's position in this transfer, not a
    stable record id: once the meter's memory wraps, every position shifts and a
    re-download would give the same records new ids. The reading's ``seq`` is therefore
    the record's ordinal among the records with the same (minute-resolution) timestamp,
    which stays the same across transfers and still tells apart two readings taken in
    the same minute.
    """
    return _measurements(transfer.results, transfer.header)


def _measurements(results: Sequence[AstmResult], header: AstmHeader | None) -> list[Measurement]:
    out = []
    ordinals: Counter[datetime | None] = Counter()
    for result in results:
        measurement = result_to_measurement(result, header)
        if measurement is not None:
            ordinal = ordinals[measurement.device_time]
            ordinals[measurement.device_time] += 1
            out.append(dataclasses.replace(measurement, seq=ordinal))
    return out


def _record_lines(data: bytes) -> list[RecordText]:
    return [
        RecordText(match.group(0).decode("latin-1"), ((0, match.start()),))
        for match in re.finditer(rb"[^\r\n]+", data)
    ]


def parse_transfer(data: bytes) -> AstmTransfer:
    """Decode what a meter sent in one transfer, strictly.

    ``data`` is the meter → host byte stream (ENQ, frames, EOT), just the frames, or —
    when it holds no STX — bare records separated by CR and/or LF.

    Raises:
        InvalidFrame: the first malformed frame or record (field and stream offset).
        ChecksumMismatch: the first frame whose checksum is wrong.
    """
    return parse_records(_records_of(data))


def _records_of(data: bytes) -> Sequence[RecordText]:
    """The records in ``data``: reassembled from frames when it holds an STX, else one
    record per line."""
    if STX not in data:
        return _record_lines(data)
    receiver = AstmReceiver()
    for step in receiver.feed(data):
        if step.rejected is not None:
            raise step.rejected
    if receiver.pending_bytes:
        last_frame = data[data.rindex(STX) :]
        end = max(last_frame.rfind(ETX), last_frame.rfind(ETB))
        if end >= 0:
            after = len(last_frame) - end - 1
            raise InvalidFrame(
                f"the frame ends {after} byte(s) after its ETB/ETX; two checksum digits "
                "and CR LF must follow",
                offset=receiver.stream_offset,
                field="checksum" if after < _CHECKSUM_DIGITS else "frame_trailer",
            )
        raise InvalidFrame(
            "the bytes end inside a frame (no ETB/ETX after its text)",
            offset=receiver.stream_offset,
            field="terminator",
        )
    if receiver.inside_record:
        raise InvalidFrame(
            "the bytes end inside a record: the last frame is an ETB frame whose text has "
            "no closing CR, so the record continues in a frame not given",
            offset=receiver.stream_offset,
            field="text",
        )
    return receiver.records


def decode_transfer(data: bytes) -> list[Measurement]:
    """The glucose measurements of one transfer (see :func:`parse_transfer`)."""
    return transfer_measurements(parse_transfer(data))


def is_whole_transfer(data: bytes) -> bool:
    """Whether ``data`` is a whole transfer rather than an excerpt of one.

    A transfer opens with ENQ (a session capture), ends with EOT, or its first record is
    the H record; anything else (an ``R|…`` line, one frame out of the middle of a
    session) is an excerpt.
    """
    if STX in data:
        if ENQ in data or EOT in data:
            return True
        first = data.index(STX)
        return data[first + 2 : first + 3] == b"H"
    lines = _record_lines(data)
    return not lines or lines[0].text.startswith("H")


def describe_input(data: bytes) -> str:
    """What ``data`` is, in words for messages: ``transfer``, ``frame``, ``frames``,
    ``record`` or ``records``."""
    if is_whole_transfer(data):
        return "transfer"
    if STX in data:
        return "frame" if data.count(STX) == 1 else "frames"
    return "record" if len(_record_lines(data)) == 1 else "records"


def parse_excerpt(data: bytes) -> tuple[AstmResult, ...]:
    """The results of records cut out of a transfer: one or more frames (STX, frame
    number, text, ETB/ETX, checksum, CR LF; every checksum is verified) or bare records one
    per line, without the H record.

    Without an H record the records are read with the default delimiters ``|\\^&``
    (the ones every Contour declares); an H record inside the excerpt sets them for the
    records after it, as in a transfer.

    Raises:
        InvalidFrame: no record, or the first malformed frame or record (field and offset).
        ChecksumMismatch: a frame's checksum is wrong.
    """
    records = _records_of(data)
    if not records:
        raise InvalidFrame("no record in the input", offset=0, field="record_type")
    results, _ = _parse_body(records, Delimiters())
    return results


def decode_excerpt(data: bytes) -> list[Measurement]:
    """The glucose measurements of an excerpt (see :func:`parse_excerpt`).

    ``seq`` is the ordinal among the excerpt's results with the same timestamp, as for a
    transfer; HI/LO results keep the value sent (the meter's range is in the header).
    """
    return _measurements(parse_excerpt(data), None)


def decode_transfer_or_excerpt(data: bytes) -> list[Measurement]:
    """A whole transfer, or an excerpt of one, decoded (see :func:`is_whole_transfer`)."""
    if is_whole_transfer(data):
        return decode_transfer(data)
    return decode_excerpt(data)


def header_device_identity(header: AstmHeader) -> tuple[str, str, str]:
    """``(manufacturer, model, serial)`` of the meter that sent ``header``.

    Raises:
        ProtocolError: the header carries no serial number, so the meter cannot be told
            apart from others of its model.
    """
    if not header.serial_number:
        raise ProtocolError("the meter's H record carries no serial number")
    return header.manufacturer, header.model, header.serial_number


# --- Encoders (simulator, tests) ----------------------------------------------------


def _format_timestamp(value: datetime, *, seconds: bool) -> str:
    return value.strftime("%Y%m%d%H%M%S" if seconds else "%Y%m%d%H%M")


def encode_header(header: AstmHeader) -> str:
    """An H record as a Contour sends it."""
    d = header.delimiters
    sender = d.component.join(
        (header.product_code, d.repeat.join(header.versions), header.serial_number, header.sku)
    )
    settings = d.component.join(f"{key}={value}" for key, value in header.settings.items())
    count = "" if header.record_count is None else str(header.record_count)
    when = "" if header.meter_time is None else _format_timestamp(header.meter_time, seconds=False)
    fields = ["H", d.repeat + d.component + d.escape, "", header.password, sender, settings, count]
    fields += ["", "", "", "", "", "1", when]
    return d.field.join(fields)


def encode_result(result: AstmResult, delimiters: Delimiters | None = None) -> str:
    """An R record in the Contour USB layout."""
    d = delimiters or Delimiters()
    when = _format_timestamp(result.timestamp, seconds=result.timestamp_has_seconds)
    test = d.component * 3 + result.test
    unit = result.unit + (d.component + result.reference_method if result.reference_method else "")
    return d.field.join(
        ("R", str(result.seq), test, result.value, unit, "", result.markers, "", when)
    )


def encode_patient(seq: int = 1) -> str:
    """The (empty) P record Contour meters send after the header."""
    return f"P|{seq}"


def encode_terminator(seq: int = 1) -> str:
    """The L record closing a message (``N``: normal termination)."""
    return f"L|{seq}||N"
