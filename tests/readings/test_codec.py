"""The payload codec: round trips, and every kind of bad payload named precisely."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from readings.codec import (
    MAX_PAYLOAD_BYTES,
    MAX_READINGS_PER_ENVELOPE,
    AckMessage,
    EventMessage,
    EventType,
    GatewayState,
    PairCommand,
    QuarantineNotice,
    StatusMessage,
    decode_envelope,
    decode_message,
    decode_readings_partial,
    encode_envelope,
    encode_message,
    encode_reading,
)
from readings.errors import InvalidReading, PayloadError
from readings.model import GlucoseValues, Kind, Reading, new_reading
from tests.readings.strategies import readings

SENT_AT = datetime(2026, 11, 23, 8, 0, 0, 250000, tzinfo=UTC)


def _glucose(seq: int = 1, **overrides: Any) -> Reading:
    arguments: dict[str, Any] = {
        "values": GlucoseValues(glucose=5.5),
        "source_unit": "mmol/L",
        "measured_at": datetime(2026, 11, 23, 7, 59, tzinfo=UTC),
        "received_at": datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        "device_id": "Roche-Accu_Chek_Guide-92310000123",
        "patient_id": "patient-0001",
        "gateway_id": "gw-0001",
        "device_time": datetime(2026, 11, 23, 15, 59),
        "seq": seq,
    }
    arguments.update(overrides)
    return new_reading(**arguments)


def _payload(readings: list[Reading] | None = None) -> dict[str, Any]:
    body = encode_envelope("gw-0001", SENT_AT, readings or [_glucose(1), _glucose(2)])
    return json.loads(body)


@settings(max_examples=300)
@given(batch=st.lists(readings(gateway_id="gw-0001"), min_size=1, max_size=5))
def test_every_kind_round_trips_through_the_codec(batch: list[Reading]) -> None:
    decoded = decode_envelope(encode_envelope("gw-0001", SENT_AT, batch))
    assert decoded.readings == batch
    assert decoded.gateway_id == "gw-0001"


@given(reading=readings())
def test_single_reading_encoding_is_stable(reading: Reading) -> None:
    again = msgspec.json.decode(encode_reading(reading))
    assert again["kind"] == reading.kind.value
    assert encode_reading(reading) == encode_reading(reading)


def test_timestamps_are_utc_with_milliseconds() -> None:
    document = _payload()
    assert document["sent_at"] == "2026-11-23T08:00:00.250Z"
    assert document["readings"][0]["measured_at"] == "2026-11-23T07:59:00.000Z"
    assert document["readings"][0]["device_time"] == "2026-11-23T15:59:00.000"


def test_absent_optional_values_are_absent_not_zero() -> None:
    document = _payload()
    assert document["readings"][0]["values"] == {"glucose": 5.5}


def test_offsets_are_normalised_to_utc() -> None:
    document = _payload()
    document["sent_at"] = "2026-11-23T16:00:00.250+08:00"
    assert decode_envelope(json.dumps(document).encode()).sent_at == SENT_AT


def _mutate(path: list[Any], value: Any, *, delete: bool = False) -> bytes:
    document = _payload()
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document).encode()


_MISSING = object()

BAD_PAYLOADS: list[tuple[str, bytes, str, str]] = [
    ("bad JSON", b'{"v": 1, "gateway_id": ', "$", "not valid JSON"),
    ("not an object", b"[1, 2, 3]", "$", "expected object"),
    ("NaN literal", _mutate(["v"], 1).replace(b'"glucose": 5.5', b'"glucose": NaN'), "$", "JSON"),
    ("unknown version", _mutate(["v"], 2), "$.v", "unsupported payload version 2"),
    ("version as text", _mutate(["v"], "1"), "$.v", "expected an integer version"),
    ("missing version", _mutate(["v"], None, delete=True), "$.v", "missing"),
    ("missing gateway id", _mutate(["gateway_id"], None, delete=True), "$.gateway_id", "missing"),
    ("gateway id with slash", _mutate(["gateway_id"], "gw/2"), "$.gateway_id", "regex"),
    ("naive sent_at", _mutate(["sent_at"], "2026-11-23T08:00:00"), "$.sent_at", "timezone"),
    ("sent_at not a time", _mutate(["sent_at"], "yesterday"), "$.sent_at", "datetime"),
    ("empty batch", _mutate(["readings"], []), "$.readings", "length >= 1"),
    ("readings not a list", _mutate(["readings"], {}), "$.readings", "expected array"),
    ("unknown envelope field", _mutate(["priority"], "high"), "$.priority", "unknown field"),
    (
        "unknown kind",
        _mutate(["readings", 0, "kind"], "blood_sugar"),
        "$.readings[0].kind",
        "unknown kind",
    ),
    (
        "missing kind",
        _mutate(["readings", 0, "kind"], None, delete=True),
        "$.readings[0].kind",
        "missing",
    ),
    (
        "unknown value field",
        _mutate(["readings", 0, "values", "ketones"], 0.4),
        "$.readings[0].values.ketones",
        "unknown field",
    ),
    (
        "missing value field",
        _mutate(["readings", 1, "values", "glucose"], None, delete=True),
        "$.readings[1].values.glucose",
        "missing",
    ),
    (
        "value of the wrong type",
        _mutate(["readings", 0, "values", "glucose"], "5.5"),
        "$.readings[0].values.glucose",
        "expected float",
    ),
    (
        "infinite value",
        _mutate(["v"], 1).replace(b'"glucose": 5.5', b'"glucose": 1e999', 1),
        "$.readings[0].values.glucose",
        "out of range",
    ),
    (
        "negative concentration",
        _mutate(["readings", 0, "values", "glucose"], -1.0),
        "$.readings[0].values.glucose",
        "> 0",
    ),
    (
        "unit of another kind",
        _mutate(["readings", 0, "source_unit"], "mm[Hg]"),
        "$.readings[0].source_unit",
        "not a unit of glucose",
    ),
    (
        "naive measured_at",
        _mutate(["readings", 0, "measured_at"], "2026-11-23T07:59:00.000"),
        "$.readings[0].measured_at",
        "timezone",
    ),
    (
        "device time with an offset",
        _mutate(["readings", 0, "device_time"], "2026-11-23T15:59:00.000Z"),
        "$.readings[0].device_time",
        "timezone",
    ),
    (
        "id not derived from the record",
        _mutate(["readings", 0, "seq"], 99),
        "$.readings[0].id",
        "not the id derived",
    ),
    (
        "id not a UUID",
        _mutate(["readings", 0, "id"], "reading-1"),
        "$.readings[0].id",
        "regex",
    ),
    (
        "reading from another gateway",
        _mutate(["readings", 1, "gateway_id"], "gw-0002"),
        "$.readings[1].gateway_id",
        "differs from the envelope",
    ),
    (
        "negative sequence number",
        _mutate(["readings", 0, "seq"], -1),
        "$.readings[0].seq",
        ">= 0",
    ),
    (
        "flag that is not a name",
        _mutate(["readings", 0, "flags"], ["Cuff Loose"]),
        "$.readings[0].flags[0]",
        "regex",
    ),
    (
        "patient id with a wildcard",
        _mutate(["readings", 0, "patient_id"], "#"),
        "$.readings[0].patient_id",
        "regex",
    ),
]


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [case[1:] for case in BAD_PAYLOADS],
    ids=[case[0] for case in BAD_PAYLOADS],
)
def test_bad_payload_is_rejected_naming_the_field(payload: bytes, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_envelope(payload)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_oversize_batch_is_rejected() -> None:
    batch = [_glucose(seq) for seq in range(MAX_READINGS_PER_ENVELOPE + 1)]
    document = _payload(batch[:1])
    document["readings"] = [json.loads(encode_reading(r)) for r in batch]
    payload = json.dumps(document, separators=(",", ":")).encode()
    assert len(payload) <= MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadError) as caught:
        decode_envelope(payload)
    assert caught.value.field == "$.readings"
    assert f"length <= {MAX_READINGS_PER_ENVELOPE}" in caught.value.problem


def test_oversize_payload_is_refused_unread() -> None:
    with pytest.raises(PayloadError, match="bytes, the limit is"):
        decode_envelope(b" " * (MAX_PAYLOAD_BYTES + 1))


def test_partial_decode_keeps_the_good_readings() -> None:
    document = _payload([_glucose(1), _glucose(2), _glucose(3)])
    document["readings"][1]["values"]["glucose"] = "high"
    decoded = decode_readings_partial(json.dumps(document).encode())
    assert [reading.seq for reading in decoded.readings] == [1, 3]
    assert len(decoded.rejected) == 1
    rejected = decoded.rejected[0]
    assert rejected.index == 1
    assert rejected.error.field == "$.readings[1].values.glucose"
    assert rejected.reading_id == document["readings"][1]["id"]
    assert json.loads(rejected.raw) == document["readings"][1]


def test_partial_decode_still_refuses_a_bad_envelope() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_readings_partial(_mutate(["v"], 3))
    assert caught.value.field == "$.v"


def test_building_a_bad_reading_in_python_names_the_field() -> None:
    with pytest.raises(InvalidReading) as caught:
        _glucose(patient_id="no/slashes")
    assert caught.value.field == "patient_id"
    with pytest.raises(InvalidReading) as naive:
        _glucose(measured_at=datetime(2026, 11, 23, 7, 59))
    assert naive.value.field == "measured_at"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_building_a_reading_with_a_non_finite_value_names_the_field(number: float) -> None:
    with pytest.raises(InvalidReading) as caught:
        _glucose(values=GlucoseValues(glucose=number))
    assert caught.value.field == "values.glucose"


def test_reading_kind_follows_its_class() -> None:
    assert _glucose().kind is Kind.GLUCOSE


def test_messages_round_trip() -> None:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    messages = [
        AckMessage(
            gateway_id="gw-0001",
            acked_at=at,
            ids=[_glucose().id],
            quarantined=[QuarantineNotice(id=None, index=2, reason="plausibility")],
        ),
        StatusMessage(gateway_id="gw-0001", state=GatewayState.ONLINE, at=at, queue_depth=3),
        EventMessage(gateway_id="gw-0001", at=at, event=EventType.CLOCK_CORRECTED),
        PairCommand(patient_id="patient-0001", window_seconds=60),
    ]
    for message in messages:
        encoded = encode_message(message)
        assert json.loads(encoded)["v"] == 1
        assert decode_message(encoded, type(message)) == message


def test_message_with_unknown_version_is_rejected() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_message(b'{"v": 2, "patient_id": "p1"}', PairCommand)
    assert caught.value.field == "$.v"


def test_pairing_window_is_bounded() -> None:
    with pytest.raises(PayloadError) as caught:
        decode_message(b'{"v": 1, "patient_id": "p1", "window_seconds": 86400}', PairCommand)
    assert caught.value.field == "$.window_seconds"
