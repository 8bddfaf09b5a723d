"""The fleet through the API: who sees which gateway, what the devices route says of a
cuff's battery and a gateway offline since when, and pairing end to end through a real
Mosquitto (the API publishes cmd/pair, a gateway stand-in answers with a paired event, the
fleet listener binds the device)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from dashboard_api.app import create_app
from dashboard_api.commands import MqttCommandPublisher
from dashboard_api.config import ApiSettings
from dashboard_api.sms import FileSmsSender
from infra.mqtt import ClientSettings, parse_mqtt_url
from ingest.fleet_listener import FleetListener, fleet_client_settings
from readings.codec import (
    DeviceStatus,
    EventMessage,
    EventType,
    GatewayState,
    PairCommand,
    StatusMessage,
    decode_message,
    encode_message,
)
from readings.topics import command_filter, events_topic
from registry.db import session_scope
from registry.fleet import FleetRepository
from registry.models import AuditRecord
from registry.repositories import DeviceRepository
from tests.dashboard_api.conftest import CUFF, GATEWAY, METER, TOKEN_SECRET, Deployment
from tests.harness.services import MosquittoServer


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _record_fleet(deployment: Deployment) -> None:
    """The gateway was online, reported the meter, then its will arrived 14:02 local."""
    clock = deployment.clock
    seen = clock.now - timedelta(minutes=30)
    gone = clock.now - timedelta(minutes=20)
    with session_scope(deployment.registry) as session:
        fleet = FleetRepository(session, clock=clock)
        fleet.record_status(
            StatusMessage(
                gateway_id=GATEWAY,
                state=GatewayState.ONLINE,
                at=seen,
                queue_depth=12,
                software_version="0.9.1",
                devices=[DeviceStatus(device_id=METER, state="idle", battery_percent=15)],
            ),
            received_at=seen,
        )
        fleet.record_event(
            EventMessage(
                gateway_id=GATEWAY,
                at=seen,
                event=EventType.BATTERY_LOW,
                device_id=METER,
                detail={"battery_percent": 15},
            ),
            received_at=seen,
        )
        fleet.record_status(
            StatusMessage(gateway_id=GATEWAY, state=GatewayState.OFFLINE, at=seen),
            received_at=gone,
        )


def test_the_devices_route_says_battery_low_and_offline_since(deployment: Deployment) -> None:
    _record_fleet(deployment)
    response = deployment.client.get(
        "/api/v1/patients/p-wang/devices", headers=_bearer(deployment.login("nurse.liu"))
    )
    assert response.status_code == 200, response.text
    (meter,) = [row for row in response.json() if row["device_id"] == METER]
    assert meter["status"]["battery_low"] is True
    assert meter["status"]["battery_percent"] == 15
    gateway = meter["gateway"]
    assert gateway["state"] == "offline"
    assert gateway["since"].startswith(
        (deployment.clock.now - timedelta(minutes=20)).isoformat()[:19]
    )
    assert gateway["since_exact"] is True
    assert gateway["last_seen_age_seconds"] == 30 * 60


def test_the_fleet_is_whole_for_it_and_partial_for_a_doctor(deployment: Deployment) -> None:
    _record_fleet(deployment)
    it = deployment.client.get("/api/v1/gateways", headers=_bearer(deployment.login("it.wu")))
    assert it.status_code == 200
    (row,) = it.json()["data"]
    assert (row["gateway_id"], row["queue_depth"], row["software_version"]) == (
        GATEWAY,
        12,
        "0.9.1",
    )
    assert row["connection"]["state"] == "offline"
    assert [d["device_id"] for d in row["devices"]] == [METER]

    other = deployment.client.get("/api/v1/gateways", headers=_bearer(deployment.login("dr.chen")))
    assert other.json() == {"data": [], "count": 0}
    hidden = deployment.client.get(
        f"/api/v1/gateways/{GATEWAY}", headers=_bearer(deployment.login("dr.chen"))
    )
    unknown = deployment.client.get(
        "/api/v1/gateways/gw-9999", headers=_bearer(deployment.login("dr.chen"))
    )
    assert (hidden.status_code, hidden.json()) == (unknown.status_code, unknown.json())
    assert hidden.status_code == 404

    detail = deployment.client.get(
        f"/api/v1/gateways/{GATEWAY}", headers=_bearer(deployment.login("dr.zhang"))
    )
    assert detail.status_code == 200
    assert [e["event"] for e in detail.json()["events"]] == ["battery_low"]
    with session_scope(deployment.registry, write=False) as session:
        row_audit = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.target == "GET /api/v1/gateways/{gateway_id}")
            .order_by(AuditRecord.seq.desc())
        ).first()
    assert row_audit is not None
    assert json.loads(row_audit.patient_ids) == ["p-wang"]


def test_a_family_member_may_not_name_another_gateway(deployment: Deployment) -> None:
    token = deployment.sms_login("13800000001")  # the patient herself
    response = deployment.client.post(
        "/api/v1/patients/p-wang/devices/pair",
        json={"gateway_id": "gw-0002", "window_seconds": 60},
        headers=_bearer(token),
    )
    assert response.status_code == 422
    assert deployment.commands.sent == []


def test_unpair_closes_the_binding_and_tells_the_gateway(deployment: Deployment) -> None:
    response = deployment.client.post(
        f"/api/v1/patients/p-wang/devices/{METER}/unpair",
        headers=_bearer(deployment.login("nurse.liu")),
    )
    assert response.status_code == 200, response.text
    assert response.json()["command_sent"] is True
    ((topic, payload),) = deployment.commands.sent
    assert topic == f"vitalgate/v1/gw/{GATEWAY}/cmd/unpair"
    assert json.loads(payload)["device_id"] == METER
    with session_scope(deployment.registry, write=False) as session:
        assert DeviceRepository(session).current_pairing(METER) is None
    again = deployment.client.post(
        f"/api/v1/patients/p-wang/devices/{METER}/unpair",
        headers=_bearer(deployment.login("nurse.liu")),
    )
    assert again.status_code == 404


class GatewayStandIn:
    """Answers cmd/pair like a gateway that finds one cuff: a ``paired`` event."""

    def __init__(self, mosquitto: MosquittoServer) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=GATEWAY)
        self.subscribed = threading.Event()
        self.commands: list[PairCommand] = []
        self.client.on_connect = lambda c, *_: c.subscribe(command_filter(GATEWAY), qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.loop_start()

    def _on_message(self, client: Any, _userdata: Any, message: Any) -> None:
        command = decode_message(bytes(message.payload), PairCommand)
        self.commands.append(command)
        event = EventMessage(
            gateway_id=GATEWAY,
            at=_NOW[0],
            event=EventType.PAIRED,
            device_id=CUFF,
            detail={"patient_id": command.patient_id, "profile": "omron-hem-7600t"},
        )
        client.publish(events_topic(GATEWAY), encode_message(event), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


_NOW: list[Any] = [None]


@pytest.fixture
def wired(deployment: Deployment, mosquitto: MosquittoServer) -> Iterator[TestClient]:
    """The same registry served by an API whose commands go through a real broker, with the
    fleet listener recording the gateway's answers."""
    _NOW[0] = deployment.clock.now
    base = ClientSettings(endpoint=parse_mqtt_url(mosquitto.url), client_id="vitalgate-api-test")
    publisher = MqttCommandPublisher(base)
    publisher.start()
    listener = FleetListener(
        fleet_client_settings(base, client_id="vitalgate-fleet-test"),
        deployment.registry,
        clock=deployment.clock,
    )
    listener.start()
    gateway = GatewayStandIn(mosquitto)
    assert listener.subscribed.wait(10)
    assert gateway.subscribed.wait(10)
    app = create_app(
        ApiSettings(token_secret=TOKEN_SECRET, secure_cookies=False),
        registry=deployment.registry,
        store=deployment.store,
        sms=FileSmsSender(deployment.sms_file),
        clock=deployment.clock,
        commands=publisher,
    )
    try:
        with TestClient(app) as client:
            yield client
    finally:
        gateway.close()
        listener.stop()
        publisher.stop()


@pytest.mark.integration
def test_pairing_reports_the_device_the_gateway_paired(
    deployment: Deployment, wired: TestClient
) -> None:
    token = deployment.login("nurse.liu")
    response = wired.post(
        "/api/v1/patients/p-wang/devices/pair",
        json={"window_seconds": 120, "wait_seconds": 10},
        headers=_bearer(token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["device_id"], body["gateway_id"]) == ("paired", CUFF, GATEWAY)
    with session_scope(deployment.registry, write=False) as session:
        pairing = DeviceRepository(session).current_pairing(CUFF)
    assert pairing is not None
    assert pairing.patient_id == "p-wang"
    listed = wired.get("/api/v1/patients/p-wang/devices/pairing-requests", headers=_bearer(token))
    assert [r["state"] for r in listed.json()] == ["paired"]
    with session_scope(deployment.registry, write=False) as session:
        actions = session.scalars(select(AuditRecord.action)).all()
    assert "device.pair_requested" in actions
