"""Gateway settings: file formats, environment overrides, errors naming file and key,
refused secrets, and what the publisher receives."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.errors import SettingsError
from gateway.publisher import MqttProtocol
from infra.settings import KNOWN_DEFAULT_SECRETS

EXAMPLE = Path(__file__).parents[2] / "firmware_configs" / "gateway.example.toml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("VITALGATE_GATEWAY_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def ca_file(tmp_path: Path) -> Path:
    return write(tmp_path, "ca.pem", "-----BEGIN CERTIFICATE-----\n")


def secure_toml(tmp_path: Path, extra: str = "") -> str:
    return f"""
gateway_id = "gw-0001"
data_dir = "{tmp_path / "data"}"
[mqtt]
url = "mqtts://broker.clinic.example:8883"
username = "gw-0001"
password = "a-long-unique-secret"
ca_file = "{ca_file(tmp_path)}"
{extra}
"""


def test_toml_file_with_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "gateway.toml", secure_toml(tmp_path)))
    assert settings.gateway_id == "gw-0001"
    assert settings.outbox_path == tmp_path / "data" / "outbox.db"
    assert settings.pairings_path == tmp_path / "data" / "pairings.db"
    assert settings.clock.time_zone == "Asia/Shanghai"
    assert settings.mqtt.host == "broker.clinic.example"
    assert settings.mqtt.port == 8883
    assert settings.mqtt.tls


def test_yaml_file_is_the_same(tmp_path: Path) -> None:
    yaml_text = f"""
gateway_id: gw-0001
data_dir: {tmp_path / "data"}
mqtt:
  url: mqtts://broker.clinic.example
  username: gw-0001
  password: a-long-unique-secret
  ca_file: {ca_file(tmp_path)}
  protocol: "3.1.1"
clock:
  time_zone: Europe/Berlin
simulators:
  - profile: lifescan_onetouch_ultra2
    patient_id: p-1
    scenario: {{clock_skew_seconds: 10800}}
"""
    settings = load_settings(write(tmp_path, "gateway.yaml", yaml_text))
    assert settings.mqtt.port == 8883
    assert settings.mqtt.protocol is MqttProtocol.V311
    assert settings.clock.time_zone == "Europe/Berlin"
    assert settings.simulators[0].scenario == {"clock_skew_seconds": 10800}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALGATE_GATEWAY_MQTT__PASSWORD", "from-the-credential-store")
    monkeypatch.setenv("VITALGATE_GATEWAY_DEVICES__SERIAL_POLL_SECONDS", "60")
    monkeypatch.setenv("VITALGATE_GATEWAY_GATEWAY_ID", "gw-0002")
    settings = load_settings(write(tmp_path, "gateway.toml", secure_toml(tmp_path)))
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "from-the-credential-store"
    assert settings.mqtt.url == "mqtts://broker.clinic.example:8883"  # the rest of [mqtt] stays
    assert settings.devices.serial_poll_seconds == 60.0
    assert settings.gateway_id == "gw-0002"


@pytest.mark.parametrize(
    ("extra_toml", "key", "problem"),
    [
        ("keepalive_seconds = 1", "mqtt.keepalive_seconds", "greater than or equal to 5"),
        ('colour = "blue"', "mqtt.colour", "unknown setting"),
        ("batch_max_readings = 5000", "mqtt.batch_max_readings", "less than or equal to 1000"),
        ('client_cert_file = "/nonexistent/cert.pem"', "mqtt.client_cert_file", "does not exist"),
        ('protocol = "4"', "mqtt.protocol", "'5' or '3.1.1'"),
    ],
)
def test_errors_name_the_file_and_the_key(
    tmp_path: Path, extra_toml: str, key: str, problem: str
) -> None:
    path = write(tmp_path, "gateway.toml", secure_toml(tmp_path, extra_toml))
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert caught.value.field == key
    assert problem in caught.value.problem
    assert f"{path}: {key}: " in str(caught.value)


@pytest.mark.parametrize(
    ("section", "key", "problem"),
    [
        ("[clock]\ntime_zone = 'Mars/Olympus'", "clock.time_zone", "not a known IANA time zone"),
        ("[devices]\nserial_poll_seconds = 0", "devices.serial_poll_seconds", "greater than 0"),
        ("[breaker]\nbackoff_max_seconds = 0.5", "breaker", "at least backoff_initial_seconds"),
        ("[[simulators]]\nprofile = 'x'\npatient_id = 'p 1'", "simulators.0.patient_id", "pattern"),
        (
            "[[simulators]]\nprofile = 'x'\npatient_id = 'p1'\n[simulators.scenario]\nskew = 1",
            "simulators.0.scenario",
            "unknown field `skew`",
        ),
    ],
)
def test_section_errors(tmp_path: Path, section: str, key: str, problem: str) -> None:
    path = write(tmp_path, "gateway.toml", secure_toml(tmp_path) + section + "\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert caught.value.field == key
    assert problem in caught.value.problem


def test_gateway_id_must_fit_in_a_topic(tmp_path: Path) -> None:
    text = secure_toml(tmp_path).replace('"gw-0001"\ndata_dir', '"gw/1"\ndata_dir')
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, "gateway.toml", text))
    assert caught.value.field == "gateway_id"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "gateway.toml", '[mqtt]\nurl = "http://broker"\n')
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    keys = [key for key, _ in caught.value.problems]
    assert keys == ["gateway_id", "data_dir", "mqtt.url"]
    assert "required, not set" in str(caught.value)
    assert "must start with mqtt:// or mqtts://" in str(caught.value)


def test_a_bad_value_from_the_environment_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALGATE_GATEWAY_MQTT__KEEPALIVE_SECONDS", "1")
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, "gateway.toml", secure_toml(tmp_path)))
    assert "VITALGATE_GATEWAY_MQTT__KEEPALIVE_SECONDS" in caught.value.problem


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("gateway.toml", "gateway_id = ", "not valid TOML"),
        ("gateway.yaml", "mqtt: [unclosed", "not valid YAML"),
        ("gateway.yaml", "- a list", "must hold a table of settings"),
        ("gateway.ini", "[mqtt]", "unknown format"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, name, text))
    assert caught.value.field == "(file)"
    assert problem in caught.value.problem


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("mqtt_toml", "key"),
    [
        (
            'url = "mqtt://broker.clinic.example"\nusername = "gw"\npassword = "long-secret-1"',
            "mqtt.url",
        ),
        ('url = "mqtt://127.0.0.1"\nusername = "gw"\npassword = "changeme"', "mqtt.password"),
        ('url = "mqtt://localhost"\nusername = "gw"\npassword = ""', "mqtt.password"),
        ('url = "mqtt://localhost"', "mqtt"),
        ('url = "mqtt://[::1]"\npassword = "a-long-unique-secret"', "mqtt.username"),
    ],
    ids=[
        "plain_text_to_a_remote_broker",
        "default_password",
        "empty_password",
        "no_credentials",
        "no_username",
    ],
)
def test_insecure_settings_are_refused_outside_demo(
    tmp_path: Path, mqtt_toml: str, key: str
) -> None:
    text = f'gateway_id = "gw-0001"\ndata_dir = "{tmp_path}"\n[mqtt]\n{mqtt_toml}\n'
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, "gateway.toml", text))
    assert key in [k for k, _ in caught.value.problems]
    demo = load_settings(write(tmp_path, "demo.toml", "demo = true\n" + text))
    assert demo.demo


def test_loopback_broker_with_a_real_password_needs_no_tls(tmp_path: Path) -> None:
    text = (
        f'gateway_id = "gw-0001"\ndata_dir = "{tmp_path}"\n[mqtt]\nurl = "mqtt://127.0.0.1:1883"\n'
        'username = "gw-0001"\npassword = "a-long-unique-secret"\n'
    )
    assert load_settings(write(tmp_path, "gateway.toml", text)).mqtt.port == 1883


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mqtts://broker", "needs ca_file"),
        ("tcp://broker", "must start with mqtt:// or mqtts://"),
        ("mqtt://user:pw@broker", "not in the URL"),
        ("mqtt://broker:99999", "Port out of range"),
        ("mqtt:///path", "names no host"),
    ],
)
def test_broker_url_checks(tmp_path: Path, url: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            write(
                tmp_path,
                "gateway.toml",
                f'demo = true\ngateway_id = "gw"\ndata_dir = "{tmp_path}"\n[mqtt]\nurl = "{url}"\n',
            )
        )
    assert caught.value.field.startswith("mqtt")
    assert problem in caught.value.problem


def test_publisher_settings_carry_the_broker_and_tuning(tmp_path: Path) -> None:
    cert = write(tmp_path, "gw.pem", "cert")
    key = write(tmp_path, "gw.key", "key")
    text = secure_toml(
        tmp_path,
        f'client_cert_file = "{cert}"\nclient_key_file = "{key}"\nwindow_batches = 4\n'
        "batch_max_readings = 100\nstatus_interval_seconds = 30\nkeepalive_seconds = 45\n",
    )
    settings = load_settings(write(tmp_path, "gateway.toml", text))
    publisher = settings.publisher_settings("1.2.3")
    assert publisher.gateway_id == "gw-0001"
    assert publisher.window_batches == 4
    assert publisher.batch_max_readings == 100
    assert publisher.status_interval_seconds == 30
    assert publisher.software_version == "1.2.3"
    broker = publisher.broker
    assert (broker.host, broker.port, broker.keepalive_seconds) == (
        "broker.clinic.example",
        8883,
        45,
    )
    assert broker.client_id == "vitalgate-gw-gw-0001"
    assert (broker.username, broker.password) == ("gw-0001", "a-long-unique-secret")
    assert broker.tls is not None
    assert (broker.tls.cert_file, broker.tls.key_file) == (cert, key)


def test_the_shipped_example_is_valid(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VITALGATE_GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VITALGATE_GATEWAY_MQTT__CA_FILE", str(ca_file(tmp_path)))
    monkeypatch.setenv("VITALGATE_GATEWAY_MQTT__PASSWORD", "a-long-unique-secret")
    settings = load_settings(EXAMPLE)
    assert settings.gateway_id == "gw-0001"
    assert not settings.demo


UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "vitalgate-gateway.service"


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_systemd_unit_fits_the_runtime() -> None:
    unit = _unit_settings()
    assert unit["Type"] == ["notify"]  # the runtime sends READY=1 ...
    assert float(unit["WatchdogSec"][0]) > 0  # ... and WATCHDOG=1 every WatchdogSec/2
    assert unit["Restart"] == ["on-failure"]  # exit status 1 on failure, 0 on SIGTERM
    assert "gateway run --config /etc/vitalgate/gateway.toml" in unit["ExecStart"][0]
    assert "AF_BLUETOOTH" in unit["RestrictAddressFamilies"][0]
    assert set(unit["SupplementaryGroups"][0].split()) == {"dialout", "bluetooth"}
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp"):
        assert unit[hardening][0] in ("yes", "strict")
    # The example's data_dir is the unit's StateDirectory, the only writable place.
    import tomllib

    example = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert example["data_dir"] == f"/var/lib/{unit['StateDirectory'][0]}"


@pytest.mark.parametrize("secret", sorted(KNOWN_DEFAULT_SECRETS))
def test_every_shared_known_default_password_is_refused_outside_demo(
    tmp_path: Path, secret: str
) -> None:
    text = secure_toml(tmp_path).replace("a-long-unique-secret", secret.upper())
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, "gateway.toml", text))
    assert [key for key, _ in caught.value.problems] == ["mqtt.password"]
    demo = load_settings(write(tmp_path, "demo.toml", "demo = true\n" + text))
    assert demo.demo


def test_problems_of_the_file_the_environment_and_security_come_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VITALGATE_GATEWAY_MQTT__PASSWORD", "changethis")
    text = (
        f'gateway_id = "gw-0001"\ndata_dir = "{tmp_path}"\n[mqtt]\n'
        'url = "mqtt://broker.clinic.example"\nusername = "gw-0001"\n'
    )
    path = write(tmp_path, "gateway.toml", text)
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert [key for key, _ in caught.value.problems] == ["mqtt.url", "mqtt.password"]
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}: mqtt.url: plain-text")
    assert lines[1].startswith(f"{path}: mqtt.password: empty or a well-known default")
    assert lines[1].endswith("(set by the environment variable VITALGATE_GATEWAY_MQTT__PASSWORD)")


@pytest.mark.parametrize("gateway_id", ["vitalgate-ingest", "VitalGate-API", "vitalgate-x"])
def test_a_gateway_cannot_take_a_service_identity(tmp_path: Path, gateway_id: str) -> None:
    text = secure_toml(tmp_path).replace('gateway_id = "gw-0001"', f'gateway_id = "{gateway_id}"')
    path = write(tmp_path, "gateway.toml", text)
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert caught.value.field == "gateway_id"
    assert "reserved for VitalGate's services" in caught.value.problem
