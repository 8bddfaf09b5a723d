"""The MQTT adapter's parts that need no broker: URLs, TLS context, client set-up, advice."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from infra.mqtt import (
    ClientSettings,
    MqttConnectError,
    MqttEndpoint,
    MqttProtocol,
    MqttTlsError,
    MqttUrlError,
    PahoClient,
    TlsSettings,
    closed_before_connack,
    connect,
    connect_error,
    connect_properties,
    connection_advice,
    create_client,
    parse_mqtt_url,
    redact_url,
    tls_context,
)
from tests.harness.pki import TestCA


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", MqttEndpoint("127.0.0.1", 1883)),
        ("mqtts://broker.example.org", MqttEndpoint("broker.example.org", 8883, tls=True)),
        ("mqtts://broker:9883/", MqttEndpoint("broker", 9883, tls=True)),
        ("mqtt://[::1]:2883", MqttEndpoint("::1", 2883)),
        (
            "mqtt://ingest:p%40ss%3Aword@localhost:2883",
            MqttEndpoint("localhost", 2883, username="ingest", password="p@ss:word"),
        ),
        ("mqtt://gw-1@localhost", MqttEndpoint("localhost", 1883, username="gw-1")),
    ],
)
def test_urls_parse_into_endpoints(url: str, expected: MqttEndpoint) -> None:
    endpoint = parse_mqtt_url(url)
    assert endpoint == expected
    assert endpoint.password == expected.password  # not part of equality's repr only


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://broker", "must start with mqtt:// or mqtts://"),
        ("mqtt://", "host is missing"),
        ("mqtt:///path", "names no host"),
        ("mqtt://broker:99999", "Port out of range"),
        ("mqtt://broker/topic", "takes no path, query or fragment"),
        ("mqtt://broker?client_id=x", "takes no path, query or fragment"),
    ],
)
def test_bad_urls_name_their_problem(url: str, problem: str) -> None:
    with pytest.raises(MqttUrlError, match=problem):
        parse_mqtt_url(url)


def test_a_bad_url_never_shows_its_password() -> None:
    with pytest.raises(MqttUrlError) as caught:
        parse_mqtt_url("tcp://ingest:s3cr3t-horse@broker")
    assert "s3cr3t" not in str(caught.value)
    assert "ingest:***@broker" in str(caught.value)
    assert redact_url("mqtt://broker") == "mqtt://broker"
    assert "s3cr3t" not in repr(parse_mqtt_url("mqtt://ingest:s3cr3t-horse@broker"))


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(MqttTlsError) as caught:
        TlsSettings(cert_file=Path("client.crt"))
    assert caught.value.key == "tls.key_file"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def test_the_tls_context_verifies_the_broker_and_checks_the_crl(ca: TestCA) -> None:
    client = ca.issue_client("gw-1")
    context = tls_context(
        TlsSettings(
            ca_file=ca.cert_file,
            cert_file=client.cert_file,
            key_file=client.key_file,
            crl_file=ca.crl_file,
        )
    )
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [cert["subject"] for cert in context.get_ca_certs()] == [
        ((("commonName", ca.name),),)
    ]  # only the deployment's CA, not the system's
    assert not tls_context(TlsSettings(ca_file=ca.cert_file)).verify_flags & (
        ssl.VERIFY_CRL_CHECK_LEAF
    )


def test_unusable_tls_files_are_named(ca: TestCA, tmp_path: Path) -> None:
    with pytest.raises(MqttTlsError) as missing:
        tls_context(TlsSettings(ca_file=tmp_path / "absent.pem"))
    assert missing.value.key == "tls.ca_file"
    assert "does not exist" in missing.value.problem
    garbage = tmp_path / "garbage.crl"
    garbage.write_text("not a CRL\n")
    with pytest.raises(MqttTlsError) as unreadable:
        tls_context(TlsSettings(ca_file=ca.cert_file, crl_file=garbage))
    assert unreadable.value.key == "tls.crl_file"


def _settings(url: str = "mqtt://127.0.0.1:1883", **overrides: object) -> ClientSettings:
    values: dict[str, object] = {"endpoint": parse_mqtt_url(url), "client_id": "unit-test"}
    values.update(overrides)
    return ClientSettings(**values)  # type: ignore[arg-type]


def test_connect_properties_carry_session_expiry_and_receive_maximum() -> None:
    properties = connect_properties(_settings(session_expiry_seconds=3600, receive_maximum=50))
    assert properties is not None
    assert properties.SessionExpiryInterval == 3600
    assert properties.ReceiveMaximum == 50
    assert connect_properties(_settings(protocol=MqttProtocol.V311)) is None


def test_explicit_credentials_win_over_the_urls() -> None:
    assert _settings("mqtt://a:b@host").credentials == ("a", "b")
    assert _settings("mqtt://a:b@host", username="gw-1", password="x").credentials == ("gw-1", "x")


def test_the_client_turns_nagle_off_on_its_socket() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        settings = _settings(f"mqtt://127.0.0.1:{port}")
        client = create_client(settings)
        assert isinstance(client, PahoClient)
        connect(client, settings)
        sock = client.socket()
        try:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            client.disconnect()
            sock.close()


def test_a_refused_tcp_connect_says_nothing_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    settings = _settings(f"mqtt://127.0.0.1:{port}")
    with pytest.raises(MqttConnectError) as caught:
        connect(create_client(settings), settings)
    assert caught.value.port == port
    assert "Connection refused" in caught.value.reason
    assert "is the broker running" in caught.value.advice


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("[SSL: SSLV3_ALERT_CERTIFICATE_EXPIRED] sslv3 alert certificate expired", "expired"),
        ("[SSL: SSLV3_ALERT_CERTIFICATE_REVOKED] sslv3 alert certificate revoked", "revoked"),
        ("[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca", "not signed by the CA the"),
        ("TLS: certificate has expired", "broker's certificate has expired"),
        ("TLS: unable to get local issuer certificate", "check ca_file"),
        ("TLS: Hostname mismatch, certificate is not valid for 'x'", "does not name this host"),
        ("[SSL: WRONG_VERSION_NUMBER] wrong version number", "is this its TLS port"),
        ("broker refused the connection: Not authorized", "check the user name"),
        ("something new", ""),
    ],
)
def test_each_failure_gets_its_own_advice(reason: str, advice: str) -> None:
    given = connection_advice(reason)
    assert advice in given
    assert bool(given) == bool(advice)


def test_a_connack_refusal_becomes_a_connect_error() -> None:
    error = connect_error(
        MqttEndpoint("broker", 8883, tls=True), ReasonCode(PacketTypes.CONNACK, "Not authorized")
    )
    assert error.reason == "broker refused the connection: Not authorized"
    assert str(error).startswith("cannot connect to the MQTT broker at broker:8883: ")
    assert error.describe() == f"{error.reason} — {error.advice}"


def test_without_tls_a_closed_connection_is_not_probed() -> None:
    error = closed_before_connack(
        _settings(), "connection closed before CONNACK", socket_error=None
    )
    assert error.reason == "connection closed before CONNACK"
    assert error.advice == ""
