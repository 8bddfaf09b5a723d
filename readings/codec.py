"""Payload codec, version 1: the JSON that travels on the contract's topics.

A readings payload is an envelope::

    {"v": 1, "gateway_id": "gw-0001", "sent_at": "2026-11-23T08:00:00.000Z",
     "readings": [ {reading}, … ]}

holding 1 to :data:`MAX_READINGS_PER_ENVELOPE` readings and at most
:data:`MAX_PAYLOAD_BYTES` bytes. Timestamps are UTC, ISO 8601 with milliseconds
(``…T08:00:00.000Z``); ``device_time`` is the device's wall clock without offset.

Decoding never trusts the payload: every error is a :class:`~readings.errors.PayloadError`
naming the field (as a JSON path) and the problem. :func:`decode_readings_partial` keeps
the good readings of a batch and reports each bad one on its own, so one bad reading never
blocks the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, TypeVar

import msgspec

from readings.errors import InvalidReading, PayloadError, payload_error_from_msgspec
from readings.model import (
    NAME_PATTERN,
    AnyReading,
    DeviceId,
    GatewayId,
    PatientId,
    Reading,
    ReadingId,
    UtcTime,
)

WIRE_VERSION: Final = 1
MAX_READINGS_PER_ENVELOPE: Final = 1000
"""Bounds the work one message can cause at ingest; a gateway splits larger backlogs."""
MAX_PAYLOAD_BYTES: Final = 512 * 1024
"""≈ 1,000 readings of ≈ 400 bytes with room to spare; anything larger is refused unread."""
MAX_IDS_PER_ACK: Final = 10_000


def format_utc(value: datetime) -> str:
    """A UTC timestamp as the wire writes it: ``2026-11-23T08:00:00.123Z``.

    On ingest's republishing path for every reading: ``isoformat`` is a third faster than
    ``strftime``.
    """
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _format_local(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


class _Struct(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    pass


class Envelope(_Struct, frozen=True, kw_only=True):
    """A batch of readings from one gateway."""

    v: int
    gateway_id: GatewayId
    sent_at: UtcTime
    readings: Annotated[
        list[AnyReading], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_ENVELOPE)
    ]

    def __post_init__(self) -> None:
        _check_version(self.v)
        for index, reading in enumerate(self.readings):
            _check_same_gateway(reading, self.gateway_id, f"readings[{index}].gateway_id")


class _EnvelopeHeader(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    gateway_id: GatewayId
    sent_at: UtcTime
    readings: Annotated[list[Any], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_ENVELOPE)]

    def __post_init__(self) -> None:
        _check_version(self.v)


class _RawEnvelope(msgspec.Struct, frozen=True):
    """The envelope with each reading left as its received bytes (a slice of the payload).

    Only decoded after the payload passed a typed decode, so it cannot fail then; msgspec
    skips over each reading without building anything (≈ 0.1 µs a reading)."""

    readings: list[msgspec.Raw]


class _VersionProbe(msgspec.Struct):
    v: Any = None


def _check_version(version: int) -> None:
    if version != WIRE_VERSION:
        raise InvalidReading(
            "v",
            f"unsupported payload version {version} (this consumer speaks version {WIRE_VERSION})",
        )


def _check_same_gateway(reading: Reading, gateway_id: str, field: str) -> None:
    if reading.gateway_id != gateway_id:
        raise InvalidReading(
            field, f"{reading.gateway_id!r} differs from the envelope's gateway_id {gateway_id!r}"
        )


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(Envelope)
_HEADER_DECODER: Final = msgspec.json.Decoder(_EnvelopeHeader)
_PROBE_DECODER: Final = msgspec.json.Decoder(_VersionProbe)
_RAW_DECODER: Final = msgspec.json.Decoder(_RawEnvelope)
_ENCODER: Final = msgspec.json.Encoder()


def _check_size(payload: bytes) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            "$", f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}"
        )


def _version_error(payload: bytes) -> PayloadError | None:
    """A clear 'unknown version' error even when a newer version's body would not decode."""
    try:
        probe = _PROBE_DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if probe.v is None:
        return PayloadError("$.v", "required field is missing")
    if type(probe.v) is not int:
        return PayloadError("$.v", f"expected an integer version, got {probe.v!r}")
    if probe.v != WIRE_VERSION:
        return PayloadError(
            "$.v",
            f"unsupported payload version {probe.v} (this consumer speaks version {WIRE_VERSION})",
        )
    return None


def decode_envelope(payload: bytes) -> Envelope:
    """Decode a readings payload, all or nothing.

    Raises:
        PayloadError: naming the first offending field.
    """
    _check_size(payload)
    try:
        return _ENVELOPE_DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise (_version_error(payload) or payload_error_from_msgspec(exc)) from None


@dataclass(frozen=True, slots=True)
class RejectedReading:
    """A reading of a batch that broke the contract.

    Attributes:
        index: its position in the envelope's ``readings``.
        raw: its JSON as received (re-encoded from the parsed value).
        error: what is wrong, with the field as a path from the payload root.
        reading_id: its ``id`` if it had a string there, so the sender can be told.
    """

    index: int
    raw: bytes
    error: PayloadError
    reading_id: str | None


@dataclass(frozen=True, slots=True)
class PartialDecode:
    """The outcome of :func:`decode_readings_partial`."""

    gateway_id: str
    sent_at: datetime
    readings: Sequence[Reading]
    rejected: Sequence[RejectedReading]
    received: Sequence[msgspec.Raw] = ()
    """Each good reading's JSON exactly as received (a slice of the payload, wire form),
    aligned with ``readings``: what ingest forwards on ``accepted/`` without re-encoding."""


def decode_readings_partial(payload: bytes) -> PartialDecode:
    """Decode a readings payload, keeping every good reading of the batch.

    The envelope itself (JSON, version, gateway id, timestamp, batch bounds) must be
    sound; each reading is then judged on its own.

    Raises:
        PayloadError: the envelope is unusable (nothing in it can be trusted).
    """
    _check_size(payload)
    try:
        envelope = _ENVELOPE_DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    else:
        received = _RAW_DECODER.decode(payload).readings
        return PartialDecode(envelope.gateway_id, envelope.sent_at, envelope.readings, (), received)
    try:
        header = _HEADER_DECODER.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise (_version_error(payload) or payload_error_from_msgspec(exc)) from None
    good: list[Reading] = []
    good_received: list[msgspec.Raw] = []
    rejected: list[RejectedReading] = []
    slices = _RAW_DECODER.decode(payload).readings
    for index, item in enumerate(header.readings):
        prefix = f"$.readings[{index}]"
        try:
            reading: Reading = msgspec.convert(item, AnyReading)
            _check_same_gateway(reading, header.gateway_id, "gateway_id")
        except (msgspec.ValidationError, InvalidReading) as exc:
            if isinstance(exc, InvalidReading):
                error = PayloadError(f"{prefix}.{exc.field}", exc.problem)
            else:
                error = payload_error_from_msgspec(exc, prefix=prefix)
            candidate = item.get("id") if isinstance(item, dict) else None
            rejected.append(
                RejectedReading(
                    index=index,
                    raw=_ENCODER.encode(item),
                    error=error,
                    reading_id=candidate if isinstance(candidate, str) else None,
                )
            )
        else:
            good.append(reading)
            good_received.append(slices[index])
    return PartialDecode(header.gateway_id, header.sent_at, good, rejected, good_received)


def reading_to_builtins(reading: Reading) -> dict[str, Any]:
    """A reading as JSON-ready builtins, timestamps in the wire's millisecond form."""
    data: dict[str, Any] = msgspec.to_builtins(reading, builtin_types=(datetime,))
    data["measured_at"] = format_utc(reading.measured_at)
    data["received_at"] = format_utc(reading.received_at)
    if reading.device_time is not None:
        data["device_time"] = _format_local(reading.device_time)
    return data


def encode_reading(reading: Reading) -> bytes:
    """One reading as JSON: what the gateway stores in its outbox, once, at capture."""
    return _ENCODER.encode(reading_to_builtins(reading))


def encode_envelope_from_encoded(
    gateway_id: str, sent_at: datetime, encoded_readings: Sequence[bytes | msgspec.Raw]
) -> bytes:
    """An envelope around readings already encoded (by :func:`encode_reading`, or as
    received: :attr:`PartialDecode.received`).

    The publisher's and ingest's hot path: no reading is decoded or re-encoded to build a
    batch.
    """
    if not 1 <= len(encoded_readings) <= MAX_READINGS_PER_ENVELOPE:
        count = len(encoded_readings)
        raise ValueError(f"an envelope holds 1..{MAX_READINGS_PER_ENVELOPE} readings, not {count}")
    head = _ENCODER.encode(
        {"v": WIRE_VERSION, "gateway_id": gateway_id, "sent_at": format_utc(sent_at)}
    )
    return head[:-1] + b',"readings":[' + b",".join(encoded_readings) + b"]}"


def encode_envelope(gateway_id: str, sent_at: datetime, readings: Iterable[Reading]) -> bytes:
    """A readings payload."""
    return encode_envelope_from_encoded(
        gateway_id, sent_at, [encode_reading(reading) for reading in readings]
    )


# --- acknowledgements, status, events, commands ---------------------------------------


class _Message(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Messages spell out every field, ``v`` and nulls included, for third-party readers."""


class QuarantineNotice(_Message, frozen=True, kw_only=True):
    """A reading ingest did not store but kept in quarantine, and why."""

    id: ReadingId | None = None
    index: int
    reason: str


class AckMessage(_Message, frozen=True, kw_only=True):
    """End-to-end acknowledgement, ingest → gateway (``gw/{id}/ack``).

    ``ids`` are the readings now durably handled: stored, or kept in quarantine with the
    raw payload. The gateway may delete exactly these from its outbox. ``quarantined``
    says which of them were not stored, and why.
    """

    v: int = WIRE_VERSION
    gateway_id: GatewayId
    acked_at: UtcTime
    ids: Annotated[list[ReadingId], msgspec.Meta(max_length=MAX_IDS_PER_ACK)]
    quarantined: list[QuarantineNotice] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_version(self.v)


class GatewayState(StrEnum):
    """Whether a gateway is connected."""

    ONLINE = "online"
    OFFLINE = "offline"


class DeviceStatus(_Message, frozen=True, kw_only=True):
    """What a gateway knows of one paired device."""

    device_id: DeviceId
    state: Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
    """``connected``, ``idle``, ``backoff``, ``error`` …"""
    last_contact: UtcTime | None = None
    battery_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    readings_not_stored: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Live measurements of this device the gateway could not store since it started (a
    full outbox, a failing disk); each was also announced as a ``readings_not_stored``
    event."""
    readings_lost: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Of those, the ones the device keeps no copy of, so no later download brings them
    back (a continuous stream, a device without a record memory)."""


class StatusMessage(_Message, frozen=True, kw_only=True):
    """A gateway's retained status (``gw/{id}/status``); the offline form is also its will."""

    v: int = WIRE_VERSION
    gateway_id: GatewayId
    state: GatewayState
    at: UtcTime | None = None
    queue_depth: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Readings in the outbox not yet acknowledged end to end."""
    oldest_unacked_age_seconds: Annotated[float, msgspec.Meta(ge=0)] | None = None
    outbox_bytes: Annotated[int, msgspec.Meta(ge=0)] | None = None
    outbox_quota_bytes: Annotated[int, msgspec.Meta(ge=0)] | None = None
    over_quota: bool = False
    """The outbox reached its disk quota: new low-value telemetry is refused, clinical
    readings still kept (see the gateway docs)."""
    devices: list[DeviceStatus] = msgspec.field(default_factory=list)
    software_version: str | None = None

    def __post_init__(self) -> None:
        _check_version(self.v)


class EventType(StrEnum):
    """What a gateway reports on ``gw/{id}/events``."""

    PAIRED = "paired"
    UNPAIRED = "unpaired"
    PAIRING_WINDOW_OPENED = "pairing_window_opened"
    PAIRING_WINDOW_CLOSED = "pairing_window_closed"
    DEVICE_ERROR = "device_error"
    BATTERY_LOW = "battery_low"
    CLOCK_CORRECTED = "clock_corrected"
    CLOCK_SET = "clock_set"
    CONTROL_SOLUTION_TEST = "control_solution_test"
    MEASUREMENT_FAILED = "measurement_failed"
    OUTBOX_OVER_QUOTA = "outbox_over_quota"
    OUTBOX_BELOW_QUOTA = "outbox_below_quota"
    READINGS_QUARANTINED = "readings_quarantined"
    READINGS_NOT_STORED = "readings_not_stored"
    """A live measurement could not be stored on the gateway; ``kept_on_device`` says
    whether the next download fetches it again."""


class EventMessage(_Message, frozen=True, kw_only=True):
    """One gateway event. ``detail`` holds no health values (events are not readings)."""

    v: int = WIRE_VERSION
    gateway_id: GatewayId
    at: UtcTime
    event: EventType
    device_id: DeviceId | None = None
    detail: dict[Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)], str | int | float | bool] = (
        msgspec.field(default_factory=dict)
    )

    def __post_init__(self) -> None:
        _check_version(self.v)


MAX_PAIRING_WINDOW_SECONDS: Final = 900
"""A pairing window longer than 15 minutes leaves a Just-Works meter exposed for too long."""


class PairCommand(_Message, frozen=True, kw_only=True):
    """``cmd/pair``: open a pairing window; devices found in it are bound to ``patient_id``."""

    v: int = WIRE_VERSION
    patient_id: PatientId
    window_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAIRING_WINDOW_SECONDS)] = 120
    profile: str | None = None
    """Only pair devices of this profile (model id), if given."""

    def __post_init__(self) -> None:
        _check_version(self.v)


class UnpairCommand(_Message, frozen=True, kw_only=True):
    """``cmd/unpair``: forget a device; its readings are no longer forwarded."""

    v: int = WIRE_VERSION
    device_id: DeviceId

    def __post_init__(self) -> None:
        _check_version(self.v)


class SyncTimeCommand(_Message, frozen=True, kw_only=True):
    """``cmd/sync_time``: read every device clock now and correct or set it."""

    v: int = WIRE_VERSION

    def __post_init__(self) -> None:
        _check_version(self.v)


class ReloadConfigCommand(_Message, frozen=True, kw_only=True):
    """``cmd/reload_config``: re-read the gateway configuration file."""

    v: int = WIRE_VERSION

    def __post_init__(self) -> None:
        _check_version(self.v)


MessageT = TypeVar(
    "MessageT",
    AckMessage,
    StatusMessage,
    EventMessage,
    PairCommand,
    UnpairCommand,
    SyncTimeCommand,
    ReloadConfigCommand,
)


def encode_message(message: _Message) -> bytes:
    """Any non-readings message of the contract as JSON (timestamps to the millisecond)."""
    data = msgspec.to_builtins(message, builtin_types=(datetime,))
    return _ENCODER.encode(_format_times(data))


def _format_times(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, dict):
        return {key: _format_times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_format_times(item) for item in value]
    return value


def decode_message(payload: bytes, message_type: type[MessageT]) -> MessageT:
    """Decode an ack, status, event or command payload.

    Raises:
        PayloadError: naming the offending field.
    """
    _check_size(payload)
    try:
        return msgspec.json.decode(payload, type=message_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise (_version_error(payload) or payload_error_from_msgspec(exc)) from None


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_READINGS_PER_ENVELOPE",
    "WIRE_VERSION",
    "AckMessage",
    "DeviceStatus",
    "Envelope",
    "EventMessage",
    "EventType",
    "GatewayState",
    "PairCommand",
    "PartialDecode",
    "QuarantineNotice",
    "RejectedReading",
    "ReloadConfigCommand",
    "StatusMessage",
    "SyncTimeCommand",
    "UnpairCommand",
    "decode_envelope",
    "decode_message",
    "decode_readings_partial",
    "encode_envelope",
    "encode_envelope_from_encoded",
    "encode_message",
    "encode_reading",
    "format_utc",
    "reading_to_builtins",
]
