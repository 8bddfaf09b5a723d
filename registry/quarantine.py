"""The quarantine: every message or reading ingest refused, with the reason and raw bytes.

Nothing is dropped silently: a payload that fails the contract, a value outside
physiological limits, a reading the gateway was not entitled to send, a point the reading
store refused — each is kept here for review and possible replay. Rejections of
ownership are also written to ``security_events``, the table an operator watches for a
compromised or misconfigured gateway.

Text columns are filled from untrusted payloads: NUL characters (which PostgreSQL refuses
in text) are replaced by U+FFFD so that a hostile payload cannot make the quarantine write
fail and stall ingest; the raw bytes keep the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from registry.clock import aware_utc
from registry.db import UNREACHABLE_ERRORS, unavailable, writer
from registry.errors import InvalidRegistryInput
from registry.models import QuarantinedReading, SecurityEvent
from registry.ownership import OwnershipVerdict

_NUL: Final = "\x00"
_REPLACEMENT: Final = "\ufffd"


class QuarantineReason(StrEnum):
    """Why something was quarantined (the machine code in ``QuarantineEntry.reason``)."""

    CONTRACT = "contract"
    """A reading breaks the wire contract (field, type, pattern)."""
    PLAUSIBILITY = "plausibility"
    """A value is outside physiological or device limits."""
    OWNERSHIP = "ownership"
    """The gateway may not send this device's reading for this patient (a security event)."""
    STORE_REJECTED = "store_rejected"
    """The reading store refused the point (partial write)."""
    ENVELOPE = "envelope"
    """The message as a whole is unusable (not JSON, unknown version, bad envelope)."""


_REASONS: Final = frozenset(reason.value for reason in QuarantineReason)


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One refused message or reading.

    Attributes:
        received_at: when ingest received it (timezone-aware).
        gateway_id: from the topic; ``None`` if the topic named none.
        topic: the MQTT topic it arrived on.
        reason: a :class:`QuarantineReason` value.
        detail: the field and the problem, e.g. ``$.readings[2].values.glucose: below 0``;
            for ``ownership``, the :class:`~registry.ownership.OwnershipVerdict` value.
        reading_id: the reading's id when it could be read.
        raw: the reading's (or, for ``envelope``, the whole message's) bytes.
        security_event: also record it in ``security_events``.
        device_id: the device the reading named (for the security event).
        claimed_patient_id: the patient the reading claimed (for the security event).
    """

    received_at: datetime
    gateway_id: str | None
    topic: str
    reason: str
    detail: str
    reading_id: str | None
    raw: bytes
    security_event: bool
    device_id: str | None = None
    claimed_patient_id: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in _REASONS:
            raise InvalidRegistryInput(
                "reason", f"{self.reason!r} is not one of {', '.join(sorted(_REASONS))}"
            )
        if self.received_at.tzinfo is None:
            raise InvalidRegistryInput("received_at", "naive datetime: give the UTC offset")

    @classmethod
    def ownership_violation(
        cls,
        verdict: OwnershipVerdict,
        *,
        received_at: datetime,
        gateway_id: str,
        topic: str,
        reading_id: str | None,
        device_id: str,
        claimed_patient_id: str,
        raw: bytes,
    ) -> QuarantineEntry:
        """The entry for a reading refused by :class:`~registry.ownership.OwnershipChecker`.

        Raises:
            InvalidRegistryInput: ``verdict`` is ``ok`` (nothing to quarantine).
        """
        if verdict is OwnershipVerdict.OK:
            raise InvalidRegistryInput("verdict", "an accepted reading is not quarantined")
        return cls(
            received_at=received_at,
            gateway_id=gateway_id,
            topic=topic,
            reason=QuarantineReason.OWNERSHIP.value,
            detail=verdict.value,
            reading_id=reading_id,
            raw=raw,
            security_event=True,
            device_id=device_id,
            claimed_patient_id=claimed_patient_id,
        )


@dataclass(frozen=True, slots=True)
class SecurityEventRecord:
    """A stored security event: who claimed what, when, and why it was refused."""

    at: datetime
    gateway_id: str | None
    device_id: str | None
    claimed_patient_id: str | None
    reason: str
    reading_id: str | None


def _clean(value: str) -> str:
    return value.replace(_NUL, _REPLACEMENT)


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else value.replace(_NUL, _REPLACEMENT)


class QuarantineStore:
    """Durable store of :class:`QuarantineEntry` in the registry database. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def add_many(self, entries: Sequence[QuarantineEntry]) -> None:
        """Store entries in one transaction, durable when this returns.

        Entries with ``security_event`` also get a ``security_events`` row whose reason is
        the entry's detail (for ownership, the verdict).

        Raises:
            RegistryUnavailable: the database cannot be reached or stayed locked (the
                caller keeps the message unacknowledged and retries).
        """
        if not entries:
            return
        try:
            with Session(self._writer) as session, session.begin():
                rows = [
                    QuarantinedReading(
                        received_at=aware_utc(entry.received_at, "received_at"),
                        gateway_id=_clean_optional(entry.gateway_id),
                        topic=_clean(entry.topic),
                        reason=entry.reason,
                        detail=_clean(entry.detail),
                        reading_id=_clean_optional(entry.reading_id),
                        raw=entry.raw,
                        security_event=entry.security_event,
                    )
                    for entry in entries
                ]
                session.add_all(rows)
                session.flush()
                session.add_all(
                    SecurityEvent(
                        at=row.received_at,
                        gateway_id=row.gateway_id,
                        device_id=_clean_optional(entry.device_id),
                        claimed_patient_id=_clean_optional(entry.claimed_patient_id),
                        reason=row.detail,
                        reading_id=row.reading_id,
                        quarantine_id=row.id,
                    )
                    for entry, row in zip(entries, rows, strict=True)
                    if entry.security_event
                )
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    def count_by_reason(self) -> dict[str, int]:
        """How many entries there are per reason (reasons with none are absent)."""
        query = select(QuarantinedReading.reason, func.count()).group_by(QuarantinedReading.reason)
        try:
            with self._engine.connect() as connection:
                return dict(connection.execute(query).all())
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    def recent(self, limit: int = 100) -> list[QuarantineEntry]:
        """The newest ``limit`` entries, newest first (device and patient from their
        security event, when they have one)."""
        query = (
            select(QuarantinedReading, SecurityEvent.device_id, SecurityEvent.claimed_patient_id)
            .outerjoin(SecurityEvent, SecurityEvent.quarantine_id == QuarantinedReading.id)
            .order_by(QuarantinedReading.received_at.desc(), QuarantinedReading.id.desc())
            .limit(limit)
        )
        try:
            with Session(self._engine) as session:
                return [
                    QuarantineEntry(
                        received_at=row.received_at,
                        gateway_id=row.gateway_id,
                        topic=row.topic,
                        reason=row.reason,
                        detail=row.detail,
                        reading_id=row.reading_id,
                        raw=row.raw,
                        security_event=row.security_event,
                        device_id=device_id,
                        claimed_patient_id=claimed_patient_id,
                    )
                    for row, device_id, claimed_patient_id in session.execute(query)
                ]
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    def recent_security_events(self, limit: int = 100) -> list[SecurityEventRecord]:
        """The newest ``limit`` security events, newest first."""
        query = (
            select(SecurityEvent)
            .order_by(SecurityEvent.at.desc(), SecurityEvent.id.desc())
            .limit(limit)
        )
        try:
            with Session(self._engine) as session:
                return [
                    SecurityEventRecord(
                        at=row.at,
                        gateway_id=row.gateway_id,
                        device_id=row.device_id,
                        claimed_patient_id=row.claimed_patient_id,
                        reason=row.reason,
                        reading_id=row.reading_id,
                    )
                    for row in session.scalars(query)
                ]
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc
