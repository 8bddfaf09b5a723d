"""Tables of the gateway fleet state: what the central fleet listener learned from each
gateway's retained ``status`` and its ``events`` (see ``docs/fleet.md``).

* :class:`GatewayStatusRow` — one row per gateway: online or offline, since when, when it
  was last heard from, its outbox backlog and software version.
* :class:`DeviceStatusRow` — one row per device: what its gateway last said of it (state,
  last contact, battery level) and the last error and low-battery event.
* :class:`GatewayEventRow` — the append-only event log; ``event_key`` (a digest of the
  event's gateway, time, type, device and detail) is unique, so a redelivered event is
  stored once.
* :class:`PairingRequestRow` — a pairing window the API opened on a gateway, and how it
  ended. The listener binds a device from a ``paired`` event only when such a request is
  open for that gateway and patient (a gateway alone cannot bind a device to a patient).

Nothing here is a health value: battery levels, error reasons and outbox counts only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import DEVICE_ID_LENGTH, Base

EVENT_KEY_LENGTH: Final = 64
"""A SHA-256 in hex."""

_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class GatewayStatusRow(Base):
    """A gateway's last known status (one row per gateway, replaced as statuses arrive)."""

    __tablename__ = "gateway_status"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    """``online`` or ``offline`` (:class:`readings.codec.GatewayState`)."""
    since: Mapped[datetime]
    """When the gateway entered ``state``, by the listener's clock (see ``docs/fleet.md``)."""
    since_exact: Mapped[bool] = mapped_column(Boolean)
    """False when the change happened while no listener ran and ``since`` is the earliest
    moment that is known to be right (a retained status found on subscribing)."""
    last_seen_at: Mapped[datetime | None]
    """The last time anything arrived from the gateway while it was online."""
    status_at: Mapped[datetime | None]
    """The ``at`` of the last status message (the gateway's clock; a will's ``at`` is the
    time it connected)."""
    queue_depth: Mapped[int | None] = mapped_column(Integer)
    oldest_unacked_age_seconds: Mapped[float | None] = mapped_column(Float)
    outbox_bytes: Mapped[int | None] = mapped_column(BigInteger)
    outbox_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    over_quota: Mapped[bool] = mapped_column(Boolean)
    software_version: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class DeviceStatusRow(Base):
    """What the fleet knows of one device: its gateway's last word and its last troubles."""

    __tablename__ = "device_status"

    device_id: Mapped[str] = mapped_column(String(DEVICE_ID_LENGTH), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    state: Mapped[str | None] = mapped_column(String(32))
    """``connected``, ``idle``, ``backoff``, ``error`` … as the gateway's status says."""
    last_contact: Mapped[datetime | None]
    battery_percent: Mapped[int | None] = mapped_column(Integer)
    battery_low_at: Mapped[datetime | None]
    """The last ``battery_low`` event; cleared when a status reports the battery at
    ``registry.fleet.BATTERY_REPLACED_PERCENT`` or more (a new battery)."""
    last_error: Mapped[str | None] = mapped_column(String(200))
    """The ``reason`` of the last ``device_error`` event."""
    last_error_at: Mapped[datetime | None]
    readings_not_stored: Mapped[int] = mapped_column(Integer)
    readings_lost: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class GatewayEventRow(Base):
    """One event a gateway reported, stored once (append-only; nothing updates it)."""

    __tablename__ = "gateway_events"
    __table_args__ = (Index("ix_gateway_events_gateway_id_at", "gateway_id", "at"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    event_key: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH), unique=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    at: Mapped[datetime]
    """When it happened, by the gateway's clock."""
    received_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str | None] = mapped_column(String(DEVICE_ID_LENGTH), index=True)
    detail: Mapped[str] = mapped_column(Text)
    """The event's detail as JSON (sorted keys); no health values travel in events."""


class PairingRequestRow(Base):
    """A pairing window opened through the API (``cmd/pair``), and its outcome."""

    __tablename__ = "pairing_requests"
    __table_args__ = (Index("ix_pairing_requests_gateway_id_state", "gateway_id", "state"),)

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime]
    window_seconds: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime]
    profile: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    """``pending``, ``paired`` or ``failed`` (a pending request past ``expires_at`` is
    reported as ``timeout``)."""
    device_id: Mapped[str | None] = mapped_column(String(DEVICE_ID_LENGTH))
    outcome: Mapped[str | None] = mapped_column(String(200))
    """Why it failed (``device bound to another patient`` …), or ``None``."""
    resolved_at: Mapped[datetime | None]
