"""Canary: the real, installed bleak still has what the bumble backend relies on.

:mod:`device_drivers.simulators.bleak_backend` implements bleak's backend interfaces and
builds bleak's GATT objects itself. If a bleak release renames an abstract method, changes
a signature or a constructor, these tests fail here, loudly, instead of the simulators
drifting away from what real devices go through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakGATTProtocolError

from device_drivers.simulators.bleak_backend import BumbleClientBackend, BumbleScannerBackend


def parameters(function: Callable[..., Any]) -> list[tuple[str, inspect._ParameterKind]]:
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]


def names(function: Callable[..., Any]) -> list[str]:
    return [name for name, _ in parameters(function)]


CLIENT_ABSTRACT_METHODS = {
    "connect",
    "disconnect",
    "pair",
    "unpair",
    "is_connected",
    "mtu_size",
    "read_gatt_char",
    "read_gatt_descriptor",
    "write_gatt_char",
    "write_gatt_descriptor",
    "start_notify",
    "stop_notify",
}


def test_base_client_abstract_methods_are_the_ones_the_backend_implements() -> None:
    assert BaseBleakClient.__abstractmethods__ == CLIENT_ABSTRACT_METHODS
    assert not inspect.isabstract(BumbleClientBackend)
    for name in CLIENT_ABSTRACT_METHODS:
        assert name in vars(BumbleClientBackend), f"BumbleClientBackend does not define {name}"


@pytest.mark.parametrize("method", sorted(CLIENT_ABSTRACT_METHODS - {"is_connected", "mtu_size"}))
def test_client_method_signatures_match_bleak(method: str) -> None:
    base = getattr(BaseBleakClient, method)
    ours = getattr(BumbleClientBackend, method)
    assert parameters(ours) == parameters(base)
    assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(base)


def test_client_constructor_is_called_as_bleak_calls_it() -> None:
    base = parameters(BaseBleakClient.__init__)
    assert base[:2] == [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("address_or_ble_device", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    ]
    assert {"disconnected_callback", "timeout", "kwargs"} <= set(names(BaseBleakClient.__init__))
    assert parameters(BumbleClientBackend.__init__) == base
    # What BleakClient passes on: these keywords must still reach the backend.
    source = inspect.getsource(BleakClient.__init__)
    for keyword in ("disconnected_callback=", "services=", "timeout=", "bluez=", "winrt="):
        assert keyword in source


def test_scanner_interface_is_what_the_backend_implements() -> None:
    assert BaseBleakScanner.__abstractmethods__ == {"start", "stop"}
    assert not inspect.isabstract(BumbleScannerBackend)
    assert names(BaseBleakScanner.__init__) == ["self", "detection_callback", "service_uuids"]
    for helper in ("is_allowed_uuid", "create_or_update_device", "call_detection_callbacks"):
        assert callable(getattr(BaseBleakScanner, helper))
    assert names(BaseBleakScanner.create_or_update_device) == [
        "self",
        "key",
        "address",
        "name",
        "details",
        "adv",
    ]
    assert "seen_devices" in BaseBleakScanner.__annotations__
    # BleakScanner hands the backend these, scanning mode positionally.
    source = inspect.getsource(BleakScanner.__init__)
    for argument in ("detection_callback,", "service_uuids,", "scanning_mode,", "bluez=", "cb="):
        assert argument in source


def test_public_classes_accept_a_backend_class() -> None:
    client = inspect.signature(BleakClient.__init__).parameters["backend"]
    scanner = inspect.signature(BleakScanner.__init__).parameters["backend"]
    for parameter in (client, scanner):
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
        assert parameter.default is None
    assert {"backend", "service_uuids"} <= set(BleakScanner.ExtraArgs.__annotations__)
    assert {"timeout", "return_adv", "kwargs"} <= set(names(BleakScanner.discover))


def test_gatt_object_constructors_are_the_ones_the_backend_calls() -> None:
    assert names(BleakGATTService.__init__) == ["self", "obj", "handle", "uuid"]
    assert names(BleakGATTCharacteristic.__init__) == [
        "self",
        "obj",
        "handle",
        "uuid",
        "properties",
        "max_write_without_response_size",
        "service",
    ]
    assert names(BleakGATTDescriptor.__init__) == [
        "self",
        "obj",
        "handle",
        "uuid",
        "characteristic",
    ]
    for method in ("add_service", "add_characteristic", "add_descriptor", "get_characteristic"):
        assert callable(getattr(BleakGATTServiceCollection, method))
    assert names(BLEDevice.__init__)[:4] == ["self", "address", "name", "details"]
    assert AdvertisementData._fields == (
        "local_name",
        "manufacturer_data",
        "service_data",
        "service_uuids",
        "tx_power",
        "rssi",
        "platform_data",
    )
    assert CHARACTERISTIC_PROPERTIES[0x10] == "notify"
    assert CHARACTERISTIC_PROPERTIES[0x20] == "indicate"


def test_errors_the_backend_raises_still_carry_their_fields() -> None:
    assert BleakGATTProtocolError(0x05).code == 0x05
    assert BleakDeviceNotFoundError("C0:00:00:00:00:01", "gone").identifier == "C0:00:00:00:00:01"
