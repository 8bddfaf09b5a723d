"""The shipped broker configuration (deploy/mosquitto/) on a real Mosquitto.

A gateway cannot publish under another gateway's prefix. On MQTT 5
it is told so (PUBACK 0x87 "Not authorized"); on MQTT 3.1.1 the broker answers a normal
PUBACK and drops the message; either way ingest never receives it.

The broker runs with the shipped ``acl`` and every general option of the shipped
``mosquitto.conf`` (so a typo there fails here), but with a plain loopback listener and a
password file instead of the TLS listener and client certificates.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import load_settings
from ingest.worker import open_worker
from readings.topics import (
    ALL_ACCEPTED_FILTER,
    ALL_READINGS_FILTER,
    accepted_topic,
    ack_topic,
    readings_topic,
    shared_subscription,
)
from tests.harness.services import MosquittoFactory, MosquittoServer
from tests.harness.shipped_mosquitto import shipped_options
from tests.integration.ingest_helpers import (
    REPO_ROOT,
    Binding,
    TestGateway,
    make_readings,
    make_registry,
)

pytestmark = pytest.mark.integration

DEPLOY_DIR = REPO_ROOT / "deploy" / "mosquitto"
MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")
NOT_AUTHORIZED = 0x87
WAIT_SECONDS = 5.0
QUIET_SECONDS = 0.5
"""After the PUBACK, how long we make sure a refused message does not show up anyway."""

# Options of the shipped file that belong to its TLS listener or name production paths.
LISTENER_AND_PATH_OPTIONS = frozenset(
    {
        "listener",
        "protocol",
        "cafile",
        "certfile",
        "keyfile",
        "tls_version",
        "require_certificate",
        "use_identity_as_username",
        "crlfile",
        "acl_file",
        "persistence_location",
    }
)
USERS = {
    "gw1": "gw1-secret",
    "gw2": "gw2-secret",
    "vitalgate-ingest": "ingest-secret",
    "vitalgate-alerts": "alerts-secret",
    "vitalgate-api": "api-secret",
}


def shipped_general_options() -> list[str]:
    """The shipped mosquitto.conf without its listener, TLS and path options."""
    return shipped_options(LISTENER_AND_PATH_OPTIONS)


@pytest.fixture
def secured_broker(mosquitto_factory: MosquittoFactory, tmp_path: Path) -> MosquittoServer:
    password_file = tmp_path / "passwd"
    password_file.touch()
    for user, password in USERS.items():
        subprocess.run(
            [str(MOSQUITTO_PASSWD), "-b", str(password_file), user, password],
            check=True,
            capture_output=True,
        )
    return mosquitto_factory(
        allow_anonymous=False,
        extra_config=[
            *shipped_general_options(),
            f"password_file {password_file}",
            f"acl_file {DEPLOY_DIR / 'acl'}",
        ],
    )


@dataclass
class Client:
    """A paho client logged in as one user, recording PUBACK/SUBACK codes and messages."""

    client: mqtt.Client
    results: dict[int, list[ReasonCode]]
    messages: list[mqtt.MQTTMessage]
    done: threading.Condition

    def publish(self, topic: str, payload: bytes = b"{}") -> int:
        info = self.client.publish(topic, payload, qos=1)
        return self._wait(info.mid)[0].value

    def subscribe(self, topic: str) -> int:
        _, mid = self.client.subscribe(topic, qos=1)
        return self._wait(mid)[0].value

    def _wait(self, mid: int) -> list[ReasonCode]:
        with self.done:
            assert self.done.wait_for(lambda: mid in self.results, WAIT_SECONDS)
            return self.results[mid]


@pytest.fixture
def connect(secured_broker: MosquittoServer) -> Iterator[Any]:
    clients: list[mqtt.Client] = []

    def make(user: str, protocol: int = mqtt.MQTTv5) -> Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:6]}",
            protocol=protocol,
        )
        client.username_pw_set(user, USERS[user])
        wrapped = Client(client, {}, [], threading.Condition())

        def record(mid: int, codes: list[ReasonCode]) -> None:
            with wrapped.done:
                wrapped.results[mid] = codes
                wrapped.done.notify_all()

        client.on_publish = lambda c, u, mid, code, p: record(mid, [code])
        client.on_subscribe = lambda c, u, mid, codes, p: record(mid, list(codes))
        client.on_message = lambda c, u, message: wrapped.messages.append(message)
        connected = threading.Event()
        client.on_connect = lambda c, u, f, code, p: connected.set()
        client.connect(secured_broker.host, secured_broker.port)
        client.loop_start()
        assert connected.wait(WAIT_SECONDS)
        clients.append(client)
        return wrapped

    yield make
    for client in clients:
        client.disconnect()
        client.loop_stop()


def test_shipped_config_sets_the_silent_drop_limits_explicitly() -> None:
    options = {line.split()[0]: line.split()[1] for line in shipped_general_options()}
    assert options["allow_anonymous"] == "false"
    assert int(options["max_queued_messages"]) > 1000
    assert int(options["max_queued_bytes"]) > 0
    assert options["persistence"] == "true"
    assert "persistent_client_expiration" in options
    assert "max_inflight_messages" in options


def test_a_gateway_cannot_publish_under_another_gateways_prefix(connect: Any) -> None:
    ingest = connect("vitalgate-ingest")
    assert ingest.subscribe(shared_subscription("ingest", ALL_READINGS_FILTER)) == 1
    gw1 = connect("gw1")
    gw1_v311 = connect("gw1", mqtt.MQTTv311)

    assert gw1.publish(readings_topic("gw1"), b"own") == 0
    assert gw1.publish(readings_topic("gw2"), b"spoofed-v5") == NOT_AUTHORIZED
    # MQTT 3.1.1 has no reason codes: a normal PUBACK, and the message is dropped.
    assert gw1_v311.publish(readings_topic("gw2"), b"spoofed-v311") == 0
    assert gw1.publish(accepted_topic(0), b"forged-for-alerts") == NOT_AUTHORIZED
    assert gw1.publish(ack_topic("gw2"), b"forged-ack") == NOT_AUTHORIZED

    threading.Event().wait(QUIET_SECONDS)
    assert [message.payload for message in ingest.messages] == [b"own"]


def test_a_gateway_reads_only_its_own_acks_and_commands(connect: Any) -> None:
    # Mosquitto grants any SUBSCRIBE and applies read rights on delivery: what matters is
    # which messages arrive.
    gw1 = connect("gw1")
    for topic_filter in (ack_topic("gw1"), ack_topic("gw2"), ALL_READINGS_FILTER, "#"):
        gw1.subscribe(topic_filter)
    ingest = connect("vitalgate-ingest")
    assert ingest.publish(ack_topic("gw1"), b"ack-for-gw1") == 0
    assert ingest.publish(ack_topic("gw2"), b"ack-for-gw2") == 0
    assert ingest.publish(accepted_topic(3), b"accepted") == 0
    gw2 = connect("gw2")
    assert gw2.publish(readings_topic("gw2"), b"gw2-readings") == 0
    alerts = connect("vitalgate-alerts")
    assert alerts.publish(readings_topic("gw1")) == NOT_AUTHORIZED

    threading.Event().wait(QUIET_SECONDS)
    assert {message.payload for message in gw1.messages} == {b"ack-for-gw1"}


def test_the_api_hears_accepted_readings_and_announces_its_own_but_no_gateways(
    connect: Any,
) -> None:
    # The live stream reads accepted/; readings the API stored itself (typed in by hand, a
    # nurse's vitals) are announced there for the alert worker. Gateways' topics stay closed.
    api = connect("vitalgate-api")
    api.subscribe(ALL_ACCEPTED_FILTER)
    alerts = connect("vitalgate-alerts")
    alerts.subscribe(ALL_ACCEPTED_FILTER)
    assert api.publish(accepted_topic(5), b"typed-in") == 0
    assert api.publish(readings_topic("gw1"), b"forged-readings") == NOT_AUTHORIZED
    assert api.publish(ack_topic("gw1"), b"forged-ack") == NOT_AUTHORIZED
    ingest = connect("vitalgate-ingest")
    assert ingest.publish(accepted_topic(3), b"from-ingest") == 0

    threading.Event().wait(QUIET_SECONDS)
    assert {m.payload for m in api.messages} == {b"typed-in", b"from-ingest"}
    assert {m.payload for m in alerts.messages} == {b"typed-in", b"from-ingest"}


def test_ingest_works_within_its_acl(
    secured_broker: MosquittoServer, connect: Any, tmp_path: Path
) -> None:
    """Ingest logged in as vitalgate-ingest reads readings and may answer on ack/accepted."""
    binding = Binding("gw1", "Acme-GlucoMeter-0001", "patient-a")
    registry_url = make_registry(tmp_path / "registry.db", [binding])
    broker = secured_broker
    worker = open_worker(
        load_settings(
            mqtt_url=f"mqtt://vitalgate-ingest:{USERS['vitalgate-ingest']}@{broker.host}:{broker.port}",
            store_url=f"sqlite:///{tmp_path / 'readings.db'}",
            registry_url=registry_url,
            client_id="ingest-acl",
            metrics_port=None,
        )
    )
    alerts = connect("vitalgate-alerts")
    assert alerts.subscribe(ALL_ACCEPTED_FILTER) == 1
    worker.start()
    try:
        readings = make_readings(binding, 5)
        with TestGateway(broker.host, broker.port, "gw1", password=USERS["gw1"]) as gateway:
            gateway.send(readings)
            gateway.wait_for_acks(reading.id for reading in readings)
    finally:
        worker.close()
    assert len(alerts.messages) == 1
