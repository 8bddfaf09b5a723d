"""Continuous Glucose Monitoring: CGM Measurement 0x2AA7, CGM Feature 0x2AA8, Session Start
Time 0x2AAA. Byte layouts and the reasons for these decisions: ``docs/devices.md``.

One notification may hold several records back to back, each starting with its Size.
Decisions:

* **Annunciation octet order.** Flags bit 7 = Status, bit 6 = Cal/Temp, bit 5 = Warning;
  the octets present are laid out Status, Cal/Temp, Warning (least significant first), as
  the nRF Connect SDK server writes and the UHN parser reads. Nordic's Android parser,
  which reads the first octet with Status meanings whenever bit 5 is set, is not followed.
* **E2E-CRC presence** is inferred from Size: Size = computed length + 2 means a CRC
  follows (CGM Feature bit 12 says the same for the whole sensor). A Size below the
  computed length leaves out a field the flags promise: the record is truncated and the
  error names that field. Any other Size is a framing error: records are framed by their
  Size, so a CGM record has no trailing bytes to ignore (bytes the flags do not explain
  would leave the CRC's place unknown). The CRC is CRC-16/MCRF4XX over the record's
  preceding bytes, sent LSB first.
* **A record whose CRC fails is discarded, never repaired.** The strict parser
  (:func:`parse_cgm_record_fields`, used by ``vitalgate decode``) raises
  :class:`CgmCrcError`; :func:`parse_cgm_notification` (used by drivers) skips the bad
  record, keeps the good ones and counts the failures. A framing error (a Size that
  cannot be right) makes the rest of the notification unreadable and always raises.
* Glucose is mg/dL; values become mmol/L (trend mmol/L/min) through :mod:`readings.units`.
  As for meters, a value outside 0.5–55 mmol/L is flagged ``glucose_out_of_range`` and
  the record is a ``DEVICE_ERROR``; so are a special glucose SFLOAT and the annunciations
  that say the result is not valid (session stopped, sensor type incorrect, sensor
  malfunction, general device fault, sensor temperature too high/low).
* Below/above the device range (bits 22/23) become ``result_low``/``result_high``, like
  a meter's LO/HI; the other annunciations become flags named after the spec.
* ``seq`` is the record's time offset (minutes since session start): it is the key the
  CGMS RACP filters by. ``device_time`` is session start + time offset when the caller
  passes the Session Start Time, else ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntFlag
from typing import Final

from device_drivers.errors import ChecksumMismatch, InvalidFrame
from device_drivers.gatt._common import ContextValue, flag_names, secondary_number
from device_drivers.gatt._wire import FieldReader, pack_sint, pack_uint, padding
from device_drivers.gatt.crc import crc16_mcrf4xx
from device_drivers.gatt.datetime_fields import DateTimeFields, encode_date_time, read_date_time
from device_drivers.gatt.errors import UnencodableValue
from device_drivers.gatt.glucose import (
    GLUCOSE_PLAUSIBLE_MAX_MMOL_PER_L,
    GLUCOSE_PLAUSIBLE_MIN_MMOL_PER_L,
)
from device_drivers.gatt.ieee11073 import DecodedFloat, SpecialValue, encode_sfloat, read_sfloat
from device_drivers.measurement import Disposition, Measurement
from readings.model import CgmGlucoseValues, Kind
from readings.units import Unit, to_canonical

_CGM_TREND: Final = 0x01
_CGM_QUALITY: Final = 0x02
_CGM_WARNING_OCTET: Final = 0x20
_CGM_CAL_TEMP_OCTET: Final = 0x40
_CGM_STATUS_OCTET: Final = 0x80

CGM_RECORD_MIN_SIZE: Final = 6
"""Size, Flags, Glucose (2) and Time Offset (2)."""
E2E_CRC_SIZE: Final = 2
QUALITY_MAX_PERCENT: Final = 100.0

TIME_ZONE_UNKNOWN: Final = -128
DST_OFFSET_UNKNOWN: Final = 255
E2E_CRC_NOT_SUPPORTED: Final = 0xFFFF
"""CGM Feature's mandatory E2E-CRC field when the sensor has no CRC."""


class CgmSensorStatus(IntFlag):
    """Sensor Status Annunciation as one 24-bit field (same numbering as CGM Status)."""

    SESSION_STOPPED = 1 << 0
    BATTERY_LOW = 1 << 1
    SENSOR_TYPE_INCORRECT = 1 << 2
    SENSOR_MALFUNCTION = 1 << 3
    DEVICE_SPECIFIC_ALERT = 1 << 4
    GENERAL_DEVICE_FAULT = 1 << 5
    TIME_SYNCHRONIZATION_REQUIRED = 1 << 8
    CALIBRATION_NOT_ALLOWED = 1 << 9
    CALIBRATION_RECOMMENDED = 1 << 10
    CALIBRATION_REQUIRED = 1 << 11
    SENSOR_TEMPERATURE_HIGH = 1 << 12
    SENSOR_TEMPERATURE_LOW = 1 << 13
    CALIBRATION_PENDING = 1 << 14
    BELOW_PATIENT_LOW = 1 << 16
    ABOVE_PATIENT_HIGH = 1 << 17
    BELOW_HYPO_LEVEL = 1 << 18
    ABOVE_HYPER_LEVEL = 1 << 19
    RATE_OF_DECREASE_EXCEEDED = 1 << 20
    RATE_OF_INCREASE_EXCEEDED = 1 << 21
    RESULT_LOW = 1 << 22
    """Below the device's measuring range."""
    RESULT_HIGH = 1 << 23
    """Above the device's measuring range."""


_STATUS_OCTET_MASK: Final = 0x00003F
_CAL_TEMP_OCTET_MASK: Final = 0x007F00
_WARNING_OCTET_MASK: Final = 0xFF0000
_RESULT_INVALIDATING: Final = (
    CgmSensorStatus.SESSION_STOPPED
    | CgmSensorStatus.SENSOR_TYPE_INCORRECT
    | CgmSensorStatus.SENSOR_MALFUNCTION
    | CgmSensorStatus.GENERAL_DEVICE_FAULT
    | CgmSensorStatus.SENSOR_TEMPERATURE_HIGH
    | CgmSensorStatus.SENSOR_TEMPERATURE_LOW
)


class CgmFeature(IntFlag):
    """CGM Feature bits (17–23 RFU)."""

    CALIBRATION = 1 << 0
    PATIENT_HIGH_LOW_ALERTS = 1 << 1
    HYPO_ALERTS = 1 << 2
    HYPER_ALERTS = 1 << 3
    RATE_OF_INCREASE_DECREASE_ALERTS = 1 << 4
    DEVICE_SPECIFIC_ALERT = 1 << 5
    SENSOR_MALFUNCTION_DETECTION = 1 << 6
    SENSOR_TEMPERATURE_HIGH_LOW_DETECTION = 1 << 7
    SENSOR_RESULT_HIGH_LOW_DETECTION = 1 << 8
    LOW_BATTERY_DETECTION = 1 << 9
    SENSOR_TYPE_ERROR_DETECTION = 1 << 10
    GENERAL_DEVICE_FAULT = 1 << 11
    E2E_CRC = 1 << 12
    MULTIPLE_BOND = 1 << 13
    MULTIPLE_SESSIONS = 1 << 14
    TREND_INFORMATION = 1 << 15
    QUALITY = 1 << 16


_CGM_FEATURE_MASK: Final = 0x01FFFF


class CgmCrcError(ChecksumMismatch):
    """A CGM record's E2E-CRC does not match its bytes; the record must be discarded.

    Attributes:
        record_index: position of the record in its notification (0-based).
    """

    def __init__(self, *, wire: int, calculated: int, offset: int, record_index: int) -> None:
        super().__init__(wire=wire, calculated=calculated, offset=offset, field="e2e_crc")
        self.record_index = record_index


@dataclass(frozen=True, slots=True)
class CgmRecordFields:
    """One CGM Measurement record, as sent.

    The three annunciation octets are present independently; each holds only the
    :class:`CgmSensorStatus` bits of its octet (Status 0–7, Cal/Temp 8–15, Warning 16–23).
    """

    glucose: DecodedFloat
    """mg/dL."""
    time_offset_minutes: int
    status: CgmSensorStatus | None = None
    cal_temp: CgmSensorStatus | None = None
    warning: CgmSensorStatus | None = None
    trend: DecodedFloat | None = None
    """mg/dL/min."""
    quality: DecodedFloat | None = None
    """%."""
    e2e_crc: bool = False
    """Whether the record carries (and, once decoded, passed) an E2E-CRC."""

    @property
    def sensor_status(self) -> CgmSensorStatus:
        """All annunciation bits present in the record."""
        combined = CgmSensorStatus(0)
        for octet in (self.status, self.cal_temp, self.warning):
            if octet is not None:
                combined |= octet
        return combined


@dataclass(frozen=True, slots=True)
class CgmParseResult:
    """What a notification yielded: the good records, and how many failed their CRC."""

    measurements: tuple[Measurement, ...]
    crc_failures: int


@dataclass(frozen=True, slots=True)
class CgmFeatureFields:
    """CGM Feature 0x2AA8."""

    features: CgmFeature
    sample_type: int
    """Same codes as the Glucose Measurement type nibble (9 = interstitial fluid)."""
    sample_location: int
    """5 = subcutaneous tissue."""
    e2e_crc: int
    """The field's CRC, 0xFFFF when the sensor does not support E2E-CRC."""
    trailing_bytes: int = 0
    """Bytes after the last defined field: ignored, and counted here."""

    @property
    def e2e_crc_supported(self) -> bool:
        """Whether records carry an E2E-CRC."""
        return bool(self.features & CgmFeature.E2E_CRC)


@dataclass(frozen=True, slots=True)
class SessionStartTimeFields:
    """CGM Session Start Time 0x2AAA."""

    start: DateTimeFields
    time_zone_quarter_hours: int = TIME_ZONE_UNKNOWN
    """Offset from UTC in 15-minute units; −128 unknown."""
    dst_offset_quarter_hours: int = DST_OFFSET_UNKNOWN
    """0, 2, 4 or 8 (15-minute units); 255 unknown."""
    trailing_bytes: int = 0
    """Bytes after the DST offset (an E2E-CRC, when the sensor sends one, is not checked):
    ignored, and counted here."""

    def to_datetime(self) -> datetime | None:
        """The session start as the sensor's naive local time, or ``None`` if unknown."""
        return self.start.to_datetime()


def _record_layout(flags: int) -> int:
    """The record size without CRC implied by ``flags``."""
    octets = sum(
        1 for bit in (_CGM_STATUS_OCTET, _CGM_CAL_TEMP_OCTET, _CGM_WARNING_OCTET) if flags & bit
    )
    return (
        CGM_RECORD_MIN_SIZE
        + octets
        + (2 if flags & _CGM_TREND else 0)
        + (2 if flags & _CGM_QUALITY else 0)
    )


def _parse_record(record: bytes, base_offset: int, index: int) -> CgmRecordFields:
    reader = FieldReader(record, base_offset=base_offset)
    size = reader.uint8(f"record[{index}].size")
    flags = reader.uint8(f"record[{index}].flags")
    expected = _record_layout(flags)
    if size < expected:
        # A field the flags promise is missing: reading the fields in order names it.
        _read_record_fields(reader, flags, index)
    if size not in (expected, expected + E2E_CRC_SIZE):
        raise InvalidFrame(
            f"size {size} matches neither {expected} (flags 0x{flags:02X}, no CRC) "
            f"nor {expected + E2E_CRC_SIZE} (with E2E-CRC)",
            offset=base_offset,
            field=f"record[{index}].size",
        )
    has_crc = size == expected + E2E_CRC_SIZE
    if has_crc:
        wire = int.from_bytes(record[expected:size], "little")
        calculated = crc16_mcrf4xx(record[:expected])
        if wire != calculated:
            raise CgmCrcError(
                wire=wire, calculated=calculated, offset=base_offset + expected, record_index=index
            )
    return _read_record_fields(reader, flags, index, e2e_crc=has_crc)


def _read_record_fields(
    reader: FieldReader, flags: int, index: int, *, e2e_crc: bool = False
) -> CgmRecordFields:
    glucose = read_sfloat(reader, f"record[{index}].glucose_concentration")
    time_offset = reader.uint16(f"record[{index}].time_offset")
    status = cal_temp = warning = None
    if flags & _CGM_STATUS_OCTET:
        status = CgmSensorStatus(reader.uint8(f"record[{index}].status") & _STATUS_OCTET_MASK)
    if flags & _CGM_CAL_TEMP_OCTET:
        raw = reader.uint8(f"record[{index}].cal_temp") << 8
        cal_temp = CgmSensorStatus(raw & _CAL_TEMP_OCTET_MASK)
    if flags & _CGM_WARNING_OCTET:
        raw = reader.uint8(f"record[{index}].warning") << 16
        warning = CgmSensorStatus(raw & _WARNING_OCTET_MASK)
    trend = read_sfloat(reader, f"record[{index}].trend") if flags & _CGM_TREND else None
    quality = read_sfloat(reader, f"record[{index}].quality") if flags & _CGM_QUALITY else None
    return CgmRecordFields(
        glucose=glucose,
        time_offset_minutes=time_offset,
        status=status,
        cal_temp=cal_temp,
        warning=warning,
        trend=trend,
        quality=quality,
        e2e_crc=e2e_crc,
    )


def _split_records(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, record bytes) for each record; raises InvalidFrame on a framing error."""
    if not data:
        raise InvalidFrame("empty notification", offset=0, field="record[0].size")
    records: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        index = len(records)
        size = data[offset]
        if size < CGM_RECORD_MIN_SIZE:
            raise InvalidFrame(
                f"size {size} is below the minimum record size {CGM_RECORD_MIN_SIZE}",
                offset=offset,
                field=f"record[{index}].size",
            )
        if offset + size > len(data):
            raise InvalidFrame(
                f"truncated: record of {size} bytes, {len(data) - offset} left",
                offset=offset,
                field=f"record[{index}]",
            )
        records.append((offset, data[offset : offset + size]))
        offset += size
    return records


def parse_cgm_record_fields(data: bytes) -> list[CgmRecordFields]:
    """Decode every record of a CGM Measurement (0x2AA7) notification, strictly.

    Raises:
        CgmCrcError: a record's E2E-CRC does not match (the first such record).
        InvalidFrame: a Size that cannot be right, or a truncated record.
    """
    return [
        _parse_record(record, offset, index)
        for index, (offset, record) in enumerate(_split_records(data))
    ]


def to_measurement(fields: CgmRecordFields, *, session_start: datetime | None) -> Measurement:
    """The measurement a CGM record stands for (see the module's decisions)."""
    sensor_status = fields.sensor_status
    flags: set[str] = set(flag_names(sensor_status))
    context: dict[str, ContextValue] = {"time_offset_minutes": fields.time_offset_minutes}
    trend = secondary_number("trend", fields.trend, flags, context)
    quality = secondary_number("quality", fields.quality, flags, context)
    if quality is not None and not 0.0 <= quality <= QUALITY_MAX_PERCENT:
        flags.add("quality_out_of_range")
        context["quality_as_sent"] = quality
        quality = None
    device_time = None
    if session_start is not None:
        try:
            device_time = session_start + timedelta(minutes=fields.time_offset_minutes)
        except OverflowError:
            flags.add("device_time_invalid")
    values = None
    disposition = Disposition.PATIENT_READING
    if isinstance(fields.glucose, SpecialValue):
        flags.add("glucose_unavailable")
        context["glucose_special"] = fields.glucose.value
        disposition = Disposition.DEVICE_ERROR
    else:
        mmol_per_l = to_canonical(fields.glucose, Unit.MG_PER_DL)
        values = CgmGlucoseValues(
            glucose=mmol_per_l,
            trend=to_canonical(trend, Unit.MG_PER_DL_PER_MIN) if trend is not None else None,
            quality=quality,
        )
        if not GLUCOSE_PLAUSIBLE_MIN_MMOL_PER_L <= mmol_per_l <= GLUCOSE_PLAUSIBLE_MAX_MMOL_PER_L:
            flags.add("glucose_out_of_range")
            disposition = Disposition.DEVICE_ERROR
        elif sensor_status & _RESULT_INVALIDATING:
            disposition = Disposition.DEVICE_ERROR
    return Measurement(
        kind=Kind.CGM_GLUCOSE,
        values=values,
        source_unit=Unit.MG_PER_DL,
        device_time=device_time,
        seq=fields.time_offset_minutes,
        context=context,
        flags=frozenset(flags),
        disposition=disposition,
    )


def parse_cgm_measurements(data: bytes, *, session_start: datetime | None) -> list[Measurement]:
    """Decode a CGM Measurement notification strictly (any CRC failure raises).

    Raises:
        CgmCrcError: a record's E2E-CRC does not match.
        InvalidFrame: a framing error.
    """
    return [
        to_measurement(fields, session_start=session_start)
        for fields in parse_cgm_record_fields(data)
    ]


def parse_cgm_notification(data: bytes, *, session_start: datetime | None) -> CgmParseResult:
    """Decode a CGM Measurement notification, discarding only records whose CRC fails.

    Args:
        data: the notification value (one or more records).
        session_start: the sensor's session start (naive local time, from 0x2AAA), used
            to give each record a ``device_time``; ``None`` leaves ``device_time`` unset.

    Raises:
        InvalidFrame: a framing error (Size field that cannot be right, truncation).
    """
    measurements: list[Measurement] = []
    failures = 0
    for index, (offset, record) in enumerate(_split_records(data)):
        try:
            fields = _parse_record(record, offset, index)
        except CgmCrcError:
            failures += 1
            continue
        measurements.append(to_measurement(fields, session_start=session_start))
    return CgmParseResult(tuple(measurements), failures)


def encode_cgm_record(fields: CgmRecordFields) -> bytes:
    """One CGM record (Size first, E2E-CRC last when ``fields.e2e_crc``).

    Raises:
        UnencodableValue: a field does not fit, or an annunciation octet holds bits of
            another octet.
    """
    octets = (
        (fields.status, _CGM_STATUS_OCTET, _STATUS_OCTET_MASK, 0, "status"),
        (fields.cal_temp, _CGM_CAL_TEMP_OCTET, _CAL_TEMP_OCTET_MASK, 8, "cal_temp"),
        (fields.warning, _CGM_WARNING_OCTET, _WARNING_OCTET_MASK, 16, "warning"),
    )
    flags = (_CGM_TREND if fields.trend is not None else 0) | (
        _CGM_QUALITY if fields.quality is not None else 0
    )
    annunciation = bytearray()
    for octet, flag_bit, mask, shift, name in octets:
        if octet is None:
            continue
        if int(octet) & ~mask:
            raise UnencodableValue("holds bits of another annunciation octet", field=name)
        flags |= flag_bit
        annunciation.append(int(octet) >> shift)
    body = bytearray([_record_layout(flags) + (E2E_CRC_SIZE if fields.e2e_crc else 0), flags])
    body += encode_sfloat(fields.glucose, field="glucose_concentration")
    body += pack_uint(fields.time_offset_minutes, 2, "time_offset")
    body += annunciation
    if fields.trend is not None:
        body += encode_sfloat(fields.trend, field="trend")
    if fields.quality is not None:
        body += encode_sfloat(fields.quality, field="quality")
    if fields.e2e_crc:
        body += crc16_mcrf4xx(bytes(body)).to_bytes(2, "little")
    return bytes(body)


def encode_cgm_records(records: list[CgmRecordFields] | tuple[CgmRecordFields, ...]) -> bytes:
    """Several CGM records back to back, as one notification (simulators, tests)."""
    return b"".join(encode_cgm_record(record) for record in records)


def parse_cgm_feature(data: bytes) -> CgmFeatureFields:
    """Decode CGM Feature (0x2AA8); RFU feature bits are dropped, the CRC is not checked,
    bytes after it are ignored and counted.

    Raises:
        InvalidFrame: fewer than six bytes.
    """
    reader = FieldReader(data)
    features = CgmFeature(reader.uint24("cgm_feature") & _CGM_FEATURE_MASK)
    type_location = reader.uint8("type_sample_location")
    crc = reader.uint16("e2e_crc")
    return CgmFeatureFields(
        features, type_location & 0x0F, type_location >> 4, crc, reader.trailing_bytes()
    )


def encode_cgm_feature(
    features: CgmFeature, *, sample_type: int = 9, sample_location: int = 5
) -> bytes:
    """The CGM Feature value; the E2E-CRC field is computed when ``E2E_CRC`` is set, else
    0xFFFF as the spec requires."""
    if not (0 <= sample_type <= 0x0F and 0 <= sample_location <= 0x0F):
        raise UnencodableValue("type and location are nibbles (0–15)", field="type_sample_location")
    body = pack_uint(int(features), 3, "cgm_feature") + bytes([sample_type | sample_location << 4])
    crc = crc16_mcrf4xx(body) if features & CgmFeature.E2E_CRC else E2E_CRC_NOT_SUPPORTED
    return body + crc.to_bytes(2, "little")


def parse_session_start_time(data: bytes) -> SessionStartTimeFields:
    """Decode CGM Session Start Time (0x2AAA); bytes after the DST offset (an E2E-CRC when
    the sensor sends one) are ignored and counted.

    Raises:
        InvalidFrame: fewer than nine bytes.
    """
    reader = FieldReader(data)
    start = read_date_time(reader, "session_start_time")
    time_zone = reader.sint(1, "time_zone")
    dst = reader.uint8("dst_offset")
    return SessionStartTimeFields(start, time_zone, dst, reader.trailing_bytes())


def encode_session_start_time(fields: SessionStartTimeFields) -> bytes:
    """The CGM Session Start Time value (without E2E-CRC)."""
    return (
        encode_date_time(fields.start, field="session_start_time")
        + pack_sint(fields.time_zone_quarter_hours, 1, "time_zone")
        + pack_uint(fields.dst_offset_quarter_hours, 1, "dst_offset")
        + padding(fields.trailing_bytes)
    )
