"""Health Thermometer Service: Temperature Measurement 0x2A1C, Temperature Type 0x2A1D,
Intermediate Temperature 0x2A1E.

Byte layouts and the reasons for these decisions: ``docs/devices.md``. Decisions:

* The temperature is a 32-bit FLOAT in °C or °F (flags bit 0); values are converted to °C
  through :mod:`readings.units`; ``source_unit`` is ``Cel`` or ``[degF]``.
* A special FLOAT (NaN "no valid reading", NRes, ±INF, reserved) is ``DEVICE_ERROR`` with
  no values and the special's name in the context (``temperature_special``).
* RFU flag bits are ignored, including the "fever" bit 7 some vendors (Beurer) set.
* The temperature type goes to the context as ``temperature_type`` ("armpit", "ear" …);
  RFU codes are left out.
* Intermediate Temperature has the same layout but is not a final reading: it decodes to
  :class:`TemperatureMeasurementFields` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from device_drivers.gatt._common import ContextValue, device_time_of, note_trailing_bytes
from device_drivers.gatt._wire import FieldReader, pack_uint, padding
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.ieee11073 import DecodedFloat, SpecialValue, encode_float, read_float
from device_drivers.measurement import Disposition, Measurement
from readings.model import BodyTemperatureValues, Kind
from readings.units import Unit, to_canonical

_TM_FAHRENHEIT: Final = 0x01
_TM_TIME_STAMP: Final = 0x02
_TM_TEMPERATURE_TYPE: Final = 0x04

TEMPERATURE_TYPE_NAMES: Final[dict[int, str]] = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal_tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}
"""Temperature Type codes; 0 and 10–255 are RFU."""


@dataclass(frozen=True, slots=True)
class TemperatureMeasurementFields:
    """The fields of a Temperature Measurement (or Intermediate Temperature) value."""

    fahrenheit: bool
    temperature: DecodedFloat
    """°C, or °F when ``fahrenheit``."""
    timestamp: DateTimeFields | None = None
    temperature_type: int | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


def parse_temperature_fields(data: bytes) -> TemperatureMeasurementFields:
    """Decode a Temperature Measurement (0x2A1C) or Intermediate Temperature (0x2A1E) value.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    temperature = read_float(reader, "temperature")
    timestamp = read_date_time(reader, "time_stamp") if flags & _TM_TIME_STAMP else None
    temperature_type = reader.uint8("temperature_type") if flags & _TM_TEMPERATURE_TYPE else None
    return TemperatureMeasurementFields(
        fahrenheit=bool(flags & _TM_FAHRENHEIT),
        temperature=temperature,
        timestamp=timestamp,
        temperature_type=temperature_type,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_temperature(fields: TemperatureMeasurementFields) -> bytes:
    """The Temperature Measurement value carrying ``fields`` (simulators, tests).

    Raises:
        UnencodableValue: a field does not fit.
    """
    flags = (
        (_TM_FAHRENHEIT if fields.fahrenheit else 0)
        | (_TM_TIME_STAMP if fields.timestamp is not None else 0)
        | (_TM_TEMPERATURE_TYPE if fields.temperature_type is not None else 0)
    )
    out = bytearray([flags])
    out += encode_float(fields.temperature, field="temperature")
    if fields.timestamp is not None:
        out += encode_date_time(fields.timestamp, field="time_stamp")
    if fields.temperature_type is not None:
        out += pack_uint(fields.temperature_type, 1, "temperature_type")
    out += padding(fields.trailing_bytes)
    return bytes(out)


def to_measurement(fields: TemperatureMeasurementFields) -> Measurement:
    """The measurement a Temperature Measurement stands for (see the module's decisions)."""
    unit = Unit.FAHRENHEIT if fields.fahrenheit else Unit.CELSIUS
    flags: set[str] = set()
    context: dict[str, ContextValue] = {}
    device_time = device_time_of(fields.timestamp, flags, context)
    note_trailing_bytes(fields.trailing_bytes, context)
    if fields.temperature_type in TEMPERATURE_TYPE_NAMES:
        context["temperature_type"] = TEMPERATURE_TYPE_NAMES[fields.temperature_type]
    values = None
    disposition = Disposition.PATIENT_READING
    if isinstance(fields.temperature, SpecialValue):
        flags.add("temperature_unavailable")
        context["temperature_special"] = fields.temperature.value
        disposition = Disposition.DEVICE_ERROR
    else:
        values = BodyTemperatureValues(temperature=to_canonical(fields.temperature, unit))
    return Measurement(
        kind=Kind.BODY_TEMPERATURE,
        values=values,
        source_unit=unit,
        device_time=device_time,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def parse_temperature_measurement(data: bytes) -> Measurement:
    """Decode a Temperature Measurement (0x2A1C) value into a measurement.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    return to_measurement(parse_temperature_fields(data))


def parse_temperature_type(data: bytes) -> str | int:
    """Decode Temperature Type (0x2A1D): a name, or the raw code when it is RFU.

    Raises:
        InvalidFrame: empty value.
    """
    code = FieldReader(data).uint8("temperature_type")
    return TEMPERATURE_TYPE_NAMES.get(code, code)
