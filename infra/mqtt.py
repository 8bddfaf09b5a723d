"""The one MQTT adapter: broker URLs, TLS, client construction, connection errors.

Every VitalGate component that speaks MQTT (the gateway's publisher, the ingest workers,
the demo's live view, and the consumers still to come) builds its client here, so that a
broker address means the same everywhere, TLS is set up one way, and a refused
connection is explained to the operator the same way.

* :func:`parse_mqtt_url` — ``mqtt[s]://[user[:password]@]host[:port]`` → :class:`MqttEndpoint`.
* :class:`TlsSettings` / :func:`tls_context` — CA bundle, client certificate and key, and a
  certificate revocation list, as one :class:`ssl.SSLContext`.
* :class:`ClientSettings` / :func:`create_client` / :func:`connect` — a paho-mqtt 2 client
  (MQTT 5 or 3.1.1, persistent session or not, TCP_NODELAY) and its CONNECT.
* :class:`MqttClient` — the narrow interface of a client that the components use; a test
  passes a :data:`ClientFactory` that returns a fake implementing it.
* Errors: :class:`MqttError` is the root; :class:`MqttUrlError`, :class:`MqttTlsError` and
  :class:`MqttConnectError` (with ``reason`` and operator ``advice``) derive from it.
  :func:`connect_error` turns whatever a failed connection left (an exception, paho's
  last socket error, a CONNACK reason code) into a :class:`MqttConnectError`.

This module may import the standard library, paho and :mod:`readings`; never ``gateway``,
``ingest`` or ``registry``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from infra.errors import InfraError

MQTT_PORT: Final = 1883
"""IANA port of plain MQTT."""
MQTTS_PORT: Final = 8883
"""IANA port of MQTT over TLS."""
DEFAULT_KEEPALIVE_SECONDS: Final = 30
"""Home routers drop idle NAT mappings after 60 s or more; 30 s keeps them and finds a
half-open link within about a minute."""
DEFAULT_CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""TCP, TLS and CONNACK over a slow uplink; longer means the broker is not there."""


class MqttProtocol(StrEnum):
    """The MQTT protocol version spoken to the broker."""

    V5 = "5"
    V311 = "3.1.1"


# -- errors -------------------------------------------------------------------------------


class MqttError(InfraError):
    """Root of every error this adapter raises."""


class MqttUrlError(MqttError, ValueError):
    """A broker URL cannot be used (a ``ValueError``, so settings validators report it).

    Attributes:
        problem: what is wrong with the URL (the password never appears).
    """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class MqttTlsError(MqttError, ValueError):
    """A TLS file (CA bundle, client certificate, key or CRL) cannot be used.

    Attributes:
        key: the setting at fault (``tls.ca_file``, ``tls.key_file`` …).
        problem: what is wrong with it.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class MqttConnectError(MqttError):
    """The broker could not be reached, refused the TLS handshake or the CONNECT.

    Attributes:
        host: the broker host.
        port: the broker port.
        reason: what happened (socket error, TLS alert, CONNACK reason code).
        advice: what the operator can do about it ("" when there is nothing specific).
    """

    def __init__(self, host: str, port: int, reason: str, advice: str = "") -> None:
        super().__init__(
            f"cannot connect to the MQTT broker at {host}:{port}: {reason}"
            + (f" — {advice}" if advice else "")
        )
        self.host = host
        self.port = port
        self.reason = reason
        self.advice = advice

    def describe(self) -> str:
        """``reason — advice``: the text for a log line or a status field."""
        return f"{self.reason} — {self.advice}" if self.advice else self.reason


# -- endpoint -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where the broker is and how to log in, as named by a URL.

    Attributes:
        host: broker host name or address.
        port: broker port (1883 plain, 8883 TLS unless the URL names one).
        tls: whether the connection uses TLS (``mqtts://``).
        username: MQTT user name from the URL, if any.
        password: its password (never in ``repr``).
    """

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.host:
            raise MqttUrlError("host is missing")
        if not 0 < self.port < 65536:
            raise MqttUrlError(f"port: must be 1..65535, got {self.port}")
        if self.password is not None and self.username is None:
            raise MqttUrlError("a password needs a username")


def redact_url(url: str) -> str:
    """``url`` with the password of its user-info part replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """``mqtt[s]://[user[:password]@]host[:port]`` → :class:`MqttEndpoint`.

    User name and password are percent-decoded. The URL carries nothing else: no path,
    query or fragment.

    Raises:
        MqttUrlError: naming the part of the URL that is wrong (the password redacted).
    """
    shown = redact_url(url)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise MqttUrlError(f"{shown!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise MqttUrlError(f"host is missing: {shown!r} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttUrlError(
            f"{shown!r} takes no path, query or fragment: only scheme, user, host and port"
        )
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (MQTTS_PORT if tls else MQTT_PORT)
    except ValueError as exc:
        raise MqttUrlError(f"{shown!r}: port: {exc}") from None
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return MqttEndpoint(parts.hostname, port, tls, username, password)


# -- TLS ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS towards the broker.

    Attributes:
        ca_file: CA certificate(s) that signed the broker's certificate (PEM); the
            system's trust store when ``None``.
        cert_file: this client's certificate (PEM), when the broker identifies clients by
            certificate; needs ``key_file``.
        key_file: its private key (PEM).
        crl_file: a certificate revocation list (PEM) of the CA: a broker certificate it
            lists is refused (the broker checks client certificates with its own CRL).
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    crl_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise MqttTlsError(
                "tls.key_file", "a client certificate needs its key, and a key its certificate"
            )

    def missing_files(self) -> list[tuple[str, Path]]:
        """``(key, path)`` of every named file that does not exist or is not a file."""
        named = (
            ("tls.ca_file", self.ca_file),
            ("tls.cert_file", self.cert_file),
            ("tls.key_file", self.key_file),
            ("tls.crl_file", self.crl_file),
        )
        return [(key, path) for key, path in named if path is not None and not path.is_file()]


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client :class:`ssl.SSLContext`: verifies the broker's certificate and host name,
    checks it against the CRL when one is given, and presents the client certificate.

    Raises:
        MqttTlsError: a file is missing or not what it should be (naming the setting).
    """
    missing = tls.missing_files()
    if missing:
        key, path = missing[0]
        raise MqttTlsError(key, f"{path} does not exist or is not a file")
    # PROTOCOL_TLS_CLIENT verifies the certificate and the host name.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca_file is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        # Only the configured CA: a deployment's private CA, not every public one.
        _load(context.load_verify_locations, "tls.ca_file", tls.ca_file, cafile=str(tls.ca_file))
    if tls.crl_file is not None:
        _load(context.load_verify_locations, "tls.crl_file", tls.crl_file, cafile=str(tls.crl_file))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if tls.cert_file is not None and tls.key_file is not None:
        _load(
            context.load_cert_chain,
            "tls.cert_file",
            tls.cert_file,
            certfile=str(tls.cert_file),
            keyfile=str(tls.key_file),
        )
    return context


def _load(load: Callable[..., None], key: str, path: Path, **kwargs: str) -> None:
    try:
        load(**kwargs)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise MqttTlsError(key, f"cannot load {path}: {exc}") from None


# -- client -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Everything needed to build a client and send its CONNECT.

    Attributes:
        endpoint: broker address, TLS on or off, URL credentials.
        client_id: MQTT client id (fixed, when a persistent session is keyed by it).
        protocol: MQTT 5 or 3.1.1.
        tls: TLS files; ``None`` with a TLS endpoint uses the system's trust store.
        username: overrides the endpoint's user name (settings that keep credentials out
            of the URL).
        password: its password.
        keepalive_seconds: MQTT keepalive.
        persistent_session: keep the session across connections (MQTT 5: clean start
            off with ``session_expiry_seconds``; 3.1.1: clean session off).
        session_expiry_seconds: how long the broker keeps the session offline (MQTT 5).
        receive_maximum: QoS 1 messages the broker may send unacknowledged (MQTT 5).
        manual_ack: acknowledge received messages explicitly (:meth:`MqttClient.ack`).
        connect_timeout_seconds: bound on the TCP connect and TLS handshake.
        max_inflight_messages: paho's own limit on outgoing QoS 1 messages in flight.
        reconnect_delay_seconds: ``(min, max)`` for paho's own reconnects (threaded loop).
    """

    endpoint: MqttEndpoint
    client_id: str
    protocol: MqttProtocol = MqttProtocol.V5
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive_seconds: int = DEFAULT_KEEPALIVE_SECONDS
    persistent_session: bool = False
    session_expiry_seconds: int | None = None
    receive_maximum: int | None = None
    manual_ack: bool = False
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    max_inflight_messages: int | None = None
    reconnect_delay_seconds: tuple[int, int] | None = None

    @property
    def v5(self) -> bool:
        """Whether the client speaks MQTT 5."""
        return self.protocol is MqttProtocol.V5

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        """``(username, password)``: the explicit ones, else the URL's."""
        if self.username is not None:
            return self.username, self.password
        return self.endpoint.username, self.endpoint.password


class MqttClient(Protocol):
    """What the components use of a paho-mqtt 2 client (callback API version 2).

    :class:`PahoClient` is the real one; tests give a fake with the same members.
    """

    on_connect: mqtt.CallbackOnConnect | None
    on_disconnect: mqtt.CallbackOnDisconnect | None
    on_subscribe: mqtt.CallbackOnSubscribe | None
    on_publish: mqtt.CallbackOnPublish | None
    on_message: mqtt.CallbackOnMessage | None

    @property
    def last_socket_error(self) -> str | None:
        """The last socket or TLS error paho met (it reports them only to its log)."""
        ...

    def connect(
        self,
        host: str,
        port: int = ...,
        keepalive: int = ...,
        *,
        clean_start: bool = ...,
        properties: Properties | None = ...,
    ) -> MQTTErrorCode:
        """Open the socket (TCP, TLS) and send CONNECT."""
        ...

    def will_set(
        self, topic: str, payload: bytes | None = ..., qos: int = ..., retain: bool = ...
    ) -> None:
        """The message the broker publishes if this client vanishes."""
        ...

    def loop(self, timeout: float = ...) -> MQTTErrorCode:
        """Run the network loop once (the caller's own thread)."""
        ...

    def loop_start(self) -> MQTTErrorCode:
        """Run the network loop in a thread of paho's."""
        ...

    def loop_stop(self) -> MQTTErrorCode:
        """Stop paho's network thread."""
        ...

    def publish(
        self, topic: str, payload: bytes | None = ..., qos: int = ..., retain: bool = ...
    ) -> mqtt.MQTTMessageInfo:
        """Queue a message for sending."""
        ...

    def subscribe(
        self, topic: str | list[tuple[str, int]], qos: int = ...
    ) -> tuple[MQTTErrorCode, int | None]:
        """Subscribe to one filter or several ``(filter, qos)``."""
        ...

    def unsubscribe(self, topic: str | list[str]) -> tuple[MQTTErrorCode, int | None]:
        """Unsubscribe from one filter or several."""
        ...

    def ack(self, mid: int, qos: int) -> MQTTErrorCode:
        """Acknowledge a received message (with ``manual_ack``)."""
        ...

    def disconnect(self) -> MQTTErrorCode:
        """Send DISCONNECT (if connected)."""
        ...

    def socket(self) -> Any:
        """The client's socket, or ``None``."""
        ...


ClientFactory = Callable[[ClientSettings], MqttClient]
"""Builds a client, not yet connected; :func:`create_client` unless a test gives a fake."""


class PahoClient(mqtt.Client):
    """A paho client that remembers the last socket or TLS error it met.

    paho turns a failed read (for example the TLS alert by which a broker refuses a
    revoked client certificate after a TLS 1.3 handshake) into a bare "connection lost"
    and reports the cause only to its log; :attr:`last_socket_error` keeps it.
    """

    def __init__(self, settings: ClientSettings) -> None:
        kwargs: dict[str, Any] = {}
        if not settings.v5:
            kwargs["clean_session"] = not settings.persistent_session
        super().__init__(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5 if settings.v5 else mqtt.MQTTv311,
            manual_ack=settings.manual_ack,
            **kwargs,
        )
        self._last_socket_error: str | None = None
        self.on_log = self._record_log

    @property
    def last_socket_error(self) -> str | None:
        """The last socket or TLS error paho met, if any."""
        return self._last_socket_error

    def _record_log(self, _client: mqtt.Client, _userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR and "socket" in text:
            self._last_socket_error = text


def create_client(settings: ClientSettings) -> PahoClient:
    """A paho client configured from ``settings`` (TLS, credentials, TCP_NODELAY); not
    yet connected.

    Raises:
        MqttTlsError: a TLS file cannot be used.
    """
    client = PahoClient(settings)
    client.connect_timeout = settings.connect_timeout_seconds
    if settings.max_inflight_messages is not None:
        client.max_inflight_messages_set(settings.max_inflight_messages)
    if settings.reconnect_delay_seconds is not None:
        client.reconnect_delay_set(*settings.reconnect_delay_seconds)
    if settings.endpoint.tls:
        client.tls_set_context(tls_context(settings.tls or TlsSettings()))
    username, password = settings.credentials
    if username is not None:
        client.username_pw_set(username, password)
    client.on_socket_open = set_no_delay
    return client


def set_no_delay(_client: Any, _userdata: Any, sock: Any) -> None:
    """Turn Nagle's algorithm off (paho's ``on_socket_open`` callback).

    Without TCP_NODELAY a small packet (a PUBACK, an end-to-end ack, a status) waits
    behind a larger unacknowledged one for the peer's delayed-ACK timer (≈ 40 ms
    measured, docs/benchmarks.md); paho never sets it.
    """
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_properties(settings: ClientSettings) -> Properties | None:
    """The MQTT 5 CONNECT properties (session expiry, receive maximum); ``None`` on 3.1.1."""
    if not settings.v5:
        return None
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if settings.session_expiry_seconds is not None:
        properties.SessionExpiryInterval = settings.session_expiry_seconds
    if settings.receive_maximum is not None:
        properties.ReceiveMaximum = settings.receive_maximum
    return properties


def connect(client: MqttClient, settings: ClientSettings) -> MQTTErrorCode:
    """Open the connection and send CONNECT; the CONNACK arrives through the loop.

    Raises:
        MqttConnectError: the TCP connect or the TLS handshake failed.
    """
    endpoint = settings.endpoint
    try:
        if settings.v5:
            return client.connect(
                endpoint.host,
                endpoint.port,
                settings.keepalive_seconds,
                clean_start=not settings.persistent_session,
                properties=connect_properties(settings),
            )
        return client.connect(endpoint.host, endpoint.port, settings.keepalive_seconds)
    except (OSError, ValueError) as exc:
        raise connect_error(endpoint, exc) from exc


# -- explaining a failed connection ------------------------------------------------------

TLS_PROBE_SECONDS: Final = 1.0
"""How long :func:`probe_tls_refusal` waits for the broker's verdict on the client's
certificate after the handshake; a broker that accepts it waits silently for CONNECT."""


def probe_tls_refusal(settings: ClientSettings) -> str | None:
    """Why the broker refuses this client's certificate, or ``None`` if it does not.

    Under TLS 1.3 the broker judges the client certificate after the handshake has
    completed on the client's side, and says so in a TLS alert. A client that has
    already sent CONNECT often loses that alert (the broker closes with unread data, the
    connection is reset), and sees only "connection lost". This probe makes a fresh TLS
    connection, sends nothing, and reads the alert. Call it only after a connection
    closed before its CONNACK.
    """
    if not settings.endpoint.tls:
        return None
    endpoint = settings.endpoint
    try:
        context = tls_context(settings.tls or TlsSettings())
        with (
            socket.create_connection(
                (endpoint.host, endpoint.port), timeout=settings.connect_timeout_seconds
            ) as raw,
            context.wrap_socket(raw, server_hostname=endpoint.host) as tls,
        ):
            tls.settimeout(TLS_PROBE_SECONDS)
            tls.recv(1)
    except ssl.SSLError as exc:
        return str(exc)
    except (OSError, MqttError):
        return None
    return None


def closed_before_connack(
    settings: ClientSettings, detail: str, *, socket_error: str | None = None
) -> MqttConnectError:
    """A :class:`MqttConnectError` for a connection the broker closed before CONNACK.

    paho's socket error explains it when it carries a TLS alert; otherwise, on a TLS
    connection, :func:`probe_tls_refusal` asks the broker once more.
    """
    if settings.endpoint.tls and "alert" not in (socket_error or "").lower():
        socket_error = probe_tls_refusal(settings) or socket_error
    return connect_error(settings.endpoint, detail, socket_error=socket_error)


_ADVICE: Final[tuple[tuple[tuple[str, ...], str], ...]] = (
    (
        ("alert certificate expired",),
        "the broker refused this client's certificate because it has expired: install a "
        "renewed certificate (cert_file, key_file)",
    ),
    (
        ("alert certificate revoked",),
        "the broker refused this client's certificate because the CA revoked it: this "
        "client needs a new certificate from the CA operator",
    ),
    (
        ("alert unknown ca", "alert bad certificate", "alert decrypt error"),
        "the broker does not trust this client's certificate: it is not signed by the CA "
        "the broker trusts (check cert_file)",
    ),
    (
        ("alert certificate required",),
        "the broker requires a client certificate: set cert_file and key_file",
    ),
    (
        ("certificate has expired",),
        "the broker's certificate has expired: the broker's operator must renew it",
    ),
    (
        ("certificate revoked",),
        "the broker's certificate is revoked in the CRL (crl_file)",
    ),
    (
        ("hostname mismatch", "ip address mismatch"),
        "the broker's certificate does not name this host: use the name it was issued for",
    ),
    (
        ("unable to get local issuer", "self-signed certificate", "self signed certificate"),
        "the broker's certificate is not signed by the CA in ca_file: check ca_file",
    ),
    (
        ("wrong version number", "record layer failure", "packet length too long"),
        "the broker did not speak TLS: is this its TLS port (mqtts://)?",
    ),
    (
        ("not authorized", "bad user name or password", "bad username or password"),
        "the broker refused the credentials: check the user name and password, or the "
        "certificate's subject (the broker may take the user name from it)",
    ),
    (
        ("connection refused",),
        "nothing accepts connections there: is the broker running, and the port right?",
    ),
    (
        ("name or service not known", "temporary failure in name resolution", "nodename"),
        "the host name does not resolve: check the URL and DNS",
    ),
    (("timed out", "timeout"), "no answer in time: check the network and any firewall"),
)


def connection_advice(reason: str) -> str:
    """What the operator can do about a connection that failed with ``reason``; ""
    when nothing specific is known."""
    lowered = reason.lower()
    for fragments, advice in _ADVICE:
        if any(fragment in lowered for fragment in fragments):
            return advice
    return ""


def connect_error(
    endpoint: MqttEndpoint,
    cause: BaseException | ReasonCode | str,
    *,
    socket_error: str | None = None,
) -> MqttConnectError:
    """A :class:`MqttConnectError` for ``cause``, with advice.

    Args:
        endpoint: where the client tried to connect.
        cause: the exception from ``connect``, the CONNACK's failure reason code, or a
            description (e.g. "connection closed before CONNACK").
        socket_error: paho's last socket error (:attr:`MqttClient.last_socket_error`),
            which explains a connection closed before the CONNACK.
    """
    if isinstance(cause, ReasonCode):
        reason = f"broker refused the connection: {cause}"
    elif isinstance(cause, ssl.SSLCertVerificationError):
        reason = f"TLS: {cause.verify_message or cause}"
    elif isinstance(cause, ssl.SSLError):
        reason = f"TLS: {cause}"
    elif isinstance(cause, BaseException):
        reason = f"{type(cause).__name__}: {cause}"
    else:
        reason = cause
    if socket_error:
        reason = f"{reason} ({socket_error})"
    return MqttConnectError(endpoint.host, endpoint.port, reason, connection_advice(reason))


DEFAULT_CLIENT_FACTORY: Final[ClientFactory] = create_client
"""The factory components use unless given another (also checks, for mypy, that
:class:`PahoClient` implements :class:`MqttClient`)."""
