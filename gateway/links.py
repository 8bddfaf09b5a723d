"""Links to devices: a driver on its transport, for a session or for pairing.

:func:`open_link` builds the driver a device's profile names on a BLE transport (bleak,
or the simulators' bumble backends given as :class:`BleBackends`) or a serial port;
:func:`serial_candidates` lists the serial ports whose USB adapter is a known meter cable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from device_drivers import load_driver
from device_drivers.profiles import BleTransportSettings, DeviceProfile, SerialTransportSettings
from gateway.pairing import Candidate
from gateway.session import DeviceLink

if TYPE_CHECKING:
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.scanner import BaseBleakScanner

    from device_drivers.transports.ble import Advertisement, BleakTransport

logger = logging.getLogger(__name__)

BATTERY_LEVEL_UUID: Final = "00002a19-0000-1000-8000-00805f9b34fb"
"""Battery Level (Battery Service 0x180F): one byte, 0–100 %."""
_MAX_BATTERY_PERCENT: Final = 100


@dataclass(frozen=True, slots=True)
class BleBackends:
    """bleak backends to use instead of the OS Bluetooth stack (the simulators')."""

    client: type[BaseBleakClient]
    scanner: type[BaseBleakScanner]


def ble_battery_reader(transport: BleakTransport) -> Callable[[], Awaitable[int | None]]:
    """Reads Battery Level (0x2A19) when the connected device has it, else ``None``."""

    async def read() -> int | None:
        if not transport.has_characteristic(BATTERY_LEVEL_UUID):
            return None
        value = await transport.read(BATTERY_LEVEL_UUID)
        if len(value) != 1 or value[0] > _MAX_BATTERY_PERCENT:
            logger.warning("invalid battery level ignored", extra={"bytes": len(value)})
            return None
        return value[0]

    return read


def open_link(
    profile: DeviceProfile,
    address: str,
    *,
    ble: BleBackends | None,
    advertisement: Advertisement | None = None,
) -> DeviceLink:
    """A new driver on a new transport to the device at ``address``.

    Args:
        profile: the device model (driver, line settings, bonding).
        address: BLE address, or serial port path / pyserial URL.
        ble: simulator backends, or ``None`` for the OS Bluetooth stack.
        advertisement: a fresh scan result for the device, so bleak need not scan again.
    """
    driver_class = load_driver(profile.driver)
    transport_settings = profile.transport
    if isinstance(transport_settings, BleTransportSettings):
        from device_drivers.transports.ble import BleakTransport

        transport = BleakTransport(
            advertisement.device if advertisement is not None else address,
            backend=ble.client if ble is not None else None,
            pair=profile.quirks.needs_bonding,
        )
        return DeviceLink(
            driver=driver_class(transport, profile=profile),
            wait_disconnected=transport.wait_disconnected,
            battery_percent=ble_battery_reader(transport),
        )
    assert isinstance(transport_settings, SerialTransportSettings)
    from device_drivers.transports.serial import SerialPortTransport

    serial_transport = SerialPortTransport(
        address,
        baudrate=transport_settings.baud,
        bytesize=transport_settings.bytesize,
        parity=transport_settings.parity.value,
        stopbits=transport_settings.stopbits,
    )
    return DeviceLink(driver=driver_class(serial_transport))


def serial_candidates(profiles: Sequence[DeviceProfile]) -> list[Candidate]:
    """Serial ports whose USB adapter is a known meter cable (``transport.usb_ids``)."""
    from serial.tools import list_ports

    candidates = []
    for port in list_ports.comports():
        if port.vid is None or port.pid is None:
            continue
        usb_id = f"{port.vid:04x}:{port.pid:04x}"
        for profile in profiles:
            settings = profile.transport
            if isinstance(settings, SerialTransportSettings) and usb_id in settings.usb_ids:
                candidates.append(Candidate(address=port.device, profile=profile))
                break
    return candidates
