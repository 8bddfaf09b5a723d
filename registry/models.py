"""Tables of the care registry (SQLAlchemy 2 typed declarative).

The schema itself is created and changed only by the Alembic migrations shipped in
:mod:`registry.migrations`; these classes must describe the same tables (a test compares
them with the migrated database on every backend).

PHI is kept to what care needs: a patient's name, birth date, sex, phone and address (for
visits) and the e-health card id; the care model (teams, contracts, consents, targets) is in
:mod:`registry.care_models`. Health values never enter the registry, with one exception:
the raw payload of a quarantined reading, kept so that an operator can review and replay it.

Columns filled from rejected, untrusted payloads (quarantine, security events) are
unbounded ``Text``: a length limit there would turn a hostile payload into a failed insert,
and a failed quarantine write stops ingest.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH: Final = 64
"""Gateway and patient ids (``readings.model.ID_PATTERN`` allows 64 characters)."""

DEVICE_ID_LENGTH: Final = 191
"""``manufacturer-model-serial``: three slugs of at most 63 characters and two dashes."""

DEFAULT_PATIENT_TIME_ZONE: Final = "Asia/Shanghai"
"""China has one civil time zone; a patient abroad gets their own."""

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can drop or alter them by name on
every backend (SQLite and PostgreSQL would otherwise name them differently, or not at all)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamp with time zone``; SQLite has no time zones, so the value is
    stored as naive UTC text (``YYYY-MM-DD HH:MM:SS.ffffff``, which sorts and compares in
    time order). Either way the value read back is an aware datetime in UTC. Naive values
    are refused: their zone is a guess, and a pairing's validity is decided to the second.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; strip the offset for SQLite (naive means UTC there)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the registry stores timezone-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the backend gave."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite makes only an INTEGER PRIMARY KEY an auto-incrementing rowid alias.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the registry's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime()}  # noqa: RUF012 - SQLAlchemy's API


class Gateway(Base):
    """An edge gateway; its id is the MQTT credential's topic prefix."""

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    active: Mapped[bool] = mapped_column(Boolean)
    """False for a lost, stolen or retired box: everything it sends is quarantined."""


class Patient(Base):
    """A monitored person: an opaque id, and what the care team needs to reach them.

    Conditions, targets, status, contracts and consents are in :mod:`registry.care_models`.
    """

    __tablename__ = "patients"
    # A unique index, not a constraint: SQLite can add it without rebuilding the table.
    __table_args__ = (Index("uq_patients_e_health_card_id", "e_health_card_id", unique=True),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    """The patient's name as staff address them (PHI: never logged, never in a URL)."""
    time_zone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(300))
    """Street address for home visits."""
    district: Mapped[str | None] = mapped_column(String(100))
    community: Mapped[str | None] = mapped_column(String(100), index=True)
    """社区 or 村: what triage filters and nurses' day routes group by."""
    village: Mapped[str | None] = mapped_column(String(100))
    preferred_glucose_unit: Mapped[str] = mapped_column(String(16), server_default="mmol/L")
    e_health_card_id: Mapped[str | None] = mapped_column(String(64))
    """Real-name e-health card (电子健康卡) number: an identifier for matching with hospital
    systems, never shown in logs, URLs or exports other than FHIR identifiers."""


class Device(Base):
    """A home measuring device, identified by ``manufacturer-model-serial``."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(DEVICE_ID_LENGTH), primary_key=True)
    manufacturer: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    serial: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str | None] = mapped_column(String(128))
    """Name of the device's profile in ``firmware_configs`` (``None`` until known)."""
    created_at: Mapped[datetime]


class DevicePairing(Base):
    """Which gateway forwards a device's readings, for which patient, from when to when.

    History is kept: unbinding sets ``valid_to``, nothing is deleted, so a reading measured
    last month is judged against last month's pairing. At most one pairing per device is
    current (``valid_to IS NULL``); a partial unique index enforces it in the database, so
    two operators binding the same device at once cannot both succeed.

    ``history_since`` is the decision made at binding time about the device's stored
    memory: readings measured from then on (and before ``valid_from``) are the patient's;
    older ones are quarantined as ``before_binding`` (see :mod:`registry.ownership`).
    """

    __tablename__ = "device_pairings"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_range"),
        CheckConstraint("history_since <= valid_from", name="history_before_start"),
        Index(
            "uq_device_pairings_current_device",
            "device_id",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_device_pairings_device_id_valid_from", "device_id", "valid_from"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]
    history_since: Mapped[datetime]
    """Readings measured before this are not the patient's without a person's decision;
    ``valid_from`` itself when the binding accepted no stored history."""


QUARANTINE_IDENTITY_LENGTH: Final = 72
"""``id:`` or ``raw:`` and a SHA-256 in hex (see :mod:`registry.quarantine`)."""


class QuarantinedReading(Base):
    """A rejected message or reading, kept with the reason and the raw bytes for review.

    ``identity`` and ``reason`` are unique together: a redelivered message or a re-sent
    reading finds its entry already there and adds nothing (see :mod:`registry.quarantine`).
    A released entry is kept and marked, never deleted.
    """

    __tablename__ = "quarantine"
    __table_args__ = (
        Index("uq_quarantine_identity_reason", "identity", "reason", unique=True),
        Index("ix_quarantine_gateway_id_received_at", "gateway_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    gateway_id: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    reading_id: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    security_event: Mapped[bool] = mapped_column(Boolean)
    identity: Mapped[str | None] = mapped_column(String(QUARANTINE_IDENTITY_LENGTH))
    """What makes two entries the same entry; ``None`` only on a repeat that was already
    in the table when the unique index was added (kept, not deleted)."""
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(Text)
    release_reason: Mapped[str | None] = mapped_column(Text)
    """Why it was released; for ``before_binding``, the clinical decision."""


class SecurityEvent(Base):
    """A reading a gateway was not entitled to send (see :mod:`registry.ownership`)."""

    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    gateway_id: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(Text)
    claimed_patient_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    reading_id: Mapped[str | None] = mapped_column(Text)
    quarantine_id: Mapped[int | None] = mapped_column(ForeignKey("quarantine.id"), index=True)


class AuditRecord(Base):
    """One access to or change of the registry's data: who, as what, on whom, when, outcome.

    Rows are append-only and hash-chained (see :mod:`registry.audit`): ``seq`` numbers the
    chain without gaps, ``prev_hash`` is the previous row's ``row_hash`` and ``row_hash`` is
    the SHA-256 of this row's content and ``prev_hash``. No code path updates or deletes a
    row; database triggers refuse both where the backend has them.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    """The role the actor acted in (``doctor``, ``nurse``, ``operator`` …); ``None`` for an
    operating-system user at the command line."""
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    patient_ids: Mapped[str] = mapped_column(Text)
    """JSON array of every patient id the action read or changed (sorted, no repeats)."""
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    """JSON object with the command's arguments (ids only, never health values)."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The newest link of the audit chain: one row (``id = 1``), locked by every appender.

    Keeping the head in its own row lets an appender find the previous hash with one
    indexed lookup and serialises appenders on that row alone (see :mod:`registry.audit`).
    It also reveals a deleted tail: the head names a row that no longer exists.
    """

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    row_hash: Mapped[str] = mapped_column(String(64))
