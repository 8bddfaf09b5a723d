"""Bluetooth GATT health-profile codecs: pure functions from characteristic bytes to readings.

Each profile module decodes a characteristic value in two steps — bytes → a frozen
``*Fields`` dataclass mirroring the characteristic (``parse_*_fields``), then fields →
:class:`~device_drivers.measurement.Measurement` (``to_measurement``) — and has the
inverse ``encode_*`` for simulators and round-trip tests. Every decoding failure is a
:class:`~device_drivers.errors.DriverError` subclass naming the field and byte offset.

:func:`decode_characteristic` dispatches by UUID through :data:`PARSERS`: measurement
characteristics give a list of measurements, the others an object of named fields.
Byte layouts, the decisions on the specifications' ambiguities and the pitfalls are in
``docs/devices.md``; each module's docstring lists its own decisions.

Two rules hold for every parser here. A field its flags promise but the value lacks makes
the value truncated: :class:`~device_drivers.errors.InvalidFrame` naming that field,
never a reading without it. Bytes after the last field a value defines are ignored (the
Bluetooth specifications let later versions append fields, and receivers skip what they
do not know) and counted: ``trailing_bytes`` in a measurement's context, or in the named
fields of the other characteristics, whenever there are any. CGM records are framed
by their Size and DIS strings fill the whole value, so neither has trailing bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from device_drivers.errors import UnsupportedCharacteristic
from device_drivers.gatt import uuids
from device_drivers.gatt._common import to_json_value
from device_drivers.gatt.blood_pressure import (
    BloodPressureFeature,
    BloodPressureMeasurementFields,
    BloodPressureStatus,
    IntermediateCuffPressureFields,
    encode_blood_pressure_feature,
    encode_blood_pressure_measurement,
    encode_intermediate_cuff_pressure,
    parse_blood_pressure_feature,
    parse_blood_pressure_fields,
    parse_blood_pressure_measurement,
    parse_intermediate_cuff_pressure,
)
from device_drivers.gatt.cgm import (
    CgmCrcError,
    CgmFeature,
    CgmFeatureFields,
    CgmParseResult,
    CgmRecordFields,
    CgmSensorStatus,
    SessionStartTimeFields,
    encode_cgm_feature,
    encode_cgm_record,
    encode_cgm_records,
    encode_session_start_time,
    parse_cgm_feature,
    parse_cgm_measurements,
    parse_cgm_notification,
    parse_cgm_record_fields,
    parse_session_start_time,
)
from device_drivers.gatt.crc import crc16_ccitt_false, crc16_mcrf4xx
from device_drivers.gatt.datetime_fields import (
    AdjustReason,
    CurrentTimeFields,
    DateTimeFields,
    current_time_from_datetime,
    encode_current_time,
    encode_date_time,
    parse_current_time,
    parse_date_time,
)
from device_drivers.gatt.device_information import (
    SYSTEM_ID_SIZE,
    SystemId,
    encode_dis_string,
    encode_system_id,
    parse_dis_string,
    parse_system_id,
)
from device_drivers.gatt.errors import UnencodableValue
from device_drivers.gatt.glucose import (
    GlucoseContextFields,
    GlucoseFeature,
    GlucoseMeasurementFields,
    GlucoseSensorStatus,
    context_entries,
    encode_glucose_context,
    encode_glucose_feature,
    encode_glucose_measurement,
    join_glucose_context,
    parse_glucose_context_fields,
    parse_glucose_feature,
    parse_glucose_measurement,
    parse_glucose_measurement_fields,
)
from device_drivers.gatt.heart_rate import (
    HeartRateMeasurementFields,
    encode_heart_rate,
    parse_body_sensor_location,
    parse_heart_rate_fields,
    parse_heart_rate_measurement,
)
from device_drivers.gatt.ieee11073 import (
    DecodedFloat,
    SpecialValue,
    decode_float,
    decode_sfloat,
    encode_float,
    encode_sfloat,
)
from device_drivers.gatt.pulse_oximeter import (
    PlxContinuousFields,
    PlxDeviceSensorStatus,
    PlxFeaturesFields,
    PlxMeasurementStatus,
    PlxSpotCheckFields,
    PlxSupportedFeatures,
    encode_plx_continuous,
    encode_plx_features,
    encode_plx_spot_check,
    parse_plx_continuous,
    parse_plx_continuous_fields,
    parse_plx_features,
    parse_plx_spot_check,
    parse_plx_spot_check_fields,
)
from device_drivers.gatt.racp import (
    FilterType,
    OpCode,
    Operator,
    RacpProcedureFailed,
    RacpRequest,
    RacpResponse,
    ResponseCode,
    encode_racp_number_of_records,
    encode_racp_request,
    encode_racp_response,
    parse_racp_request,
    parse_racp_response,
    parse_racp_value,
)
from device_drivers.gatt.thermometer import (
    TemperatureMeasurementFields,
    encode_temperature,
    parse_temperature_fields,
    parse_temperature_measurement,
    parse_temperature_type,
)
from device_drivers.gatt.uuids import normalize_uuid, short_form
from device_drivers.gatt.weight import (
    WeightMeasurementFields,
    WeightScaleFeature,
    WeightScaleFeatureFields,
    encode_weight,
    encode_weight_scale_feature,
    parse_weight_fields,
    parse_weight_measurement,
    parse_weight_scale_feature,
)
from device_drivers.measurement import Measurement
from readings.units import Unit, to_canonical

DecodedValue: TypeAlias = list[Measurement] | dict[str, Any]
"""Measurements for a measurement characteristic, named fields for the others."""
CharacteristicParser: TypeAlias = Callable[[bytes], DecodedValue]


def _glucose_context(data: bytes) -> dict[str, Any]:
    fields = parse_glucose_context_fields(data)
    return {**to_json_value(fields), "context": context_entries(fields)}


def _intermediate_cuff_pressure(data: bytes) -> dict[str, Any]:
    fields = parse_intermediate_cuff_pressure(data)
    decoded: dict[str, Any] = to_json_value(fields)
    if not isinstance(fields.cuff_pressure, SpecialValue):
        unit = Unit.KPA if fields.unit_kpa else Unit.MMHG
        decoded["cuff_pressure_mmhg"] = to_canonical(fields.cuff_pressure, unit)
    return decoded


def _current_time(data: bytes) -> dict[str, Any]:
    fields = parse_current_time(data)
    moment = fields.to_datetime()
    return {
        **to_json_value(fields),
        "datetime": moment.isoformat(timespec="milliseconds") if moment is not None else None,
    }


def _weight_scale_feature(data: bytes) -> dict[str, Any]:
    fields = parse_weight_scale_feature(data)
    weight = fields.weight_resolution
    height = fields.height_resolution
    return {
        **to_json_value(fields),
        "weight_resolution_kg": weight[0] if weight else None,
        "weight_resolution_lb": weight[1] if weight else None,
        "height_resolution_m": height[0] if height else None,
        "height_resolution_in": height[1] if height else None,
    }


def _cgm_feature(data: bytes) -> dict[str, Any]:
    fields = parse_cgm_feature(data)
    return {**to_json_value(fields), "e2e_crc_supported": fields.e2e_crc_supported}


# Sizes of the characteristics that are one fixed-size field: what follows is trailing.
_FEATURE16_SIZE: Final = 2  # Glucose Feature, Blood Pressure Feature: uint16 bits
_CODE_SIZE: Final = 1  # Body Sensor Location, Temperature Type: uint8 code
_DATE_TIME_SIZE: Final = 7  # year uint16, month, day, hours, minutes, seconds


def _trailing(data: bytes, size: int) -> int:
    """Bytes after the ``size`` bytes a one-field value defines (the parser checked there
    are at least ``size``)."""
    return max(len(data) - size, 0)


def _system_id(data: bytes) -> dict[str, Any]:
    system_id = parse_system_id(data)
    return {
        **asdict(system_id),
        "eui64": system_id.eui64,
        "trailing_bytes": _trailing(data, SYSTEM_ID_SIZE),
    }


def _named(
    name: str, parse: Callable[[bytes], object], size: int | None = None
) -> CharacteristicParser:
    """A one-field characteristic as ``{name: value}``; with ``size``, the value ends
    there and what follows is counted as ``trailing_bytes``."""

    def parser(data: bytes) -> dict[str, Any]:
        decoded = {name: to_json_value(parse(data))}
        if size is not None:
            decoded["trailing_bytes"] = _trailing(data, size)
        return decoded

    return parser


def _fields(parse: Callable[[bytes], object], size: int | None = None) -> CharacteristicParser:
    """A characteristic decoded to a dataclass, as its named fields (which count their own
    trailing bytes, or, for a fixed ``size`` value, are given the count here)."""

    def parser(data: bytes) -> dict[str, Any]:
        decoded: dict[str, Any] = to_json_value(parse(data))
        if size is not None:
            decoded["trailing_bytes"] = _trailing(data, size)
        return decoded

    return parser


def _one(parse: Callable[[bytes], Measurement]) -> CharacteristicParser:
    def parser(data: bytes) -> list[Measurement]:
        return [parse(data)]

    return parser


def _cgm_measurements(data: bytes) -> list[Measurement]:
    return parse_cgm_measurements(data, session_start=None)


PARSERS: Mapping[str, CharacteristicParser] = MappingProxyType(
    {
        uuids.GLUCOSE_MEASUREMENT: _one(parse_glucose_measurement),
        uuids.GLUCOSE_MEASUREMENT_CONTEXT: _glucose_context,
        uuids.GLUCOSE_FEATURE: _named("features", parse_glucose_feature, _FEATURE16_SIZE),
        uuids.RECORD_ACCESS_CONTROL_POINT: _fields(parse_racp_value),
        uuids.CGM_MEASUREMENT: _cgm_measurements,
        uuids.CGM_FEATURE: _cgm_feature,
        uuids.CGM_SESSION_START_TIME: _fields(parse_session_start_time),
        uuids.BLOOD_PRESSURE_MEASUREMENT: _one(parse_blood_pressure_measurement),
        uuids.INTERMEDIATE_CUFF_PRESSURE: _intermediate_cuff_pressure,
        uuids.BLOOD_PRESSURE_FEATURE: _named(
            "features", parse_blood_pressure_feature, _FEATURE16_SIZE
        ),
        uuids.HEART_RATE_MEASUREMENT: _one(parse_heart_rate_measurement),
        uuids.BODY_SENSOR_LOCATION: _named(
            "body_sensor_location", parse_body_sensor_location, _CODE_SIZE
        ),
        uuids.TEMPERATURE_MEASUREMENT: _one(parse_temperature_measurement),
        uuids.TEMPERATURE_TYPE: _named("temperature_type", parse_temperature_type, _CODE_SIZE),
        uuids.INTERMEDIATE_TEMPERATURE: _fields(parse_temperature_fields),
        uuids.WEIGHT_MEASUREMENT: _one(parse_weight_measurement),
        uuids.WEIGHT_SCALE_FEATURE: _weight_scale_feature,
        uuids.PLX_SPOT_CHECK_MEASUREMENT: _one(parse_plx_spot_check),
        uuids.PLX_CONTINUOUS_MEASUREMENT: _one(parse_plx_continuous),
        uuids.PLX_FEATURES: _fields(parse_plx_features),
        uuids.CURRENT_TIME: _current_time,
        uuids.DATE_TIME: _fields(parse_date_time, _DATE_TIME_SIZE),
        uuids.MANUFACTURER_NAME_STRING: _named("manufacturer_name", parse_dis_string),
        uuids.MODEL_NUMBER_STRING: _named("model_number", parse_dis_string),
        uuids.SERIAL_NUMBER_STRING: _named("serial_number", parse_dis_string),
        uuids.HARDWARE_REVISION_STRING: _named("hardware_revision", parse_dis_string),
        uuids.FIRMWARE_REVISION_STRING: _named("firmware_revision", parse_dis_string),
        uuids.SOFTWARE_REVISION_STRING: _named("software_revision", parse_dis_string),
        uuids.SYSTEM_ID: _system_id,
    }
)
"""Decoder per characteristic, keyed by 128-bit lower-case UUID."""


def decode_characteristic(uuid_or_short: str, data: bytes) -> DecodedValue:
    """Decode a characteristic value by its UUID.

    Args:
        uuid_or_short: ``2A35``, ``0x2A35`` or a 128-bit UUID.
        data: the characteristic value as received.

    Returns:
        For measurement characteristics a list of measurements (CGM notifications may hold
        several); for the others an object of named fields, special SFLOATs as their names,
        with ``trailing_bytes`` when the value went on after its last defined field.

    Raises:
        UnsupportedCharacteristic: not a UUID, or no decoder for it.
        InvalidFrame: the value does not decode (``CgmCrcError`` for a failed E2E-CRC).
    """
    uuid = normalize_uuid(uuid_or_short)
    parser = PARSERS.get(uuid)
    if parser is None:
        known = ", ".join(sorted(short_form(known_uuid) for known_uuid in PARSERS))
        raise UnsupportedCharacteristic(
            f"no decoder for characteristic {short_form(uuid)}; decodable: {known}"
        )
    decoded = parser(data)
    if isinstance(decoded, dict) and decoded.get("trailing_bytes") == 0:
        del decoded["trailing_bytes"]  # reported only when there are any, as in a context
    return decoded


__all__ = [
    "PARSERS",
    "AdjustReason",
    "BloodPressureFeature",
    "BloodPressureMeasurementFields",
    "BloodPressureStatus",
    "CgmCrcError",
    "CgmFeature",
    "CgmFeatureFields",
    "CgmParseResult",
    "CgmRecordFields",
    "CgmSensorStatus",
    "CharacteristicParser",
    "CurrentTimeFields",
    "DateTimeFields",
    "DecodedFloat",
    "DecodedValue",
    "FilterType",
    "GlucoseContextFields",
    "GlucoseFeature",
    "GlucoseMeasurementFields",
    "GlucoseSensorStatus",
    "HeartRateMeasurementFields",
    "IntermediateCuffPressureFields",
    "OpCode",
    "Operator",
    "PlxContinuousFields",
    "PlxDeviceSensorStatus",
    "PlxFeaturesFields",
    "PlxMeasurementStatus",
    "PlxSpotCheckFields",
    "PlxSupportedFeatures",
    "RacpProcedureFailed",
    "RacpRequest",
    "RacpResponse",
    "ResponseCode",
    "SessionStartTimeFields",
    "SpecialValue",
    "SystemId",
    "TemperatureMeasurementFields",
    "UnencodableValue",
    "WeightMeasurementFields",
    "WeightScaleFeature",
    "WeightScaleFeatureFields",
    "context_entries",
    "crc16_ccitt_false",
    "crc16_mcrf4xx",
    "current_time_from_datetime",
    "decode_characteristic",
    "decode_float",
    "decode_sfloat",
    "encode_blood_pressure_feature",
    "encode_blood_pressure_measurement",
    "encode_cgm_feature",
    "encode_cgm_record",
    "encode_cgm_records",
    "encode_current_time",
    "encode_date_time",
    "encode_dis_string",
    "encode_float",
    "encode_glucose_context",
    "encode_glucose_feature",
    "encode_glucose_measurement",
    "encode_heart_rate",
    "encode_intermediate_cuff_pressure",
    "encode_plx_continuous",
    "encode_plx_features",
    "encode_plx_spot_check",
    "encode_racp_number_of_records",
    "encode_racp_request",
    "encode_racp_response",
    "encode_session_start_time",
    "encode_sfloat",
    "encode_system_id",
    "encode_temperature",
    "encode_weight",
    "encode_weight_scale_feature",
    "join_glucose_context",
    "normalize_uuid",
    "parse_blood_pressure_feature",
    "parse_blood_pressure_fields",
    "parse_blood_pressure_measurement",
    "parse_body_sensor_location",
    "parse_cgm_feature",
    "parse_cgm_measurements",
    "parse_cgm_notification",
    "parse_cgm_record_fields",
    "parse_current_time",
    "parse_date_time",
    "parse_dis_string",
    "parse_glucose_context_fields",
    "parse_glucose_feature",
    "parse_glucose_measurement",
    "parse_glucose_measurement_fields",
    "parse_heart_rate_fields",
    "parse_heart_rate_measurement",
    "parse_intermediate_cuff_pressure",
    "parse_plx_continuous",
    "parse_plx_continuous_fields",
    "parse_plx_features",
    "parse_plx_spot_check",
    "parse_plx_spot_check_fields",
    "parse_racp_request",
    "parse_racp_response",
    "parse_racp_value",
    "parse_session_start_time",
    "parse_system_id",
    "parse_temperature_fields",
    "parse_temperature_measurement",
    "parse_temperature_type",
    "parse_weight_fields",
    "parse_weight_measurement",
    "parse_weight_scale_feature",
    "short_form",
]
