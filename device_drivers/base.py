"""The driver lifecycle and the narrow transports drivers see.

Every driver, BLE or serial, follows one lifecycle, driven by the gateway's device
session: ``connect`` → ``read_device_info`` → ``read_clock`` (→ ``set_clock`` where the
profile allows) → ``fetch_records`` (new records since the cursor) → ``subscribe`` (live
measurements, BLE only) → ``disconnect``. Drivers never import bleak or pyserial: they
get a transport that implements :class:`GattTransport` or :class:`SerialTransport`, so
the same driver talks to a real device, a simulator or a scripted replay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from device_drivers.measurement import Measurement
from readings.identity import device_identity


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a device says about itself (Device Information Service or serial commands)."""

    manufacturer: str
    model: str
    serial: str
    firmware: str | None = None
    software: str | None = None
    system_id: str | None = None
    """EUI-64 as 16 hex digits, when the device has a System ID."""

    @property
    def device_id(self) -> str:
        """``manufacturer-model-serial``: the identity used on the wire."""
        return device_identity(self.manufacturer, self.model, self.serial)


@dataclass(frozen=True, slots=True)
class RecordCursor:
    """How far a device's stored records have been downloaded.

    Persisted by the gateway in the same transaction as the records it covers, so a crash
    can never skip records.
    """

    last_seq: int | None = None
    last_device_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one record download."""

    measurements: Sequence[Measurement]
    cursor: RecordCursor
    """The cursor after these records (unchanged when nothing new came)."""
    full_download: bool = False
    """True when the driver fell back to downloading everything (meter memory cleared or
    wrapped, or the device cannot filter); ids make the repeats harmless."""


MeasurementCallback = Callable[[Measurement], Awaitable[None]]


@runtime_checkable
class Driver(Protocol):
    """One device, one lifecycle. Implementations live one module per protocol."""

    async def connect(self) -> None:
        """Open the link (with the driver's own bounded deadline and retries)."""

    async def read_device_info(self) -> DeviceInfo:
        """Read manufacturer, model and serial from the device."""

    async def read_clock(self) -> datetime | None:
        """The device's wall-clock time now (naive), or ``None`` if it has no readable clock."""

    async def set_clock(self, local_time: datetime) -> None:
        """Set the device clock to ``local_time`` (naive local wall-clock time).

        Raises:
            ProtocolError: the device or its profile does not allow setting the clock.
        """

    async def fetch_records(self, cursor: RecordCursor | None) -> FetchResult:
        """Download stored records newer than ``cursor`` (all of them when ``None``)."""

    async def subscribe(self, callback: MeasurementCallback) -> None:
        """Deliver live measurements to ``callback`` until disconnect; re-called after every
        reconnect. Drivers without live measurements return at once."""

    async def disconnect(self) -> None:
        """Close the link; safe to call when not connected."""


NotificationCallback = Callable[[bytes], None]


@runtime_checkable
class GattTransport(Protocol):
    """The few GATT operations a BLE driver needs (bleak, or a scripted replay)."""

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""

    async def connect(self, timeout_seconds: float) -> None:
        """Connect and discover services within ``timeout_seconds``."""

    async def disconnect(self) -> None:
        """Disconnect; safe when already disconnected."""

    def has_characteristic(self, uuid: str) -> bool:
        """Whether the connected device exposes the characteristic (128-bit UUID string)."""

    async def read(self, uuid: str) -> bytes:
        """Read a characteristic value."""

    async def write(self, uuid: str, data: bytes, *, with_response: bool = True) -> None:
        """Write a characteristic value."""

    async def start_notify(self, uuid: str, callback: NotificationCallback) -> None:
        """Enable notifications or indications and deliver each value to ``callback``."""

    async def stop_notify(self, uuid: str) -> None:
        """Disable notifications or indications."""


@runtime_checkable
class SerialTransport(Protocol):
    """A byte stream to a serial meter (pyserial ``serial_for_url``, a pty, a replay)."""

    async def open(self) -> None:
        """Open the port."""

    async def close(self) -> None:
        """Close the port; safe when closed."""

    async def write(self, data: bytes) -> None:
        """Write all of ``data``."""

    async def read(self, size: int, timeout_seconds: float) -> bytes:
        """Read up to ``size`` bytes; fewer (possibly none) when the timeout passes."""

    async def read_until(self, terminator: bytes, timeout_seconds: float) -> bytes:
        """Read through ``terminator`` (included); raises DeviceTimeout on timeout."""
