"""Blood Pressure Service: Measurement 0x2A35, Intermediate Cuff Pressure 0x2A36, Feature 0x2A49.

Byte layouts and the reasons for these decisions: ``docs/devices.md``. Decisions:

* Pressures arrive in mmHg or kPa (flags bit 0); values are converted to mmHg through
  :mod:`readings.units`, ``source_unit`` says which the cuff sent.
* A special SFLOAT systolic or diastolic means no measurement: ``DEVICE_ERROR`` with no
  values, flags ``systolic_unavailable``/``diastolic_unavailable`` and the special's name
  in the context. A special mean arterial pressure or pulse only drops that value
  (flags ``mean_arterial_unavailable``/``pulse_unavailable``). Values ≤ 0 are handled
  alike, flagged ``<field>_not_positive``.
* Measurement Status bits become flags: ``body_movement``, ``cuff_too_loose``,
  ``irregular_pulse``, ``pulse_rate_above_range``, ``pulse_rate_below_range``,
  ``improper_position``. The RFU pulse-range value 3 and bits 6–15 are ignored.
* User ID 0xFF (unknown user) is left out of the context; other ids are ``user_id``.
* Intermediate Cuff Pressure is **never** a reading: it decodes to
  :class:`IntermediateCuffPressureFields` only. Its unused diastolic and MAP slots (0x0000
  in Nordic's test, NaN elsewhere) are skipped without being looked at.
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
)
from device_drivers.gatt._wire import FieldReader, pack_uint, padding
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.errors import UnencodableValue
from device_drivers.gatt.ieee11073 import DecodedFloat, SpecialValue, encode_sfloat, read_sfloat
from device_drivers.measurement import Disposition, Measurement
from readings.model import BloodPressureValues, Kind
from readings.units import Unit, to_canonical

_BP_UNIT_KPA: Final = 0x01
_BP_TIME_STAMP: Final = 0x02
_BP_PULSE_RATE: Final = 0x04
_BP_USER_ID: Final = 0x08
_BP_MEASUREMENT_STATUS: Final = 0x10

USER_ID_UNKNOWN: Final = 0xFF


class BloodPressureStatus(IntFlag):
    """Measurement Status. Bits 3–4 are a 2-bit pulse-rate range code (0 in range, 1 above,
    2 below, 3 RFU), represented here as one flag per meaningful code."""

    BODY_MOVEMENT = 1 << 0
    CUFF_TOO_LOOSE = 1 << 1
    IRREGULAR_PULSE = 1 << 2
    PULSE_RATE_ABOVE_RANGE = 1 << 3
    PULSE_RATE_BELOW_RANGE = 1 << 4
    IMPROPER_POSITION = 1 << 5


_STATUS_MASK: Final = 0x003F
_PULSE_RANGE_RFU: Final = BloodPressureStatus.PULSE_RATE_ABOVE_RANGE | (
    BloodPressureStatus.PULSE_RATE_BELOW_RANGE
)


class BloodPressureFeature(IntFlag):
    """Blood Pressure Feature 0x2A49 (bits 6–8 from BLS 1.1; 9–15 RFU)."""

    BODY_MOVEMENT_DETECTION = 1 << 0
    CUFF_FIT_DETECTION = 1 << 1
    IRREGULAR_PULSE_DETECTION = 1 << 2
    PULSE_RATE_RANGE_DETECTION = 1 << 3
    MEASUREMENT_POSITION_DETECTION = 1 << 4
    MULTIPLE_BOND = 1 << 5
    E2E_CRC = 1 << 6
    USER_DATA_SERVICE = 1 << 7
    USER_FACING_TIME = 1 << 8


_FEATURE_MASK: Final = 0x01FF


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurementFields:
    """The fields of a Blood Pressure Measurement value, as sent (mmHg, or kPa if ``unit_kpa``)."""

    unit_kpa: bool
    systolic: DecodedFloat
    diastolic: DecodedFloat
    mean_arterial: DecodedFloat
    timestamp: DateTimeFields | None = None
    pulse: DecodedFloat | None = None
    """Beats per minute."""
    user_id: int | None = None
    status: BloodPressureStatus | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressureFields:
    """An Intermediate Cuff Pressure value: cuff pressure during inflation. Not a reading."""

    unit_kpa: bool
    cuff_pressure: DecodedFloat
    timestamp: DateTimeFields | None = None
    pulse: DecodedFloat | None = None
    user_id: int | None = None
    status: BloodPressureStatus | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


def _read_status(reader: FieldReader) -> BloodPressureStatus:
    status = BloodPressureStatus(reader.uint16("measurement_status") & _STATUS_MASK)
    if status & _PULSE_RANGE_RFU == _PULSE_RANGE_RFU:
        status &= ~_PULSE_RANGE_RFU
    return status


def _read_tail(
    reader: FieldReader, flags: int
) -> tuple[DateTimeFields | None, DecodedFloat | None, int | None, BloodPressureStatus | None]:
    timestamp = read_date_time(reader, "time_stamp") if flags & _BP_TIME_STAMP else None
    pulse = read_sfloat(reader, "pulse_rate") if flags & _BP_PULSE_RATE else None
    user_id = reader.uint8("user_id") if flags & _BP_USER_ID else None
    status = _read_status(reader) if flags & _BP_MEASUREMENT_STATUS else None
    return timestamp, pulse, user_id, status


def _encode(
    unit_kpa: bool,
    pressures: tuple[DecodedFloat, DecodedFloat, DecodedFloat],
    timestamp: DateTimeFields | None,
    pulse: DecodedFloat | None,
    user_id: int | None,
    status: BloodPressureStatus | None,
    names: tuple[str, str, str],
    trailing_bytes: int,
) -> bytes:
    flags = (
        (_BP_UNIT_KPA if unit_kpa else 0)
        | (_BP_TIME_STAMP if timestamp is not None else 0)
        | (_BP_PULSE_RATE if pulse is not None else 0)
        | (_BP_USER_ID if user_id is not None else 0)
        | (_BP_MEASUREMENT_STATUS if status is not None else 0)
    )
    out = bytearray([flags])
    for name, pressure in zip(names, pressures, strict=True):
        out += encode_sfloat(pressure, field=name)
    if timestamp is not None:
        out += encode_date_time(timestamp, field="time_stamp")
    if pulse is not None:
        out += encode_sfloat(pulse, field="pulse_rate")
    if user_id is not None:
        out += pack_uint(user_id, 1, "user_id")
    if status is not None:
        if status & _PULSE_RANGE_RFU == _PULSE_RANGE_RFU:
            raise UnencodableValue(
                "pulse rate cannot be both above and below range (code 3 is RFU)",
                field="measurement_status",
            )
        out += pack_uint(int(status), 2, "measurement_status")
    out += padding(trailing_bytes)
    return bytes(out)


def parse_blood_pressure_fields(data: bytes) -> BloodPressureMeasurementFields:
    """Decode a Blood Pressure Measurement (0x2A35) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    systolic = read_sfloat(reader, "systolic")
    diastolic = read_sfloat(reader, "diastolic")
    mean_arterial = read_sfloat(reader, "mean_arterial_pressure")
    timestamp, pulse, user_id, status = _read_tail(reader, flags)
    return BloodPressureMeasurementFields(
        unit_kpa=bool(flags & _BP_UNIT_KPA),
        systolic=systolic,
        diastolic=diastolic,
        mean_arterial=mean_arterial,
        timestamp=timestamp,
        pulse=pulse,
        user_id=user_id,
        status=status,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_blood_pressure_measurement(fields: BloodPressureMeasurementFields) -> bytes:
    """The Blood Pressure Measurement value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit.
    """
    return _encode(
        fields.unit_kpa,
        (fields.systolic, fields.diastolic, fields.mean_arterial),
        fields.timestamp,
        fields.pulse,
        fields.user_id,
        fields.status,
        ("systolic", "diastolic", "mean_arterial_pressure"),
        fields.trailing_bytes,
    )


def to_measurement(fields: BloodPressureMeasurementFields) -> Measurement:
    """The measurement a Blood Pressure Measurement stands for (see the module's decisions)."""
    unit = Unit.KPA if fields.unit_kpa else Unit.MMHG
    flags: set[str] = set(flag_names(fields.status))
    context: dict[str, ContextValue] = {}
    device_time = device_time_of(fields.timestamp, flags, context)
    note_trailing_bytes(fields.trailing_bytes, context)
    if fields.user_id is not None and fields.user_id != USER_ID_UNKNOWN:
        context["user_id"] = fields.user_id
    systolic = positive_number("systolic", fields.systolic, flags, context)
    diastolic = positive_number("diastolic", fields.diastolic, flags, context)
    mean_arterial = positive_number("mean_arterial", fields.mean_arterial, flags, context)
    pulse = positive_number("pulse", fields.pulse, flags, context)
    values = None
    disposition = Disposition.DEVICE_ERROR
    if systolic is not None and diastolic is not None:
        disposition = Disposition.PATIENT_READING
        values = BloodPressureValues(
            systolic=to_canonical(systolic, unit),
            diastolic=to_canonical(diastolic, unit),
            mean_arterial=to_canonical(mean_arterial, unit) if mean_arterial is not None else None,
            pulse=pulse,
        )
    return Measurement(
        kind=Kind.BLOOD_PRESSURE,
        values=values,
        source_unit=unit,
        device_time=device_time,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def parse_blood_pressure_measurement(data: bytes) -> Measurement:
    """Decode a Blood Pressure Measurement (0x2A35) value into a measurement.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    return to_measurement(parse_blood_pressure_fields(data))


def parse_intermediate_cuff_pressure(data: bytes) -> IntermediateCuffPressureFields:
    """Decode an Intermediate Cuff Pressure (0x2A36) value. Never a reading.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    cuff_pressure = read_sfloat(reader, "cuff_pressure")
    reader.take(4, "unused_diastolic_and_mean_arterial")
    timestamp, pulse, user_id, status = _read_tail(reader, flags)
    return IntermediateCuffPressureFields(
        unit_kpa=bool(flags & _BP_UNIT_KPA),
        cuff_pressure=cuff_pressure,
        timestamp=timestamp,
        pulse=pulse,
        user_id=user_id,
        status=status,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_intermediate_cuff_pressure(fields: IntermediateCuffPressureFields) -> bytes:
    """The Intermediate Cuff Pressure value carrying ``fields``; unused slots are NaN.

    Raises:
        UnencodableValue: a field does not fit.
    """
    return _encode(
        fields.unit_kpa,
        (fields.cuff_pressure, SpecialValue.NAN, SpecialValue.NAN),
        fields.timestamp,
        fields.pulse,
        fields.user_id,
        fields.status,
        ("cuff_pressure", "unused_diastolic", "unused_mean_arterial_pressure"),
        fields.trailing_bytes,
    )


def parse_blood_pressure_feature(data: bytes) -> BloodPressureFeature:
    """Decode Blood Pressure Feature (0x2A49); RFU bits are dropped.

    Raises:
        InvalidFrame: fewer than two bytes.
    """
    return BloodPressureFeature(FieldReader(data).uint16("blood_pressure_feature") & _FEATURE_MASK)


def encode_blood_pressure_feature(features: BloodPressureFeature) -> bytes:
    """The Blood Pressure Feature value for ``features``."""
    return pack_uint(int(features), 2, "blood_pressure_feature")
