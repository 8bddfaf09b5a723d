"""Record Access Control Point 0x2A52 (GLS, CGMS, PLXS …); byte layouts in ``docs/devices.md``.

A value is ``Op Code | Operator | Operand``. The client writes requests (report, delete,
abort, count); the server indicates a record count (op 0x05) or a response code (op
0x06) when a procedure ends. This module builds and decodes both directions: the gateway
builds requests and decodes responses, the simulated meters decode requests and build
responses.

Decisions:

* Unknown op codes, operators, filter types and response codes decode to plain ints
  rather than failing, so a server can answer "not supported" and a client can report
  the code it got. Only truncation raises :class:`InvalidFrame`.
* A record count is uint16 per GLS/CGMS/PLXS, but Nordic's client also accepts 1- and
  4-byte counts: exactly 1 byte is read as uint8 and exactly 4 as uint32; otherwise the
  count is the spec's uint16.
* Bytes after the last field a value defines are ignored and counted in
  ``trailing_bytes`` (a 3- or 5-byte count is a uint16 followed by trailing bytes). The operand of
  a filter type this module does not know is not trailing: it is ``unparsed_operand``.
* Filter type 0x01 is the sequence number on GLS and the time offset (minutes since
  session start) on CGMS: same bytes, so :data:`FilterType.TIME_OFFSET` is an alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from device_drivers.errors import InvalidFrame, ProtocolError
from device_drivers.gatt._wire import FieldReader, pack_uint, padding
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.errors import UnencodableValue


class OpCode(IntEnum):
    """RACP op codes (0x00 and 0x07–0xFF RFU)."""

    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03
    REPORT_NUMBER_OF_STORED_RECORDS = 0x04
    NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06


class Operator(IntEnum):
    """RACP operators (0x07–0xFF RFU)."""

    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_THAN_OR_EQUAL = 0x02
    GREATER_THAN_OR_EQUAL = 0x03
    WITHIN_RANGE = 0x04
    FIRST_RECORD = 0x05
    LAST_RECORD = 0x06


class FilterType(IntEnum):
    """Operand filter types; their meaning depends on the service."""

    SEQUENCE_NUMBER = 0x01
    """GLS: uint16 sequence number."""
    TIME_OFFSET = 0x01
    """CGMS: uint16 minutes since session start (alias of ``SEQUENCE_NUMBER``)."""
    USER_FACING_TIME = 0x02
    """GLS: Date Time (7 octets)."""


class ResponseCode(IntEnum):
    """Response codes carried by op 0x06 (0x0A–0xFF RFU)."""

    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


# ATT application errors on the RACP write itself: then no indication follows.
GLS_ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS: Final = 0x80
"""Nordic's GLS server: a RACP procedure is still running."""
GLS_ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED: Final = 0x81
"""Nordic's GLS server: RACP written before the notification/indication CCCDs were set."""
CGMS_ATT_ERROR_MISSING_CRC: Final = 0x80
"""CGMS: an E2E-protected write came without its CRC."""
CGMS_ATT_ERROR_INVALID_CRC: Final = 0x81
"""CGMS: an E2E-protected write came with a wrong CRC."""
ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED: Final = 0xFD
"""Common profile error (CGMS and newer services): CCCD improperly configured."""
ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS: Final = 0xFE
"""Common profile error (CGMS and newer services): procedure already in progress."""

_OPERAND_VALUE_COUNT: Final[dict[int, int]] = {
    Operator.LESS_THAN_OR_EQUAL: 1,
    Operator.GREATER_THAN_OR_EQUAL: 1,
    Operator.WITHIN_RANGE: 2,
}
_UINT8_COUNT_BYTES: Final = 1
"""A count of exactly one byte: some servers send uint8 (Nordic's client accepts it)."""
_UINT32_COUNT_BYTES: Final = 4
"""A count of exactly four bytes: some servers send uint32 (Nordic's client accepts it)."""


class RacpProcedureFailed(ProtocolError):
    """The server ended a RACP procedure with an error response code.

    Attributes:
        request_op_code: the op code of the request that failed.
        response_code: the server's code (a :class:`ResponseCode`, or an int if RFU).
    """

    def __init__(self, request_op_code: OpCode | int, response_code: ResponseCode | int) -> None:
        super().__init__(
            f"RACP request {_code_name(request_op_code)} failed: {_code_name(response_code)}"
        )
        self.request_op_code = request_op_code
        self.response_code = response_code


def _code_name(code: IntEnum | int) -> str:
    return code.name.lower() if isinstance(code, IntEnum) else f"RFU code 0x{code:02X}"


def _known(enum: type[IntEnum], value: int) -> IntEnum | int:
    try:
        return enum(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class RacpRequest:
    """A RACP request as written by a client.

    ``operands`` holds one (≤, ≥) or two (range: min, max) values of the filter type:
    ints for sequence numbers/time offsets, :class:`DateTimeFields` for user-facing time.
    For a filter type this module does not know, ``operands`` is empty and the bytes after
    the filter type are in ``unparsed_operand``.
    """

    op_code: OpCode | int
    operator: Operator | int
    filter_type: FilterType | int | None = None
    operands: tuple[int, ...] | tuple[DateTimeFields, ...] = ()
    unparsed_operand: bytes = b""
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """A RACP indication from the server: a record count or a response code."""

    op_code: OpCode
    request_op_code: OpCode | int | None = None
    response_code: ResponseCode | int | None = None
    number_of_records: int | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""

    def raise_for_error(self) -> None:
        """Raise unless this is a count or a response code ``SUCCESS``/``NO_RECORDS_FOUND``.

        Raises:
            RacpProcedureFailed: the procedure ended with any other response code.
        """
        if self.op_code is not OpCode.RESPONSE_CODE:
            return
        assert self.request_op_code is not None
        assert self.response_code is not None
        if self.response_code not in (ResponseCode.SUCCESS, ResponseCode.NO_RECORDS_FOUND):
            raise RacpProcedureFailed(self.request_op_code, self.response_code)


def encode_racp_request(request: RacpRequest) -> bytes:
    """The bytes a client writes to RACP for ``request``.

    Raises:
        UnencodableValue: a code or operand does not fit, or the operand count does not
            match the operator.
    """
    out = bytearray()
    out += pack_uint(int(request.op_code), 1, "op_code")
    out += pack_uint(int(request.operator), 1, "operator")
    if request.filter_type is not None:
        out += pack_uint(int(request.filter_type), 1, "filter_type")
    expected = _OPERAND_VALUE_COUNT.get(int(request.operator))
    if request.operands and expected is not None and len(request.operands) != expected:
        raise UnencodableValue(
            f"operator {_code_name(request.operator)} takes {expected} operand value(s), "
            f"got {len(request.operands)}",
            field="operand",
        )
    for value in request.operands:
        if isinstance(value, DateTimeFields):
            out += encode_date_time(value, field="operand")
        else:
            out += pack_uint(value, 2, "operand")
    out += request.unparsed_operand
    out += padding(request.trailing_bytes)
    return bytes(out)


def parse_racp_request(data: bytes) -> RacpRequest:
    """Decode a RACP request (what a simulated server receives).

    Raises:
        InvalidFrame: shorter than op code + operator, or a known operand is cut short.
    """
    reader = FieldReader(data)
    op_code = _known(OpCode, reader.uint8("op_code"))
    operator = _known(Operator, reader.uint8("operator"))
    count = _OPERAND_VALUE_COUNT.get(int(operator))
    if count is None:
        return RacpRequest(
            op_code=op_code, operator=operator, trailing_bytes=reader.trailing_bytes()
        )
    filter_type = _known(FilterType, reader.uint8("filter_type"))
    if filter_type == FilterType.SEQUENCE_NUMBER:
        numbers = tuple(reader.uint16(f"operand[{index}]") for index in range(count))
        return RacpRequest(
            op_code, operator, filter_type, numbers, trailing_bytes=reader.trailing_bytes()
        )
    if filter_type == FilterType.USER_FACING_TIME:
        times = tuple(read_date_time(reader, f"operand[{index}]") for index in range(count))
        return RacpRequest(
            op_code, operator, filter_type, times, trailing_bytes=reader.trailing_bytes()
        )
    return RacpRequest(op_code, operator, filter_type, (), reader.rest())


def parse_racp_response(data: bytes) -> RacpResponse:
    """Decode a RACP indication from the server.

    Raises:
        InvalidFrame: not a response op code (0x05/0x06), or cut short.
    """
    reader = FieldReader(data)
    op_code = reader.uint8("op_code")
    reader.uint8("operator")
    if op_code == OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        size = reader.remaining
        if size == _UINT32_COUNT_BYTES:
            count = reader.uint32("number_of_records")
        elif size == _UINT8_COUNT_BYTES:
            count = reader.uint8("number_of_records")
        else:
            count = reader.uint16("number_of_records")
        return RacpResponse(
            OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE,
            number_of_records=count,
            trailing_bytes=reader.trailing_bytes(),
        )
    if op_code == OpCode.RESPONSE_CODE:
        request_op = _known(OpCode, reader.uint8("request_op_code"))
        code = _known(ResponseCode, reader.uint8("response_code"))
        return RacpResponse(
            OpCode.RESPONSE_CODE,
            request_op_code=request_op,
            response_code=code,
            trailing_bytes=reader.trailing_bytes(),
        )
    raise InvalidFrame(
        f"op code 0x{op_code:02X} is not a response (0x05 count or 0x06 response code)",
        offset=0,
        field="op_code",
    )


def parse_racp_value(data: bytes) -> RacpRequest | RacpResponse:
    """Decode a RACP value in either direction, by its op code (for ``vitalgate decode``).

    Raises:
        InvalidFrame: cut short.
    """
    op_code = FieldReader(data).uint8("op_code")
    if op_code in (OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, OpCode.RESPONSE_CODE):
        return parse_racp_response(data)
    return parse_racp_request(data)


def encode_racp_response(request_op_code: OpCode | int, code: ResponseCode | int) -> bytes:
    """The response-code indication ``06 00 <request op> <code>`` a server sends."""
    return (
        bytes([OpCode.RESPONSE_CODE, Operator.NULL])
        + pack_uint(int(request_op_code), 1, "request_op_code")
        + pack_uint(int(code), 1, "response_code")
    )


def encode_racp_number_of_records(count: int) -> bytes:
    """The count indication ``05 00 <uint16>`` a server sends."""
    return bytes([OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, Operator.NULL]) + pack_uint(
        count, 2, "number_of_records"
    )


def _request(op_code: OpCode, operator: Operator, *operands: int) -> bytes:
    filter_type = FilterType.SEQUENCE_NUMBER if operands else None
    return encode_racp_request(RacpRequest(op_code, operator, filter_type, operands))


def report_all() -> bytes:
    """Report every stored record: ``01 01``."""
    return _request(OpCode.REPORT_STORED_RECORDS, Operator.ALL_RECORDS)


def report_first() -> bytes:
    """Report the oldest record: ``01 05``."""
    return _request(OpCode.REPORT_STORED_RECORDS, Operator.FIRST_RECORD)


def report_last() -> bytes:
    """Report the newest record: ``01 06``."""
    return _request(OpCode.REPORT_STORED_RECORDS, Operator.LAST_RECORD)


def report_greater_or_equal(value: int) -> bytes:
    """Report records with sequence number (GLS) or time offset (CGMS) ≥ ``value``."""
    return _request(OpCode.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL, value)


def report_less_or_equal(value: int) -> bytes:
    """Report records with sequence number (GLS) or time offset (CGMS) ≤ ``value``."""
    return _request(OpCode.REPORT_STORED_RECORDS, Operator.LESS_THAN_OR_EQUAL, value)


def report_within_range(minimum: int, maximum: int) -> bytes:
    """Report records with sequence number (or time offset) in ``minimum…maximum``."""
    return _request(OpCode.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE, minimum, maximum)


def report_user_facing_time_greater_or_equal(start: DateTimeFields) -> bytes:
    """GLS: report records whose user-facing time is at or after ``start``."""
    return encode_racp_request(
        RacpRequest(
            OpCode.REPORT_STORED_RECORDS,
            Operator.GREATER_THAN_OR_EQUAL,
            FilterType.USER_FACING_TIME,
            (start,),
        )
    )


def report_number_all() -> bytes:
    """Ask how many records are stored: ``04 01``."""
    return _request(OpCode.REPORT_NUMBER_OF_STORED_RECORDS, Operator.ALL_RECORDS)


def report_number_greater_or_equal(value: int) -> bytes:
    """Ask how many records have sequence number (or time offset) ≥ ``value``."""
    return _request(OpCode.REPORT_NUMBER_OF_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL, value)


def delete_all() -> bytes:
    """Delete every stored record: ``02 01``."""
    return _request(OpCode.DELETE_STORED_RECORDS, Operator.ALL_RECORDS)


def abort() -> bytes:
    """Abort the running procedure: exactly ``03 00``."""
    return _request(OpCode.ABORT_OPERATION, Operator.NULL)
