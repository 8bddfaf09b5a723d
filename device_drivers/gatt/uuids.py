"""Service and characteristic UUIDs, as 128-bit lower-case strings (map in ``docs/devices.md``).

16-bit assigned numbers expand into the Bluetooth base UUID
``0000xxxx-0000-1000-8000-00805f9b34fb``, the form bleak, BlueZ and Android use.
"""

from __future__ import annotations

import re
from typing import Final

from device_drivers.errors import UnsupportedCharacteristic

_BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"
_SHORT_UUID = re.compile(r"^(?:0x)?([0-9a-f]{4}|[0-9a-f]{8})$")
_FULL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_BARE_FULL_UUID = re.compile(r"^[0-9a-f]{32}$")


def uuid16(assigned_number: int) -> str:
    """The 128-bit form of a 16-bit assigned number, e.g. ``0x2A18``."""
    return f"{assigned_number:08x}{_BASE_UUID_SUFFIX}"


def normalize_uuid(text: str) -> str:
    """A UUID as a 128-bit lower-case string.

    Accepts ``2A35``, ``0x2A35``, 32-bit ``0x00002A35``, and 128-bit forms with or without
    dashes, in any case.

    Raises:
        UnsupportedCharacteristic: ``text`` is not a UUID in any of these forms.
    """
    cleaned = text.strip().lower()
    short = _SHORT_UUID.match(cleaned)
    if short is not None:
        return uuid16(int(short.group(1), 16))
    if _FULL_UUID.match(cleaned):
        return cleaned
    if _BARE_FULL_UUID.match(cleaned):
        return "-".join((cleaned[:8], cleaned[8:12], cleaned[12:16], cleaned[16:20], cleaned[20:]))
    raise UnsupportedCharacteristic(
        f"{text!r} is not a UUID: use a 16-bit number such as 2A35 or 0x2A35, "
        "or a 128-bit UUID such as 00002a35-0000-1000-8000-00805f9b34fb"
    )


def short_form(uuid: str) -> str:
    """``0x2A35`` for a UUID in the Bluetooth base range, else the UUID itself."""
    if uuid.endswith(_BASE_UUID_SUFFIX) and uuid.startswith("0000"):
        return f"0x{uuid[4:8].upper()}"
    return uuid


# Services
GLUCOSE_SERVICE: Final = uuid16(0x1808)
CONTINUOUS_GLUCOSE_MONITORING_SERVICE: Final = uuid16(0x181F)
BLOOD_PRESSURE_SERVICE: Final = uuid16(0x1810)
HEART_RATE_SERVICE: Final = uuid16(0x180D)
HEALTH_THERMOMETER_SERVICE: Final = uuid16(0x1809)
WEIGHT_SCALE_SERVICE: Final = uuid16(0x181D)
PULSE_OXIMETER_SERVICE: Final = uuid16(0x1822)
CURRENT_TIME_SERVICE: Final = uuid16(0x1805)
DEVICE_INFORMATION_SERVICE: Final = uuid16(0x180A)

# Glucose
GLUCOSE_MEASUREMENT: Final = uuid16(0x2A18)
GLUCOSE_MEASUREMENT_CONTEXT: Final = uuid16(0x2A34)
GLUCOSE_FEATURE: Final = uuid16(0x2A51)
RECORD_ACCESS_CONTROL_POINT: Final = uuid16(0x2A52)

# Continuous glucose monitoring
CGM_MEASUREMENT: Final = uuid16(0x2AA7)
CGM_FEATURE: Final = uuid16(0x2AA8)
CGM_STATUS: Final = uuid16(0x2AA9)
CGM_SESSION_START_TIME: Final = uuid16(0x2AAA)
CGM_SESSION_RUN_TIME: Final = uuid16(0x2AAB)
CGM_SPECIFIC_OPS_CONTROL_POINT: Final = uuid16(0x2AAC)

# Blood pressure
BLOOD_PRESSURE_MEASUREMENT: Final = uuid16(0x2A35)
INTERMEDIATE_CUFF_PRESSURE: Final = uuid16(0x2A36)
BLOOD_PRESSURE_FEATURE: Final = uuid16(0x2A49)

# Heart rate
HEART_RATE_MEASUREMENT: Final = uuid16(0x2A37)
BODY_SENSOR_LOCATION: Final = uuid16(0x2A38)
HEART_RATE_CONTROL_POINT: Final = uuid16(0x2A39)

# Health thermometer
TEMPERATURE_MEASUREMENT: Final = uuid16(0x2A1C)
TEMPERATURE_TYPE: Final = uuid16(0x2A1D)
INTERMEDIATE_TEMPERATURE: Final = uuid16(0x2A1E)
MEASUREMENT_INTERVAL: Final = uuid16(0x2A21)

# Weight scale
WEIGHT_MEASUREMENT: Final = uuid16(0x2A9D)
WEIGHT_SCALE_FEATURE: Final = uuid16(0x2A9E)

# Pulse oximeter
PLX_SPOT_CHECK_MEASUREMENT: Final = uuid16(0x2A5E)
PLX_CONTINUOUS_MEASUREMENT: Final = uuid16(0x2A5F)
PLX_FEATURES: Final = uuid16(0x2A60)

# Time
CURRENT_TIME: Final = uuid16(0x2A2B)
DATE_TIME: Final = uuid16(0x2A08)

# Device information
MANUFACTURER_NAME_STRING: Final = uuid16(0x2A29)
MODEL_NUMBER_STRING: Final = uuid16(0x2A24)
SERIAL_NUMBER_STRING: Final = uuid16(0x2A25)
HARDWARE_REVISION_STRING: Final = uuid16(0x2A27)
FIRMWARE_REVISION_STRING: Final = uuid16(0x2A26)
SOFTWARE_REVISION_STRING: Final = uuid16(0x2A28)
SYSTEM_ID: Final = uuid16(0x2A23)

# Descriptors
CLIENT_CHARACTERISTIC_CONFIGURATION: Final = uuid16(0x2902)

CHARACTERISTIC_NAMES: Final[dict[str, str]] = {
    GLUCOSE_MEASUREMENT: "Glucose Measurement",
    GLUCOSE_MEASUREMENT_CONTEXT: "Glucose Measurement Context",
    GLUCOSE_FEATURE: "Glucose Feature",
    RECORD_ACCESS_CONTROL_POINT: "Record Access Control Point",
    CGM_MEASUREMENT: "CGM Measurement",
    CGM_FEATURE: "CGM Feature",
    CGM_STATUS: "CGM Status",
    CGM_SESSION_START_TIME: "CGM Session Start Time",
    CGM_SESSION_RUN_TIME: "CGM Session Run Time",
    CGM_SPECIFIC_OPS_CONTROL_POINT: "CGM Specific Ops Control Point",
    BLOOD_PRESSURE_MEASUREMENT: "Blood Pressure Measurement",
    INTERMEDIATE_CUFF_PRESSURE: "Intermediate Cuff Pressure",
    BLOOD_PRESSURE_FEATURE: "Blood Pressure Feature",
    HEART_RATE_MEASUREMENT: "Heart Rate Measurement",
    BODY_SENSOR_LOCATION: "Body Sensor Location",
    HEART_RATE_CONTROL_POINT: "Heart Rate Control Point",
    TEMPERATURE_MEASUREMENT: "Temperature Measurement",
    TEMPERATURE_TYPE: "Temperature Type",
    INTERMEDIATE_TEMPERATURE: "Intermediate Temperature",
    MEASUREMENT_INTERVAL: "Measurement Interval",
    WEIGHT_MEASUREMENT: "Weight Measurement",
    WEIGHT_SCALE_FEATURE: "Weight Scale Feature",
    PLX_SPOT_CHECK_MEASUREMENT: "PLX Spot-Check Measurement",
    PLX_CONTINUOUS_MEASUREMENT: "PLX Continuous Measurement",
    PLX_FEATURES: "PLX Features",
    CURRENT_TIME: "Current Time",
    DATE_TIME: "Date Time",
    MANUFACTURER_NAME_STRING: "Manufacturer Name String",
    MODEL_NUMBER_STRING: "Model Number String",
    SERIAL_NUMBER_STRING: "Serial Number String",
    HARDWARE_REVISION_STRING: "Hardware Revision String",
    FIRMWARE_REVISION_STRING: "Firmware Revision String",
    SOFTWARE_REVISION_STRING: "Software Revision String",
    SYSTEM_ID: "System ID",
}
"""Names of the characteristics VitalGate knows, for messages."""
