"""The pure examination of status and events messages: every named rejection, and the
updates a sound message becomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.fleet import (
    EventUpdate,
    FleetRejection,
    FleetRejectionReason,
    StatusUpdate,
    examine_fleet_message,
)
from readings.codec import (
    EventMessage,
    EventType,
    GatewayState,
    StatusMessage,
    encode_message,
)
from readings.topics import events_topic, readings_topic, status_topic

NOW = datetime(2026, 3, 2, 6, 2, tzinfo=UTC)
STATUS = encode_message(
    StatusMessage(gateway_id="gw-0001", state=GatewayState.ONLINE, at=NOW, queue_depth=3)
)
EVENT = encode_message(
    EventMessage(
        gateway_id="gw-0001",
        at=NOW,
        event=EventType.BATTERY_LOW,
        device_id="Omron-HEM_7600T-20250001",
        detail={"battery_percent": 12},
    )
)


def test_a_status_becomes_a_status_update_keeping_the_retained_flag() -> None:
    examined = examine_fleet_message(
        status_topic("gw-0001"), STATUS, received_at=NOW, retained=True
    )
    assert isinstance(examined, StatusUpdate)
    assert examined.retained is True
    assert examined.message.queue_depth == 3
    assert examined.received_at == NOW


def test_an_event_becomes_an_event_update() -> None:
    examined = examine_fleet_message(events_topic("gw-0001"), EVENT, received_at=NOW)
    assert isinstance(examined, EventUpdate)
    assert examined.message.event is EventType.BATTERY_LOW


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("other/gw-0001/status", STATUS, FleetRejectionReason.BAD_TOPIC),
        (readings_topic("gw-0001"), STATUS, FleetRejectionReason.NOT_FLEET),
        ("vitalgate/v1/gw/vitalgate-ingest/status", STATUS, FleetRejectionReason.RESERVED_GATEWAY),
        (status_topic("gw-0001"), b"", FleetRejectionReason.EMPTY),
        (status_topic("gw-0001"), b"{not json", FleetRejectionReason.UNDECODABLE),
        (status_topic("gw-0001"), EVENT, FleetRejectionReason.UNDECODABLE),
        (events_topic("gw-0001"), STATUS, FleetRejectionReason.UNDECODABLE),
        (
            status_topic("gw-0001"),
            STATUS.replace(b'"v":1', b'"v":2'),
            FleetRejectionReason.UNDECODABLE,
        ),
        (status_topic("gw-0002"), STATUS, FleetRejectionReason.GATEWAY_MISMATCH),
        (events_topic("gw-0002"), EVENT, FleetRejectionReason.GATEWAY_MISMATCH),
    ],
)
def test_unusable_messages_are_rejected_with_a_named_reason(
    topic: str, payload: bytes, reason: FleetRejectionReason
) -> None:
    examined = examine_fleet_message(topic, payload, received_at=NOW)
    assert isinstance(examined, FleetRejection)
    assert examined.reason is reason
    assert examined.topic == topic
