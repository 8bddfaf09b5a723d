"""Record Access Control Point 0x2A52: the request table and responses of docs/devices.md"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.errors import DriverError, InvalidFrame, ProtocolError
from device_drivers.gatt import (
    DateTimeFields,
    FilterType,
    OpCode,
    Operator,
    RacpProcedureFailed,
    RacpRequest,
    RacpResponse,
    ResponseCode,
    UnencodableValue,
    decode_characteristic,
    encode_racp_number_of_records,
    encode_racp_request,
    encode_racp_response,
    parse_racp_request,
    parse_racp_response,
    racp,
)
from tests.device_drivers.gatt_strategies import date_times, uint8, uint16

# docs/devices.md "Request examples (checked)".
BUILT_REQUESTS = [
    (racp.report_all(), "01 01"),
    (racp.report_last(), "01 06"),
    (racp.report_first(), "01 05"),
    (racp.report_greater_or_equal(42), "01 03 01 2A 00"),
    (racp.report_within_range(12, 34), "01 04 01 0C 00 22 00"),
    (
        racp.report_user_facing_time_greater_or_equal(DateTimeFields(2018, 11, 12, 1, 2, 3)),
        "01 03 02 E2 07 0B 0C 01 02 03",
    ),
    (racp.report_number_all(), "04 01"),
    (racp.delete_all(), "02 01"),
    (racp.abort(), "03 00"),
    (racp.report_greater_or_equal(129), "01 03 01 81 00"),  # CGMS time offset ≥ 129 min
    (racp.report_less_or_equal(0x1234), "01 02 01 34 12"),
    (racp.report_number_greater_or_equal(42), "04 03 01 2A 00"),
]


@pytest.mark.parametrize(("built", "wire"), BUILT_REQUESTS)
def test_request_builders_match_the_table(built: bytes, wire: str) -> None:
    assert built == bytes.fromhex(wire)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("01 01", RacpRequest(OpCode.REPORT_STORED_RECORDS, Operator.ALL_RECORDS)),
        ("03 00", RacpRequest(OpCode.ABORT_OPERATION, Operator.NULL)),
        (
            "01 03 01 2A 00",
            RacpRequest(
                OpCode.REPORT_STORED_RECORDS,
                Operator.GREATER_THAN_OR_EQUAL,
                FilterType.SEQUENCE_NUMBER,
                (42,),
            ),
        ),
        (
            "01 04 01 0C 00 22 00",
            RacpRequest(
                OpCode.REPORT_STORED_RECORDS,
                Operator.WITHIN_RANGE,
                FilterType.SEQUENCE_NUMBER,
                (12, 34),
            ),
        ),
        (
            "01 03 02 E2 07 0B 0C 01 02 03",
            RacpRequest(
                OpCode.REPORT_STORED_RECORDS,
                Operator.GREATER_THAN_OR_EQUAL,
                FilterType.USER_FACING_TIME,
                (DateTimeFields(2018, 11, 12, 1, 2, 3),),
            ),
        ),
        # An unknown filter type: the server must be able to answer "operand not supported".
        (
            "01 03 07 AA BB",
            RacpRequest(
                OpCode.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL, 7, (), b"\xaa\xbb"
            ),
        ),
        # RFU op code and operator decode to ints ("op code not supported").
        ("07 09", RacpRequest(7, 9)),
    ],
)
def test_request_decoder(wire: str, expected: RacpRequest) -> None:
    assert parse_racp_request(bytes.fromhex(wire)) == expected


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("", "op_code", 0),
        ("01", "operator", 1),
        ("01 03", "filter_type", 2),
        ("01 03 01 2A", "operand[0]", 3),
        ("01 04 01 0C 00 22", "operand[1]", 5),
        ("01 03 02 E2 07 0B", "operand[0].day", 6),  # op, operator, filter, year(2), month
    ],
)
def test_truncated_requests(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_racp_request(bytes.fromhex(wire))
    assert (error.value.field, error.value.offset) == (field, offset)


@pytest.mark.parametrize(
    ("wire", "count"),
    [
        ("05 00 2A 00", 42),  # uint16 per GLS
        ("05 00 07", 7),  # 1-byte count (accepted by Nordic's client)
        ("05 00 01 00 01 00", 0x00010001),  # 4-byte count (accepted by Nordic's client)
        ("05 00 FF FF", 0xFFFF),
    ],
)
def test_number_of_records(wire: str, count: int) -> None:
    assert parse_racp_response(bytes.fromhex(wire)) == RacpResponse(
        OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, number_of_records=count
    )


RESPONSE_CODES = [
    (0x01, ResponseCode.SUCCESS),
    (0x02, ResponseCode.OP_CODE_NOT_SUPPORTED),
    (0x03, ResponseCode.INVALID_OPERATOR),
    (0x04, ResponseCode.OPERATOR_NOT_SUPPORTED),
    (0x05, ResponseCode.INVALID_OPERAND),
    (0x06, ResponseCode.NO_RECORDS_FOUND),
    (0x07, ResponseCode.ABORT_UNSUCCESSFUL),
    (0x08, ResponseCode.PROCEDURE_NOT_COMPLETED),
    (0x09, ResponseCode.OPERAND_NOT_SUPPORTED),
]


@pytest.mark.parametrize(("code", "response_code"), RESPONSE_CODES)
def test_response_codes(code: int, response_code: ResponseCode) -> None:
    response = parse_racp_response(bytes([0x06, 0x00, 0x01, code]))
    assert response == RacpResponse(
        OpCode.RESPONSE_CODE,
        request_op_code=OpCode.REPORT_STORED_RECORDS,
        response_code=response_code,
    )
    if response_code in (ResponseCode.SUCCESS, ResponseCode.NO_RECORDS_FOUND):
        response.raise_for_error()
    else:
        with pytest.raises(RacpProcedureFailed) as error:
            response.raise_for_error()
        assert error.value.response_code is response_code
        assert error.value.request_op_code is OpCode.REPORT_STORED_RECORDS
        assert isinstance(error.value, ProtocolError)


def test_rfu_response_code_is_kept_as_an_int() -> None:
    response = parse_racp_response(bytes.fromhex("06 00 03 0A"))
    assert response.request_op_code is OpCode.ABORT_OPERATION
    assert response.response_code == 0x0A
    with pytest.raises(RacpProcedureFailed, match="RFU code 0x0A"):
        response.raise_for_error()


def test_count_response_never_fails() -> None:
    parse_racp_response(bytes.fromhex("05 00 00 00")).raise_for_error()


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        ("01 01", "op_code", 0),  # a request is not a response
        ("06 00 01", "response_code", 3),
        ("05 00", "number_of_records", 2),
        ("06", "operator", 1),
    ],
)
def test_invalid_responses(wire: str, field: str, offset: int) -> None:
    with pytest.raises(InvalidFrame) as error:
        parse_racp_response(bytes.fromhex(wire))
    assert (error.value.field, error.value.offset) == (field, offset)


def test_response_encoders() -> None:
    # Download end (docs/devices.md, RACP): 06 00 01 01 success, 06 00 01 06 no records found.
    assert encode_racp_response(
        OpCode.REPORT_STORED_RECORDS, ResponseCode.SUCCESS
    ) == bytes.fromhex("06 00 01 01")
    assert encode_racp_response(
        OpCode.REPORT_STORED_RECORDS, ResponseCode.NO_RECORDS_FOUND
    ) == bytes.fromhex("06 00 01 06")
    assert encode_racp_number_of_records(0x1234) == bytes.fromhex("05 00 34 12")


def test_att_error_codes() -> None:
    # Nordic GLS uses 0x80/0x81; CGMS the common-profile 0xFE/0xFD (and 0x80/0x81
    # for missing/invalid CRC on E2E-protected writes).
    assert racp.GLS_ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS == 0x80
    assert racp.GLS_ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED == 0x81
    assert racp.ATT_ERROR_PROCEDURE_ALREADY_IN_PROGRESS == 0xFE
    assert racp.ATT_ERROR_CCCD_IMPROPERLY_CONFIGURED == 0xFD
    assert racp.CGMS_ATT_ERROR_MISSING_CRC == 0x80
    assert racp.CGMS_ATT_ERROR_INVALID_CRC == 0x81


def test_encoder_refuses_wrong_operand_count() -> None:
    request = RacpRequest(
        OpCode.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE, FilterType.SEQUENCE_NUMBER, (1,)
    )
    with pytest.raises(UnencodableValue) as error:
        encode_racp_request(request)
    assert error.value.field == "operand"


def test_decode_characteristic_decodes_both_directions() -> None:
    assert decode_characteristic("2A52", bytes.fromhex("06 00 01 06")) == {
        "op_code": "response_code",
        "request_op_code": "report_stored_records",
        "response_code": "no_records_found",
        "number_of_records": None,
    }
    request = decode_characteristic("2A52", bytes.fromhex("01 03 01 2A 00"))
    assert isinstance(request, dict)
    assert request["operator"] == "greater_than_or_equal"
    assert request["operands"] == [42]


@st.composite
def requests(draw: st.DrawFn) -> RacpRequest:
    op_code = draw(st.sampled_from(list(OpCode)) | uint8)
    operator = draw(st.sampled_from(list(Operator)) | st.integers(7, 0xFF))
    # Operators ≤ and ≥ take one operand value, "within range" two, the others none.
    count = {0x02: 1, 0x03: 1, 0x04: 2}.get(int(operator), 0)
    if not count:
        return RacpRequest(op_code, operator)
    filter_type = draw(st.sampled_from([FilterType.SEQUENCE_NUMBER, FilterType.USER_FACING_TIME]))
    values = date_times if filter_type == FilterType.USER_FACING_TIME else uint16
    operands = tuple(draw(values) for _ in range(count))
    return RacpRequest(op_code, operator, filter_type, operands)  # type: ignore[arg-type]


@given(requests())
def test_request_round_trip(built: RacpRequest) -> None:
    assert parse_racp_request(encode_racp_request(built)) == built


@given(uint8, st.sampled_from(list(ResponseCode)) | uint8)
def test_response_code_round_trip(request_op: int, code: int) -> None:
    response = parse_racp_response(encode_racp_response(request_op, code))
    assert response.request_op_code == request_op
    assert response.response_code == code


@given(uint16)
def test_count_round_trip(count: int) -> None:
    assert parse_racp_response(encode_racp_number_of_records(count)).number_of_records == count


@given(st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_driver_errors(data: bytes) -> None:
    for parse in (parse_racp_request, parse_racp_response):
        with contextlib.suppress(DriverError):
            parse(data)
