"""Request and response models of the API (pydantic; unknown request fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RequestModel(BaseModel):
    """Base of request bodies: an unknown field is a 422, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(BaseModel):
    """Every error answer: a message, or for a refused request the list of what is wrong
    (FastAPI's validation issues: ``loc``, ``msg``, ``type``)."""

    detail: str | list[dict[str, Any]]


class StaffLogin(RequestModel):
    """Username, password and the current TOTP code."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=6, max_length=8, pattern=r"^[0-9]+$")


class RefreshRequest(RequestModel):
    """A refresh token (API clients; pages send the cookie instead)."""

    refresh_token: str | None = Field(default=None, max_length=256)


class SmsLinkRequest(RequestModel):
    """Send a one-time login link to this phone (patients and family)."""

    phone: str = Field(pattern=r"^\+?[0-9]{6,20}$")


class SmsLinkRedeem(RequestModel):
    """The token from the link."""

    token: str = Field(min_length=16, max_length=128)


class TokenPublic(BaseModel):
    """A login session as API clients receive it."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type
    expires_at: datetime
    refresh_token: str
    csrf_token: str


class Accepted(BaseModel):
    """The request was taken; nothing more is said (so it cannot be used to probe)."""

    accepted: bool = True


class MePublic(BaseModel):
    """The caller's own account."""

    username: str
    roles: list[str]
    patient_id: str | None


class LatestReading(BaseModel):
    """The newest reading of one kind."""

    kind: str
    measured_at: datetime
    values: dict[str, float]
    unit: str
    flags: list[str]


class PatientPublic(BaseModel):
    """A patient as a list or a detail page shows them."""

    id: str
    display_name: str | None
    time_zone: str
    conditions: list[str]
    status: str
    status_reason: str
    latest: list[LatestReading]
    last_contact: datetime | None
    """When the newest reading of any kind was measured."""
    relationship: str
    """How the caller is related to the patient (``team_doctor``, ``family`` …)."""


class PatientsPublic(BaseModel):
    """A list of patients."""

    data: list[PatientPublic]
    count: int


class ReadingPoint(BaseModel):
    """One reading (raw) or one window (downsampled) of a chart series."""

    t: datetime
    values: dict[str, float]
    """Raw: the reading's values. Downsampled: ``<field>`` (mean), ``<field>_min``,
    ``<field>_max``."""
    count: int = 1
    id: str | None = None
    device_id: str | None = None
    flags: list[str] = Field(default_factory=list)
    clock_corrected: bool = False
    manual: bool = False


class ReadingSeries(BaseModel):
    """A patient's readings of one kind over a time range, for a chart or a table."""

    patient_id: str
    kind: str
    start: datetime
    end: datetime
    units: dict[str, str]
    downsampled: bool
    window_seconds: float | None
    total: int
    points: list[ReadingPoint]


class TargetCreate(RequestModel):
    """A personal target, effective from a moment on."""

    metric: Literal["glucose", "systolic", "diastolic", "weight", "spo2"]
    low: float | None = None
    high: float | None = None
    unit: Literal["mmol/L", "mm[Hg]", "kg", "%"]
    effective_from: datetime | None = None
    reason: str = Field(min_length=1, max_length=500)


class TargetPublic(BaseModel):
    """A target as stored."""

    metric: str
    low: float | None
    high: float | None
    unit: str
    effective_from: datetime
    set_by: str
    reason: str


class BreakGlassRequest(RequestModel):
    """Open a patient in an emergency, with the reason (recorded, and the lead is told)."""

    reason: str = Field(min_length=10, max_length=500)
    minutes: int = Field(default=60, ge=5, le=240)


class BreakGlassPublic(BaseModel):
    """The emergency access opened."""

    patient_id: str
    ends_at: datetime


class AuditVerifyPublic(BaseModel):
    """Result of checking the audit chain."""

    intact: bool
    rows: int
    head_hash: str | None
    problems: list[str]
    first_broken_seq: int | None = None
    """The lowest ``seq`` a problem names (``None`` when intact): the chain holds below it."""


class DevicePairingPublic(BaseModel):
    """A device of the patient and one of its pairings (current or past)."""

    device_id: str
    manufacturer: str
    model: str
    serial: str
    profile: str | None
    gateway_id: str
    valid_from: datetime
    valid_to: datetime | None
    current: bool
    status: DeviceFleetPublic | None = None
    """What its gateway last said of it (battery, errors); ``None`` if nothing yet."""
    gateway: GatewayStatePublic | None = None
    """The gateway's online/offline state, for the current pairing only."""


class DeviceFleetPublic(BaseModel):
    """A device as the fleet knows it: so a page can say "cuff battery low"."""

    state: str | None
    last_contact: datetime | None
    battery_percent: int | None
    battery_low: bool
    """A ``battery_low`` event arrived since the last status that showed a fuller battery."""
    battery_low_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None


class GatewayStatePublic(BaseModel):
    """Online or offline, since when (see docs/fleet.md): "gateway offline since 14:02"."""

    state: Literal["online", "offline", "unknown"]
    """``unknown``: no status has arrived from it yet."""
    since: datetime | None
    since_exact: bool
    """False when the change happened while no fleet listener ran: ``since`` is the
    earliest moment known to be right, the change may be later."""
    last_seen_at: datetime | None
    last_seen_age_seconds: float | None
    stale: bool
    """Says online, but nothing was heard for longer than three status periods: the link
    is probably gone and the broker has not noticed yet."""


class GatewayDevicePublic(DeviceFleetPublic):
    """A device on a gateway's list."""

    device_id: str


class GatewayEventPublic(BaseModel):
    """One event a gateway reported (no health values travel in events)."""

    at: datetime
    received_at: datetime
    event: str
    device_id: str | None
    detail: dict[str, str | int | float | bool]


class GatewayPublic(BaseModel):
    """A gateway's fleet status."""

    gateway_id: str
    label: str
    active: bool
    connection: GatewayStatePublic
    queue_depth: int | None
    """Readings waiting in its outbox (last known; kept while offline)."""
    oldest_unacked_age_seconds: float | None
    outbox_bytes: int | None
    outbox_quota_bytes: int | None
    over_quota: bool
    software_version: str | None
    devices: list[GatewayDevicePublic]


class GatewayDetailPublic(GatewayPublic):
    """A gateway with its newest events."""

    events: list[GatewayEventPublic]


class GatewaysPublic(BaseModel):
    """The gateways the caller may see."""

    data: list[GatewayPublic]
    count: int


class PairRequestCreate(RequestModel):
    """Open a pairing window on a gateway of the patient."""

    gateway_id: str | None = Field(default=None, min_length=1, max_length=64)
    """Which gateway; may be left out when the patient's devices use exactly one."""
    window_seconds: int = Field(default=120, ge=1, le=900)
    """How long the gateway looks for new devices (at most 15 min: a Just-Works meter
    should not stay exposed longer)."""
    profile: str | None = Field(default=None, min_length=1, max_length=128)
    """Only pair devices of this profile."""
    wait_seconds: float = Field(default=0, ge=0, le=30)
    """Wait this long for the result before answering (0: answer at once, pending)."""


class PairingRequestPublic(BaseModel):
    """A pairing window opened through the API and how it ended (so far)."""

    request_id: int
    gateway_id: str
    state: Literal["pending", "paired", "failed", "timeout"]
    window_seconds: int
    requested_at: datetime
    expires_at: datetime
    device_id: str | None
    outcome: str | None


class UnpairedPublic(BaseModel):
    """The device is no longer the patient's; whether the gateway was told."""

    device_id: str
    gateway_id: str
    valid_to: datetime
    command_sent: bool


class ConsentPublic(BaseModel):
    """A consent the patient gave a family member."""

    username: str
    relationship: str
    phone_hint: str | None
    """The last four digits of the family member's phone (how the patient recognises an
    account she invited by phone); None without a phone."""
    scopes: list[str]
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    in_force: bool


class ConsentCreate(RequestModel):
    """Let a linked family member see or do what the scopes say, until revoked or expired."""

    username: str = Field(min_length=2, max_length=64)
    scopes: list[Literal["view_readings", "receive_alerts", "act_for_patient"]] = Field(
        min_length=1
    )
    expires_at: datetime | None = None


class ConsentRevoked(BaseModel):
    """How many consents in force were revoked."""

    revoked: int


DevicePairingPublic.model_rebuild()  # its fleet fields are defined after it
