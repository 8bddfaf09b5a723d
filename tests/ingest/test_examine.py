"""The examination of a message, fed data: no broker, no store, no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from ingest.examine import (
    BEFORE_BINDING_DETAIL,
    GATEWAY_MISMATCH,
    Decision,
    Verdict,
    examine_message,
    notice_reason,
    refuse_stored,
)
from ingest.validate import DEFAULT_LIMITS, PlausibilityLimits
from readings.codec import (
    QuarantineNotice,
    decode_readings_partial,
    encode_envelope,
    encode_reading,
    reading_to_builtins,
)
from readings.model import BloodPressureValues, GlucoseValues, Reading, new_reading
from readings.topics import readings_topic
from readings.units import Unit
from registry.errors import RegistryUnavailable
from registry.ownership import OwnershipVerdict
from registry.quarantine import QuarantineReason

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TOPIC = readings_topic("gw1")
METER = "Acme-Meter-0001"
BEFORE_BINDING = QuarantineReason.BEFORE_BINDING.value
"""The value of ``OwnershipVerdict.BEFORE_BINDING`` (a str enum, compared by value)."""


@dataclass
class FedOwnership:
    """The registry's answers, fed per device; every question is recorded."""

    verdicts: dict[str, str] = field(default_factory=dict)
    asked: list[tuple[str, str, str, datetime]] = field(default_factory=list)

    def check(self, gateway_id: str, device_id: str, patient_id: str, at: datetime) -> str:
        self.asked.append((gateway_id, device_id, patient_id, at))
        return self.verdicts.get(device_id, OwnershipVerdict.OK)


class UnreachableRegistry:
    def check(self, gateway_id: str, device_id: str, patient_id: str, at: datetime) -> str:
        raise RegistryUnavailable("connection refused")


def glucose(seq: int, *, device_id: str = METER, value: float = 6.1, **kw: Any) -> Reading:
    return new_reading(
        values=GlucoseValues(glucose=value),
        source_unit=Unit.MMOL_PER_L,
        measured_at=kw.get("measured_at", NOW - timedelta(minutes=30 - seq)),
        received_at=NOW - timedelta(minutes=1),
        device_id=device_id,
        patient_id=kw.get("patient_id", "p1"),
        gateway_id=kw.get("gateway_id", "gw1"),
        seq=seq,
    )


def examine(
    payload: bytes,
    ownership: FedOwnership | None = None,
    *,
    topic: str = TOPIC,
    limits: PlausibilityLimits = DEFAULT_LIMITS,
    accept_before_binding: bool = False,
) -> Any:
    return examine_message(
        topic,
        payload,
        ownership=ownership if ownership is not None else FedOwnership(),
        limits=limits,
        now=NOW,
        accept_before_binding=accept_before_binding,
    )


def envelope(*readings: Reading, gateway_id: str = "gw1") -> bytes:
    return encode_envelope(gateway_id, NOW, list(readings))


def verdicts(examination: Any) -> list[tuple[int | None, Verdict]]:
    return [(decision.index, decision.verdict) for decision in examination.decisions]


def test_good_readings_are_to_be_stored_in_envelope_order() -> None:
    readings = [glucose(seq) for seq in range(3)]
    ownership = FedOwnership()
    examination = examine(envelope(*readings), ownership)
    assert verdicts(examination) == [(0, Verdict.STORE), (1, Verdict.STORE), (2, Verdict.STORE)]
    assert [decision.reading for decision in examination.to_store] == readings
    assert examination.refused == []
    assert examination.readings_received == 3
    assert examination.gateway_id == "gw1"
    assert all(decision.notice is None for decision in examination.decisions)
    assert ownership.asked == [("gw1", METER, "p1", r.measured_at) for r in readings]


def test_the_examination_is_a_function_of_its_inputs() -> None:
    payload = envelope(glucose(1), glucose(2, device_id="Evil-Meter-1"))
    ownership = FedOwnership({"Evil-Meter-1": OwnershipVerdict.UNKNOWN_DEVICE})
    assert examine(payload, ownership) == examine(payload, ownership)


@pytest.mark.parametrize(
    "verdict",
    [
        OwnershipVerdict.UNKNOWN_GATEWAY,
        OwnershipVerdict.INACTIVE_GATEWAY,
        OwnershipVerdict.UNKNOWN_DEVICE,
        OwnershipVerdict.DEVICE_NOT_PAIRED_TO_GATEWAY,
        OwnershipVerdict.WRONG_PATIENT,
        OwnershipVerdict.NOT_PAIRED_AT_MEASURED_AT,
    ],
)
def test_an_ownership_refusal_names_the_check_that_failed(verdict: OwnershipVerdict) -> None:
    good, refused = glucose(1), glucose(2, device_id="Other-Meter-2", patient_id="p2")
    examination = examine(envelope(good, refused), FedOwnership({"Other-Meter-2": verdict}))
    assert verdicts(examination) == [(0, Verdict.STORE), (1, Verdict.OWNERSHIP)]
    (decision,) = examination.refused
    entry = decision.entry
    assert entry is not None
    assert (entry.reason, entry.detail, entry.reading_id) == (
        "ownership",
        verdict.value,
        refused.id,
    )
    assert entry.security_event
    assert (entry.device_id, entry.claimed_patient_id, entry.gateway_id) == (
        "Other-Meter-2",
        "p2",
        "gw1",
    )
    assert entry.raw == encode_reading(refused)
    assert entry.reading_id_verified
    assert decision.notice == QuarantineNotice(
        id=refused.id, index=1, reason=f"ownership: {verdict.value}"
    )


def test_a_reading_before_its_binding_is_quarantined_but_not_a_security_event() -> None:
    old = glucose(1, measured_at=NOW - timedelta(days=30))
    examination = examine(envelope(glucose(2), old), FedOwnership({METER: BEFORE_BINDING}))
    decision = examination.decisions[1]
    assert decision.verdict is Verdict.BEFORE_BINDING
    assert decision.entry is not None
    assert decision.entry.reason == "before_binding"
    assert not decision.entry.security_event
    assert decision.entry.detail == f"$.readings[1].{BEFORE_BINDING_DETAIL}"
    assert decision.notice is not None
    assert decision.notice.reason == (
        "before_binding: $.readings[1].measured_at: measured before the history start of "
        "the device's binding; kept until a person decides whose reading it is"
    )


def test_a_decided_release_stores_a_reading_before_its_binding_if_otherwise_sound() -> None:
    old = glucose(1, measured_at=NOW - timedelta(days=30))
    implausible = glucose(2, value=90.0, measured_at=NOW - timedelta(days=30))
    ownership = FedOwnership({METER: BEFORE_BINDING})
    examination = examine(envelope(old, implausible), ownership, accept_before_binding=True)
    assert verdicts(examination) == [(0, Verdict.STORE), (1, Verdict.PLAUSIBILITY)]


def test_the_decision_does_not_override_any_other_ownership_check() -> None:
    ownership = FedOwnership({METER: OwnershipVerdict.WRONG_PATIENT})
    examination = examine(envelope(glucose(1)), ownership, accept_before_binding=True)
    assert verdicts(examination) == [(0, Verdict.OWNERSHIP)]


def test_a_plausibility_refusal_names_the_field_by_its_envelope_path() -> None:
    bad = new_reading(
        values=BloodPressureValues(systolic=70, diastolic=95),
        source_unit=Unit.MMHG,
        measured_at=NOW - timedelta(minutes=3),
        received_at=NOW - timedelta(minutes=1),
        device_id="Acme-Cuff-0002",
        patient_id="p1",
        gateway_id="gw1",
        seq=9,
    )
    examination = examine(envelope(glucose(1), glucose(2), bad))
    decision = examination.decisions[2]
    assert decision.verdict is Verdict.PLAUSIBILITY
    assert decision.entry is not None
    assert decision.entry.detail == (
        "$.readings[2].values.systolic: systolic_not_above_diastolic: "
        "systolic 70 mmHg is not above diastolic 95 mmHg"
    )
    assert not decision.entry.security_event
    assert decision.notice is not None
    assert decision.notice.reason == f"plausibility: {decision.entry.detail}"


def test_the_limits_given_are_the_limits_applied() -> None:
    reading = glucose(1, value=20.0)
    assert verdicts(examine(envelope(reading))) == [(0, Verdict.STORE)]
    strict = PlausibilityLimits(glucose_meter_max_mmol_per_l=15.0)
    assert verdicts(examine(envelope(reading), limits=strict)) == [(0, Verdict.PLAUSIBILITY)]


def test_now_is_the_clock_given() -> None:
    soon = glucose(1, measured_at=NOW + timedelta(minutes=5))
    later = new_reading(
        values=GlucoseValues(glucose=5.0),
        source_unit=Unit.MMOL_PER_L,
        measured_at=NOW + timedelta(hours=2),
        received_at=NOW + timedelta(hours=2),
        device_id=METER,
        patient_id="p1",
        gateway_id="gw1",
        seq=2,
    )
    examination = examine(envelope(soon, later))
    assert verdicts(examination) == [(0, Verdict.STORE), (1, Verdict.PLAUSIBILITY)]
    assert examination.decisions[1].entry is not None
    assert examination.decisions[1].entry.received_at == NOW
    assert "measured_in_future" in examination.decisions[1].entry.detail


def test_a_contract_refusal_keeps_its_position_among_the_good_readings() -> None:
    first, last = glucose(1), glucose(3)
    bad = reading_to_builtins(glucose(2))
    bad["values"] = {"glucose": -3}
    body = msgspec.json.decode(envelope(first, last))
    body["readings"].insert(1, bad)
    examination = examine(msgspec.json.encode(body))
    assert verdicts(examination) == [(0, Verdict.STORE), (1, Verdict.CONTRACT), (2, Verdict.STORE)]
    entry = examination.decisions[1].entry
    assert entry is not None
    assert entry.detail.startswith("$.readings[1].values.glucose: ")
    assert not entry.reading_id_verified
    assert examination.readings_received == 3


def test_a_payload_in_another_gateways_name_is_a_security_event_per_reading() -> None:
    spoofed = [glucose(1, gateway_id="gw2"), glucose(2, gateway_id="gw2")]
    ownership = FedOwnership()
    examination = examine(envelope(*spoofed, gateway_id="gw2"), ownership)
    assert verdicts(examination) == [(0, Verdict.OWNERSHIP), (1, Verdict.OWNERSHIP)]
    for decision in examination.decisions:
        assert decision.entry is not None
        assert decision.entry.detail == GATEWAY_MISMATCH
        assert decision.entry.security_event
        assert decision.entry.gateway_id == "gw1"
        assert decision.notice is not None
        assert decision.notice.reason == "ownership: gateway_mismatch"
    assert ownership.asked == [], "the registry was asked about a spoofed envelope"


@pytest.mark.parametrize(
    ("topic", "payload", "detail"),
    [
        (TOPIC, b"\x00not json", "$: not valid JSON"),
        (TOPIC, b'{"v": 2}', "$.v: unsupported payload version 2"),
        ("vitalgate/v1/gw/gw1/status", b"{}", "topic: "),
    ],
)
def test_an_unusable_message_is_quarantined_whole(topic: str, payload: bytes, detail: str) -> None:
    examination = examine(payload, topic=topic)
    (decision,) = examination.decisions
    assert decision.verdict is Verdict.ENVELOPE
    assert decision.entry is not None
    assert decision.entry.raw == payload
    assert decision.entry.detail.startswith(detail)
    assert decision.notice is None
    assert examination.readings_received == 0


def test_an_unreachable_registry_decides_nothing() -> None:
    with pytest.raises(RegistryUnavailable):
        examine_message(
            TOPIC,
            envelope(glucose(1)),
            ownership=UnreachableRegistry(),
            limits=DEFAULT_LIMITS,
            now=NOW,
        )


def test_a_store_refusal_becomes_a_quarantine_decision_with_the_path() -> None:
    reading = glucose(1)
    (stored,) = examine(envelope(glucose(0), reading)).to_store[1:]
    refused = refuse_stored(stored, "HTTP 400: field type conflict", now=NOW, topic=TOPIC)
    assert refused.verdict is Verdict.STORE_REJECTED
    assert refused.entry is not None
    assert refused.entry.detail == "$.readings[1]: HTTP 400: field type conflict"
    assert notice_reason(refused.entry) == (
        "store_rejected: $.readings[1]: HTTP 400: field type conflict"
    )
    wrapped = b'{"v":1,"gateway_id":"gw1","sent_at":"2026-11-23T08:00:00Z","readings":['
    assert decode_readings_partial(wrapped + refused.entry.raw + b"]}").readings == [reading]
    with pytest.raises(ValueError, match="only a reading the examination passed"):
        refuse_stored(refused, "again", now=NOW, topic=TOPIC)


def test_a_decision_without_an_entry_is_to_be_stored() -> None:
    decision = Decision(Verdict.STORE, 0, "id", glucose(1), None)
    assert decision.notice is None
