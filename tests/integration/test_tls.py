"""TLS and certificate identity on a real Mosquitto, with a CA made for the test.

The broker runs the shipped ``deploy/mosquitto/`` setup: its general options and ACL,
and a TLS listener with ``require_certificate``, ``use_identity_as_username`` and the
CA's CRL (``crlfile``). The gateway (the real ``python -m gateway`` process, and its
publisher in-process) and the ingest worker log in with client certificates whose CN is
their identity. Refused certificates (another CA, expired, revoked) and a gateway that
does not trust the broker's certificate must each be explained in the gateway's log and
in its local link status file, since a refused gateway cannot publish a status; and the
certificate of gw-1 cannot put readings under gw-2's topics.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from gateway.outbox import SqliteOutbox
from gateway.publisher import BrokerSettings, Publisher, PublisherSettings, TlsSettings
from infra.mqtt import ClientSettings, connect, create_client, parse_mqtt_url
from infra.mqtt import TlsSettings as ClientTls
from ingest.config import load_settings
from ingest.stores.sqlite_store import SqliteReadingStore
from ingest.worker import IngestConnectError, IngestWorker, open_worker
from readings.codec import encode_envelope
from readings.topics import readings_topic
from tests.harness.pki import IssuedCertificate, TestCA
from tests.harness.services import MosquittoFactory, MosquittoServer, MosquittoTls
from tests.harness.shipped_mosquitto import shipped_options
from tests.integration.ingest_helpers import REPO_ROOT, Binding, make_readings, make_registry

pytestmark = pytest.mark.integration

DEPLOY_DIR = REPO_ROOT / "deploy" / "mosquitto"
WAIT_SECONDS = 20.0
QUIET_SECONDS = 1.0
"""After a refused PUBACK, how long we make sure the message does not reach ingest anyway."""
NOT_AUTHORIZED = 0x87
GW1 = Binding("gw-1", "acme-glucose-0001", "patient-1")
GW2 = Binding("gw-2", "acme-glucose-0002", "patient-2")
INGEST_IDENTITY = "vitalgate-ingest"
SHIPPED_LISTENER_AND_PATH_OPTIONS = frozenset(
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
"""Options of the shipped file that name production paths or belong to its listener (the
harness writes the test's own TLS listener with the same settings)."""


def shipped_general_options() -> list[str]:
    """The shipped mosquitto.conf without its listener block and production paths."""
    return shipped_options(SHIPPED_LISTENER_AND_PATH_OPTIONS)


def shipped_listener_options() -> dict[str, str]:
    """The shipped TLS listener's identity options (they must be what the test runs)."""
    options = {}
    for line in (DEPLOY_DIR / "mosquitto.conf").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in ("require_certificate", "use_identity_as_username"):
            options[parts[0]] = parts[1]
    return options


@dataclass(frozen=True)
class Pki:
    """The test's CA, a rogue CA, and the certificates issued from them."""

    ca: TestCA
    broker: IssuedCertificate
    gw1: IssuedCertificate
    gw2: IssuedCertificate
    ingest: IssuedCertificate
    expired: IssuedCertificate
    revoked: IssuedCertificate
    rogue: IssuedCertificate
    rogue_ca: TestCA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = TestCA(directory / "ca")
    rogue_ca = TestCA(directory / "rogue", name="rogue-ca")
    revoked = ca.issue_client("gw-1", file_name="gw-1-revoked")
    ca.revoke(revoked)
    return Pki(
        ca=ca,
        broker=ca.issue_server(),
        gw1=ca.issue_client("gw-1"),
        gw2=ca.issue_client("gw-2"),
        ingest=ca.issue_client(INGEST_IDENTITY),
        expired=ca.issue_client("gw-1", expired=True, file_name="gw-1-expired"),
        revoked=revoked,
        rogue=rogue_ca.issue_client("gw-1", file_name="gw-1-rogue"),
        rogue_ca=rogue_ca,
    )


@pytest.fixture
def broker(mosquitto_factory: MosquittoFactory, pki: Pki) -> MosquittoServer:
    identity = shipped_listener_options()
    return mosquitto_factory(
        allow_anonymous=False,
        extra_config=[*shipped_general_options(), f"acl_file {DEPLOY_DIR / 'acl'}"],
        tls=MosquittoTls(
            ca_file=pki.ca.cert_file,
            cert_file=pki.broker.cert_file,
            key_file=pki.broker.key_file,
            crl_file=pki.ca.crl_file,
            require_certificate=identity["require_certificate"] == "true",
            use_identity_as_username=identity["use_identity_as_username"] == "true",
        ),
    )


@pytest.fixture
def registry_url(tmp_path: Path) -> str:
    return make_registry(tmp_path / "registry.db", [GW1, GW2])


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "readings.db"


@pytest.fixture
def ingest(
    broker: MosquittoServer, pki: Pki, registry_url: str, store_path: Path
) -> Iterator[IngestWorker]:
    settings = load_settings(
        mqtt_url=broker.tls_url,
        mqtt_ca_file=pki.ca.cert_file,
        mqtt_cert_file=pki.ingest.cert_file,
        mqtt_key_file=pki.ingest.key_file,
        mqtt_crl_file=pki.ca.crl_file,
        store_url=f"sqlite:///{store_path}",
        registry_url=registry_url,
        metrics_port=None,
        client_id="vitalgate-ingest-tls-0",
    )
    worker = open_worker(settings)
    worker.start()
    yield worker
    worker.close()


def _stored_ids(path: Path) -> set[str]:
    store = SqliteReadingStore(path)
    try:
        return store.ids()
    finally:
        store.close()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_shipped_listener_identifies_clients_by_certificate() -> None:
    # What the harness's listener copies; if the shipped file changes, so does the test.
    assert shipped_listener_options() == {
        "require_certificate": "true",
        "use_identity_as_username": "true",
    }


def test_gateway_and_ingest_deliver_over_tls_with_client_certificates(
    broker: MosquittoServer, pki: Pki, ingest: IngestWorker, store_path: Path, tmp_path: Path
) -> None:
    readings = make_readings(GW1, 40)
    outbox = SqliteOutbox(
        tmp_path / "outbox.db", quota_bytes=10**8, clock=lambda: datetime.now(UTC)
    )
    outbox.add(readings)
    assert broker.tls_port is not None
    publisher = Publisher(
        PublisherSettings(
            "gw-1",
            BrokerSettings(
                host=broker.host,
                port=broker.tls_port,
                tls=TlsSettings(
                    ca_file=pki.ca.cert_file,
                    cert_file=pki.gw1.cert_file,
                    key_file=pki.gw1.key_file,
                    crl_file=pki.ca.crl_file,
                ),
            ),
        ),
        outbox,
    )
    publisher.start()
    try:
        _wait_for(lambda: outbox.stats().depth == 0, "every reading acknowledged end to end")
    finally:
        publisher.stop()
        outbox.close()
    assert _stored_ids(store_path) == {reading.id for reading in readings}
    assert "as vitalgate-gw-gw-1 (p5, c0, k30, u'gw-1')" in broker.log_tail(200)


def _gateway_config(
    path: Path, broker: MosquittoServer, ca_file: Path, client: IssuedCertificate, crl: Path
) -> Path:
    path.write_text(
        f'gateway_id = "gw-1"\ndata_dir = "{path.parent / "data"}"\n'
        f'[mqtt]\nurl = "{broker.tls_url}"\nca_file = "{ca_file}"\n'
        f'client_cert_file = "{client.cert_file}"\nclient_key_file = "{client.key_file}"\n'
        f'crl_file = "{crl}"\nreconnect_min_seconds = 0.5\nreconnect_max_seconds = 2\n',
        encoding="utf-8",
    )
    return path


def _link_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        document: dict[str, Any] = json.loads((data_dir / "broker-link.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return document


@pytest.mark.parametrize(
    ("case", "expected_reason", "expected_advice"),
    [
        ("accepted", None, None),
        ("rogue", "unknown ca", "not signed by the CA the broker trusts"),
        ("expired", "certificate expired", "because it has expired"),
        ("revoked", "certificate revoked", "the CA revoked it"),
        ("untrusted-broker", "self-signed certificate", "not signed by the CA in ca_file"),
    ],
)
def test_the_gateway_explains_a_refused_certificate_in_its_log_and_link_status(
    broker: MosquittoServer,
    pki: Pki,
    tmp_path: Path,
    case: str,
    expected_reason: str | None,
    expected_advice: str | None,
) -> None:
    client, ca_file = {
        "accepted": (pki.gw1, pki.ca.cert_file),
        "rogue": (pki.rogue, pki.ca.cert_file),
        "expired": (pki.expired, pki.ca.cert_file),
        "revoked": (pki.revoked, pki.ca.cert_file),
        "untrusted-broker": (pki.gw1, pki.rogue_ca.cert_file),
    }[case]
    config = _gateway_config(tmp_path / "gateway.toml", broker, ca_file, client, pki.ca.crl_file)
    data_dir = tmp_path / "data"
    want = "connected" if expected_reason is None else "disconnected"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (_link_state(data_dir) or {}).get("state") == want, f"state {want}")
        link = _link_state(data_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        _, logs = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, logs[-3000:]
    assert link is not None
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    refusals = [line for line in lines if line["message"] == "cannot connect to the broker"]
    if expected_reason is None:
        assert link["reason"] is None
        assert not refusals
        assert any(line["message"] == "connected to the broker" for line in lines)
        return
    assert expected_advice is not None
    assert expected_reason in link["reason"]
    assert expected_advice in link["advice"]
    assert link["port"] == broker.tls_port
    assert refusals, logs[-3000:]
    assert expected_reason in refusals[0]["reason"]
    assert expected_advice in refusals[0]["reason"]
    assert not any(line["message"] == "connected to the broker" for line in lines)


def test_ingest_with_a_revoked_certificate_is_refused_with_advice(
    broker: MosquittoServer, pki: Pki, registry_url: str, store_path: Path
) -> None:
    revoked = pki.ca.issue_client(INGEST_IDENTITY, file_name="ingest-revoked")
    pki.ca.revoke(revoked)
    broker.restart()  # Mosquitto reads its CRL at start (or on SIGHUP)
    settings = load_settings(
        mqtt_url=broker.tls_url,
        mqtt_ca_file=pki.ca.cert_file,
        mqtt_cert_file=revoked.cert_file,
        mqtt_key_file=revoked.key_file,
        store_url=f"sqlite:///{store_path}",
        registry_url=registry_url,
        metrics_port=None,
        client_id="vitalgate-ingest-revoked",
    )
    worker = open_worker(settings)
    try:
        with pytest.raises(IngestConnectError) as caught:
            worker.start()
    finally:
        worker.close()
    assert "certificate revoked" in caught.value.problem
    assert "the CA revoked it" in caught.value.problem


def test_the_certificate_of_gw1_cannot_publish_under_gw2s_topics(
    broker: MosquittoServer, pki: Pki, ingest: IngestWorker, store_path: Path
) -> None:
    settings = ClientSettings(
        endpoint=parse_mqtt_url(broker.tls_url),
        client_id="impostor",
        tls=ClientTls(
            ca_file=pki.ca.cert_file, cert_file=pki.gw1.cert_file, key_file=pki.gw1.key_file
        ),
    )
    client = create_client(settings)
    results: dict[int, ReasonCode] = {}
    done = threading.Condition()

    def on_publish(_client: Any, _userdata: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with done:
            results[mid] = reason
            done.notify_all()

    client.on_publish = on_publish
    connect(client, settings)
    client.loop_start()
    try:
        own = make_readings(GW1, 3)
        foreign = make_readings(GW2, 3)
        refused = client.publish(
            readings_topic("gw-2"), encode_envelope("gw-2", foreign[0].received_at, foreign), 1
        )
        accepted = client.publish(
            readings_topic("gw-1"), encode_envelope("gw-1", own[0].received_at, own), 1
        )
        with done:
            assert done.wait_for(lambda: {refused.mid, accepted.mid} <= set(results), WAIT_SECONDS)
        assert results[refused.mid].value == NOT_AUTHORIZED
        assert results[accepted.mid].value == 0
        # The control message proves ingest is listening; the refused one never arrives.
        _wait_for(lambda: _stored_ids(store_path) == {r.id for r in own}, "gw-1's readings")
        time.sleep(QUIET_SECONDS)
    finally:
        client.disconnect()
        client.loop_stop()
    assert _stored_ids(store_path) == {reading.id for reading in own}
    assert ingest.metrics.messages_received._value.get() == 1
