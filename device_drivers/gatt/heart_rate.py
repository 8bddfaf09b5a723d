"""Heart Rate Service: Heart Rate Measurement 0x2A37 and Body Sensor Location 0x2A38.

Byte layouts and the reasons for these decisions: ``docs/devices.md``. Decisions:

* RR intervals are all remaining bytes, uint16 in 1/1024 s, oldest first; one or many
  are normal. A value whose RR flag is set promises at least one interval: with no RR
  bytes it is truncated (``rr_interval[0]``), as Nordic's parser also says, and a single
  dangling byte cannot be an interval either. With the RR flag set every byte is an
  interval, so only a value without it can have trailing bytes (ignored, counted in the
  context as ``trailing_bytes``).
* An RR interval of 0 is not a time between beats: it is dropped and flagged
  ``rr_interval_invalid``.
* Sensor contact (flags bits 1–2) goes to the context as ``sensor_contact``:
  ``not_supported``, ``no_contact`` or ``contact``; no contact also sets the flag
  ``no_sensor_contact`` (the rate may be noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.errors import InvalidFrame
from device_drivers.gatt._common import ContextValue, note_trailing_bytes
from device_drivers.gatt._wire import FieldReader, pack_uint, padding
from device_drivers.gatt.errors import UnencodableValue
from device_drivers.measurement import Measurement
from readings.model import HeartRateValues, Kind
from readings.units import Unit

_HR_UINT16: Final = 0x01
_HR_SENSOR_CONTACT_SHIFT: Final = 1
_HR_SENSOR_CONTACT_MASK: Final = 0x06
_HR_ENERGY_EXPENDED: Final = 0x08
_HR_RR_INTERVALS: Final = 0x10

RR_INTERVAL_UNITS_PER_SECOND: Final = 1024
SENSOR_CONTACT_NO_CONTACT: Final = 2
SENSOR_CONTACT_CONTACT: Final = 3

BODY_SENSOR_LOCATION_NAMES: Final[dict[int, str]] = {
    0: "other",
    1: "chest",
    2: "wrist",
    3: "finger",
    4: "hand",
    5: "ear_lobe",
    6: "foot",
}


@dataclass(frozen=True, slots=True)
class HeartRateMeasurementFields:
    """The fields of a Heart Rate Measurement value, as sent."""

    heart_rate: int
    """Beats per minute."""
    uint16_format: bool = False
    sensor_contact: int = 0
    """The raw 2-bit code: 0/1 not supported, 2 no contact, 3 contact."""
    energy_expended_kj: int | None = None
    rr_intervals_1024: tuple[int, ...] | None = None
    """RR intervals in 1/1024 s (at least one); ``None`` when the flag is clear."""
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


def parse_heart_rate_fields(data: bytes) -> HeartRateMeasurementFields:
    """Decode a Heart Rate Measurement (0x2A37) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require (the RR flag requires
            at least one interval), or ends in half an RR interval.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    uint16_format = bool(flags & _HR_UINT16)
    heart_rate = reader.uint16("heart_rate") if uint16_format else reader.uint8("heart_rate")
    energy = reader.uint16("energy_expended") if flags & _HR_ENERGY_EXPENDED else None
    rr_intervals = None
    if flags & _HR_RR_INTERVALS:
        if not reader.remaining:
            reader.uint16("rr_interval[0]")  # raises: the flag promises an interval
        if reader.remaining % 2:
            raise InvalidFrame(
                "odd number of bytes left for uint16 RR intervals",
                offset=reader.offset + reader.remaining - 1,
                field="rr_interval",
            )
        rr_intervals = tuple(
            reader.uint16(f"rr_interval[{index}]") for index in range(reader.remaining // 2)
        )
    return HeartRateMeasurementFields(
        heart_rate=heart_rate,
        uint16_format=uint16_format,
        sensor_contact=(flags & _HR_SENSOR_CONTACT_MASK) >> _HR_SENSOR_CONTACT_SHIFT,
        energy_expended_kj=energy,
        rr_intervals_1024=rr_intervals,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_heart_rate(fields: HeartRateMeasurementFields) -> bytes:
    """The Heart Rate Measurement value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit (e.g. a rate above 255 in uint8 format).
    """
    if not 0 <= fields.sensor_contact <= SENSOR_CONTACT_CONTACT:
        raise UnencodableValue("sensor contact is a 2-bit code (0–3)", field="sensor_contact")
    if fields.rr_intervals_1024 == ():
        raise UnencodableValue(
            "the RR flag promises at least one interval: use None for none",
            field="rr_interval",
        )
    if fields.rr_intervals_1024 is not None and fields.trailing_bytes:
        raise UnencodableValue(
            "with RR intervals every remaining byte is an interval", field="trailing_bytes"
        )
    flags = (
        (_HR_UINT16 if fields.uint16_format else 0)
        | fields.sensor_contact << _HR_SENSOR_CONTACT_SHIFT
        | (_HR_ENERGY_EXPENDED if fields.energy_expended_kj is not None else 0)
        | (_HR_RR_INTERVALS if fields.rr_intervals_1024 is not None else 0)
    )
    out = bytearray([flags])
    out += pack_uint(fields.heart_rate, 2 if fields.uint16_format else 1, "heart_rate")
    if fields.energy_expended_kj is not None:
        out += pack_uint(fields.energy_expended_kj, 2, "energy_expended")
    for interval in fields.rr_intervals_1024 or ():
        out += pack_uint(interval, 2, "rr_interval")
    out += padding(fields.trailing_bytes)
    return bytes(out)


def to_measurement(fields: HeartRateMeasurementFields) -> Measurement:
    """The measurement a Heart Rate Measurement stands for (see the module's decisions)."""
    flags: set[str] = set()
    context: dict[str, ContextValue] = {}
    if fields.sensor_contact == SENSOR_CONTACT_CONTACT:
        context["sensor_contact"] = "contact"
    elif fields.sensor_contact == SENSOR_CONTACT_NO_CONTACT:
        context["sensor_contact"] = "no_contact"
        flags.add("no_sensor_contact")
    else:
        context["sensor_contact"] = "not_supported"
    note_trailing_bytes(fields.trailing_bytes, context)
    intervals = fields.rr_intervals_1024 or ()
    if 0 in intervals:
        flags.add("rr_interval_invalid")
    rr_seconds = tuple(raw / RR_INTERVAL_UNITS_PER_SECOND for raw in intervals if raw)
    energy = fields.energy_expended_kj
    return Measurement(
        kind=Kind.HEART_RATE,
        values=HeartRateValues(
            heart_rate=float(fields.heart_rate),
            rr_intervals=rr_seconds or None,
            energy_expended=float(energy) if energy is not None else None,
        ),
        source_unit=Unit.PER_MIN,
        context=context,
        flags=frozenset(flags),
    )


def parse_heart_rate_measurement(data: bytes) -> Measurement:
    """Decode a Heart Rate Measurement (0x2A37) value into a measurement.

    Raises:
        InvalidFrame: see :func:`parse_heart_rate_fields`.
    """
    return to_measurement(parse_heart_rate_fields(data))


def parse_body_sensor_location(data: bytes) -> str | int:
    """Decode Body Sensor Location (0x2A38): a name, or the raw code when it is RFU.

    Raises:
        InvalidFrame: empty value.
    """
    code = FieldReader(data).uint8("body_sensor_location")
    return BODY_SENSOR_LOCATION_NAMES.get(code, code)
