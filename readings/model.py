"""The reading: what every part of VitalGate speaks.

One class per kind (``GlucoseReading``, ``BloodPressureReading`` …), all subclasses of
:class:`Reading`, each with a values struct that names its fields in their canonical
unit. Instances are immutable and validated on construction and on decoding; optional
values that a device did not send are absent (``None``), never 0 or NaN.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, TypeAlias

import msgspec

from readings.errors import InvalidReading, payload_error_from_msgspec
from readings.identity import DEVICE_ID_PATTERN, reading_id
from readings.units import Unit

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
"""Gateway and patient ids: safe as one MQTT topic level (no ``/``, ``+``, ``#``)."""

READING_ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,63}$"
"""Flags and context keys: lower-case snake case."""

MAX_FLAGS: Final = 32
MAX_CONTEXT_ENTRIES: Final = 32
MAX_CONTEXT_TEXT_LENGTH: Final = 128
MAX_RR_INTERVALS: Final = 64
"""A notification holds at most 9 RR intervals at the default MTU; 64 leaves room for a
gateway that merges a few notifications, and bounds what one reading can carry."""

_NAME_RE: Final = re.compile(NAME_PATTERN)

GatewayId: TypeAlias = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
PatientId: TypeAlias = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
DeviceId: TypeAlias = Annotated[str, msgspec.Meta(pattern=DEVICE_ID_PATTERN)]
ReadingId: TypeAlias = Annotated[str, msgspec.Meta(pattern=READING_ID_PATTERN)]
UtcTime: TypeAlias = Annotated[datetime, msgspec.Meta(tz=True)]
"""A timestamp with an offset; normalised to UTC and truncated to milliseconds."""
DeviceTime: TypeAlias = Annotated[datetime, msgspec.Meta(tz=False)]
"""A device's wall-clock time: no offset, because devices do not know their zone."""
NonNegative: TypeAlias = Annotated[float, msgspec.Meta(ge=0)]
Positive: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
ContextValue: TypeAlias = (
    Annotated[str, msgspec.Meta(max_length=MAX_CONTEXT_TEXT_LENGTH)] | int | float | bool
)


class Kind(StrEnum):
    """What a reading measures."""

    GLUCOSE = "glucose"
    """Capillary or venous blood glucose from a meter (self-monitoring)."""
    CGM_GLUCOSE = "cgm_glucose"
    """Interstitial glucose from a continuous glucose monitor."""
    BLOOD_PRESSURE = "blood_pressure"
    HEART_RATE = "heart_rate"
    SPO2 = "spo2"
    WEIGHT = "weight"
    BODY_TEMPERATURE = "body_temperature"


class _Struct(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    pass


class Values(_Struct, frozen=True):
    """Base of the per-kind value structs: named numbers, each in its canonical unit."""

    UNITS: ClassVar[Mapping[str, Unit]] = {}

    def check_finite(self) -> None:
        """Refuse NaN and infinities.

        Decoding never needs this (JSON has no NaN, and msgspec refuses numbers beyond the
        double range), so it is not a ``__post_init__`` on ingest's hot path; readings
        built in Python go through :func:`new_reading`, which calls it.

        Raises:
            InvalidReading: naming the field.
        """
        for name in self.__struct_fields__:
            value = getattr(self, name)
            numbers = value if isinstance(value, tuple) else (value,)
            for number in numbers:
                if number is not None and not math.isfinite(number):
                    raise InvalidReading(f"values.{name}", "must be a finite number")

    def as_dict(self) -> dict[str, float | tuple[float, ...]]:
        """The values present, by field name (absent optional fields are left out)."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }


class GlucoseValues(Values, frozen=True):
    """Blood glucose from a meter."""

    UNITS: ClassVar[Mapping[str, Unit]] = {"glucose": Unit.MMOL_PER_L}
    glucose: Positive
    """mmol/L."""


class CgmGlucoseValues(Values, frozen=True):
    """Interstitial glucose from a CGM."""

    UNITS: ClassVar[Mapping[str, Unit]] = {
        "glucose": Unit.MMOL_PER_L,
        "trend": Unit.MMOL_PER_L_PER_MIN,
        "quality": Unit.PERCENT,
    }
    glucose: Positive
    """mmol/L."""
    trend: float | None = None
    """Rate of change, mmol/L per minute (CGM Trend Information)."""
    quality: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    """The sensor's own quality estimate, %."""


class BloodPressureValues(Values, frozen=True):
    """A completed cuff measurement (intermediate cuff pressures are never readings)."""

    UNITS: ClassVar[Mapping[str, Unit]] = {
        "systolic": Unit.MMHG,
        "diastolic": Unit.MMHG,
        "mean_arterial": Unit.MMHG,
        "pulse": Unit.PER_MIN,
    }
    systolic: Positive
    """mmHg."""
    diastolic: Positive
    """mmHg."""
    mean_arterial: Positive | None = None
    """mmHg."""
    pulse: Positive | None = None
    """Beats per minute."""


class HeartRateValues(Values, frozen=True):
    """A heart-rate measurement (chest strap, watch)."""

    UNITS: ClassVar[Mapping[str, Unit]] = {
        "heart_rate": Unit.PER_MIN,
        "rr_intervals": Unit.SECOND,
        "energy_expended": Unit.KILOJOULE,
    }
    heart_rate: NonNegative
    """Beats per minute."""
    rr_intervals: (
        Annotated[tuple[Positive, ...], msgspec.Meta(min_length=1, max_length=MAX_RR_INTERVALS)]
        | None
    ) = None
    """Seconds between successive R waves, oldest first."""
    energy_expended: NonNegative | None = None
    """Cumulative kJ since the sensor's counter was last reset."""


class Spo2Values(Values, frozen=True):
    """Peripheral oxygen saturation."""

    UNITS: ClassVar[Mapping[str, Unit]] = {"spo2": Unit.PERCENT, "pulse": Unit.PER_MIN}
    spo2: NonNegative
    """%."""
    pulse: Positive | None = None
    """Beats per minute."""


class WeightValues(Values, frozen=True):
    """Body weight from a scale."""

    UNITS: ClassVar[Mapping[str, Unit]] = {
        "weight": Unit.KG,
        "bmi": Unit.UNITLESS,
        "height": Unit.METRE,
    }
    weight: Positive
    """kg."""
    bmi: Positive | None = None
    """kg/m², as computed by the scale."""
    height: Positive | None = None
    """m, as entered on the scale."""


class BodyTemperatureValues(Values, frozen=True):
    """Body temperature from a thermometer."""

    UNITS: ClassVar[Mapping[str, Unit]] = {"temperature": Unit.CELSIUS}
    temperature: float
    """°C."""


def _utc_milliseconds(value: datetime) -> datetime:
    if value.tzinfo is UTC and value.microsecond % 1000 == 0:
        return value
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def _milliseconds(value: datetime) -> datetime:
    if value.microsecond % 1000 == 0:
        return value
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


_KIND_BY_TAG: Final[Mapping[object, Kind]] = {kind.value: kind for kind in Kind}


class Reading(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag_field="kind",
):
    """One measurement, as it travels from device to store.

    Use a subclass (``GlucoseReading`` …) or :func:`new_reading`, which derives the id.

    Attributes:
        id: deterministic id (:func:`readings.identity.reading_id`); checked on construction.
        values: the measured values in canonical units.
        source_unit: the unit the device sent the primary value in (UCUM code).
        measured_at: when it was measured, UTC, after the gateway's clock correction.
        device_time: the device's raw wall-clock time, if it sent one; kept uncorrected.
        received_at: when the gateway received it, UTC (gateway clock).
        device_id: ``manufacturer-model-serial`` read from the device.
        patient_id: the patient the device was bound to when the gateway received it.
        gateway_id: the gateway that received it.
        context: what the device said about the circumstances (meal, sample site, posture …).
        flags: named status bits (``irregular_pulse``, ``clock_corrected`` …), sorted.
        seq: the device's record sequence number, if it has one.
    """

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset()

    id: ReadingId
    values: Values
    source_unit: str
    measured_at: UtcTime
    device_time: DeviceTime | None = None
    received_at: UtcTime
    device_id: DeviceId
    patient_id: PatientId
    gateway_id: GatewayId
    context: Annotated[
        dict[Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)], ContextValue],
        msgspec.Meta(max_length=MAX_CONTEXT_ENTRIES),
    ] = msgspec.field(default_factory=dict)
    flags: Annotated[
        tuple[Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)], ...],
        msgspec.Meta(max_length=MAX_FLAGS),
    ] = ()
    seq: Annotated[int, msgspec.Meta(ge=0)] | None = None

    @property
    def kind(self) -> Kind:
        """What this reading measures."""
        # A dict lookup: ``Kind(tag)`` goes through the enum's metaclass call (≈ 0.5 µs),
        # and ingest asks each reading its kind several times.
        return _KIND_BY_TAG[self.__struct_config__.tag]

    def __post_init__(self) -> None:
        # Decoding enforces these through the type annotations; construction in Python
        # does not, and a naive time would silently be taken as the host's local time.
        for name in ("measured_at", "received_at"):
            if getattr(self, name).tzinfo is None:
                raise InvalidReading(name, "timestamp has no UTC offset")
        if self.device_time is not None and self.device_time.tzinfo is not None:
            raise InvalidReading("device_time", "device time must be the raw wall clock, no offset")
        setattr_ = msgspec.structs.force_setattr
        setattr_(self, "measured_at", _utc_milliseconds(self.measured_at))
        setattr_(self, "received_at", _utc_milliseconds(self.received_at))
        if self.device_time is not None:
            setattr_(self, "device_time", _milliseconds(self.device_time))
        if self.source_unit not in self.UNITS_ALLOWED:
            allowed = ", ".join(sorted(self.UNITS_ALLOWED))
            raise InvalidReading(
                "source_unit", f"{self.source_unit!r} is not a unit of {self.kind} ({allowed})"
            )
        if self.flags and tuple(sorted(set(self.flags))) != self.flags:
            setattr_(self, "flags", tuple(sorted(set(self.flags))))
        expected = reading_id(
            device_id=self.device_id,
            kind=self.kind,
            seq=self.seq,
            device_time=self.device_time,
            received_at=self.received_at,
        )
        if self.id != expected:
            raise InvalidReading(
                "id",
                f"{self.id} is not the id derived from device_id, kind and record key "
                f"(expected {expected}; see docs/wire-protocol.md#reading-identity)",
            )


class GlucoseReading(Reading, tag="glucose", frozen=True):
    """Blood glucose from a meter. HI/LO results carry the flags ``result_high``/``result_low``
    and the meter's range limit as the value."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset(
        {Unit.MMOL_PER_L, Unit.MG_PER_DL, Unit.MOL_PER_L, Unit.KG_PER_L}
    )
    values: GlucoseValues


class CgmGlucoseReading(Reading, tag="cgm_glucose", frozen=True):
    """Interstitial glucose from a continuous glucose monitor."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset({Unit.MMOL_PER_L, Unit.MG_PER_DL})
    values: CgmGlucoseValues


class BloodPressureReading(Reading, tag="blood_pressure", frozen=True):
    """A completed blood-pressure measurement."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset({Unit.MMHG, Unit.KPA})
    values: BloodPressureValues


class HeartRateReading(Reading, tag="heart_rate", frozen=True):
    """A heart-rate measurement."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset({Unit.PER_MIN})
    values: HeartRateValues


class Spo2Reading(Reading, tag="spo2", frozen=True):
    """A pulse-oximeter measurement (spot check or continuous)."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset({Unit.PERCENT})
    values: Spo2Values


class WeightReading(Reading, tag="weight", frozen=True):
    """A body-weight measurement."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset({Unit.KG, Unit.POUND})
    values: WeightValues


class BodyTemperatureReading(Reading, tag="body_temperature", frozen=True):
    """A body-temperature measurement."""

    UNITS_ALLOWED: ClassVar[frozenset[str]] = frozenset({Unit.CELSIUS, Unit.FAHRENHEIT})
    values: BodyTemperatureValues


AnyReading: TypeAlias = (
    GlucoseReading
    | CgmGlucoseReading
    | BloodPressureReading
    | HeartRateReading
    | Spo2Reading
    | WeightReading
    | BodyTemperatureReading
)
"""The tagged union that decoders use: ``kind`` selects the class."""

READING_CLASSES: Final[Mapping[Kind, type[Reading]]] = {
    Kind.GLUCOSE: GlucoseReading,
    Kind.CGM_GLUCOSE: CgmGlucoseReading,
    Kind.BLOOD_PRESSURE: BloodPressureReading,
    Kind.HEART_RATE: HeartRateReading,
    Kind.SPO2: Spo2Reading,
    Kind.WEIGHT: WeightReading,
    Kind.BODY_TEMPERATURE: BodyTemperatureReading,
}

_READING_CLASS_BY_VALUES: Final[Mapping[type[Values], type[Reading]]] = {
    GlucoseValues: GlucoseReading,
    CgmGlucoseValues: CgmGlucoseReading,
    BloodPressureValues: BloodPressureReading,
    HeartRateValues: HeartRateReading,
    Spo2Values: Spo2Reading,
    WeightValues: WeightReading,
    BodyTemperatureValues: BodyTemperatureReading,
}


def new_reading(
    *,
    values: Values,
    source_unit: Unit | str,
    measured_at: datetime,
    received_at: datetime,
    device_id: str,
    patient_id: str,
    gateway_id: str,
    device_time: datetime | None = None,
    context: Mapping[str, Any] | None = None,
    flags: tuple[str, ...] | frozenset[str] | list[str] = (),
    seq: int | None = None,
) -> Reading:
    """Build a reading of the kind that ``values`` belongs to, deriving its id.

    Raises:
        InvalidReading: a field breaks the contract (the error names it).
    """
    cls = _READING_CLASS_BY_VALUES[type(values)]
    values.check_finite()
    if received_at.tzinfo is None:
        raise InvalidReading("received_at", "timestamp has no UTC offset")
    received_utc = _utc_milliseconds(received_at)
    device_ms = _milliseconds(device_time) if device_time is not None else None
    reading = cls(
        id=reading_id(
            device_id=device_id,
            kind=cls.__struct_config__.tag,  # type: ignore[arg-type]
            seq=seq,
            device_time=device_ms,
            received_at=received_utc,
        ),
        values=values,
        source_unit=str(source_unit),
        measured_at=measured_at,
        device_time=device_ms,
        received_at=received_utc,
        device_id=device_id,
        patient_id=patient_id,
        gateway_id=gateway_id,
        context=dict(context or {}),
        flags=tuple(flags),
        seq=seq,
    )
    # Construction in Python skips msgspec's constraint checks (patterns, bounds);
    # round-trip through the validator so a reading built here obeys the same rules as
    # one decoded from the wire.
    try:
        checked: Reading = msgspec.convert(msgspec.to_builtins(reading), AnyReading)
    except msgspec.ValidationError as exc:
        error = payload_error_from_msgspec(exc)
        raise InvalidReading(error.field.removeprefix("$."), error.problem) from None
    return checked
