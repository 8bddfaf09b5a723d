"""LifeScan OneTouch Ultra 2 driver (serial, 9600 8N1 through the meter's 3.5 mm cable).

Supported: serial number and firmware (``DM@``, ``DM?``), clock read (``DMF``), clock set
(``DMT``, only when the device profile allows it), download of every stored reading
(``DMP``). No live measurements. Expected device path: the USB-serial adapter of the
LifeScan cable (Prolific PL2303, ``/dev/ttyUSB*``), or a simulator's pseudo-terminal.

The meter talks only while switched off and seated in its cable. Parsing is in
:mod:`device_drivers.serial_protocols.onetouch_ultra2`; this module moves bytes.

The meter has no record numbers and no "records since" command: every download is the
whole memory (``full_download``), filtered here to records whose device time is later
than the cursor's. Records keep the device time as their identity, so a repeated record
gets the same reading id.
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
from device_drivers.serial_protocols import onetouch_ultra2 as protocol
from device_drivers.transports.serial import SerialPortTransport

MANUFACTURER: Final = "LifeScan"
MODEL: Final = "OneTouch Ultra 2"
BAUDRATE: Final = 9600

REPLY_TIMEOUT_SECONDS: Final = 3.0
"""Per reply line. The meter answers a command within about a second (glucometerutils
reads with a 1 s timeout) and sends dump lines back to back (65 ms each at 9600 baud);
3 s covers a slow USB-serial adapter without stalling a session on a dead line."""
QUIET_SECONDS: Final = 0.3
"""Silence that means the meter has finished sending: more than four line times at
9600 baud. Used to discard the rest of a garbled reply before asking again."""
COMMAND_ATTEMPTS: Final = 3
"""Tries per command or dump: line noise on the cheap 3.5 mm cable garbles a line now
and then; three garbled answers in a row mean a real fault, reported to the session."""
_LINE_END: Final = b"\n"
_DRAIN_CHUNK_BYTES: Final = 4096


class OneTouchUltra2Driver:
    """A OneTouch Ultra 2 behind a :class:`~device_drivers.base.SerialTransport`.

    Args:
        transport: the serial link (9600 8N1).
        allow_set_clock: whether :meth:`set_clock` may write the meter clock; off unless
            the device profile says the patient agreed to it.
        reply_timeout_seconds: deadline per reply line.
        attempts: tries per command or dump before the error is raised.
    """

    def __init__(
        self,
        transport: SerialTransport,
        *,
        allow_set_clock: bool = False,
        reply_timeout_seconds: float = REPLY_TIMEOUT_SECONDS,
        attempts: int = COMMAND_ATTEMPTS,
    ) -> None:
        self._transport = transport
        self._allow_set_clock = allow_set_clock
        self._reply_timeout_seconds = reply_timeout_seconds
        self._attempts = attempts

    @classmethod
    def for_port(cls, url: str, *, allow_set_clock: bool = False) -> OneTouchUltra2Driver:
        """A driver on a pyserial port or URL with the meter's line settings."""
        return cls(SerialPortTransport(url, baudrate=BAUDRATE), allow_set_clock=allow_set_clock)

    async def connect(self) -> None:
        """Open the port."""
        await self._transport.open()

    async def disconnect(self) -> None:
        """Close the port."""
        await self._transport.close()

    async def _drain(self) -> None:
        while await self._transport.read(_DRAIN_CHUNK_BYTES, QUIET_SECONDS):
            pass

    async def _read_line(self) -> bytes:
        return await self._transport.read_until(_LINE_END, self._reply_timeout_seconds)

    async def _one_line(self, command: bytes) -> str:
        last_error: InvalidFrame | DeviceTimeout | None = None
        for _ in range(self._attempts):
            await self._transport.write(command)
            try:
                return protocol.verify_line(await self._read_line())
            except (InvalidFrame, DeviceTimeout) as exc:
                last_error = exc
                await self._drain()
        assert last_error is not None
        raise last_error

    async def read_device_info(self) -> DeviceInfo:
        """Serial number (``DM@``) and firmware (``DM?``)."""
        serial_number = protocol.parse_serial_number(
            await self._one_line(protocol.build_command(protocol.Command.SERIAL_NUMBER))
        )
        firmware = protocol.parse_firmware(
            await self._one_line(protocol.build_command(protocol.Command.FIRMWARE))
        )
        return DeviceInfo(
            manufacturer=MANUFACTURER, model=MODEL, serial=serial_number, firmware=firmware
        )

    async def read_clock(self) -> datetime:
        """The meter clock (``DMF``), naive local time."""
        return protocol.parse_clock(
            await self._one_line(protocol.build_command(protocol.Command.READ_CLOCK))
        )

    async def set_clock(self, local_time: datetime) -> None:
        """Set the meter clock with ``DMT`` and check the time it echoes.

        Raises:
            ProtocolError: setting the clock is not allowed for this device, or the meter
                echoed another time.
        """
        if not self._allow_set_clock:
            raise ProtocolError(
                "setting the OneTouch Ultra 2 clock is not allowed by this device's profile"
            )
        wanted = local_time.replace(microsecond=0)
        echoed = protocol.parse_clock(await self._one_line(protocol.build_set_clock(wanted)))
        if echoed != wanted:
            raise ProtocolError(
                f"meter set its clock to {echoed:%Y-%m-%d %H:%M:%S}, not the time sent"
            )

    async def _dump(self) -> bytes:
        command = protocol.build_command(protocol.Command.DUMP)
        last_error: InvalidFrame | DeviceTimeout | None = None
        for _ in range(self._attempts):
            await self._transport.write(command)
            try:
                header = await self._read_line()
                count = protocol.parse_dump_header(protocol.verify_line(header)).record_count
                lines = [header]
                for _ in range(count):
                    lines.append(await self._read_line())
                data = b"".join(lines)
                protocol.parse_dump(data)
            except (InvalidFrame, DeviceTimeout) as exc:
                last_error = exc
                await self._drain()
                continue
            return data
        assert last_error is not None
        raise last_error

    async def fetch_records(self, cursor: RecordCursor | None) -> FetchResult:
        """Dump the memory and keep the records newer than ``cursor``.

        Raises:
            InvalidFrame: every attempt returned a garbled dump (offset in the dump).
            DeviceTimeout: the meter stopped answering.
        """
        measurements = protocol.decode_dump(await self._dump())
        return select_new(measurements, cursor)

    async def subscribe(self, callback: MeasurementCallback) -> None:
        """The meter has no live measurements: returns at once."""


def select_new(measurements: Sequence[Measurement], cursor: RecordCursor | None) -> FetchResult:
    """Records whose device time is later than the cursor's, and the cursor after them."""
    since = cursor.last_device_time if cursor is not None else None
    new = [
        m
        for m in measurements
        if m.device_time is not None and (since is None or m.device_time > since)
    ]
    if not new:
        return FetchResult(measurements=[], cursor=cursor or RecordCursor(), full_download=True)
    newest = max(m.device_time for m in new if m.device_time is not None)
    return FetchResult(
        measurements=new, cursor=RecordCursor(last_device_time=newest), full_download=True
    )
