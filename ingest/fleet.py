"""Examining a gateway's ``status`` or ``events`` message: pure, no I/O.

:func:`examine_fleet_message` turns a topic and a payload into a :class:`StatusUpdate`, an
:class:`EventUpdate` or a :class:`FleetRejection` that names why the message cannot be
used. The listener (:mod:`ingest.fleet_listener`) only stores what comes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from readings.codec import EventMessage, StatusMessage, decode_message
from readings.errors import PayloadError, TopicError
from readings.topics import Channel, is_reserved_gateway_id, parse_topic


class FleetRejectionReason(StrEnum):
    """Why a message on a status or events topic was not recorded."""

    BAD_TOPIC = "bad_topic"
    """Not a contract topic."""
    NOT_FLEET = "not_fleet"
    """A contract topic, but neither ``status`` nor ``events``."""
    RESERVED_GATEWAY = "reserved_gateway"
    """The topic's gateway id is a service identity's."""
    EMPTY = "empty"
    """An empty payload: a retained status being cleared (gateway retired)."""
    UNDECODABLE = "undecodable"
    """The payload breaks the contract (JSON, version, fields)."""
    GATEWAY_MISMATCH = "gateway_mismatch"
    """The payload names another gateway than its topic (the broker's ACL vouches only for
    the topic)."""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A gateway's status, to be stored."""

    message: StatusMessage
    received_at: datetime
    retained: bool
    """Delivered from the broker's retained store on subscribing, not as it happened."""


@dataclass(frozen=True, slots=True)
class EventUpdate:
    """A gateway event, to be stored (once)."""

    message: EventMessage
    received_at: datetime


@dataclass(frozen=True, slots=True)
class FleetRejection:
    """A message that was not recorded, and why (no payload bytes: they may be anything)."""

    reason: FleetRejectionReason
    topic: str
    detail: str


FleetUpdate = StatusUpdate | EventUpdate


def examine_fleet_message(
    topic: str, payload: bytes, *, received_at: datetime, retained: bool = False
) -> FleetUpdate | FleetRejection:
    """What a message on ``gw/{id}/status`` or ``gw/{id}/events`` means for the fleet state."""
    try:
        parsed = parse_topic(topic)
    except TopicError as exc:
        return FleetRejection(FleetRejectionReason.BAD_TOPIC, topic, str(exc))
    if parsed.channel not in (Channel.STATUS, Channel.EVENTS) or parsed.gateway_id is None:
        return FleetRejection(FleetRejectionReason.NOT_FLEET, topic, parsed.channel.value)
    if is_reserved_gateway_id(parsed.gateway_id):
        return FleetRejection(FleetRejectionReason.RESERVED_GATEWAY, topic, parsed.gateway_id)
    if not payload:
        return FleetRejection(FleetRejectionReason.EMPTY, topic, "empty payload")
    message: StatusMessage | EventMessage
    try:
        if parsed.channel is Channel.STATUS:
            message = decode_message(payload, StatusMessage)
        else:
            message = decode_message(payload, EventMessage)
    except PayloadError as exc:
        return FleetRejection(
            FleetRejectionReason.UNDECODABLE, topic, f"{exc.field}: {exc.problem}"
        )
    if message.gateway_id != parsed.gateway_id:
        return FleetRejection(
            FleetRejectionReason.GATEWAY_MISMATCH,
            topic,
            f"payload names {message.gateway_id!r}, topic {parsed.gateway_id!r}",
        )
    if isinstance(message, StatusMessage):
        return StatusUpdate(message=message, received_at=received_at, retained=retained)
    return EventUpdate(message=message, received_at=received_at)
