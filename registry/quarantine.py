"""The quarantine: every message or reading ingest refused, with the reason and raw bytes.

Nothing is dropped silently: a payload that fails the contract, a value outside
physiological limits, a reading the gateway was not entitled to send, a point the reading
store refused — each is kept here for review and possible replay. Rejections of
ownership are also written to ``security_events``, the table an operator watches for a
compromised or misconfigured gateway.

**Idempotent.** The same message delivered twice (a broker redelivery after an ingest
crash, a gateway re-publishing after its ack timeout) must not become two entries or two
security events. Each entry has an *identity*: for a reading that passed the wire
contract (its id is derived from its content, so one id is one record), the gateway and
the reading id; otherwise the gateway and a SHA-256 of the raw bytes. The identity and
the reason are unique together in the database, and :meth:`QuarantineStore.add_many`
inserts only what is absent (``INSERT … ON CONFLICT DO NOTHING`` on SQLite and
PostgreSQL, which also holds when two workers insert the same entry at once).

**Release.** Once the cause is fixed (a binding corrected, a limit changed, a clinician's
decision about readings measured before a binding), an operator re-examines entries and
stores what now passes; the entry is then marked released — kept, never deleted.

Text columns are filled from untrusted payloads: NUL characters (which PostgreSQL refuses
in text) are replaced by U+FFFD so that a hostile payload cannot make the quarantine write
fail and stall ingest; the raw bytes keep the original.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Engine, Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.clock import aware_utc
from registry.db import UNREACHABLE_ERRORS, unavailable, writer
from registry.errors import InvalidRegistryInput, NotFound
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
    BEFORE_BINDING = "before_binding"
    """Measured before the history start of the device's binding: not a security event
    (a meter's memory holds its earlier life), kept until a person decides whose it is."""
    STORE_REJECTED = "store_rejected"
    """The reading store refused the point (partial write)."""
    ENVELOPE = "envelope"
    """The message as a whole is unusable (not JSON, unknown version, bad envelope)."""


_REASONS: Final = frozenset(reason.value for reason in QuarantineReason)
_ID_IDENTITY: Final = "id:"
_RAW_IDENTITY: Final = "raw:"


def entry_identity(
    gateway_id: str | None, reading_id: str | None, raw: bytes, *, reading_id_verified: bool
) -> str:
    """What makes two quarantine entries (of one reason) the same entry.

    ``id:`` and a digest of gateway and reading id when the id was verified (the reading
    passed the contract, which derives the id from the record); else ``raw:`` and a digest
    of gateway and raw bytes (an unverified id could be claimed by two different payloads).
    """
    digest = hashlib.sha256((gateway_id or "").encode() + b"\x1f")
    if reading_id_verified and reading_id is not None:
        digest.update(reading_id.encode())
        return _ID_IDENTITY + digest.hexdigest()
    digest.update(raw)
    return _RAW_IDENTITY + digest.hexdigest()


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
        reading_id_verified: the reading passed the wire contract, so ``reading_id`` is
            the id derived from it (the entry's identity is then the id, see
            :func:`entry_identity`).
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
    reading_id_verified: bool = False

    def __post_init__(self) -> None:
        if self.reading_id_verified and self.reading_id is None:
            raise InvalidRegistryInput("reading_id", "a verified reading id cannot be missing")
        if self.reason not in _REASONS:
            raise InvalidRegistryInput(
                "reason", f"{self.reason!r} is not one of {', '.join(sorted(_REASONS))}"
            )
        if self.received_at.tzinfo is None:
            raise InvalidRegistryInput("received_at", "naive datetime: give the UTC offset")

    @property
    def identity(self) -> str:
        """See :func:`entry_identity`."""
        return entry_identity(
            self.gateway_id,
            self.reading_id,
            self.raw,
            reading_id_verified=self.reading_id_verified,
        )

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
            reading_id_verified=reading_id is not None,
        )


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """A stored entry with its row id and release state (what an operator lists)."""

    id: int
    entry: QuarantineEntry
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None

    @property
    def released(self) -> bool:
        """Whether the entry was released (its reading stored after a re-examination)."""
        return self.released_at is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class QuarantineFilter:
    """Which entries to list; every criterion given must hold.

    Attributes:
        gateway_id: only entries from this gateway.
        reason: only entries of this :class:`QuarantineReason`.
        since: only entries received at or after this time (timezone-aware).
        until: only entries received before this time (timezone-aware).
        include_released: also list entries already released.
    """

    gateway_id: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_released: bool = False

    def __post_init__(self) -> None:
        if self.reason is not None and self.reason not in _REASONS:
            raise InvalidRegistryInput(
                "reason", f"{self.reason!r} is not one of {', '.join(sorted(_REASONS))}"
            )
        if self.since is not None:
            aware_utc(self.since, "since")
        if self.until is not None:
            aware_utc(self.until, "until")


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

    def add_many(self, entries: Sequence[QuarantineEntry]) -> list[QuarantineEntry]:
        """Store the entries not stored yet, in one transaction, durable when this returns.

        An entry whose identity and reason are already in the table (a redelivery) is
        skipped, and so is a repeat within ``entries``. Entries with ``security_event``
        also get a ``security_events`` row — only when their entry is new, so one refused
        reading is one security event however often it arrives.

        Returns:
            The entries that were new, in the order given (for counting them once).

        Raises:
            RegistryUnavailable: the database cannot be reached or stayed locked (the
                caller keeps the message unacknowledged and retries).
        """
        unique: dict[tuple[str, str], QuarantineEntry] = {}
        for entry in entries:
            unique.setdefault((entry.identity, entry.reason), entry)
        if not unique:
            return []
        try:
            with Session(self._writer) as session, session.begin():
                statement = _insert_if_absent(session.get_bind().dialect.name)
                inserted = {
                    (row.identity, row.reason): row.id
                    for row in session.execute(
                        statement,
                        [_row_values(key[0], entry) for key, entry in unique.items()],
                    )
                }
                session.add_all(
                    SecurityEvent(
                        at=aware_utc(entry.received_at, "received_at"),
                        gateway_id=_clean_optional(entry.gateway_id),
                        device_id=_clean_optional(entry.device_id),
                        claimed_patient_id=_clean_optional(entry.claimed_patient_id),
                        reason=_clean(entry.detail),
                        reading_id=_clean_optional(entry.reading_id),
                        quarantine_id=inserted[key],
                    )
                    for key, entry in unique.items()
                    if entry.security_event and key in inserted
                )
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        return [entry for key, entry in unique.items() if key in inserted]

    def find(
        self, criteria: QuarantineFilter, limit: int = 100, *, offset: int = 0
    ) -> list[QuarantineRecord]:
        """The newest ``limit`` entries matching ``criteria`` after skipping ``offset``,
        newest first."""
        query = _records_query().offset(offset).limit(limit)
        if criteria.gateway_id is not None:
            query = query.where(QuarantinedReading.gateway_id == criteria.gateway_id)
        if criteria.reason is not None:
            query = query.where(QuarantinedReading.reason == criteria.reason)
        if criteria.since is not None:
            query = query.where(QuarantinedReading.received_at >= criteria.since)
        if criteria.until is not None:
            query = query.where(QuarantinedReading.received_at < criteria.until)
        if not criteria.include_released:
            query = query.where(QuarantinedReading.released_at.is_(None))
        try:
            with Session(self._engine) as session:
                return [
                    _record(quarantined, device_id, patient_id)
                    for quarantined, device_id, patient_id in session.execute(query)
                ]
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    def get(self, entry_id: int) -> QuarantineRecord:
        """The entry with row id ``entry_id``.

        Raises:
            NotFound: there is none.
        """
        query = _records_query().where(QuarantinedReading.id == entry_id)
        try:
            with Session(self._engine) as session:
                row = session.execute(query).first()
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc
        if row is None:
            raise NotFound("quarantine entry", str(entry_id))
        quarantined, device_id, patient_id = row
        return _record(quarantined, device_id, patient_id)

    def mark_released(
        self, session: Session, entry_id: int, *, at: datetime, by: str, reason: str
    ) -> bool:
        """Mark an entry released in ``session``'s transaction (with its audit row).

        Returns:
            False if it was released already (by someone else meanwhile): nothing changed.
        """
        result = session.execute(
            update(QuarantinedReading)
            .where(QuarantinedReading.id == entry_id, QuarantinedReading.released_at.is_(None))
            .values(
                released_at=aware_utc(at, "at"),
                released_by=_clean(by),
                release_reason=_clean(reason),
            )
        )
        return bool(getattr(result, "rowcount", 0))

    def count_by_reason(self) -> dict[str, int]:
        """How many entries there are per reason (reasons with none are absent)."""
        query = select(QuarantinedReading.reason, func.count()).group_by(QuarantinedReading.reason)
        try:
            with self._engine.connect() as connection:
                return dict(connection.execute(query).all())
        except UNREACHABLE_ERRORS as exc:
            raise unavailable(exc) from exc

    def recent(self, limit: int = 100) -> list[QuarantineEntry]:
        """The newest ``limit`` entries, released ones included, newest first (device and
        patient from their security event, when they have one)."""
        return [
            record.entry
            for record in self.find(QuarantineFilter(include_released=True), limit=limit)
        ]

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


def _insert_if_absent(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (identity, reason) DO NOTHING RETURNING`` for the dialect."""
    if dialect == "postgresql":
        base: Any = postgresql.insert(QuarantinedReading)
    elif dialect == "sqlite":
        base = sqlite.insert(QuarantinedReading)
    else:
        raise InvalidRegistryInput("registry_url", f"the {dialect} backend is not supported")
    return base.on_conflict_do_nothing(index_elements=["identity", "reason"]).returning(
        QuarantinedReading.id, QuarantinedReading.identity, QuarantinedReading.reason
    )


def _row_values(identity: str, entry: QuarantineEntry) -> dict[str, Any]:
    return {
        "received_at": aware_utc(entry.received_at, "received_at"),
        "gateway_id": _clean_optional(entry.gateway_id),
        "topic": _clean(entry.topic),
        "reason": entry.reason,
        "detail": _clean(entry.detail),
        "reading_id": _clean_optional(entry.reading_id),
        "raw": entry.raw,
        "security_event": entry.security_event,
        "identity": identity,
    }


def _records_query() -> Select[QuarantinedReading, str | None, str | None]:
    return (
        select(QuarantinedReading, SecurityEvent.device_id, SecurityEvent.claimed_patient_id)
        .outerjoin(SecurityEvent, SecurityEvent.quarantine_id == QuarantinedReading.id)
        .order_by(QuarantinedReading.received_at.desc(), QuarantinedReading.id.desc())
    )


def _record(
    row: QuarantinedReading, device_id: str | None, claimed_patient_id: str | None
) -> QuarantineRecord:
    entry = QuarantineEntry(
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
        reading_id_verified=(
            row.identity is not None
            and row.identity.startswith(_ID_IDENTITY)
            and row.reading_id is not None
        ),
    )
    return QuarantineRecord(
        id=row.id,
        entry=entry,
        released_at=row.released_at,
        released_by=row.released_by,
        release_reason=row.release_reason,
    )
