"""The InfluxDB schema of readings: Reading → line protocol, and stored rows → StoredReading.

Pure and on ingest's hot path (one call per reading): no ``influxdb_client.Point`` (several
times slower per point; ``docs/storage.md``, "Encoding cost"), plain string building with
escaping only where a value can need it. The schema is documented in ``docs/storage.md``:

* measurement: the reading's kind (``glucose``, ``blood_pressure`` …);
* tags: ``patient_id``, ``device_id`` — low cardinality, never the reading id;
* fields: the values (float; ``rr_intervals`` as a comma-separated string), ``id``,
  ``gateway_id``, ``source_unit``, ``seq`` (integer), ``device_time``, ``flags`` (comma
  string) and ``context`` (JSON) — the last four only when present;
* timestamp (ns): ``measured_at`` in whole milliseconds plus a sub-millisecond offset
  derived from the reading id, so two readings from one device in the same millisecond
  are two points while one reading written twice is one point.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from ingest.stores.base import (
    ContextValue,
    InvalidQuery,
    PointEncodingError,
    StoredReading,
    ValueNumbers,
)
from readings.identity import format_device_time
from readings.model import READING_CLASSES, Kind, Reading, Values

TAG_KEYS: Final = ("patient_id", "device_id")
"""Tags, in the order written. gateway_id is a field: a device re-synced through another
gateway re-sends the same readings, and they must land on the same points."""

META_FIELDS: Final = (
    "id",
    "gateway_id",
    "source_unit",
    "seq",
    "device_time",
    "flags",
    "context",
)
"""Fields besides the values. No value field may share one of these names."""

SUB_MILLISECOND_SLOTS: Final = 1_000_000
"""Nanoseconds in a millisecond: the room the id-derived offset has below ``measured_at``
(which the contract truncates to milliseconds)."""

MAX_INT64: Final = 2**63 - 1
"""Line-protocol integers are signed 64-bit."""

NANOSECONDS_PER_MILLISECOND: Final = 1_000_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MILLISECOND: Final = timedelta(milliseconds=1)
_CONTEXT_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_CONTEXT_DECODER: Final = msgspec.json.Decoder(dict[str, str | int | float | bool])


def _values_class(kind: Kind) -> type[Values]:
    info = msgspec.inspect.type_info(READING_CLASSES[kind])
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        if field.name == "values":
            assert isinstance(field.type, msgspec.inspect.StructType)
            values_cls = field.type.cls
            assert issubclass(values_cls, Values)
            return values_cls
    raise AssertionError(f"{READING_CLASSES[kind].__name__} has no values field")


def _is_sequence_field(field: msgspec.inspect.Field) -> bool:
    field_type = field.type
    options = (
        field_type.types if isinstance(field_type, msgspec.inspect.UnionType) else (field_type,)
    )
    return any(
        isinstance(option, msgspec.inspect.VarTupleType | msgspec.inspect.TupleType)
        for option in options
    )


def _value_fields(kind: Kind) -> dict[str, bool]:
    info = msgspec.inspect.type_info(_values_class(kind))
    assert isinstance(info, msgspec.inspect.StructType)
    return {field.name: _is_sequence_field(field) for field in info.fields}


VALUE_FIELDS: Final[Mapping[Kind, Mapping[str, bool]]] = {
    kind: _value_fields(kind) for kind in Kind
}
"""Value fields of each kind, in declaration order, mapped to "is a series of numbers"."""

NUMERIC_FIELDS: Final[Mapping[Kind, tuple[str, ...]]] = {
    kind: tuple(name for name, is_series in fields.items() if not is_series)
    for kind, fields in VALUE_FIELDS.items()
}
"""The fields of each kind that hold one number (the ones that can be aggregated)."""


def measurement(kind: Kind) -> str:
    """The measurement a kind's readings are written to."""
    return kind.value


def sub_millisecond_offset_ns(reading_id: str) -> int:
    """The nanoseconds a reading's point lies after its millisecond, derived from its id.

    Two distinct ids get the same offset with probability 1 / :data:`SUB_MILLISECOND_SLOTS`;
    that only matters if they also share device, patient, kind and millisecond.
    """
    return int(reading_id.replace("-", ""), 16) % SUB_MILLISECOND_SLOTS


def epoch_milliseconds(value: datetime) -> int:
    """Whole milliseconds since the Unix epoch (exact, no float rounding)."""
    return (value - _EPOCH) // _ONE_MILLISECOND


def from_epoch_milliseconds(milliseconds: int) -> datetime:
    """The UTC datetime ``milliseconds`` after the Unix epoch."""
    return _EPOCH + timedelta(milliseconds=milliseconds)


def timestamp_ns(reading: Reading) -> int:
    """The point's timestamp: ``measured_at`` in ms, plus the id-derived offset, in ns."""
    return epoch_milliseconds(reading.measured_at) * NANOSECONDS_PER_MILLISECOND + (
        sub_millisecond_offset_ns(reading.id)
    )


def escape_tag_value(value: str, *, field: str) -> str:
    """Escape a tag value (``,``, ``=``, space); refuse what line protocol cannot carry.

    Raises:
        PointEncodingError: empty, or holds a line break or a backslash (InfluxDB 1.x does
            not unescape ``\\\\`` in tags, so no escaping would round-trip).
    """
    if not value:
        raise PointEncodingError(field, "empty tag value")
    if "\\" in value or "\n" in value or "\r" in value:
        raise PointEncodingError(field, "holds a backslash or line break")
    if "," in value or " " in value or "=" in value:
        return value.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    return value


def quote_string_field(value: str) -> str:
    """A string field value in double quotes, with ``\\`` and ``"`` escaped."""
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


_FIELDS_BY_CLASS: Final[Mapping[type[Reading], tuple[tuple[str, bool], ...]]] = {
    cls: tuple(VALUE_FIELDS[kind].items()) for kind, cls in READING_CLASSES.items()
}
# The kind is looked up by class: Reading.kind builds a Kind from the tag on every call.
_MEASUREMENT_BY_CLASS: Final[Mapping[type[Reading], str]] = {
    cls: measurement(kind) for kind, cls in READING_CLASSES.items()
}


def to_line(reading: Reading) -> str:
    """One reading as one line of line protocol (no trailing newline).

    Raises:
        PointEncodingError: a field cannot be written (only possible for a reading that
            was built without the contract's validation).
    """
    return encode_point(reading, {})[0]


SeriesCache = dict[tuple[type[Reading], str, str], str]
"""Line-protocol series keys (``measurement,patient_id=…,device_id=…``) already built, by
class, patient and device: a batch holds few series (a gateway's few devices), so each
key is escaped once per batch instead of once per reading."""


def encode_point(reading: Reading, series: SeriesCache) -> tuple[str, int]:
    """One reading's line of line protocol and its timestamp (ns), for a batch's writer.

    Args:
        reading: the reading.
        series: the batch's cache of series keys (start each batch with ``{}``).

    Raises:
        PointEncodingError: a field cannot be written (only possible for a reading that
            was built without the contract's validation).
    """
    cls = type(reading)
    values = reading.values
    fields = ""
    for name, is_series in _FIELDS_BY_CLASS[cls]:
        value = getattr(values, name)
        if value is None:
            continue
        if is_series:
            # repr: the shortest text that parses back to the same float.
            fields += f'{name}="{",".join(map(repr, value))}",'
        else:
            # A value given as an int (a Values struct built in Python) is written
            # without the "i" suffix, which line protocol reads as a float.
            fields += f"{name}={value!r},"
    reading_id = reading.id
    fields += (
        f'id="{reading_id}",gateway_id={quote_string_field(reading.gateway_id)},'
        f"source_unit={quote_string_field(reading.source_unit)}"
    )
    seq = reading.seq
    if seq is not None:
        if not 0 <= seq <= MAX_INT64:
            raise PointEncodingError("seq", "outside the signed 64-bit range")
        fields += f",seq={seq}i"
    if reading.device_time is not None:
        fields += f',device_time="{format_device_time(reading.device_time)}"'
    if reading.flags:
        fields += f",flags={quote_string_field(','.join(reading.flags))}"
    if reading.context:
        context = _CONTEXT_ENCODER.encode(reading.context).decode()
        fields += f",context={quote_string_field(context)}"
    key = (cls, reading.patient_id, reading.device_id)
    prefix = series.get(key)
    if prefix is None:
        patient = escape_tag_value(reading.patient_id, field="patient_id")
        device = escape_tag_value(reading.device_id, field="device_id")
        measurement_name = _MEASUREMENT_BY_CLASS[cls]
        prefix = series[key] = f"{measurement_name},patient_id={patient},device_id={device}"
    # measured_at carries whole milliseconds (the contract truncates it); round() undoes
    # the float's representation error, which is far below a millisecond until year 9999.
    milliseconds = round(reading.measured_at.timestamp() * 1000)
    offset = int(reading_id.replace("-", ""), 16) % SUB_MILLISECOND_SLOTS
    timestamp = milliseconds * NANOSECONDS_PER_MILLISECOND + offset
    return f"{prefix} {fields} {timestamp}", timestamp


def _numbers(value: Any, *, is_series: bool) -> ValueNumbers:
    if is_series:
        return tuple(float(number) for number in str(value).split(","))
    return float(value)


def bound_ns(value: datetime) -> int:
    """The point timestamp that ``value`` maps to as a range bound.

    ``measured_at >= value`` exactly when the point's timestamp is ``>= bound_ns(value)``,
    and likewise for ``<``: the bound is ``value`` rounded up to the millisecond, in ns.
    """
    microseconds = (value - _EPOCH) // timedelta(microseconds=1)
    return -(-microseconds // 1000) * NANOSECONDS_PER_MILLISECOND


def from_timestamp_ns(timestamp: int) -> datetime:
    """``measured_at`` of a point with this epoch-ns timestamp (the offset dropped)."""
    return from_epoch_milliseconds(timestamp // NANOSECONDS_PER_MILLISECOND)


def stored_reading(kind: Kind, measured_at: datetime, row: Mapping[str, Any]) -> StoredReading:
    """Rebuild a reading from one stored point: its tags and fields by name.

    ``measured_at`` is the point's time (any sub-millisecond part is dropped). Absent
    fields may be missing from ``row`` or ``None``.
    """
    if measured_at.microsecond % 1000 or measured_at.tzinfo is not UTC:
        measured_at = measured_at.astimezone(UTC)
        measured_at = measured_at.replace(microsecond=measured_at.microsecond // 1000 * 1000)
    values: dict[str, ValueNumbers] = {}
    for name, is_series in VALUE_FIELDS[kind].items():
        value = row.get(name)
        if value is not None:
            values[name] = _numbers(value, is_series=is_series)
    seq = row.get("seq")
    device_time = row.get("device_time")
    flags = row.get("flags")
    context = row.get("context")
    return StoredReading(
        id=str(row["id"]),
        kind=kind,
        patient_id=str(row["patient_id"]),
        device_id=str(row["device_id"]),
        gateway_id=str(row["gateway_id"]),
        measured_at=measured_at,
        values=values,
        source_unit=str(row["source_unit"]),
        flags=tuple(str(flags).split(",")) if flags else (),
        seq=int(seq) if seq is not None else None,
        device_time=datetime.fromisoformat(device_time) if device_time else None,
        context=decode_context(context) if context else {},
    )


def decode_context(text: str) -> dict[str, ContextValue]:
    """The context mapping from its stored JSON text."""
    return _CONTEXT_DECODER.decode(text)


def check_value_field(kind: Kind, field: str) -> None:
    """Raise :class:`~ingest.stores.base.InvalidQuery` unless ``field`` is numeric for ``kind``."""
    if field not in NUMERIC_FIELDS[kind]:
        known = ", ".join(NUMERIC_FIELDS[kind])
        raise InvalidQuery("field", f"{field!r} is not a numeric field of {kind} ({known})")
