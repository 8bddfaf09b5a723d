"""Configuration of the ingest worker, validated once at startup.

Sources, highest priority first: keyword arguments (the command-line options), environment
variables ``VITALGATE_INGEST_<FIELD>`` (nested with ``__``, e.g.
``VITALGATE_INGEST_PLAUSIBILITY__WEIGHT_MIN_KG``), a TOML or YAML file named by
``config_file`` (or ``VITALGATE_INGEST_CONFIG_FILE``), then the defaults.

A bad configuration is reported whole: :class:`IngestConfigError` lists every problem,
each under its key and, when the value came from an option or the environment, saying so
(the file handling and the report are :mod:`infra.settings`, shared with the gateway).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from infra.mqtt import MQTT_PORT
from infra.mqtt import MqttEndpoint as MqttEndpoint  # re-exported: the settings' type
from infra.mqtt import parse_mqtt_url as parse_mqtt_url  # re-exported for callers
from infra.settings import (
    SettingsInvalid,
    SettingsProblems,
    build_settings,
    environment_source,
    is_known_default_secret,
    mapping_source,
    read_settings_file,
)
from ingest.errors import IngestConfigError as IngestConfigError  # re-exported for callers
from ingest.validate import PlausibilityLimits
from readings.topics import DEFAULT_PARTITIONS

ENV_PREFIX: Final = "VITALGATE_INGEST_"
ENV_NESTED_DELIMITER: Final = "__"
CONFIG_FILE_KEY: Final = "config_file"
DEFAULT_METRICS_PORT: Final = 9478
"""Unassigned in Prometheus' default-port allocation list, next to the exporters it keeps."""
DEFAULT_SESSION_EXPIRY_SECONDS: Final = 7 * 24 * 3600
"""The broker keeps an ingest worker's session (and queues its share of readings) this long
while the worker is down: a long weekend of an unattended outage. The broker's
``persistent_client_expiration`` must not be shorter. One exception, measured with
Mosquitto 2.0.11 (docs/benchmarks.md, "Thundering herd"): a broker *restarted* while the
worker is away does not restore the session's shared subscription, so readings published
before the worker reconnects are acknowledged to the gateway and dropped; the gateway's
end-to-end ack timeout re-sends them (nothing is lost, the first minute arrives late)."""
MAX_SESSION_EXPIRY_SECONDS: Final = 0xFFFF_FFFE
"""MQTT 5 session expiry is a four-byte integer; 0xFFFFFFFF means "never", which we refuse."""
DEFAULT_RECEIVE_MAXIMUM: Final = 1000
"""MQTT 5 flow control: the broker sends at most this many unacknowledged messages. Since a
message is acknowledged only once stored, this bounds the worker's memory while the store
is down, and the broker keeps the rest."""
MAX_RECEIVE_MAXIMUM: Final = 65535
DEFAULT_BATCH_MAX_MESSAGES: Final = 200
DEFAULT_BATCH_MAX_READINGS: Final = 10_000
"""InfluxDB 1.x writes most efficiently in requests of 500 to 10,000 points: fewer points pay
the per-request overhead too often, more make one slow write hold up the acknowledgements."""
DEFAULT_BATCH_MAX_DELAY_SECONDS: Final = 0.05
"""A lone reading waits at most this long for company: well below any alert's urgency,
long enough to gather a batch under load. Flushing on time as well as size matters: the
broker stops sending at the receive maximum, so waiting for a full batch could stall."""
DEFAULT_MQTT_KEEPALIVE_SECONDS: Final = 30
DEFAULT_SHUTDOWN_GRACE_SECONDS: Final = 30.0
"""On SIGTERM the current batch may take this long to store; after that it is abandoned
unacknowledged (the broker redelivers it) so a stop never hangs on a dead store."""

_GROUP_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CLIENT_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_HOSTNAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9-]+")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_secrets(url: str) -> list[str]:
    """Passwords and tokens carried in a store or registry URL's user-info part."""
    parts = urllib.parse.urlsplit(url)
    found = [parts.password, parts.username if parts.scheme == "influxdb" else None]
    return [urllib.parse.unquote(secret) for secret in found if secret]


def default_client_id(group: str, worker_index: int, hostname: str | None = None) -> str:
    """``vitalgate-ingest-{group}-{host}-{index}``: the same on every restart of one worker.

    A fixed client id is what lets the broker resume the persistent session (and hand over
    the readings queued meanwhile); two workers must never share one.
    """
    host = _HOSTNAME_UNSAFE.sub("-", hostname or socket.gethostname()).strip("-") or "host"
    return f"vitalgate-ingest-{group}-{host[:48]}-{worker_index}"


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the TOML or YAML file named by ``config_file`` (from kwargs or env)."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init_settings = init_settings
        self._env_settings = env_settings

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ returns the whole file at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = self._init_settings().get("config_file") or self._env_settings().get("config_file")
        if path is None:
            return {}
        return read_config_file(Path(path))


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a ``.toml``, ``.yaml`` or ``.yml`` file, as a mapping.

    Raises:
        IngestConfigError: the file is missing, unreadable, malformed or not a mapping.
    """
    try:
        return read_settings_file(path, key=CONFIG_FILE_KEY)
    except SettingsInvalid as exc:
        raise _config_error(exc) from None


def _config_error(exc: SettingsInvalid) -> IngestConfigError:
    problems = [(item.key, item.describe()) for item in exc.problems]
    return IngestConfigError(*problems[0], problems=problems, path=exc.path)


class IngestSettings(BaseSettings):
    """Everything the ingest worker needs; see the module docstring for the sources."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    config_file: Path | None = None
    """TOML or YAML file with any of these settings."""
    mqtt_url: str = Field(default=f"mqtt://127.0.0.1:{MQTT_PORT}", repr=False)
    """``mqtt[s]://[user:password@]host[:port]``."""
    mqtt_ca_file: Path | None = None
    """CA bundle that signed the broker's certificate (mqtts); the system's if unset."""
    mqtt_cert_file: Path | None = None
    """Client certificate, when the broker identifies clients by certificate."""
    mqtt_key_file: Path | None = None
    """Private key of ``mqtt_cert_file``."""
    mqtt_crl_file: Path | None = None
    """The CA's certificate revocation list (PEM): a revoked broker certificate is refused."""
    mqtt_keepalive_seconds: int = Field(default=DEFAULT_MQTT_KEEPALIVE_SECONDS, ge=5, le=3600)
    store_url: str = Field(default="sqlite:///./vitalgate-data/readings.db", repr=False)
    """Reading store: ``sqlite:///path``, ``influxdb-v1://[user:pass@]host:port/db`` or
    ``influxdb://TOKEN@host:port?org=ORG&bucket=BUCKET``."""
    registry_url: str = Field(default="sqlite:///./vitalgate-data/registry.db", repr=False)
    """SQLAlchemy URL of the care registry (pairings, quarantine)."""
    group: str = "ingest"
    """Shared-subscription group: workers of one group split the readings among them."""
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    """MQTT 5 is the production protocol (shared subscriptions, session expiry, receive
    maximum, reason codes). "3.1.1" serves brokers that speak nothing newer, such as the
    embedded amqtt broker of ``vitalgate demo``: one worker reads the plain readings filter
    with a persistent (clean_session=False) session, and the broker's in-flight window is
    what bounds the unacknowledged messages."""
    worker_index: int = Field(default=0, ge=0, le=9999)
    """Tells the workers of one host apart in the default client id."""
    client_id: str | None = None
    """MQTT client id; must stay the same across restarts of one worker. Default:
    :func:`default_client_id`."""
    session_expiry_seconds: int = Field(
        default=DEFAULT_SESSION_EXPIRY_SECONDS, ge=60, le=MAX_SESSION_EXPIRY_SECONDS
    )
    receive_maximum: int = Field(default=DEFAULT_RECEIVE_MAXIMUM, ge=1, le=MAX_RECEIVE_MAXIMUM)
    batch_max_messages: int = Field(default=DEFAULT_BATCH_MAX_MESSAGES, ge=1)
    batch_max_readings: int = Field(default=DEFAULT_BATCH_MAX_READINGS, ge=1)
    batch_max_delay_seconds: float = Field(default=DEFAULT_BATCH_MAX_DELAY_SECONDS, gt=0, le=10)
    shutdown_grace_seconds: float = Field(default=DEFAULT_SHUTDOWN_GRACE_SECONDS, ge=0)
    partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1, le=1024)
    """Number of ``accepted/{partition}`` topics; must match the alert workers'."""
    metrics_port: int | None = Field(default=DEFAULT_METRICS_PORT, ge=0, le=65535)
    """Prometheus endpoint port; 0 picks a free one, ``None`` serves no metrics."""
    metrics_address: str = "127.0.0.1"
    plausibility: PlausibilityLimits = Field(default_factory=PlausibilityLimits)
    demo: bool = False
    """The embedded demo: allows the example passwords."""
    allow_insecure_mqtt: bool = False
    """Allow plain ``mqtt://`` to a host other than loopback (credentials and health data
    would cross the network in clear)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then environment, then the config file."""
        return (
            init_settings,
            env_settings,
            _ConfigFileSource(settings_cls, init_settings, env_settings),
        )

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        parse_mqtt_url(value)
        return value

    @field_validator("group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if not _GROUP_RE.match(value):
            raise ValueError("must be 1-64 letters, digits, '_' or '-'")
        return value

    @field_validator("client_id")
    @classmethod
    def _check_client_id(cls, value: str | None) -> str | None:
        # '+', '#' and '/' in a client id defeat pattern ACLs (CVE-2017-7650).
        if value is not None and not _CLIENT_ID_RE.match(value):
            raise ValueError("must be 1-128 letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> IngestSettings:
        problems: list[tuple[str, str]] = []
        if self.batch_max_messages > self.receive_maximum:
            problems.append(
                (
                    "batch_max_messages",
                    "must not exceed receive_maximum: the broker stops sending at "
                    "receive_maximum unacknowledged messages, so a larger batch would only "
                    "ever flush on time",
                )
            )
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            problems.append(("mqtt_key_file", "mqtt_cert_file and mqtt_key_file go together"))
        endpoint = self.mqtt_endpoint
        if (self.mqtt_cert_file or self.mqtt_ca_file or self.mqtt_crl_file) and not endpoint.tls:
            problems.append(("mqtt_url", "certificate files need an mqtts:// URL"))
        if not endpoint.tls and not self.allow_insecure_mqtt and not _is_loopback(endpoint.host):
            problems.append(
                (
                    "mqtt_url",
                    f"plain mqtt:// to {endpoint.host} sends credentials and health data in "
                    "clear; use mqtts:// (or set allow_insecure_mqtt)",
                )
            )
        if not self.demo:
            for key, secrets in (
                ("mqtt_url", [endpoint.password] if endpoint.password else []),
                ("store_url", _url_secrets(self.store_url)),
                ("registry_url", _url_secrets(self.registry_url)),
            ):
                if any(is_known_default_secret(secret) for secret in secrets):
                    problems.append((key, "uses an example password; set a real secret"))
        if problems:
            raise SettingsProblems(problems)
        return self

    @property
    def mqtt_endpoint(self) -> MqttEndpoint:
        """The broker address and credentials from ``mqtt_url``."""
        return parse_mqtt_url(self.mqtt_url)

    @property
    def mqtt_client_id(self) -> str:
        """The configured client id, or the default derived from group, host and index."""
        return self.client_id or default_client_id(self.group, self.worker_index)


def load_settings(**overrides: Any) -> IngestSettings:
    """Build :class:`IngestSettings`; ``None`` overrides are ignored (unset CLI options).

    Args:
        overrides: settings given as options, above the environment and the file.

    Raises:
        IngestConfigError: listing every problem; ``key`` and ``problem`` are the first.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    env = os.environ
    config_file = given.get(CONFIG_FILE_KEY) or env.get(ENV_PREFIX + CONFIG_FILE_KEY.upper())
    sources = [
        mapping_source(given, "an option"),
        environment_source(ENV_PREFIX, ENV_NESTED_DELIMITER, env),
    ]
    try:
        return build_settings(
            IngestSettings,
            given,
            path=str(config_file) if config_file else None,
            sources=sources,
        )
    except SettingsInvalid as exc:
        raise _config_error(exc) from None
