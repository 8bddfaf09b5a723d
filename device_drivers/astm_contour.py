"""Bayer / Ascensia Contour driver: ASTM E1381/E1394 over a serial link.

Supported: identity, settings and clock from the H record, download of every stored
result. No clock setting (Contour meters set it only through their remote-command mode,
which differs per model), no live measurements. Expected device path: the serial cable's
adapter (``/dev/ttyUSB*``) or a simulator's pseudo-terminal; 9600 8N1.

A transfer: the host sends EOT (leave any command mode, ready to receive), the meter
answers ENQ, the host ACKs; the meter sends frames (H, P, R…, L) one at a time, each
answered ACK or NAK (resend), and ends with EOT. Parsing is in
:mod:`device_drivers.serial_protocols.astm`; this module moves bytes and bounds retries.

One transfer yields identity, clock and records, so the driver runs it once per
connection and serves :meth:`read_device_info`, :meth:`read_clock` and the next
:meth:`fetch_records` from it. The meter cannot send "records since", so every download is
the whole memory (``full_download``), filtered to records after the cursor by
(device time, sequence number).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from device_drivers.base import (
    DeviceInfo,
    FetchResult,
    MeasurementCallback,
    RecordCursor,
    SerialTransport,
)
from device_drivers.errors import DeviceTimeout, InvalidFrame, ProtocolError
from device_drivers.measurement import Measurement
from device_drivers.serial_protocols import astm
from device_drivers.transports.serial import SerialPortTransport

BAUDRATE: Final = 9600

ESTABLISH_TIMEOUT_SECONDS: Final = 5.0
"""Wait for the meter's ENQ after our EOT. A meter in transfer mode answers at once
(glucometerutils polls in a tight loop); 5 s allows for the meter waking its display."""
ESTABLISH_ATTEMPTS: Final = 3
"""EOTs sent before giving up: the first may be lost while the meter is still busy."""
FRAME_TIMEOUT_SECONDS: Final = 30.0
"""E1381 receiver timer: the sender may take up to 15 s to react to our reply and then
has the line for its frame; the standard gives the receiver 30 s."""
MAX_FRAME_ATTEMPTS: Final = 6
"""E1381: a sender gives up a frame after six NAKs (and sends EOT); refusing a seventh
copy ourselves keeps the bound even when a meter keeps retrying."""
READ_CHUNK_BYTES: Final = 512
"""At least two full E1381 frames (247 bytes each)."""


class ContourAstmDriver:
    """A Contour meter speaking ASTM through a :class:`~device_drivers.base.SerialTransport`.

    Args:
        transport: the serial link (9600 8N1).
        establish_timeout_seconds: wait for the meter's ENQ.
        frame_timeout_seconds: wait for each following frame or EOT.
        max_frame_attempts: copies of one frame refused before the error is raised.
    """

    def __init__(
        self,
        transport: SerialTransport,
        *,
        establish_timeout_seconds: float = ESTABLISH_TIMEOUT_SECONDS,
        frame_timeout_seconds: float = FRAME_TIMEOUT_SECONDS,
        max_frame_attempts: int = MAX_FRAME_ATTEMPTS,
    ) -> None:
        self._transport = transport
        self._establish_timeout_seconds = establish_timeout_seconds
        self._frame_timeout_seconds = frame_timeout_seconds
        self._max_frame_attempts = max_frame_attempts
        self._pending: astm.AstmTransfer | None = None

    @classmethod
    def for_port(cls, url: str) -> ContourAstmDriver:
        """A driver on a pyserial port or URL with the meter's line settings."""
        return cls(SerialPortTransport(url, baudrate=BAUDRATE))

    async def connect(self) -> None:
        """Open the port."""
        await self._transport.open()

    async def disconnect(self) -> None:
        """Close the port and forget an unconsumed transfer."""
        self._pending = None
        await self._transport.close()

    async def _establish(self, receiver: astm.AstmReceiver) -> None:
        for _ in range(ESTABLISH_ATTEMPTS):
            await self._transport.write(astm.EOT)
            data = await self._transport.read(READ_CHUNK_BYTES, self._establish_timeout_seconds)
            if await self._answer(receiver, data):
                return
        raise DeviceTimeout(
            f"the meter did not start a transfer after {ESTABLISH_ATTEMPTS} requests: "
            "is it on and in data-transfer mode?"
        )

    async def _answer(self, receiver: astm.AstmReceiver, data: bytes) -> bool:
        """Feed ``data``, send the replies; whether a transfer is (now) under way."""
        started = False
        for step in receiver.feed(data):
            if step.reply:
                await self._transport.write(step.reply)
            started = started or step.established or step.frame is not None
        return started

    async def _transfer(self) -> astm.AstmTransfer:
        receiver = astm.AstmReceiver()
        await self._establish(receiver)
        refused = 0
        last_refusal: InvalidFrame | None = None
        while not receiver.finished:
            data = await self._transport.read(READ_CHUNK_BYTES, self._frame_timeout_seconds)
            if not data:
                raise DeviceTimeout(
                    f"the meter sent nothing for {self._frame_timeout_seconds:g} s "
                    f"after {len(receiver.records)} records: link lost?"
                )
            for step in receiver.feed(data):
                if step.rejected is not None:
                    refused += 1
                    last_refusal = step.rejected
                    if refused >= self._max_frame_attempts:
                        raise step.rejected
                elif step.frame is not None:
                    refused = 0
                if step.reply:
                    await self._transport.write(step.reply)
                if step.end_of_transmission and refused:
                    assert last_refusal is not None
                    raise last_refusal  # the meter gave up on a frame we refused
        return astm.parse_records(receiver.records)

    async def _header_transfer(self) -> astm.AstmTransfer:
        if self._pending is None:
            self._pending = await self._transfer()
        return self._pending

    async def read_device_info(self) -> DeviceInfo:
        """Manufacturer, model, serial and versions from the H record.

        Raises:
            ProtocolError: the header carries no serial number.
        """
        header = (await self._header_transfer()).header
        manufacturer, model, serial_number = astm.header_device_identity(header)
        return DeviceInfo(
            manufacturer=manufacturer,
            model=model,
            serial=serial_number,
            firmware="/".join(header.versions) or None,
        )

    async def read_clock(self) -> datetime | None:
        """The meter clock from the H record (minute resolution), as of the transfer."""
        return (await self._header_transfer()).header.meter_time

    async def set_clock(self, local_time: datetime) -> None:
        """Not supported.

        Raises:
            ProtocolError: always; Contour clocks are set on the meter.
        """
        raise ProtocolError("this driver cannot set a Contour meter's clock: set it on the meter")

    async def fetch_records(self, cursor: RecordCursor | None) -> FetchResult:
        """Download the memory (reusing this connection's first transfer once) and keep
        the records after ``cursor``.

        Raises:
            InvalidFrame: a frame was refused too often, or a record is malformed.
            DeviceTimeout: the meter stopped sending.
        """
        transfer = self._pending if self._pending is not None else await self._transfer()
        self._pending = None
        return select_new(astm.transfer_measurements(transfer), cursor)

    async def subscribe(self, callback: MeasurementCallback) -> None:
        """The meter has no live measurements: returns at once."""


def _key(time: datetime | None, seq: int | None) -> tuple[datetime, int]:
    return (time or datetime.min, -1 if seq is None else seq)  # noqa: DTZ901 - naive device time


def select_new(measurements: Sequence[Measurement], cursor: RecordCursor | None) -> FetchResult:
    """Records after the cursor by (device time, sequence number), and the new cursor."""
    if cursor is None or (cursor.last_device_time is None and cursor.last_seq is None):
        new = list(measurements)
    else:
        since = _key(cursor.last_device_time, cursor.last_seq)
        new = [m for m in measurements if _key(m.device_time, m.seq) > since]
    if not new:
        return FetchResult(measurements=[], cursor=cursor or RecordCursor(), full_download=True)
    newest = max(new, key=lambda m: _key(m.device_time, m.seq))
    return FetchResult(
        measurements=new,
        cursor=RecordCursor(last_seq=newest.seq, last_device_time=newest.device_time),
        full_download=True,
    )
