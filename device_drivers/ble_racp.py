"""Record download through the Record Access Control Point, for every BLE driver that has it.

GLS meters and CGM sensors store records keyed by a number (sequence number; CGM: minutes
since session start) and send them on request (RACP; ``docs/devices.md``). :class:`RacpDriver`
implements the download once; a subclass says which characteristics carry the records and
how to decode them.

Download, as xDrip and Nordic's server do it:

1. enable the record notifications and the RACP indication (a Nordic-based server refuses
   RACP writes before that);
2. with a cursor, ask for the newest record (``01 06``): a key below the cursor means the
   memory was cleared, the session restarted or the numbering wrapped, and everything is
   downloaded again (``full_download``); equal to the cursor means nothing is new;
3. ask how many records will come (``04 01`` / ``04 03 01 <key>``) to size the deadline;
4. ``01 03 01 <cursor+1>`` ("≥ key"), or ``01 01`` (all) without a cursor or when the
   device lacks "≥";
5. collect records until ``06 00 01 01`` (success) or ``06 00 01 06`` (no records); on
   timeout send abort ``03 00`` and fail; if the link drops, fail at once;
6. a device that answers "operator not supported" although its profile promised the
   operator gets ``01 01`` instead, and the records at or below the cursor are dropped.

Records are returned oldest first, once per key.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from device_drivers.base import FetchResult, GattTransport, RecordCursor
from device_drivers.ble_generic import GattDriver
from device_drivers.errors import DeviceTimeout, InvalidFrame, ProtocolError, TransportError
from device_drivers.gatt import racp, uuids
from device_drivers.gatt.racp import OpCode, RacpResponse, ResponseCode
from device_drivers.measurement import Measurement
from device_drivers.profiles import DeviceProfile, RacpOperator

logger = logging.getLogger(__name__)

RACP_RESPONSE_TIMEOUT_SECONDS: Final = 10.0
"""For the answer to a count, "last record" or abort: a device answers within a few
connection events, but may first finish writing its flash after a measurement."""

RACP_SECONDS_PER_RECORD: Final = 0.2
"""Download deadline per announced record: a glucose record is two notifications
(measurement, context), and at the slowest connection interval (100 ms) a device sends one
per connection event."""

RACP_UNCOUNTED_DOWNLOAD_SECONDS: Final = 150.0
"""Deadline of a download whose size the device would not tell: a full 720-record meter
memory at the per-record rate above, plus margin."""

LINK_CHECK_SECONDS: Final = 0.25
"""While waiting for RACP, how often to look whether the link dropped, so a lost link
fails the download at once rather than at its deadline."""

_OPERATOR_REFUSALS: Final = frozenset(
    {ResponseCode.OPERATOR_NOT_SUPPORTED, ResponseCode.OPERAND_NOT_SUPPORTED}
)


@dataclass(slots=True)
class RacpProcedure:
    """The records that arrive while one RACP report runs, by key."""

    records: dict[int, Measurement] = field(default_factory=dict)

    def add(self, measurement: Measurement) -> None:
        """Keep ``measurement``; a device that resends a record keeps one per key."""
        if measurement.seq is not None:
            self.records[measurement.seq] = measurement


class RacpDriver(GattDriver, abc.ABC):
    """A BLE device whose stored records are downloaded through RACP.

    Args:
        transport: the GATT link.
        profile: the model; ``quirks.racp_operators`` says which requests it takes.
        response_timeout_seconds: wait for a count, "last record" or abort answer.
        seconds_per_record: download deadline per announced record.
        uncounted_download_seconds: deadline of a download whose size is unknown.
    """

    def __init__(
        self,
        transport: GattTransport,
        *,
        profile: DeviceProfile,
        response_timeout_seconds: float = RACP_RESPONSE_TIMEOUT_SECONDS,
        seconds_per_record: float = RACP_SECONDS_PER_RECORD,
        uncounted_download_seconds: float = RACP_UNCOUNTED_DOWNLOAD_SECONDS,
    ) -> None:
        super().__init__(transport, profile=profile)
        self._response_timeout_seconds = response_timeout_seconds
        self._seconds_per_record = seconds_per_record
        self._uncounted_download_seconds = uncounted_download_seconds
        self._operators = profile.quirks.racp_operators or frozenset({RacpOperator.ALL})
        self._procedure: RacpProcedure | None = None
        self._responses: asyncio.Queue[RacpResponse] = asyncio.Queue()

    @abc.abstractmethod
    async def _enable_records(self) -> None:
        """Enable the notifications that carry records; their handlers call
        :meth:`_received`."""

    def _finish(self, procedure: RacpProcedure) -> list[Measurement]:
        """The downloaded records, oldest first (subclasses join what came alongside)."""
        return [procedure.records[key] for key in sorted(procedure.records)]

    def _received(self, measurement: Measurement) -> None:
        """A record arrived: part of the running download, or a live measurement."""
        if self._procedure is None:
            self._deliver(measurement)
        else:
            self._procedure.add(measurement)

    async def _enable_live(self) -> None:
        await self._enable_racp()

    async def _enable_racp(self) -> None:
        await self._enable_records()
        await self._enable(uuids.RECORD_ACCESS_CONTROL_POINT, self._on_racp)

    def _on_racp(self, data: bytes) -> None:
        try:
            self._responses.put_nowait(racp.parse_racp_response(data))
        except InvalidFrame as exc:
            self.invalid_notifications += 1
            logger.warning("%s: undecodable RACP indication skipped: %s", self.profile.model, exc)

    async def fetch_records(self, cursor: RecordCursor | None) -> FetchResult:
        """Download the records after ``cursor`` (all of them without one).

        Raises:
            DeviceTimeout: the device did not finish in time (the procedure was aborted).
            RacpProcedureFailed: the device refused the request.
            TransportError: the link dropped during the download; nothing is returned, so
                the next download starts again from ``cursor``.
        """
        await self._enable_racp()
        last_key = cursor.last_seq if cursor is not None else None
        if last_key is None:
            return self._result(await self._download_all(), cursor, full_download=False)
        newest = await self._newest_key()
        if newest is not None and newest == last_key:
            return FetchResult(measurements=(), cursor=cursor or RecordCursor())
        if newest is not None and newest < last_key:
            logger.info(
                "%s: newest record %d is below the cursor %d (memory cleared or numbering "
                "restarted): downloading everything",
                self.profile.model,
                newest,
                last_key,
            )
            return self._result(await self._download_all(), None, full_download=True)
        if RacpOperator.GREATER_OR_EQUAL in self._operators:
            count = await self._count(racp.report_number_greater_or_equal(last_key + 1))
            response, records = await self._report(
                racp.report_greater_or_equal(last_key + 1), count
            )
            if response.response_code not in _OPERATOR_REFUSALS:
                response.raise_for_error()
                return self._result(records, cursor, full_download=False)
            logger.info(
                "%s: device refused 'greater or equal'; downloading all", self.profile.model
            )
        everything = await self._download_all()
        if newest is None and everything and max(_key(m) for m in everything) < last_key:
            return self._result(everything, None, full_download=True)
        newer = [measurement for measurement in everything if _key(measurement) > last_key]
        return self._result(newer, cursor, full_download=True)

    def _result(
        self, records: Sequence[Measurement], cursor: RecordCursor | None, *, full_download: bool
    ) -> FetchResult:
        if not records:
            return FetchResult((), cursor or RecordCursor(), full_download=full_download)
        newest = records[-1]
        return FetchResult(
            measurements=tuple(records),
            cursor=RecordCursor(last_seq=newest.seq, last_device_time=newest.device_time),
            full_download=full_download,
        )

    async def _download_all(self) -> list[Measurement]:
        count = await self._count(racp.report_number_all())
        response, records = await self._report(racp.report_all(), count)
        response.raise_for_error()
        return records

    async def _newest_key(self) -> int | None:
        """The device's newest record key; ``None`` if it cannot say or has no record."""
        if RacpOperator.LAST not in self._operators:
            return None
        response, records = await self._report(racp.report_last(), 1)
        if response.response_code in _OPERATOR_REFUSALS:
            return None
        response.raise_for_error()
        return records[-1].seq if records else None

    async def _count(self, request: bytes) -> int | None:
        if not self.profile.quirks.racp_reports_count:
            return None
        response = await self._exchange(request, self._response_timeout_seconds)
        if response.op_code is OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
            return response.number_of_records
        return None

    async def _report(
        self, request: bytes, expected_records: int | None
    ) -> tuple[RacpResponse, list[Measurement]]:
        deadline = (
            self._response_timeout_seconds + expected_records * self._seconds_per_record
            if expected_records is not None
            else self._uncounted_download_seconds
        )
        procedure = self._procedure = RacpProcedure()
        try:
            response = await self._exchange(request, deadline)
        finally:
            self._procedure = None
        return response, self._finish(procedure)

    async def _exchange(self, request: bytes, timeout_seconds: float) -> RacpResponse:
        """Write a RACP request and wait for the indication that ends it."""
        while not self._responses.empty():
            stale = self._responses.get_nowait()
            logger.debug("%s: discarding a stale RACP answer %s", self.profile.model, stale)
        await self._transport.write(uuids.RECORD_ACCESS_CONTROL_POINT, request)
        try:
            return await self._next_response(timeout_seconds)
        except TimeoutError:
            await self._abort()
            raise DeviceTimeout(
                f"{self.profile.model}: no RACP answer within {timeout_seconds:.0f} s "
                f"to {request.hex(' ')}; procedure aborted"
            ) from None

    async def _next_response(self, timeout_seconds: float) -> RacpResponse:
        async with asyncio.timeout(timeout_seconds):
            while True:
                try:
                    async with asyncio.timeout(LINK_CHECK_SECONDS):
                        return await self._responses.get()
                except TimeoutError:
                    if not self._transport.is_connected:
                        raise TransportError(
                            f"{self.profile.model}: link dropped during a RACP procedure"
                        ) from None

    async def _abort(self) -> None:
        if not self._transport.is_connected:
            return
        try:
            await self._transport.write(uuids.RECORD_ACCESS_CONTROL_POINT, racp.abort())
            await self._next_response(self._response_timeout_seconds)
        except (TimeoutError, TransportError, ProtocolError):
            logger.warning("%s: RACP abort was not confirmed", self.profile.model)


def _key(measurement: Measurement) -> int:
    return measurement.seq if measurement.seq is not None else -1
