"""UUID forms accepted by ``normalize_uuid``; the base-UUID expansion (docs/devices.md)."""

from __future__ import annotations

import pytest

from device_drivers.errors import UnsupportedCharacteristic
from device_drivers.gatt import normalize_uuid, short_form, uuids

BLOOD_PRESSURE_MEASUREMENT = "00002a35-0000-1000-8000-00805f9b34fb"


@pytest.mark.parametrize(
    "text",
    [
        "2A35",
        "2a35",
        "0x2A35",
        "0X2a35",
        "0x00002A35",
        " 2A35 ",
        "00002A35-0000-1000-8000-00805F9B34FB",
        "00002a350000100080000 0805f9b34fb".replace(" ", ""),
    ],
)
def test_forms_of_one_characteristic(text: str) -> None:
    assert normalize_uuid(text) == BLOOD_PRESSURE_MEASUREMENT


def test_vendor_uuid_is_kept() -> None:
    omron = "ECBE3980-C9A2-11E1-B1BD-0002A5D5C51B"
    assert normalize_uuid(omron) == omron.lower()
    assert short_form(omron.lower()) == omron.lower()


@pytest.mark.parametrize("text", ["", "2A3", "0x2A3Z", "blood pressure", "2A35-0000"])
def test_non_uuids_are_refused_with_the_forms_accepted(text: str) -> None:
    with pytest.raises(UnsupportedCharacteristic, match="2A35"):
        normalize_uuid(text)


def test_constants_use_the_base_uuid() -> None:
    # Base UUID: 0x2A18 → 00002a18-0000-1000-8000-00805f9b34fb.
    assert uuids.GLUCOSE_MEASUREMENT == "00002a18-0000-1000-8000-00805f9b34fb"
    assert uuids.GLUCOSE_SERVICE == "00001808-0000-1000-8000-00805f9b34fb"
    assert short_form(uuids.CGM_MEASUREMENT) == "0x2AA7"
