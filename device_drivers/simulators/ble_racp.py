"""The server side of the Record Access Control Point, for simulated devices that store
records (glucose meter, CGM).

Behaves like Nordic's GLS sample server, the reference most meters follow (summarised in
docs/gateway-runtime.md, *Simulated devices*):

* a RACP write is refused with an ATT error when the client has not enabled the
  indications on RACP and the notifications of the record characteristic ("CCCD
  improperly configured"), or while a procedure runs ("procedure already in progress");
* report, report number, delete (all records only) and abort are implemented; operators
  outside the device's supported set get "operator not supported", a filter type other
  than the device's key gets "operand not supported";
* a report ends with the indication ``06 00 01 01`` (success) or ``06 00 01 06`` (no
  records found); an aborted report ends with the answer to the abort, ``06 00 03 01``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final

from bumble import att
from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue

from device_drivers.errors import InvalidFrame
from device_drivers.gatt import uuids
from device_drivers.gatt.racp import (
    FilterType,
    OpCode,
    Operator,
    RacpRequest,
    ResponseCode,
    encode_racp_number_of_records,
    encode_racp_response,
    parse_racp_request,
)
from device_drivers.profiles import RacpOperator
from device_drivers.simulators.ble_peripheral import (
    NumberedRecord,
    SimulatedPeripheral,
    TransferBudget,
    bumble_uuid,
)

logger = logging.getLogger(__name__)

OPERATORS_BY_NAME: Final[dict[RacpOperator, Operator]] = {
    RacpOperator.ALL: Operator.ALL_RECORDS,
    RacpOperator.LESS_OR_EQUAL: Operator.LESS_THAN_OR_EQUAL,
    RacpOperator.GREATER_OR_EQUAL: Operator.GREATER_THAN_OR_EQUAL,
    RacpOperator.WITHIN_RANGE: Operator.WITHIN_RANGE,
    RacpOperator.FIRST: Operator.FIRST_RECORD,
    RacpOperator.LAST: Operator.LAST_RECORD,
}

SendRecords = Callable[
    [Connection, Sequence[NumberedRecord], TransferBudget, Callable[[], bool]], Awaitable[bool]
]
"""Sends records to a central: ``(connection, records, budget, aborted)``; checks
``aborted()`` between notifications; ``False`` when the transfer ended early."""


class _Refusal(Exception):
    def __init__(self, code: ResponseCode) -> None:
        super().__init__(code.name)
        self.code = code


class RacpServer:
    """RACP over a simulated device's numbered records.

    Args:
        peripheral: the device (its connections, clock, link-drop budget, memory).
        operators: the operators the device implements.
        records: the records in memory now, oldest first.
        send_records: sends the selected records (see :data:`SendRecords`).
        record_characteristics: characteristics whose notifications must be enabled
            before a RACP write is accepted.
        busy_error: ATT error for a write while a procedure runs (GLS 0x80, CGMS 0xFE).
        cccd_error: ATT error for a write before the CCCDs are set (GLS 0x81, CGMS 0xFD).
    """

    def __init__(
        self,
        peripheral: SimulatedPeripheral,
        *,
        operators: frozenset[RacpOperator],
        records: Callable[[], Sequence[NumberedRecord]],
        send_records: SendRecords,
        record_characteristics: Sequence[Characteristic[bytes]],
        busy_error: int,
        cccd_error: int,
    ) -> None:
        self._peripheral = peripheral
        self._operators = frozenset(OPERATORS_BY_NAME[name] for name in operators)
        self._records = records
        self._send_records = send_records
        self._record_characteristics = record_characteristics
        self._busy_error = busy_error
        self._cccd_error = cccd_error
        self._procedure: asyncio.Task[None] | None = None
        self._running = False
        self._abort_requested = False
        self.requests: list[RacpRequest] = []
        """Every request received, for tests that check what the driver asked for."""
        self.characteristic: Characteristic[bytes] = Characteristic(
            bumble_uuid(uuids.RECORD_ACCESS_CONTROL_POINT),
            Characteristic.Properties.WRITE | Characteristic.Properties.INDICATE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=self._on_write),
        )

    @property
    def busy(self) -> bool:
        """Whether a procedure is running (it ends when its last indication is queued: a
        client may write its next request as soon as it has that indication)."""
        return self._running

    def _on_write(self, connection: Connection, value: bytes) -> None:
        try:
            request: RacpRequest | None = parse_racp_request(value)
        except InvalidFrame:
            request = None
        is_abort = request is not None and request.op_code == OpCode.ABORT_OPERATION
        if self.busy and not is_abort:
            raise att.ATT_Error(self._busy_error, message="procedure already in progress")
        watched = [self.characteristic, *self._record_characteristics]
        if not all(self._peripheral.is_subscribed(connection, char) for char in watched):
            raise att.ATT_Error(self._cccd_error, message="CCCD improperly configured")
        if request is None:
            op_code = value[0] if value else 0
            self._start(self._respond(connection, op_code, ResponseCode.INVALID_OPERAND))
            return
        self.requests.append(request)
        if is_abort:
            self._abort_requested = True
            asyncio.get_running_loop().create_task(self._abort(connection, request))
            return
        self._start(self._run(connection, request))

    def _start(self, procedure: Coroutine[Any, Any, None]) -> None:
        self._abort_requested = False
        self._running = True
        self._procedure = asyncio.get_running_loop().create_task(procedure)

    async def _respond(self, connection: Connection, op_code: int, code: ResponseCode) -> None:
        await self._conclude(connection, encode_racp_response(op_code, code))

    async def _conclude(self, connection: Connection, value: bytes) -> None:
        """Indicate the value that ends the running procedure."""
        self._running = False
        await self._peripheral.send(connection, self.characteristic, value, indicate=True)

    async def _abort(self, connection: Connection, request: RacpRequest) -> None:
        if request.operator != Operator.NULL:
            await self._respond(connection, OpCode.ABORT_OPERATION, ResponseCode.INVALID_OPERATOR)
            return
        if self._procedure is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._procedure
        await self._respond(connection, OpCode.ABORT_OPERATION, ResponseCode.SUCCESS)

    async def _run(self, connection: Connection, request: RacpRequest) -> None:
        op_code = request.op_code
        try:
            match op_code:
                case OpCode.REPORT_STORED_RECORDS:
                    await self._report(connection, self._select(request))
                case OpCode.REPORT_NUMBER_OF_STORED_RECORDS:
                    count = len(self._select(request))
                    await self._conclude(connection, encode_racp_number_of_records(count))
                case OpCode.DELETE_STORED_RECORDS:
                    if request.operator != Operator.ALL_RECORDS:
                        raise _Refusal(ResponseCode.OPERATOR_NOT_SUPPORTED)
                    self._peripheral.erase_memory()
                    await self._respond(connection, op_code, ResponseCode.SUCCESS)
                case _:
                    raise _Refusal(ResponseCode.OP_CODE_NOT_SUPPORTED)
        except _Refusal as refusal:
            await self._respond(connection, int(op_code), refusal.code)
        finally:
            # A report cut short (abort, link lost) ends without a final indication.
            self._running = False

    def _select(self, request: RacpRequest) -> list[NumberedRecord]:
        operator = request.operator
        if not isinstance(operator, Operator) or operator == Operator.NULL:
            raise _Refusal(ResponseCode.INVALID_OPERATOR)
        if operator not in self._operators:
            raise _Refusal(ResponseCode.OPERATOR_NOT_SUPPORTED)
        records = list(self._records())
        match operator:
            case Operator.ALL_RECORDS:
                return records
            case Operator.FIRST_RECORD:
                return records[:1]
            case Operator.LAST_RECORD:
                return records[-1:]
        if request.filter_type != FilterType.SEQUENCE_NUMBER or not request.operands:
            raise _Refusal(ResponseCode.OPERAND_NOT_SUPPORTED)
        bounds = [int(value) for value in request.operands if isinstance(value, int)]
        match operator:
            case Operator.GREATER_THAN_OR_EQUAL:
                return [record for record in records if record.key >= bounds[0]]
            case Operator.LESS_THAN_OR_EQUAL:
                return [record for record in records if record.key <= bounds[0]]
            case _:
                low, high = bounds
                if low > high:
                    raise _Refusal(ResponseCode.INVALID_OPERAND)
                return [record for record in records if low <= record.key <= high]

    async def _report(self, connection: Connection, selected: list[NumberedRecord]) -> None:
        if not selected:
            raise _Refusal(ResponseCode.NO_RECORDS_FOUND)
        budget = self._peripheral.new_transfer()
        completed = await self._send_records(
            connection, selected, budget, lambda: self._abort_requested
        )
        if completed and not self._abort_requested:
            await self._respond(connection, OpCode.REPORT_STORED_RECORDS, ResponseCode.SUCCESS)
