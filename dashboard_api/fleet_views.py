"""The fleet state as the API shows it, built from :mod:`registry.fleet` records (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from dashboard_api.schemas import (
    DeviceFleetPublic,
    GatewayDevicePublic,
    GatewayPublic,
    GatewayStatePublic,
)
from readings.codec import GatewayState
from registry.fleet import DeviceFleetStatus, GatewayStatus
from registry.repositories import GatewayRecord

STALE_AFTER_SECONDS: Final = 180.0
"""Three periods of the gateway's status (60 s by default, gateway.publisher): an online
gateway silent that long has probably lost its link before the broker noticed (the will
comes only 1.5 keepalives after the broker stops hearing from it)."""


def gateway_state(status: GatewayStatus | None, now: datetime) -> GatewayStatePublic:
    """Online/offline, since when, how long ago it was last heard."""
    if status is None:
        return GatewayStatePublic(
            state="unknown",
            since=None,
            since_exact=False,
            last_seen_at=None,
            last_seen_age_seconds=None,
            stale=False,
        )
    age = None if status.last_seen_at is None else (now - status.last_seen_at).total_seconds()
    return GatewayStatePublic(
        state=status.state.value,
        since=status.since,
        since_exact=status.since_exact,
        last_seen_at=status.last_seen_at,
        last_seen_age_seconds=age,
        stale=status.state is GatewayState.ONLINE and age is not None and age > STALE_AFTER_SECONDS,
    )


def device_fleet(device: DeviceFleetStatus | None) -> DeviceFleetPublic | None:
    """What the fleet knows of a device, ``None`` if nothing."""
    if device is None:
        return None
    return DeviceFleetPublic(
        state=device.state,
        last_contact=device.last_contact,
        battery_percent=device.battery_percent,
        battery_low=device.battery_low_at is not None,
        battery_low_at=device.battery_low_at,
        last_error=device.last_error,
        last_error_at=device.last_error_at,
    )


def gateway_public(
    gateway: GatewayRecord,
    status: GatewayStatus | None,
    devices: list[DeviceFleetStatus],
    now: datetime,
) -> GatewayPublic:
    """A gateway's fleet status."""
    return GatewayPublic(
        gateway_id=gateway.id,
        label=gateway.label,
        active=gateway.active,
        connection=gateway_state(status, now),
        queue_depth=status.queue_depth if status else None,
        oldest_unacked_age_seconds=status.oldest_unacked_age_seconds if status else None,
        outbox_bytes=status.outbox_bytes if status else None,
        outbox_quota_bytes=status.outbox_quota_bytes if status else None,
        over_quota=status.over_quota if status else False,
        software_version=status.software_version if status else None,
        devices=[
            GatewayDevicePublic(device_id=d.device_id, **device_fleet(d).model_dump())  # type: ignore[union-attr]
            for d in devices
        ],
    )
