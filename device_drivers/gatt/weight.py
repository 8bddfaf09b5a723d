"""Weight Scale Service: Weight Measurement 0x2A9D and Weight Scale Feature 0x2A9E.

Byte layouts and the reasons for these decisions: ``docs/devices.md``. Decisions:

* Resolutions are fixed by the characteristic: weight 0.005 kg or 0.01 lb, BMI 0.1,
  height 0.001 m or 0.1 in. The feature's resolution is only a precision hint and never
  scales a value (Spezi's helper does: a bug). Imperial values are converted to kg and m
  through :mod:`readings.units`; ``source_unit`` is ``kg`` or ``[lb_av]``.
* Weight 0xFFFF is "measurement unsuccessful": ``DEVICE_ERROR``, no values, flag
  ``measurement_unsuccessful`` (never 327.675 kg).
* A BMI or height of 0 (scales without a user profile send zeros) is left out; a weight
  of 0 is a ``DEVICE_ERROR`` flagged ``weight_not_positive``.
* User ID 0xFF (unknown user) is left out of the context.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from device_drivers.gatt._common import (
    ContextValue,
    device_time_of,
    note_trailing_bytes,
    positive_number,
)
from device_drivers.gatt._wire import (
    UINT16_MAX,
    FieldReader,
    pack_uint,
    padding,
    require_together,
)
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.errors import UnencodableValue
from device_drivers.measurement import Disposition, Measurement
from readings.model import Kind, WeightValues
from readings.units import Unit, to_canonical

_WM_IMPERIAL: Final = 0x01
_WM_TIME_STAMP: Final = 0x02
_WM_USER_ID: Final = 0x04
_WM_BMI_HEIGHT: Final = 0x08

WEIGHT_UNSUCCESSFUL: Final = 0xFFFF
USER_ID_UNKNOWN: Final = 0xFF
WEIGHT_STEPS_PER_KG: Final = 200
"""Weight resolution 0.005 kg (SI)."""
WEIGHT_STEPS_PER_POUND: Final = 100
"""Weight resolution 0.01 lb (imperial)."""
BMI_STEPS_PER_UNIT: Final = 10
"""BMI resolution 0.1."""
HEIGHT_STEPS_PER_METRE: Final = 1000
"""Height resolution 0.001 m (SI)."""
HEIGHT_STEPS_PER_INCH: Final = 10
"""Height resolution 0.1 in (imperial)."""


class WeightScaleFeature(IntFlag):
    """Weight Scale Feature 0x2A9E flag bits (the resolution codes are separate fields)."""

    TIME_STAMP_SUPPORTED = 1 << 0
    MULTIPLE_USERS_SUPPORTED = 1 << 1
    BMI_SUPPORTED = 1 << 2


WEIGHT_RESOLUTIONS: Final[dict[int, tuple[float, float]]] = {
    1: (0.5, 1.0),
    2: (0.2, 0.5),
    3: (0.1, 0.2),
    4: (0.05, 0.1),
    5: (0.02, 0.05),
    6: (0.01, 0.02),
    7: (0.005, 0.01),
}
"""Weight resolution code (bits 3–6) → (kg, lb); 0 unspecified, 8–15 RFU."""
HEIGHT_RESOLUTIONS: Final[dict[int, tuple[float, float]]] = {
    1: (0.01, 1.0),
    2: (0.005, 0.5),
    3: (0.001, 0.1),
}
"""Height resolution code (bits 7–9) → (m, in); 0 unspecified, 4–7 RFU."""


@dataclass(frozen=True, slots=True)
class WeightMeasurementFields:
    """The fields of a Weight Measurement value, in the unit system it was sent in.

    ``weight`` is kg (lb if ``imperial``), ``None`` for "measurement unsuccessful";
    ``height`` is m (in); ``bmi`` and ``height`` share one flag bit.
    """

    imperial: bool
    weight: float | None
    timestamp: DateTimeFields | None = None
    user_id: int | None = None
    bmi: float | None = None
    height: float | None = None
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""


@dataclass(frozen=True, slots=True)
class WeightScaleFeatureFields:
    """Weight Scale Feature 0x2A9E: flags and the two resolution codes."""

    features: WeightScaleFeature
    weight_resolution_code: int
    height_resolution_code: int
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""

    @property
    def weight_resolution(self) -> tuple[float, float] | None:
        """(kg, lb) per step, or ``None`` when unspecified or RFU. A precision hint only."""
        return WEIGHT_RESOLUTIONS.get(self.weight_resolution_code)

    @property
    def height_resolution(self) -> tuple[float, float] | None:
        """(m, in) per step, or ``None`` when unspecified or RFU. A precision hint only."""
        return HEIGHT_RESOLUTIONS.get(self.height_resolution_code)


def _steps(value: float, steps_per_unit: int, field: str) -> int:
    if not math.isfinite(value):
        raise UnencodableValue(f"{value!r} is not a finite number", field=field)
    steps = round(value * steps_per_unit)
    if not 0 <= steps < UINT16_MAX:
        raise UnencodableValue(f"{value!r} is outside the uint16 range of this field", field=field)
    return steps


def parse_weight_fields(data: bytes) -> WeightMeasurementFields:
    """Decode a Weight Measurement (0x2A9D) value into its fields.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    reader = FieldReader(data)
    flags = reader.uint8("flags")
    imperial = bool(flags & _WM_IMPERIAL)
    raw_weight = reader.uint16("weight")
    timestamp = read_date_time(reader, "time_stamp") if flags & _WM_TIME_STAMP else None
    user_id = reader.uint8("user_id") if flags & _WM_USER_ID else None
    bmi = height = None
    if flags & _WM_BMI_HEIGHT:
        bmi = reader.uint16("bmi") / BMI_STEPS_PER_UNIT
        steps_per_height_unit = HEIGHT_STEPS_PER_INCH if imperial else HEIGHT_STEPS_PER_METRE
        height = reader.uint16("height") / steps_per_height_unit
    weight = None
    if raw_weight != WEIGHT_UNSUCCESSFUL:
        weight = raw_weight / (WEIGHT_STEPS_PER_POUND if imperial else WEIGHT_STEPS_PER_KG)
    return WeightMeasurementFields(
        imperial, weight, timestamp, user_id, bmi, height, reader.trailing_bytes()
    )


def encode_weight(fields: WeightMeasurementFields) -> bytes:
    """The Weight Measurement value carrying ``fields`` (simulators, tests).

    Values are rounded to the field's resolution.

    Raises:
        UnencodableValue: a value is out of range, or only one of BMI/height is set.
    """
    has_bmi_height = require_together("bmi_height", fields.bmi, fields.height)
    flags = (
        (_WM_IMPERIAL if fields.imperial else 0)
        | (_WM_TIME_STAMP if fields.timestamp is not None else 0)
        | (_WM_USER_ID if fields.user_id is not None else 0)
        | (_WM_BMI_HEIGHT if has_bmi_height else 0)
    )
    out = bytearray([flags])
    if fields.weight is None:
        out += pack_uint(WEIGHT_UNSUCCESSFUL, 2, "weight")
    else:
        per_unit = WEIGHT_STEPS_PER_POUND if fields.imperial else WEIGHT_STEPS_PER_KG
        out += pack_uint(_steps(fields.weight, per_unit, "weight"), 2, "weight")
    if fields.timestamp is not None:
        out += encode_date_time(fields.timestamp, field="time_stamp")
    if fields.user_id is not None:
        out += pack_uint(fields.user_id, 1, "user_id")
    if fields.bmi is not None and fields.height is not None:
        out += pack_uint(_steps(fields.bmi, BMI_STEPS_PER_UNIT, "bmi"), 2, "bmi")
        per_unit = HEIGHT_STEPS_PER_INCH if fields.imperial else HEIGHT_STEPS_PER_METRE
        out += pack_uint(_steps(fields.height, per_unit, "height"), 2, "height")
    out += padding(fields.trailing_bytes)
    return bytes(out)


def to_measurement(fields: WeightMeasurementFields) -> Measurement:
    """The measurement a Weight Measurement stands for (see the module's decisions)."""
    mass_unit = Unit.POUND if fields.imperial else Unit.KG
    length_unit = Unit.INCH if fields.imperial else Unit.METRE
    flags: set[str] = set()
    context: dict[str, ContextValue] = {}
    device_time = device_time_of(fields.timestamp, flags, context)
    note_trailing_bytes(fields.trailing_bytes, context)
    if fields.user_id is not None and fields.user_id != USER_ID_UNKNOWN:
        context["user_id"] = fields.user_id
    values = None
    disposition = Disposition.PATIENT_READING
    weight = positive_number("weight", fields.weight, flags, context)
    if fields.weight is None:
        flags.add("measurement_unsuccessful")
        disposition = Disposition.DEVICE_ERROR
    elif weight is None:
        disposition = Disposition.DEVICE_ERROR
    else:
        values = WeightValues(
            weight=to_canonical(weight, mass_unit),
            bmi=fields.bmi or None,
            height=to_canonical(fields.height, length_unit) if fields.height else None,
        )
    return Measurement(
        kind=Kind.WEIGHT,
        values=values,
        source_unit=mass_unit,
        device_time=device_time,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def parse_weight_measurement(data: bytes) -> Measurement:
    """Decode a Weight Measurement (0x2A9D) value into a measurement.

    Raises:
        InvalidFrame: the value is shorter than its flags require.
    """
    return to_measurement(parse_weight_fields(data))


_FEATURE_FLAGS_MASK: Final = 0x07
_WEIGHT_RESOLUTION_SHIFT: Final = 3
_HEIGHT_RESOLUTION_SHIFT: Final = 7


def parse_weight_scale_feature(data: bytes) -> WeightScaleFeatureFields:
    """Decode Weight Scale Feature (0x2A9E); bits 10–31 (RFU) are dropped.

    Raises:
        InvalidFrame: fewer than four bytes.
    """
    reader = FieldReader(data)
    raw = reader.uint32("weight_scale_feature")
    return WeightScaleFeatureFields(
        features=WeightScaleFeature(raw & _FEATURE_FLAGS_MASK),
        weight_resolution_code=(raw >> _WEIGHT_RESOLUTION_SHIFT) & 0x0F,
        height_resolution_code=(raw >> _HEIGHT_RESOLUTION_SHIFT) & 0x07,
        trailing_bytes=reader.trailing_bytes(),
    )


def encode_weight_scale_feature(fields: WeightScaleFeatureFields) -> bytes:
    """The Weight Scale Feature value for ``fields``.

    Raises:
        UnencodableValue: a resolution code does not fit its bits.
    """
    if not 0 <= fields.weight_resolution_code <= 0x0F:
        raise UnencodableValue("a 4-bit code (0–15)", field="weight_resolution_code")
    if not 0 <= fields.height_resolution_code <= 0x07:
        raise UnencodableValue("a 3-bit code (0–7)", field="height_resolution_code")
    raw = (
        int(fields.features)
        | fields.weight_resolution_code << _WEIGHT_RESOLUTION_SHIFT
        | fields.height_resolution_code << _HEIGHT_RESOLUTION_SHIFT
    )
    return pack_uint(raw, 4, "weight_scale_feature") + padding(fields.trailing_bytes)
