"""Device drivers: bytes ↔ measurements for home medical devices.

Pure parsers (``device_drivers.gatt``, ``device_drivers.serial_protocols``) turn recorded
bytes into :class:`~device_drivers.measurement.Measurement`; drivers move bytes through a
narrow transport (BLE through bleak, serial through pyserial) with one lifecycle; the
simulators speak the same protocols so tests and the demo exercise the same code as a
real device.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Final, Literal

from device_drivers.errors import DriverError


@dataclass(frozen=True, slots=True)
class DriverEntry:
    """Where a driver lives and what it talks over."""

    target: str
    """``module:class``."""
    transport: Literal["ble", "serial"]


DRIVERS: Final[dict[str, DriverEntry]] = {
    "ble_glucose": DriverEntry("device_drivers.ble_glucose:GlucoseMeterDriver", "ble"),
    "ble_cgm": DriverEntry("device_drivers.ble_cgm:CgmDriver", "ble"),
    "ble_blood_pressure": DriverEntry("device_drivers.ble_generic:BloodPressureDriver", "ble"),
    "ble_heart_rate": DriverEntry("device_drivers.ble_generic:HeartRateDriver", "ble"),
    "ble_weight_scale": DriverEntry("device_drivers.ble_generic:WeightScaleDriver", "ble"),
    "ble_thermometer": DriverEntry("device_drivers.ble_generic:ThermometerDriver", "ble"),
    "ble_pulse_oximeter": DriverEntry("device_drivers.ble_generic:PulseOximeterDriver", "ble"),
    "onetouch_ultra2": DriverEntry("device_drivers.onetouch_ultra2:OneTouchUltra2Driver", "serial"),
    "astm_contour": DriverEntry("device_drivers.astm_contour:ContourAstmDriver", "serial"),
}
"""Driver name (a profile's ``driver``) → where it lives. Imported only when asked for,
so a gateway without bleak can still run its serial meters."""


class UnknownDriver(DriverError):
    """No driver has this name.

    Attributes:
        name: the name asked for.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"no driver named {name!r}; known: {', '.join(sorted(DRIVERS))}")
        self.name = name


def available_drivers() -> list[str]:
    """The names of every driver, sorted."""
    return sorted(DRIVERS)


def load_driver(name: str) -> type[Any]:
    """The driver class named ``name``, imported now.

    BLE drivers are built as ``cls(transport, profile=profile)``; serial drivers as
    ``cls(transport)`` (see each class).

    Raises:
        UnknownDriver: no such driver.
    """
    try:
        module_name, _, class_name = DRIVERS[name].target.partition(":")
    except KeyError:
        raise UnknownDriver(name) from None
    driver: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return driver
