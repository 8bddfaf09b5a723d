"""Pulse Oximeter Service: PLX Spot-Check 0x2A5E, PLX Continuous 0x2A5F, PLX Features 0x2A60.

Byte layouts and the reasons for these decisions: ``docs/devices.md``. Decisions:

* Status bits become flags named after the spec (``measurement_ongoing``,
  ``questionable_measurement``, ``low_perfusion``, ``sensor_displaced`` …).
* ``DEVICE_ERROR``: a special (or ≤ 0) SpO₂, or a status saying the value is not a measurement of
  the patient — measurement unavailable, invalid measurement, equipment or sensor
  malfunction, sensor disconnected or not connected to the user. A special pulse rate
  only drops the pulse (flag ``pulse_unavailable``).
* Data for demonstration or for testing is ``CONTROL_SOLUTION``: the contract's
  disposition for a device check that is not the patient, never forwarded.
* Spot-check flags bit 4 ("device clock is not set") becomes the flag ``clock_not_set``;
  the timestamp is still kept as ``device_time``, since PLX stored records have no
  sequence number and the device time is their only record key. The gateway must not
  trust it as wall-clock time.
* The pulse amplitude index and the continuous fast/slow averages go to the context
  (``pulse_amplitude_index_percent``, ``spo2_fast``, ``pulse_fast``, ``spo2_slow``,
  ``pulse_slow``), specials left out with ``<name>_unavailable`` flags.
* Continuous measurements carry no time: ``device_time`` is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from device_drivers.gatt._common import (
    ContextValue,
    device_time_of,
    flag_names,
    note_trailing_bytes,
    positive_number,
    secondary_number,
)
from device_drivers.gatt._wire import FieldReader, pack_uint, padding, require_together
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.ieee11073 import DecodedFloat, encode_sfloat, read_sfloat
from device_drivers.measurement import Disposition, Measurement
from readings.model import Kind, Spo2Values
from readings.units import Unit

_SC_TIMESTAMP: Final = 0x01
_SC_MEASUREMENT_STATUS: Final = 0x02
_SC_DEVICE_SENSOR_STATUS: Final = 0x04
_SC_PULSE_AMPLITUDE_INDEX: Final = 0x08
_SC_CLOCK_NOT_SET: Final = 0x10

_CM_FAST: Final = 0x01
_CM_SLOW: Final = 0x02
_CM_MEASUREMENT_STATUS: Final = 0x04
_CM_DEVICE_SENSOR_STATUS: Final = 0x08
_CM_PULSE_AMPLITUDE_INDEX: Final = 0x10


class PlxMeasurementStatus(IntFlag):
    """Measurement Status (bits 0–4 RFU), shared by spot-check and continuous."""

    MEASUREMENT_ONGOING = 1 << 5
    EARLY_ESTIMATED_DATA = 1 << 6
    VALIDATED_DATA = 1 << 7
    FULLY_QUALIFIED_DATA = 1 << 8
    DATA_FROM_STORAGE = 1 << 9
    DEMONSTRATION_DATA = 1 << 10
    TESTING_DATA = 1 << 11
    CALIBRATION_ONGOING = 1 << 12
    MEASUREMENT_UNAVAILABLE = 1 << 13
    QUESTIONABLE_MEASUREMENT = 1 << 14
    INVALID_MEASUREMENT = 1 << 15


class PlxDeviceSensorStatus(IntFlag):
    """Device and Sensor Status (24-bit, bits 16–23 RFU), shared."""

    EXTENDED_DISPLAY_UPDATE_ONGOING = 1 << 0
    EQUIPMENT_MALFUNCTION = 1 << 1
    SIGNAL_PROCESSING_IRREGULARITY = 1 << 2
    INADEQUATE_SIGNAL = 1 << 3
    POOR_SIGNAL = 1 << 4
    LOW_PERFUSION = 1 << 5
    ERRATIC_SIGNAL = 1 << 6
    NON_PULSATILE_SIGNAL = 1 << 7
    QUESTIONABLE_PULSE = 1 << 8
    SIGNAL_ANALYSIS_ONGOING = 1 << 9
    SENSOR_INTERFERENCE = 1 << 10
    SENSOR_UNCONNECTED = 1 << 11
    UNKNOWN_SENSOR = 1 << 12
    SENSOR_DISPLACED = 1 << 13
    SENSOR_MALFUNCTION = 1 << 14
    SENSOR_DISCONNECTED = 1 << 15


class PlxSupportedFeatures(IntFlag):
    """PLX Features supported-features field (bits 8–15 RFU)."""

    MEASUREMENT_STATUS = 1 << 0
    DEVICE_SENSOR_STATUS = 1 << 1
    SPOT_CHECK_STORAGE = 1 << 2
    SPOT_CHECK_TIMESTAMP = 1 << 3
    SPO2PR_FAST = 1 << 4
    SPO2PR_SLOW = 1 << 5
    PULSE_AMPLITUDE_INDEX = 1 << 6
    MULTIPLE_BONDS = 1 << 7


_MEASUREMENT_STATUS_MASK: Final = 0xFFE0
_DEVICE_SENSOR_STATUS_MASK: Final = 0x00FFFF
_SUPPORTED_FEATURES_MASK: Final = 0x00FF
_NOT_A_MEASUREMENT: Final = (
    PlxMeasurementStatus.MEASUREMENT_UNAVAILABLE | PlxMeasurementStatus.INVALID_MEASUREMENT
)
_DEVICE_FAULT: Final = (
    PlxDeviceSensorStatus.EQUIPMENT_MALFUNCTION
    | PlxDeviceSensorStatus.SENSOR_MALFUNCTION
    | PlxDeviceSensorStatus.SENSOR_DISCONNECTED
    | PlxDeviceSensorStatus.SENSOR_UNCONNECTED
)
_NOT_THE_PATIENT: Final = (
    PlxMeasurementStatus.DEMONSTRATION_DATA | PlxMeasurementStatus.TESTING_DATA
)


@dataclass(frozen=True, slots=True)
class PlxSpotCheckFields:
    """The fields of a PLX Spot-Check Measurement value, as sent."""

    spo2: DecodedFloat
    """%."""
    pulse_rate: DecodedFloat
    """Beats per minute."""
    timestamp: DateTimeFields | None = None
    measurement_status: PlxMeasurementStatus | None = None
    device_sensor_status: PlxDeviceSensorStatus | None = None
    pulse_amplitude_index: DecodedFloat | None = None
    """%."""
    clock_not_set: bool = False
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


@dataclass(frozen=True, slots=True)
class PlxContinuousFields:
    """The fields of a PLX Continuous Measurement value; fast and slow pairs are all-or-none."""

    spo2: DecodedFloat
    pulse_rate: DecodedFloat
    spo2_fast: DecodedFloat | None = None
    pulse_rate_fast: DecodedFloat | None = None
    spo2_slow: DecodedFloat | None = None
    pulse_rate_slow: DecodedFloat | None = None
    measurement_status: PlxMeasurementStatus | None = None
    device_sensor_status: PlxDeviceSensorStatus | None = None
    pulse_amplitude_index: DecodedFloat | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


@dataclass(frozen=True, slots=True)
class PlxFeaturesFields:
    """PLX Features 0x2A60: what the oximeter supports."""

    supported: PlxSupportedFeatures
    measurement_status_support: PlxMeasurementStatus | None = None
    device_sensor_status_support: PlxDeviceSensorStatus | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


def _read_measurement_status(reader: FieldReader) -> PlxMeasurementStatus:
    return PlxMeasurementStatus(reader.uint16("measurement_status") & _MEASUREMENT_STATUS_MASK)


def _read_device_sensor_status(reader: FieldReader) -> PlxDeviceSensorStatus:
    raw = reader.uint24("device_and_sensor_status")
    return PlxDeviceSensorStatus(raw & _DEVICE_SENSOR_STATUS_MASK)


def parse_plx_spot_check_fields(data: bytes) -> PlxSpotCheckFields:
    """Decode a PLX Spot-Check Measurement (0x2A5E) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    spo2 = read_sfloat(reader, "spo2")
    pulse_rate = read_sfloat(reader, "pulse_rate")
    timestamp = read_date_time(reader, "timestamp") if flags & _SC_TIMESTAMP else None
    status = _read_measurement_status(reader) if flags & _SC_MEASUREMENT_STATUS else None
    device = _read_device_sensor_status(reader) if flags & _SC_DEVICE_SENSOR_STATUS else None
    pai = (
        read_sfloat(reader, "pulse_amplitude_index") if flags & _SC_PULSE_AMPLITUDE_INDEX else None
    )
    return PlxSpotCheckFields(
        spo2=spo2,
        pulse_rate=pulse_rate,
        timestamp=timestamp,
        measurement_status=status,
        device_sensor_status=device,
        pulse_amplitude_index=pai,
        clock_not_set=bool(flags & _SC_CLOCK_NOT_SET),
        trailing_bytes=reader.trailing_bytes(),
    )


def _encode_statuses(
    measurement_status: PlxMeasurementStatus | None,
    device_sensor_status: PlxDeviceSensorStatus | None,
    pulse_amplitude_index: DecodedFloat | None,
) -> bytes:
    out = bytearray()
    if measurement_status is not None:
        out += pack_uint(int(measurement_status), 2, "measurement_status")
    if device_sensor_status is not None:
        out += pack_uint(int(device_sensor_status), 3, "device_and_sensor_status")
    if pulse_amplitude_index is not None:
        out += encode_sfloat(pulse_amplitude_index, field="pulse_amplitude_index")
    return bytes(out)


def encode_plx_spot_check(fields: PlxSpotCheckFields) -> bytes:
    """The PLX Spot-Check Measurement value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit.
    """
    flags = (
        (_SC_TIMESTAMP if fields.timestamp is not None else 0)
        | (_SC_MEASUREMENT_STATUS if fields.measurement_status is not None else 0)
        | (_SC_DEVICE_SENSOR_STATUS if fields.device_sensor_status is not None else 0)
        | (_SC_PULSE_AMPLITUDE_INDEX if fields.pulse_amplitude_index is not None else 0)
        | (_SC_CLOCK_NOT_SET if fields.clock_not_set else 0)
    )
    out = bytearray([flags])
    out += encode_sfloat(fields.spo2, field="spo2")
    out += encode_sfloat(fields.pulse_rate, field="pulse_rate")
    if fields.timestamp is not None:
        out += encode_date_time(fields.timestamp, field="timestamp")
    out += _encode_statuses(
        fields.measurement_status, fields.device_sensor_status, fields.pulse_amplitude_index
    )
    out += padding(fields.trailing_bytes)
    return bytes(out)


def parse_plx_continuous_fields(data: bytes) -> PlxContinuousFields:
    """Decode a PLX Continuous Measurement (0x2A5F) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    spo2 = read_sfloat(reader, "spo2_normal")
    pulse_rate = read_sfloat(reader, "pulse_rate_normal")
    spo2_fast = pulse_fast = spo2_slow = pulse_slow = None
    if flags & _CM_FAST:
        spo2_fast = read_sfloat(reader, "spo2_fast")
        pulse_fast = read_sfloat(reader, "pulse_rate_fast")
    if flags & _CM_SLOW:
        spo2_slow = read_sfloat(reader, "spo2_slow")
        pulse_slow = read_sfloat(reader, "pulse_rate_slow")
    status = _read_measurement_status(reader) if flags & _CM_MEASUREMENT_STATUS else None
    device = _read_device_sensor_status(reader) if flags & _CM_DEVICE_SENSOR_STATUS else None
    pai = (
        read_sfloat(reader, "pulse_amplitude_index") if flags & _CM_PULSE_AMPLITUDE_INDEX else None
    )
    return PlxContinuousFields(
        spo2=spo2,
        pulse_rate=pulse_rate,
        spo2_fast=spo2_fast,
        pulse_rate_fast=pulse_fast,
        spo2_slow=spo2_slow,
        pulse_rate_slow=pulse_slow,
        measurement_status=status,
        device_sensor_status=device,
        pulse_amplitude_index=pai,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_plx_continuous(fields: PlxContinuousFields) -> bytes:
    """The PLX Continuous Measurement value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit, or a fast/slow pair is only half set.
    """
    has_fast = require_together("spo2pr_fast", fields.spo2_fast, fields.pulse_rate_fast)
    has_slow = require_together("spo2pr_slow", fields.spo2_slow, fields.pulse_rate_slow)
    flags = (
        (_CM_FAST if has_fast else 0)
        | (_CM_SLOW if has_slow else 0)
        | (_CM_MEASUREMENT_STATUS if fields.measurement_status is not None else 0)
        | (_CM_DEVICE_SENSOR_STATUS if fields.device_sensor_status is not None else 0)
        | (_CM_PULSE_AMPLITUDE_INDEX if fields.pulse_amplitude_index is not None else 0)
    )
    out = bytearray([flags])
    out += encode_sfloat(fields.spo2, field="spo2_normal")
    out += encode_sfloat(fields.pulse_rate, field="pulse_rate_normal")
    if fields.spo2_fast is not None and fields.pulse_rate_fast is not None:
        out += encode_sfloat(fields.spo2_fast, field="spo2_fast")
        out += encode_sfloat(fields.pulse_rate_fast, field="pulse_rate_fast")
    if fields.spo2_slow is not None and fields.pulse_rate_slow is not None:
        out += encode_sfloat(fields.spo2_slow, field="spo2_slow")
        out += encode_sfloat(fields.pulse_rate_slow, field="pulse_rate_slow")
    out += _encode_statuses(
        fields.measurement_status, fields.device_sensor_status, fields.pulse_amplitude_index
    )
    out += padding(fields.trailing_bytes)
    return bytes(out)


def _measurement(
    spo2: DecodedFloat,
    pulse_rate: DecodedFloat,
    measurement_status: PlxMeasurementStatus | None,
    device_sensor_status: PlxDeviceSensorStatus | None,
    device_time_stamp: DateTimeFields | None,
    extras: dict[str, DecodedFloat | None],
    flags: set[str],
    trailing_bytes: int,
) -> Measurement:
    flags |= flag_names(measurement_status) | flag_names(device_sensor_status)
    context: dict[str, ContextValue] = {}
    device_time = device_time_of(device_time_stamp, flags, context)
    note_trailing_bytes(trailing_bytes, context)
    spo2_percent = positive_number("spo2", spo2, flags, context)
    pulse = positive_number("pulse", pulse_rate, flags, context)
    for name, value in extras.items():
        number = secondary_number(name, value, flags, context)
        if number is not None:
            context[name] = number
    values = None
    disposition = Disposition.PATIENT_READING
    if spo2_percent is None:
        disposition = Disposition.DEVICE_ERROR
    else:
        values = Spo2Values(spo2=spo2_percent, pulse=pulse)
        if (measurement_status is not None and measurement_status & _NOT_A_MEASUREMENT) or (
            device_sensor_status is not None and device_sensor_status & _DEVICE_FAULT
        ):
            disposition = Disposition.DEVICE_ERROR
        elif measurement_status is not None and measurement_status & _NOT_THE_PATIENT:
            disposition = Disposition.CONTROL_SOLUTION
    return Measurement(
        kind=Kind.SPO2,
        values=values,
        source_unit=Unit.PERCENT,
        device_time=device_time,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def spot_check_to_measurement(fields: PlxSpotCheckFields) -> Measurement:
    """The measurement a PLX Spot-Check stands for (see the module's decisions)."""
    return _measurement(
        fields.spo2,
        fields.pulse_rate,
        fields.measurement_status,
        fields.device_sensor_status,
        fields.timestamp,
        {"pulse_amplitude_index_percent": fields.pulse_amplitude_index},
        {"clock_not_set"} if fields.clock_not_set else set(),
        fields.trailing_bytes,
    )


def continuous_to_measurement(fields: PlxContinuousFields) -> Measurement:
    """The measurement a PLX Continuous value stands for (see the module's decisions)."""
    return _measurement(
        fields.spo2,
        fields.pulse_rate,
        fields.measurement_status,
        fields.device_sensor_status,
        None,
        {
            "spo2_fast": fields.spo2_fast,
            "pulse_fast": fields.pulse_rate_fast,
            "spo2_slow": fields.spo2_slow,
            "pulse_slow": fields.pulse_rate_slow,
            "pulse_amplitude_index_percent": fields.pulse_amplitude_index,
        },
        set(),
        fields.trailing_bytes,
    )


def parse_plx_spot_check(data: bytes) -> Measurement:
    """Decode a PLX Spot-Check Measurement (0x2A5E) value into a measurement.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    return spot_check_to_measurement(parse_plx_spot_check_fields(data))


def parse_plx_continuous(data: bytes) -> Measurement:
    """Decode a PLX Continuous Measurement (0x2A5F) value into a measurement.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    return continuous_to_measurement(parse_plx_continuous_fields(data))


def parse_plx_features(data: bytes) -> PlxFeaturesFields:
    """Decode PLX Features (0x2A60); RFU bits are dropped.

    Raises:
        InvalidFrame: shorter than its supported-features bits require.
    """
    reader = FieldReader(data)
    supported = PlxSupportedFeatures(reader.uint16("supported_features") & _SUPPORTED_FEATURES_MASK)
    status_support = None
    if supported & PlxSupportedFeatures.MEASUREMENT_STATUS:
        status_support = _read_measurement_status(reader)
    device_support = None
    if supported & PlxSupportedFeatures.DEVICE_SENSOR_STATUS:
        device_support = _read_device_sensor_status(reader)
    return PlxFeaturesFields(supported, status_support, device_support, reader.trailing_bytes())


def encode_plx_features(fields: PlxFeaturesFields) -> bytes:
    """The PLX Features value for ``fields``; the support fields follow their feature bits."""
    supported = fields.supported
    if fields.measurement_status_support is not None:
        supported |= PlxSupportedFeatures.MEASUREMENT_STATUS
    if fields.device_sensor_status_support is not None:
        supported |= PlxSupportedFeatures.DEVICE_SENSOR_STATUS
    out = bytearray(pack_uint(int(supported), 2, "supported_features"))
    if supported & PlxSupportedFeatures.MEASUREMENT_STATUS:
        status = fields.measurement_status_support or PlxMeasurementStatus(0)
        out += pack_uint(int(status), 2, "measurement_status_support")
    if supported & PlxSupportedFeatures.DEVICE_SENSOR_STATUS:
        device = fields.device_sensor_status_support or PlxDeviceSensorStatus(0)
        out += pack_uint(int(device), 3, "device_and_sensor_status_support")
    out += padding(fields.trailing_bytes)
    return bytes(out)
