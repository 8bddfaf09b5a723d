"""What Mosquitto does, after a restart, with a QoS 1 message for a shared-subscription
group whose members are all offline (``docs/scaling.md``, section 6;
``docs/benchmarks.md``, "Thundering herd").

Ingest subscribes through ``$share/{group}/…`` with a persistent session. Without a
restart, Mosquitto 2.0.11 queues the group's messages for the offline member, as it does
for a plain subscription. After a clean restart, which reloads the sessions from the
persistence file, it queues them only for the plain subscription. The publisher gets its
PUBACK, and the message for the shared group is gone. After a broker restart, then,
readings published before ingest reconnects arrive only when the gateway's end-to-end
ack timeout sends them again. This test pins that behaviour. If a Mosquitto upgrade
restores shared subscriptions, it fails, and the drain-time analysis in the docs has to
be revisited.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.harness.services import MosquittoServer

SUBSCRIBE_SECONDS = 2
"""Long enough for mosquitto_sub to connect, subscribe and get queued messages on loopback."""

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None or shutil.which("mosquitto_pub") is None,
    reason="needs the mosquitto clients",
)


def _session(broker: MosquittoServer, client_id: str, topic_filter: str) -> list[str]:
    """Connect with a persistent MQTT 5 session, subscribe at QoS 1, return what arrives."""
    result = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-V",
            "mqttv5",
            "-c",
            "-x",
            "3600",
            "-i",
            client_id,
            "-q",
            "1",
            "-t",
            topic_filter,
            "-W",
            str(SUBSCRIBE_SECONDS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.split()


def _publish(broker: MosquittoServer, topic: str, payload: str) -> None:
    subprocess.run(
        [
            *("mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1"),
            *("-V", "mqttv5", "-t", topic, "-m", payload),
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("restart", [False, True], ids=["same-broker", "after-restart"])
def test_offline_shared_member_after_a_broker_restart_gets_nothing(
    mosquitto: MosquittoServer, restart: bool
) -> None:
    topic = "vitalgate/v1/gw/gw1/readings"
    shared = f"shared-{uuid.uuid4().hex[:8]}"
    plain = f"plain-{uuid.uuid4().hex[:8]}"
    # Both sessions exist and are subscribed, then both go offline.
    assert _session(mosquitto, shared, f"$share/ingest/{topic}") == []
    assert _session(mosquitto, plain, topic) == []

    if restart:
        mosquitto.restart(graceful=True)  # sessions come back from the persistence file

    _publish(mosquitto, topic, "while-offline")

    assert _session(mosquitto, plain, topic) == ["while-offline"]
    expected_shared = [] if restart else ["while-offline"]
    assert _session(mosquitto, shared, f"$share/ingest/{topic}") == expected_shared
