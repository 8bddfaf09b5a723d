"""Request and response models of the administration, quarantine and audit-query routes.

Request bodies refuse unknown fields (:class:`~dashboard_api.schemas.RequestModel`): an
account cannot be created with a ``password_hash`` or a ``session_version`` slipped in.
Responses never carry stored secrets (password hashes, TOTP secrets) or phone numbers
— a new one-time password or TOTP enrolment is shown once, in its own answer only — and a
patient's or family member's name is left out of account listings: an administrator
manages accounts, not people's health records.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from dashboard_api.schemas import RequestModel
from registry.care_lookup import MAX_REASON_LENGTH, USERNAME_PATTERN

RoleName = Literal["family_doctor", "nurse", "team_lead", "public_health", "admin", "it_operator"]
"""Staff roles an administrator can give (patient and family roles follow the kind)."""


class Page(BaseModel):
    """Where a page of a listing starts, how long it is, and where the next one starts."""

    offset: int
    limit: int
    next_offset: int | None
    """``None`` on the last page."""


class AccountPublic(BaseModel):
    """An account as administrators see it: no secrets, no phone."""

    username: str
    kind: str
    roles: list[str]
    display_name: str | None
    """Staff only; ``None`` for patient and family accounts (their names are PHI)."""
    patient_id: str | None
    custodial: bool
    active: bool
    has_password: bool
    totp_enrolled: bool


class AccountsPublic(Page):
    """A page of accounts."""

    data: list[AccountPublic]


class AccountCreate(RequestModel):
    """A new account: staff with roles, a patient's own (or custodial) account, a family
    member's account."""

    username: str = Field(pattern=f"^{USERNAME_PATTERN}$")
    display_name: str = Field(min_length=1, max_length=200)
    kind: Literal["staff", "patient", "family"]
    roles: list[RoleName] = Field(default_factory=list, max_length=6)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{6,20}$")
    """Where SMS login links go (patients, family)."""
    patient_id: str | None = Field(default=None, min_length=1, max_length=64)
    """The patient a patient account is."""
    custodial: bool = False
    """Created by staff for a patient who never logs in."""


class PasswordReset(BaseModel):
    """A new one-time password for a staff member; shown once, never logged or stored."""

    username: str
    password: str
    """Give it to the person over a trusted channel; they log in with it and their TOTP."""


class TotpEnrolment(BaseModel):
    """A new TOTP secret for a staff member; shown once, never logged, audited or returned again."""

    username: str
    secret: str
    """Base32, for typing into the authenticator app by hand."""
    otpauth_uri: str
    """The ``otpauth://totp/…`` provisioning URI (what a QR code would carry)."""


class TeamPublic(BaseModel):
    """A family-doctor team."""

    code: str
    name: str
    organisation: str
    created_at: datetime


class TeamsPublic(Page):
    """A page of teams."""

    data: list[TeamPublic]


class TeamCreate(RequestModel):
    """A new family-doctor team."""

    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    organisation: str = Field(min_length=1, max_length=200)


class MemberPublic(BaseModel):
    """A staff member's place in a team over a period."""

    username: str
    position: str
    valid_from: datetime
    valid_to: datetime | None


class MemberCreate(RequestModel):
    """Make a staff member part of the team from ``since`` (default: now)."""

    username: str = Field(pattern=f"^{USERNAME_PATTERN}$")
    position: Literal["doctor", "nurse", "lead"]
    since: datetime | None = None


class MembershipEnded(BaseModel):
    """How many current memberships were ended."""

    ended: int


class MemberEnd(RequestModel):
    """When a membership ends (default: now)."""

    at: datetime | None = None


class ContractPublic(BaseModel):
    """A patient's contract with a team."""

    id: int
    patient_id: str
    team_code: str
    service_package: str
    starts_on: date
    ends_on: date | None
    end_reason: str | None


class ContractsPublic(Page):
    """A page of contracts."""

    data: list[ContractPublic]


class ContractCreate(RequestModel):
    """Contract (签约) a patient with a team."""

    patient_id: str = Field(min_length=1, max_length=64)
    team_code: str = Field(min_length=1, max_length=64)
    service_package: str = Field(min_length=1, max_length=64)
    starts_on: date


class ContractEnd(RequestModel):
    """End an open contract on ``ends_on`` (exclusive), with the reason."""

    ends_on: date
    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH)


class ShiftPublic(BaseModel):
    """A duty shift of the on-call rota."""

    id: int
    team_code: str
    doctor: str
    starts_at: datetime
    ends_at: datetime
    covers: str | None
    """The doctor on leave this shift covers."""


class ShiftsPublic(Page):
    """A page of duty shifts."""

    data: list[ShiftPublic]


class ShiftCreate(RequestModel):
    """Put a family doctor on duty for a team over ``[starts_at, ends_at)``."""

    team_code: str = Field(min_length=1, max_length=64)
    doctor: str = Field(pattern=f"^{USERNAME_PATTERN}$")
    starts_at: datetime
    ends_at: datetime
    covers: str | None = Field(default=None, pattern=f"^{USERNAME_PATTERN}$")


class FamilyConsentPublic(BaseModel):
    """One consent a patient gave a linked family member."""

    scopes: list[str]
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    in_force: bool


class FamilyLinkPublic(BaseModel):
    """A family account linked to a patient, with every consent the patient gave it."""

    patient_id: str
    username: str
    relationship: str
    linked_at: datetime
    consents: list[FamilyConsentPublic]


class FamilyLinksPublic(Page):
    """A page of family links."""

    data: list[FamilyLinkPublic]


class QuarantineSummary(BaseModel):
    """A quarantine entry without its payload.

    ``detail`` says which check refused it; for a plausibility refusal only the field and
    the rule are given, because the full detail quotes the refused value.
    """

    id: int
    received_at: datetime
    gateway_id: str | None
    topic: str
    reason: str
    detail: str
    reading_id: str | None
    security_event: bool
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


class QuarantineList(Page):
    """A page of quarantine entries, newest first."""

    data: list[QuarantineSummary]


class QuarantineInspect(QuarantineSummary):
    """One entry with the payload as received (health values: the access is audited)."""

    full_detail: str
    raw: str | None
    """The payload as text when it is UTF-8."""
    raw_base64: str
    device_id: str | None
    claimed_patient_id: str | None


class QuarantineRelease(RequestModel):
    """Why the cause is fixed; who decided, for readings measured before their binding."""

    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH)
    decided_by: str | None = Field(default=None, pattern=f"^{USERNAME_PATTERN}$")


class ReleaseResult(BaseModel):
    """What the release did: stored, still refused (and why), or released before."""

    id: int
    released: bool
    already_released: bool
    stored_ids: list[str]
    still_refused: list[str]


class SecurityEventPublic(BaseModel):
    """A gateway sent something it was not entitled to."""

    at: datetime
    gateway_id: str | None
    device_id: str | None
    claimed_patient_id: str | None
    reason: str
    reading_id: str | None


class SecurityEventsPublic(BaseModel):
    """The newest security events."""

    data: list[SecurityEventPublic]


class AuditRowPublic(BaseModel):
    """One row of the audit log."""

    seq: int
    at: datetime
    actor: str
    actor_role: str | None
    action: str
    target: str
    patient_ids: list[str]
    outcome: str
    detail: dict[str, Any]


class AuditPage(Page):
    """A page of audit rows, newest first."""

    data: list[AuditRowPublic]
    next_before_seq: int | None
    """Pass as ``before_seq`` for the next page (stable while the log grows)."""
