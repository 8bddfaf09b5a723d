"""Tables of the care model: who looks after whom, with the patient's consent, since when.

China's family-doctor programme (家庭医生签约服务) contracts a resident (签约居民) with a
family-doctor *team* — doctors, nurses and a team lead — for a service package. Everything a
person may see follows from these rows:

* **staff** (:class:`UserAccount` with :class:`UserRole` rows) belong to **care teams**
  through dated :class:`TeamMembership` rows;
* a **contract** (:class:`CareContract`) ties a patient to a team from ``starts_on`` to
  ``ends_on``; contracts are never deleted, ending one sets ``ends_on``, so last year's
  access is still explainable;
* the **on-call rota** (:class:`DutyShift`) names the duty doctor of a team for a period,
  including cover during another doctor's leave; alert escalation pages that person;
* **family members** are accounts linked to a patient (:class:`FamilyLink`) whose access is
  what the patient consented to (:class:`FamilyConsent`: scopes, expiry, revocation);
* the patient's own **consent to monitoring** (:class:`MonitoringConsent`, PIPL Art. 29:
  sensitive personal information needs separate consent), personal **targets**
  (:class:`PatientTarget`, effective-dated) and **status** (:class:`PatientStatusChange`:
  hospitalised, deceased … which pauses alerts, reminders and tasks) are history tables:
  the value at a time is the newest row effective at that time.

Like the rest of the registry, rows that record a decision are appended, not rewritten:
a revocation or an end date is a column set once, and corrections are new rows.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import _BIG_ID, ID_LENGTH, Base

USERNAME_LENGTH: Final = 64
MAX_NAME_LENGTH: Final = 200


class Role(StrEnum):
    """What a person does in VitalGate; one account may hold several staff roles."""

    FAMILY_DOCTOR = "family_doctor"
    NURSE = "nurse"
    TEAM_LEAD = "team_lead"
    PUBLIC_HEALTH = "public_health"
    """Public-health staff (基本公卫): population statistics of their area."""
    ADMIN = "admin"
    """Accounts, teams and contracts; no health data unless also on the team."""
    IT_OPERATOR = "it_operator"
    """Gateways, quarantine and security events; no health data."""
    PATIENT = "patient"
    FAMILY = "family"


STAFF_ROLES: Final = frozenset(
    {
        Role.FAMILY_DOCTOR,
        Role.NURSE,
        Role.TEAM_LEAD,
        Role.PUBLIC_HEALTH,
        Role.ADMIN,
        Role.IT_OPERATOR,
    }
)


class AccountKind(StrEnum):
    """How an account logs in."""

    STAFF = "staff"
    """Username, password (argon2id) and a TOTP second factor."""
    PATIENT = "patient"
    """Passwordless: a one-time link sent by SMS to the account's phone."""
    FAMILY = "family"
    """Passwordless, like a patient."""


class TeamPosition(StrEnum):
    """A member's place in a family-doctor team."""

    DOCTOR = "doctor"
    NURSE = "nurse"
    LEAD = "lead"


class ConsentScope(StrEnum):
    """What a patient lets a family member do (any combination)."""

    VIEW_READINGS = "view_readings"
    RECEIVE_ALERTS = "receive_alerts"
    ACT_FOR_PATIENT = "act_for_patient"
    """Pair devices, enter readings, manage notification settings on the patient's behalf."""


class PatientStatus(StrEnum):
    """Whether the patient is being monitored now; anything but ``active`` pauses alerts."""

    ACTIVE = "active"
    HOSPITALISED = "hospitalised"
    TRANSFERRED = "transferred"
    CONTRACT_ENDED = "contract_ended"
    DECEASED = "deceased"


class Condition(StrEnum):
    """Chronic conditions the care model knows (they select rule profiles and targets)."""

    DIABETES_TYPE1 = "diabetes_type1"
    DIABETES_TYPE2 = "diabetes_type2"
    GESTATIONAL_DIABETES = "gestational_diabetes"
    HYPERTENSION = "hypertension"
    HEART_FAILURE = "heart_failure"
    COPD = "copd"
    CHRONIC_KIDNEY_DISEASE = "chronic_kidney_disease"
    FRAIL_ELDERLY = "frail_elderly"


class UserAccount(Base):
    """A person who logs in: staff, a patient or a family member."""

    __tablename__ = "user_accounts"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str | None] = mapped_column(String(32))
    """Where one-time login links go (patients, family); staff may have one for paging."""
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """argon2id PHC string; ``None`` for passwordless accounts."""
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    """Base32 TOTP secret once enrolled; staff cannot log in without it."""
    patient_id: Mapped[str | None] = mapped_column(ForeignKey("patients.id"), unique=True)
    """The patient this account *is* (patient accounts only)."""
    custodial: Mapped[bool] = mapped_column(Boolean)
    """Created by staff for a patient who never logs in (an elderly patient)."""
    active: Mapped[bool] = mapped_column(Boolean)
    failed_logins: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None]
    session_version: Mapped[int] = mapped_column(Integer)
    """Raised by a password change or disabling: tokens carrying an older version are dead."""
    created_at: Mapped[datetime]


class UserRole(Base):
    """One role of an account."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class CareTeam(Base):
    """A family-doctor team (家庭医生团队) of a community health centre."""

    __tablename__ = "care_teams"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    organisation: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    created_at: Mapped[datetime]


class TeamMembership(Base):
    """A staff member in a team, from ``valid_from`` until ``valid_to`` (open: still)."""

    __tablename__ = "team_memberships"
    __table_args__ = (
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_range"),
        Index("ix_team_memberships_user_id_team_id", "user_id", "team_id"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("care_teams.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"))
    position: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]


class CareContract(Base):
    """A patient's contract (签约) with a team for a service package, with its dates.

    At most one contract per patient is open (``ends_on IS NULL``): a partial unique index
    enforces it, so two clerks signing the same resident at once cannot both succeed.
    ``starts_on``/``ends_on`` are civil dates in the patient's zone; the contract covers
    ``[starts_on, ends_on)``.
    """

    __tablename__ = "care_contracts"
    __table_args__ = (
        CheckConstraint("ends_on IS NULL OR ends_on > starts_on", name="valid_range"),
        Index(
            "uq_care_contracts_open_patient",
            "patient_id",
            unique=True,
            sqlite_where=text("ends_on IS NULL"),
            postgresql_where=text("ends_on IS NULL"),
        ),
        Index("ix_care_contracts_team_id_starts_on", "team_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("care_teams.id"))
    service_package: Mapped[str] = mapped_column(String(64))
    """e.g. ``basic``, ``hypertension``, ``diabetes`` (the contract's 服务包)."""
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(200))
    signed_at: Mapped[datetime]


class DutyShift(Base):
    """Who is the duty doctor of a team from ``starts_at`` to ``ends_at``.

    A shift with ``covers_user_id`` is cover for that doctor's leave: while it lasts, the
    cover doctor is paged instead. Escalation looks for the shift of the patient's team
    containing the moment of the page.
    """

    __tablename__ = "duty_shifts"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="valid_range"),
        Index("ix_duty_shifts_team_id_starts_at", "team_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("care_teams.id"))
    doctor_user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    covers_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_accounts.id"))


class PatientConditionRow(Base):
    """One chronic condition of a patient."""

    __tablename__ = "patient_conditions"

    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    condition: Mapped[str] = mapped_column(String(32), primary_key=True)
    recorded_at: Mapped[datetime]


class FamilyLink(Base):
    """A family member's account linked to a patient (the relationship, not the access)."""

    __tablename__ = "family_links"
    __table_args__ = (
        Index("uq_family_links_patient_id_user_id", "patient_id", "user_id", unique=True),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), index=True)
    relationship: Mapped[str] = mapped_column(String(32))
    """``daughter``, ``son``, ``spouse``, ``carer`` …"""
    created_at: Mapped[datetime]


class FamilyConsent(Base):
    """What the patient lets a linked family member do, until revoked or expired.

    A change of scopes is a new consent (and the old one revoked), so what a family member
    could do at any past moment stays on record.
    """

    __tablename__ = "family_consents"
    __table_args__ = (
        CheckConstraint("expires_at IS NULL OR expires_at > granted_at", name="valid_range"),
        Index("ix_family_consents_link_id", "link_id"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("family_links.id"))
    scopes: Mapped[str] = mapped_column(String(128))
    """Comma-separated :class:`ConsentScope` values, sorted."""
    granted_at: Mapped[datetime]
    granted_by: Mapped[str] = mapped_column(String(128))
    """The patient's username, or the staff member who recorded a consent given on paper."""
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))


class MonitoringConsent(Base):
    """The patient's separate consent to remote monitoring of their health data (PIPL)."""

    __tablename__ = "monitoring_consents"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    granted_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(128))
    document_ref: Mapped[str | None] = mapped_column(String(200))
    """Where the signed form is kept (a file number), if on paper."""
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))


class PatientTarget(Base):
    """A personal target (e.g. glucose 4.4–10.0 mmol/L), effective from a moment on.

    The target of a metric at time *t* is the newest row with ``effective_from <= t``, so
    a chart of last spring is drawn against last spring's target.
    """

    __tablename__ = "patient_targets"
    __table_args__ = (
        CheckConstraint("low IS NOT NULL OR high IS NOT NULL", name="has_bound"),
        CheckConstraint("low IS NULL OR high IS NULL OR low < high", name="ordered"),
        Index(
            "ix_patient_targets_patient_id_metric_effective_from",
            "patient_id",
            "metric",
            "effective_from",
        ),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    metric: Mapped[str] = mapped_column(String(32))
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(16))
    """UCUM code of ``low``/``high`` (canonical units: mmol/L, mm[Hg], kg, %)."""
    effective_from: Mapped[datetime]
    set_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)


class PatientStatusChange(Base):
    """The patient's monitoring status from ``effective_from`` on, and why."""

    __tablename__ = "patient_status_changes"
    __table_args__ = (
        Index(
            "ix_patient_status_changes_patient_id_effective_from", "patient_id", "effective_from"
        ),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(128))


class GrantKind(StrEnum):
    """Why someone outside the patient's team may open the patient for a while."""

    BREAK_GLASS = "break_glass"
    """An emergency access any doctor may open with a stated reason; flagged to the lead."""
    ESCALATION = "escalation"
    """The alert engine paged this person about the patient (duty doctor, cover)."""


class AccessGrant(Base):
    """Time-limited access of one account to one patient, with its reason.

    Grants are appended and expire by themselves (``ends_at``); ending one early sets
    ``revoked_at``. A break-glass grant is prominent in the audit and notifies the lead of
    the patient's team.
    """

    __tablename__ = "access_grants"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="valid_range"),
        Index("ix_access_grants_user_id_patient_id", "user_id", "patient_id"),
    )

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class RefreshToken(Base):
    """One refresh token of a login session; only its SHA-256 is stored.

    Tokens rotate: using one marks it ``used_at`` and issues the next in the same
    ``family``. A token presented again after it was used means it was copied, so the
    whole family (the login session) is revoked.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), index=True)
    session_version: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginLink(Base):
    """A one-time login link sent by SMS to a patient or family member (hash stored)."""

    __tablename__ = "login_links"

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_accounts.id"), index=True)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
