"""The gateway's configuration: one validated settings object, from a file and the environment.

A gateway is configured by one TOML or YAML file (``vitalgate gateway run --config FILE``;
``firmware_configs/gateway.example.toml`` documents every key) and environment variables
``VITALGATE_GATEWAY_<KEY>``, nested keys joined by ``__``
(``VITALGATE_GATEWAY_MQTT__PASSWORD``). The environment wins over the file, so a secret can
stay out of the file (the systemd unit reads ``/etc/vitalgate/gateway.env``).

Everything is checked once, at start-up: a bad value stops the gateway with a
:class:`~gateway.errors.SettingsError` naming the file, the key path and the fix
(``gateway.toml: mqtt.url: …``). Outside ``demo = true`` the gateway refuses empty or
well-known passwords, a connection without credentials, and plain-text MQTT to anything
but this machine: it carries health data over the patient's home network.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from device_drivers.simulators.scenario import Scenario, ScenarioError
from gateway.clock import MAX_UNCORRECTED_OFFSET_SECONDS
from gateway.errors import SettingsError
from gateway.outbox import DEFAULT_ACK_TIMEOUT_SECONDS, DEFAULT_CLINICAL_RESERVE_BYTES
from gateway.publisher import (
    DEFAULT_BATCH_MAX_READINGS,
    DEFAULT_STATUS_INTERVAL_SECONDS,
    DEFAULT_WINDOW_BATCHES,
    KEEPALIVE_SECONDS,
    RECONNECT_MAX_SECONDS,
    RECONNECT_MIN_SECONDS,
    SESSION_EXPIRY_SECONDS,
    BrokerSettings,
    PublisherSettings,
    TlsSettings,
)
from infra.mqtt import MqttEndpoint, MqttProtocol, MqttUrlError, parse_mqtt_url
from infra.settings import (
    SettingsInvalid,
    SettingsProblems,
    build_settings,
    environment_source,
    environment_variable,
    is_known_default_secret,
    read_settings_file,
)
from readings.codec import MAX_PAYLOAD_BYTES, MAX_READINGS_PER_ENVELOPE
from readings.model import ID_PATTERN
from readings.topics import SERVICE_IDENTITIES, SERVICE_IDENTITY_PREFIX, is_reserved_gateway_id

ENV_PREFIX: Final = "VITALGATE_GATEWAY_"
ENV_NESTED_DELIMITER: Final = "__"

DEFAULT_TIME_ZONE: Final = "Asia/Shanghai"
"""China has one civil time zone and no DST; patients elsewhere get their own zone at
pairing time."""


DEFAULT_OUTBOX_QUOTA_BYTES: Final = 256 * 1024 * 1024
"""About 600,000 readings of ≈ 400 bytes: years of a household's spot checks, or weeks
offline with a heart-rate strap, on a 4 GB SD card with room to spare."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Section):
    """The broker connection and the publisher's tuning (:mod:`gateway.publisher`)."""

    url: str
    """``mqtt://host[:port]`` (plain) or ``mqtts://host[:port]`` (TLS)."""
    protocol: MqttProtocol = MqttProtocol.V5
    """``"5"`` or ``"3.1.1"``; MQTT 5 reports refused publishes, 3.1.1 drops them silently."""
    client_id: str | None = Field(default=None, pattern=ID_PATTERN)
    """Fixed MQTT client id (the persistent session is keyed by it);
    ``vitalgate-gw-<gateway_id>`` when absent."""
    username: str | None = None
    """The gateway's MQTT user; the broker's ACL lets it publish only under its own prefix."""
    password: SecretStr | None = None
    ca_file: Path | None = None
    """CA certificate(s) that signed the broker's certificate (PEM); required for mqtts://."""
    client_cert_file: Path | None = None
    """Client certificate (PEM) for mutual TLS; needs ``client_key_file``."""
    client_key_file: Path | None = None
    crl_file: Path | None = None
    """The CA's certificate revocation list (PEM): a revoked broker certificate is refused."""
    keepalive_seconds: int = Field(default=KEEPALIVE_SECONDS, ge=5, le=65535)
    session_expiry_seconds: int = Field(default=SESSION_EXPIRY_SECONDS, ge=0)
    window_batches: int = Field(default=DEFAULT_WINDOW_BATCHES, ge=1, le=1000)
    """Batches awaiting PUBACK at once."""
    batch_max_readings: int = Field(
        default=DEFAULT_BATCH_MAX_READINGS, ge=1, le=MAX_READINGS_PER_ENVELOPE
    )
    batch_max_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=1024, le=MAX_PAYLOAD_BYTES)
    ack_timeout_seconds: float = Field(default=DEFAULT_ACK_TIMEOUT_SECONDS, gt=0)
    """How long a published reading waits for ingest's end-to-end ack before it is sent
    again (doubling with each attempt, at most 15 minutes)."""
    status_interval_seconds: float = Field(default=DEFAULT_STATUS_INTERVAL_SECONDS, gt=0)
    """How often the retained status (queue depth, devices) is refreshed."""
    reconnect_min_seconds: float = Field(default=RECONNECT_MIN_SECONDS, gt=0)
    reconnect_max_seconds: float = Field(default=RECONNECT_MAX_SECONDS, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        endpoint = parse_mqtt_url(url)
        if endpoint.username is not None or endpoint.password is not None:
            raise MqttUrlError("put credentials in mqtt.username and mqtt.password, not in the URL")
        return url

    @field_validator("ca_file", "client_cert_file", "client_key_file", "crl_file")
    @classmethod
    def _check_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path} does not exist or is not a file")
        return path

    @model_validator(mode="after")
    def _check_tls_files(self) -> Self:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError("client_cert_file and client_key_file go together: set both or none")
        if not self.tls and (
            self.client_cert_file is not None
            or self.ca_file is not None
            or self.crl_file is not None
        ):
            raise ValueError("TLS files are set but the URL is mqtt://; use mqtts://")
        if self.tls and self.ca_file is None:
            raise ValueError("mqtts:// needs ca_file, the CA that signed the broker's certificate")
        if self.reconnect_max_seconds < self.reconnect_min_seconds:
            raise ValueError("reconnect_max_seconds must be at least reconnect_min_seconds")
        return self

    def broker_settings(self, gateway_id: str) -> BrokerSettings:
        """What the publisher needs to reach the broker."""
        tls = None
        if self.tls:
            assert self.ca_file is not None  # checked above
            tls = TlsSettings(
                ca_file=self.ca_file,
                cert_file=self.client_cert_file,
                key_file=self.client_key_file,
                crl_file=self.crl_file,
            )
        return BrokerSettings(
            host=self.host,
            port=self.port,
            client_id=self.client_id or f"vitalgate-gw-{gateway_id}",
            username=self.username,
            password=self.password.get_secret_value() if self.password is not None else None,
            tls=tls,
            protocol=self.protocol,
            keepalive_seconds=self.keepalive_seconds,
            session_expiry_seconds=self.session_expiry_seconds,
        )

    @property
    def endpoint(self) -> MqttEndpoint:
        """The broker's address, from the URL (validated above)."""
        return parse_mqtt_url(self.url)

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS."""
        return self.endpoint.tls

    @property
    def host(self) -> str:
        """The broker's host name or address."""
        return self.endpoint.host

    @property
    def port(self) -> int:
        """The broker's port (1883 plain, 8883 TLS, unless the URL names one)."""
        return self.endpoint.port


class OutboxSettings(_Section):
    """The durable outbox's disk budget."""

    quota_bytes: int = Field(default=DEFAULT_OUTBOX_QUOTA_BYTES, gt=0)
    """Where low-value telemetry (heart-rate streams) starts being refused."""
    reserve_bytes: int = Field(default=DEFAULT_CLINICAL_RESERVE_BYTES, ge=0)
    """Room above the quota kept for clinical readings; past it, downloads stop and the
    records stay on the meters."""


class ClockSettings(_Section):
    """Device clocks."""

    time_zone: str = DEFAULT_TIME_ZONE
    """Default patient time zone (IANA name) for devices paired without one."""
    set_device_clocks: bool = True
    """Set a device's clock when it is off, where its profile allows it
    (``quirks.clock_settable``). Off: only correct ``measured_at``."""
    max_uncorrected_offset_seconds: float = Field(
        default=MAX_UNCORRECTED_OFFSET_SECONDS, ge=0, le=86_400
    )
    """A device clock off by up to this is trusted as it is; beyond it ``measured_at`` is
    corrected and flagged ``clock_corrected`` (see :mod:`gateway.clock`)."""

    @field_validator("time_zone")
    @classmethod
    def _check_zone(cls, name: str) -> str:
        return check_time_zone(name)


class DeviceSettings(_Section):
    """Deadlines and schedules of device sessions."""

    connect_timeout_seconds: float = Field(default=60.0, gt=0)
    """Bound on opening a link, the driver's own retries included (the BLE transport
    retries for up to 45 s)."""
    operation_timeout_seconds: float = Field(default=30.0, gt=0)
    """Bound on one short exchange (identity, clock): the ATT transaction timeout."""
    download_timeout_seconds: float = Field(default=300.0, gt=0)
    """Bound on one record download: a full meter memory (≈ 1,000 records) over 9600
    baud or a slow BLE link takes about a minute."""
    ble_retry_seconds: float = Field(default=10.0, gt=0)
    """Least time between two contacts with a BLE device: meters keep advertising for a
    minute or two after a measurement, and one download is enough. Also how often a glucose
    meter that keeps its link is asked for new records over it (docs/gateway.md)."""
    ble_scan_window_seconds: float = Field(default=5.0, gt=0)
    """Length of one scan window of the shared BLE scanner; meters advertise every 1-2 s."""
    absent_retry_seconds: float = Field(default=10.0, gt=0)
    """How soon to try again a device that did not answer (out of range, not seated in
    its cable): its normal state, so no backoff and no error."""
    serial_poll_seconds: float = Field(default=900.0, gt=0)
    """How often a connected serial meter is downloaded."""
    serial_presence_check_seconds: float = Field(default=2.0, gt=0)
    """How often the serial port's path is checked: a meter seated in its cable is
    downloaded within this long."""
    outbox_full_retry_seconds: float = Field(default=300.0, gt=0)
    """How long downloads pause when the outbox is full (the records wait on the meter)."""
    battery_low_percent: int = Field(default=20, ge=0, le=100)
    """At or below this level the gateway reports ``battery_low`` once per contact."""


class BreakerSettings(_Section):
    """Per-device circuit breaker and retry backoff."""

    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failed contacts that open the circuit."""
    open_seconds: float = Field(default=600.0, gt=0)
    """How long an open circuit stays open before one trial contact."""
    backoff_initial_seconds: float = Field(default=2.0, gt=0)
    backoff_max_seconds: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _check_backoff(self) -> Self:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_initial_seconds")
        return self


class SimulatedDevice(_Section):
    """A simulated device the gateway starts and pairs itself (demo and tests)."""

    profile: str = Field(min_length=1)
    """Device profile id (a ``firmware_configs/*.toml`` name) with a ``[simulator]``."""
    patient_id: str = Field(pattern=ID_PATTERN)
    time_zone: str | None = None
    """The patient's time zone; ``clock.time_zone`` when absent."""
    scenario: dict[str, Any] = Field(default_factory=dict)
    """What the device measures and how it misbehaves
    (:class:`~device_drivers.simulators.scenario.Scenario` keys, e.g.
    ``clock_skew_seconds``)."""
    scenario_file: Path | None = None
    """A scenario TOML file, instead of the inline ``scenario``."""

    @field_validator("time_zone")
    @classmethod
    def _check_zone(cls, name: str | None) -> str | None:
        return check_time_zone(name) if name is not None else None

    @field_validator("scenario")
    @classmethod
    def _check_scenario(cls, scenario: dict[str, Any]) -> dict[str, Any]:
        try:
            Scenario.from_dict(scenario)
        except ScenarioError as exc:
            raise ValueError(f"{exc.field}: {exc.problem}") from None
        return scenario

    @model_validator(mode="after")
    def _one_scenario(self) -> Self:
        if self.scenario and self.scenario_file is not None:
            raise ValueError("give either scenario or scenario_file, not both")
        if self.scenario_file is not None:
            try:
                Scenario.from_toml(self.scenario_file)
            except ScenarioError as exc:
                raise ValueError(f"scenario_file {self.scenario_file}: {exc}") from None
        return self


class GatewaySettings(BaseSettings):
    """Everything a gateway needs to run. Load it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    gateway_id: str = Field(pattern=ID_PATTERN)
    """The gateway's id: its topic prefix, and the MQTT user the broker's ACL binds."""

    @field_validator("gateway_id")
    @classmethod
    def _not_a_service_identity(cls, value: str) -> str:
        if is_reserved_gateway_id(value):
            raise ValueError(
                f"{value!r} is reserved for VitalGate's services ({', '.join(SERVICE_IDENTITIES)}"
                f" and every name starting with {SERVICE_IDENTITY_PREFIX!r}): choose another id"
            )
        return value

    data_dir: Path
    """Where the outbox (``outbox.db``) and the pairings (``pairings.db``) live."""
    demo: bool = False
    """Allow plain-text MQTT and missing or well-known secrets (demo and tests only)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    profiles_dir: Path | None = None
    """Device profiles; the shipped ``firmware_configs`` when absent."""
    mqtt: MqttSettings
    outbox: OutboxSettings = OutboxSettings()
    clock: ClockSettings = ClockSettings()
    devices: DeviceSettings = DeviceSettings()
    breaker: BreakerSettings = BreakerSettings()
    simulators: tuple[SimulatedDevice, ...] = ()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment overrides the file (passed as init values); no dotenv."""
        return (env_settings, init_settings)

    @field_validator("profiles_dir")
    @classmethod
    def _check_profiles_dir(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError(f"{path} is not a directory")
        return path

    @model_validator(mode="after")
    def _refuse_insecure(self) -> Self:
        if self.demo:
            return self
        problems = insecure_settings(self.mqtt)
        if problems:
            raise SettingsProblems(problems)
        return self

    @property
    def outbox_path(self) -> Path:
        """The outbox database file."""
        return self.data_dir / "outbox.db"

    @property
    def pairings_path(self) -> Path:
        """The pairings database file."""
        return self.data_dir / "pairings.db"

    def publisher_settings(self, software_version: str | None = None) -> PublisherSettings:
        """The publisher's settings."""
        return PublisherSettings(
            gateway_id=self.gateway_id,
            broker=self.mqtt.broker_settings(self.gateway_id),
            window_batches=self.mqtt.window_batches,
            batch_max_readings=self.mqtt.batch_max_readings,
            batch_max_bytes=self.mqtt.batch_max_bytes,
            status_interval_seconds=self.mqtt.status_interval_seconds,
            reconnect_min_seconds=self.mqtt.reconnect_min_seconds,
            reconnect_max_seconds=self.mqtt.reconnect_max_seconds,
            software_version=software_version,
            link_status_path=self.link_status_path,
        )

    @property
    def link_status_path(self) -> Path:
        """The publisher's link status file: connected, or why not (read it when the
        gateway cannot reach its broker)."""
        return self.data_dir / "broker-link.json"

    @property
    def default_time_zone(self) -> ZoneInfo:
        """The time zone of patients paired without one."""
        return ZoneInfo(self.clock.time_zone)


def check_time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone this machine knows.

    Raises:
        ValueError: it is not.
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a known IANA time zone (e.g. 'Asia/Shanghai'); "
            "install tzdata if the name is right"
        ) from None
    return name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_settings(mqtt: MqttSettings) -> list[tuple[str, str]]:
    """What makes this connection unfit for real patients' data, as ``(key, problem)``."""
    problems = []
    if not mqtt.tls and not _is_loopback(mqtt.host):
        problems.append(
            (
                "mqtt.url",
                f"plain-text {mqtt.url!r} would carry health data unencrypted; use mqtts:// "
                "(or set demo = true for a demo)",
            )
        )
    if mqtt.password is not None and is_known_default_secret(mqtt.password.get_secret_value()):
        problems.append(
            (
                "mqtt.password",
                "empty or a well-known default; set the gateway's own password (e.g. in "
                f"{env_variable(('mqtt', 'password'))})",
            )
        )
    if mqtt.password is None and mqtt.client_cert_file is None:
        problems.append(
            (
                "mqtt",
                "no credentials; set mqtt.username and mqtt.password, or "
                "mqtt.client_cert_file and mqtt.client_key_file",
            )
        )
    if mqtt.password is not None and not mqtt.username:
        problems.append(("mqtt.username", "a password needs a username (the gateway id)"))
    return problems


def env_variable(key_path: Sequence[str]) -> str:
    """The environment variable that sets the setting at ``key_path``."""
    return environment_variable(ENV_PREFIX, ENV_NESTED_DELIMITER, key_path)


def load_settings(path: Path | str, *, environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """Read, merge with the environment and validate the gateway configuration.

    Args:
        path: a ``.toml``, ``.yaml`` or ``.yml`` file.
        environ: the environment to take ``VITALGATE_GATEWAY_*`` overrides from; the
            process environment when absent (only used to name the source of a bad value).

    Raises:
        SettingsError: the file is unreadable or settings are invalid; the message names
            the file and every offending key.
    """
    file = Path(path)
    source = environment_source(
        ENV_PREFIX, ENV_NESTED_DELIMITER, environ if environ is not None else os.environ
    )
    try:
        document = read_settings_file(file)
        return build_settings(GatewaySettings, document, path=str(file), sources=[source])
    except SettingsInvalid as exc:
        raise SettingsError(
            str(file), [(item.key, item.describe()) for item in exc.problems]
        ) from None
