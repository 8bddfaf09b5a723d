"""The examination of one readings message: what to store, what to quarantine, and why.

A pure decision, fed everything it needs — the topic and payload, the registry's
ownership check, the plausibility limits and the current time — and returning an
:class:`Examination`. It has no MQTT, no store and no metrics: the worker runs it for every
message it receives, ``vitalgate quarantine release`` runs it again on a quarantined entry
once the cause was fixed, and the tests feed it data.

Per message, in order:

1. the topic must be a readings topic; its gateway is the sender (the broker's ACL ties
   it to the gateway's credential);
2. the envelope must decode (``envelope`` otherwise: the whole payload is quarantined);
3. the envelope's ``gateway_id`` must be the topic's (otherwise every reading is an
   ``ownership`` security event with detail ``gateway_mismatch``);
4. each reading must meet the wire contract (``contract``);
5. the registry must let this gateway send this device's reading for this patient,
   measured then (``ownership``, a security event, detail the failed check); a reading
   measured before the history start of the device's binding is ``before_binding``
   instead — a meter's memory of its earlier life, not an attack — kept until a person
   decides whose it is;
6. the values must be plausible (``plausibility``).

What a gateway is told about a quarantined reading (its ack's ``quarantined[].reason``) is
always ``"{reason}: {detail}"``; reading-level details name the field as a
``$.readings[i]…`` path like the contract's errors, except ownership, whose detail is the
name of the check that failed (see :data:`GATEWAY_MISMATCH` and
:class:`registry.ownership.OwnershipVerdict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol

import msgspec

from ingest.validate import Implausibility, PlausibilityLimits, check_plausibility
from readings.codec import (
    QuarantineNotice,
    RejectedReading,
    decode_readings_partial,
    encode_reading,
)
from readings.errors import PayloadError, TopicError
from readings.model import Reading
from readings.topics import Channel, parse_topic
from registry.quarantine import QuarantineEntry, QuarantineReason

OWNERSHIP_OK: Final = "ok"
"""The value of ``OwnershipVerdict.OK``: the gateway may send the reading."""
GATEWAY_MISMATCH: Final = "gateway_mismatch"
"""Ownership detail: the payload names another gateway than the topic it came on."""
BEFORE_BINDING_DETAIL: Final = (
    "measured_at: measured before the history start of the device's binding; "
    "kept until a person decides whose reading it is"
)
"""What follows ``$.readings[i].`` in the detail of a ``before_binding`` entry."""


class OwnershipCheck(Protocol):
    """What the examination needs of :class:`registry.ownership.OwnershipChecker`."""

    def check(self, gateway_id: str, device_id: str, patient_id: str, at: datetime) -> str:
        """An ``OwnershipVerdict`` (a string enum): ``ok`` or the check that failed.

        Raises:
            RegistryUnavailable: the registry cannot answer now (the caller retries).
        """
        ...


class Verdict(StrEnum):
    """What the examination decided for one reading (or, for ``ENVELOPE``, a payload)."""

    STORE = "store"
    """Passed every check: write it to the reading store."""
    ENVELOPE = QuarantineReason.ENVELOPE.value
    CONTRACT = QuarantineReason.CONTRACT.value
    OWNERSHIP = QuarantineReason.OWNERSHIP.value
    BEFORE_BINDING = QuarantineReason.BEFORE_BINDING.value
    PLAUSIBILITY = QuarantineReason.PLAUSIBILITY.value
    STORE_REJECTED = QuarantineReason.STORE_REJECTED.value
    """Passed the examination, then refused by the store (see :func:`refuse_stored`)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one reading of a message (or on the whole message).

    Attributes:
        verdict: what to do with it.
        index: its position in the envelope's ``readings``; ``None`` for a whole payload.
        reading_id: its id when one could be read (verified unless ``CONTRACT``/``ENVELOPE``).
        reading: the decoded reading (``STORE`` and every verdict after the contract).
        entry: what to keep in quarantine; ``None`` exactly for ``STORE``.
        received: for ``STORE``, the reading's JSON as it came in the envelope (wire
            form): what ingest forwards on ``accepted/`` instead of re-encoding it.
    """

    verdict: Verdict
    index: int | None
    reading_id: str | None
    reading: Reading | None
    entry: QuarantineEntry | None
    received: bytes | msgspec.Raw | None = None

    @property
    def notice(self) -> QuarantineNotice | None:
        """What the gateway's end-to-end ack says about it (``None``: stored, or a whole
        payload, which has no position to name)."""
        if self.entry is None or self.index is None:
            return None
        return QuarantineNotice(
            id=self.reading_id, index=self.index, reason=notice_reason(self.entry)
        )


@dataclass(frozen=True, slots=True)
class Examination:
    """What one message turned into.

    Attributes:
        topic: the MQTT topic it came on.
        gateway_id: the topic's gateway; ``None`` if the topic is not a readings topic.
        decisions: one per reading, in envelope order, or one ``ENVELOPE`` decision.
        readings_received: how many readings the envelope held (0 if it did not decode).
    """

    topic: str
    gateway_id: str | None
    decisions: tuple[Decision, ...]
    readings_received: int

    @property
    def to_store(self) -> list[Decision]:
        """The decisions with verdict ``STORE``."""
        return [decision for decision in self.decisions if decision.verdict is Verdict.STORE]

    @property
    def refused(self) -> list[Decision]:
        """The decisions that quarantine something."""
        return [decision for decision in self.decisions if decision.entry is not None]


def notice_reason(entry: QuarantineEntry) -> str:
    """The reason a gateway is told: ``"{reason}: {detail}"``."""
    return f"{entry.reason}: {entry.detail}"


def reading_path(index: int, field: str) -> str:
    """``$.readings[index].field``: the path form of the contract's errors."""
    return f"$.readings[{index}].{field}"


def plausibility_detail(index: int, found: Implausibility) -> str:
    """``$.readings[i].field: rule: detail`` for a reading that broke a plausibility rule."""
    return f"{reading_path(index, found.field)}: {found.rule}: {found.detail}"


def examine_message(
    topic: str,
    payload: bytes,
    *,
    ownership: OwnershipCheck,
    limits: PlausibilityLimits,
    now: datetime,
    accept_before_binding: bool = False,
) -> Examination:
    """Decide, for each reading of a message, whether it is stored or quarantined and why.

    Args:
        topic: the MQTT topic the message came on.
        payload: its bytes.
        ownership: the registry's ownership check.
        limits: the plausibility bounds.
        now: the current time, UTC (``received_at`` of quarantine entries, "in the future").
        accept_before_binding: store readings measured before their binding's history
            start (a person decided they are the bound patient's; release only).

    Raises:
        RegistryUnavailable: the ownership check could not reach the registry (nothing
            was decided; examine the message again later).
    """
    try:
        parsed = parse_topic(topic)
        if parsed.channel is not Channel.READINGS or parsed.gateway_id is None:
            raise TopicError(f"{topic!r} is not a readings topic")
    except TopicError as exc:
        return _whole_payload(topic, None, payload, f"topic: {exc}", now)
    gateway_id = parsed.gateway_id
    try:
        decoded = decode_readings_partial(payload)
    except PayloadError as exc:
        return _whole_payload(topic, gateway_id, payload, f"{exc.field}: {exc.problem}", now)
    total = len(decoded.readings) + len(decoded.rejected)
    positions = _positions(total, decoded.rejected)
    if decoded.gateway_id != gateway_id:
        decisions = _foreign_envelope(
            topic, gateway_id, positions, decoded.readings, decoded.rejected, now
        )
    else:
        received: Sequence[bytes | msgspec.Raw | None] = decoded.received or [None] * len(
            decoded.readings
        )
        judged = [
            _judge(
                topic,
                gateway_id,
                index,
                reading,
                raw,
                ownership=ownership,
                limits=limits,
                now=now,
                accept_before_binding=accept_before_binding,
            )
            for index, reading, raw in zip(positions, decoded.readings, received, strict=True)
        ]
        decisions = judged + [_contract(topic, gateway_id, item, now) for item in decoded.rejected]
    decisions.sort(key=lambda decision: decision.index or 0)
    return Examination(topic, gateway_id, tuple(decisions), total)


def refuse_stored(decision: Decision, reason: str, *, now: datetime, topic: str) -> Decision:
    """The decision for a reading the examination passed and the store then refused.

    Args:
        decision: its ``STORE`` decision.
        reason: the store's reason (e.g. InfluxDB's ``partial write`` message).
        now: the current time, UTC.
        topic: the topic the reading came on.
    """
    if decision.verdict is not Verdict.STORE or decision.reading is None:
        raise ValueError("only a reading the examination passed can be refused by the store")
    reading = decision.reading
    path = "$" if decision.index is None else f"$.readings[{decision.index}]"
    return _refused(
        Verdict.STORE_REJECTED,
        topic,
        reading.gateway_id,
        decision.index,
        reading,
        detail=f"{path}: {reason}",
        now=now,
    )


def _judge(
    topic: str,
    gateway_id: str,
    index: int,
    reading: Reading,
    received: bytes | msgspec.Raw | None,
    *,
    ownership: OwnershipCheck,
    limits: PlausibilityLimits,
    now: datetime,
    accept_before_binding: bool,
) -> Decision:
    verdict = str(
        ownership.check(gateway_id, reading.device_id, reading.patient_id, reading.measured_at)
    )
    if verdict == QuarantineReason.BEFORE_BINDING.value:
        if not accept_before_binding:
            return _refused(
                Verdict.BEFORE_BINDING,
                topic,
                gateway_id,
                index,
                reading,
                detail=reading_path(index, BEFORE_BINDING_DETAIL),
                now=now,
            )
    elif verdict != OWNERSHIP_OK:
        return _refused(
            Verdict.OWNERSHIP, topic, gateway_id, index, reading, detail=verdict, now=now
        )
    implausible = check_plausibility(reading, now=now, limits=limits)
    if implausible is not None:
        return _refused(
            Verdict.PLAUSIBILITY,
            topic,
            gateway_id,
            index,
            reading,
            detail=plausibility_detail(index, implausible),
            now=now,
        )
    return Decision(Verdict.STORE, index, reading.id, reading, None, received)


def _refused(
    verdict: Verdict,
    topic: str,
    gateway_id: str,
    index: int | None,
    reading: Reading,
    *,
    detail: str,
    now: datetime,
) -> Decision:
    """A quarantine decision for a reading that passed the contract (its id is verified)."""
    security_event = verdict is Verdict.OWNERSHIP
    entry = QuarantineEntry(
        received_at=now,
        gateway_id=gateway_id,
        topic=topic,
        reason=verdict.value,
        detail=detail,
        reading_id=reading.id,
        raw=encode_reading(reading),
        security_event=security_event,
        device_id=reading.device_id if security_event else None,
        claimed_patient_id=reading.patient_id if security_event else None,
        reading_id_verified=True,
    )
    return Decision(verdict, index, reading.id, reading, entry)


def _contract(topic: str, gateway_id: str, item: RejectedReading, now: datetime) -> Decision:
    entry = QuarantineEntry(
        received_at=now,
        gateway_id=gateway_id,
        topic=topic,
        reason=QuarantineReason.CONTRACT.value,
        detail=f"{item.error.field}: {item.error.problem}",
        reading_id=item.reading_id,
        raw=item.raw,
        security_event=False,
    )
    return Decision(Verdict.CONTRACT, item.index, item.reading_id, None, entry)


def _foreign_envelope(
    topic: str,
    gateway_id: str,
    positions: Sequence[int],
    readings: Sequence[Reading],
    rejected: Sequence[RejectedReading],
    now: datetime,
) -> list[Decision]:
    """A gateway sending in another gateway's name: every reading is a security event."""
    decisions = [
        _refused(
            Verdict.OWNERSHIP, topic, gateway_id, index, reading, detail=GATEWAY_MISMATCH, now=now
        )
        for index, reading in zip(positions, readings, strict=True)
    ]
    for item in rejected:
        entry = QuarantineEntry(
            received_at=now,
            gateway_id=gateway_id,
            topic=topic,
            reason=QuarantineReason.OWNERSHIP.value,
            detail=GATEWAY_MISMATCH,
            reading_id=item.reading_id,
            raw=item.raw,
            security_event=True,
        )
        decisions.append(Decision(Verdict.OWNERSHIP, item.index, item.reading_id, None, entry))
    return decisions


def _whole_payload(
    topic: str, gateway_id: str | None, payload: bytes, detail: str, now: datetime
) -> Examination:
    entry = QuarantineEntry(
        received_at=now,
        gateway_id=gateway_id,
        topic=topic,
        reason=QuarantineReason.ENVELOPE.value,
        detail=detail,
        reading_id=None,
        raw=payload,
        security_event=False,
    )
    return Examination(topic, gateway_id, (Decision(Verdict.ENVELOPE, None, None, None, entry),), 0)


def _positions(total: int, rejected: Sequence[RejectedReading]) -> list[int]:
    """Envelope positions of the readings that decoded, given the ones that did not."""
    skipped = {item.index for item in rejected}
    return [index for index in range(total) if index not in skipped]
