"""Ingest configuration: sources and their priority, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.settings import KNOWN_DEFAULT_SECRETS
from ingest.config import (
    IngestConfigError,
    IngestSettings,
    default_client_id,
    load_settings,
    parse_mqtt_url,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VITALGATE_INGEST_"):
            monkeypatch.delenv(name)


def test_defaults_are_valid_and_the_client_id_is_stable() -> None:
    first, second = load_settings(), load_settings()
    assert first.group == "ingest"
    assert first.mqtt_client_id == second.mqtt_client_id
    assert first.mqtt_client_id.startswith("vitalgate-ingest-ingest-")
    assert first.mqtt_client_id.endswith("-0")


def test_default_client_id_is_safe_for_pattern_acls() -> None:
    client_id = default_client_id("g1", 3, hostname="ward/7+#.example")
    assert client_id == "vitalgate-ingest-g1-ward-7-example-3"


def test_priority_is_options_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text('group = "from-file"\nbatch_max_messages = 50\nmetrics_port = 9999\n')
    settings = load_settings(config_file=config)
    assert (settings.group, settings.batch_max_messages) == ("from-file", 50)
    monkeypatch.setenv("VITALGATE_INGEST_GROUP", "from-env")
    assert load_settings(config_file=config).group == "from-env"
    assert load_settings(config_file=config, group="from-option").group == "from-option"
    assert load_settings(config_file=config, group=None).group == "from-env"


def test_config_file_may_be_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("group: yaml-group\nplausibility:\n  weight_min_kg: 0.4\n")
    monkeypatch.setenv("VITALGATE_INGEST_CONFIG_FILE", str(config))
    settings = load_settings()
    assert settings.group == "yaml-group"
    assert settings.plausibility.weight_min_kg == 0.4
    assert settings.plausibility.weight_max_kg == 400.0


def test_nested_plausibility_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALGATE_INGEST_PLAUSIBILITY__SPO2_MIN_PERCENT", "60")
    assert load_settings().plausibility.spo2_min_percent == 60.0


@pytest.mark.parametrize(
    ("overrides", "key", "problem"),
    [
        ({"mqtt_url": "http://broker"}, "mqtt_url", "mqtt:// or mqtts://"),
        ({"mqtt_url": "mqtt://"}, "mqtt_url", "host is missing"),
        ({"mqtt_url": "mqtt://127.0.0.1:99999"}, "mqtt_url", "port"),
        ({"mqtt_url": "mqtt://broker.example.org"}, "mqtt_url", "in clear"),
        ({"mqtt_url": "mqtt://ingest:changethis@127.0.0.1"}, "mqtt_url", "example password"),
        ({"store_url": "influxdb-v1://admin:password@db:8086/vg"}, "store_url", "example password"),
        ({"store_url": "influxdb://changeme@db:8086?org=o&bucket=b"}, "store_url", "example"),
        ({"group": "a/b"}, "group", "letters, digits"),
        ({"client_id": "gw+1"}, "client_id", "letters, digits"),
        ({"batch_max_messages": 5000}, "batch_max_messages", "receive_maximum"),
        ({"receive_maximum": 0}, "receive_maximum", "greater than or equal to 1"),
        ({"session_expiry_seconds": 2**32}, "session_expiry_seconds", "less than or equal"),
        ({"mqtt_cert_file": "/c.pem"}, "mqtt_key_file", "go together"),
        ({"mqtt_ca_file": "/ca.pem"}, "mqtt_url", "mqtts://"),
        ({"plausibility": {"spo2_min_percent": 120}}, "plausibility", "spo2_min_percent"),
        ({"plausibility": {"no_such_limit": 1}}, "plausibility.no_such_limit", ""),
        ({"partitions": 0}, "partitions", "greater than or equal to 1"),
        ({"unknown_setting": 1}, "unknown_setting", "not permitted"),
    ],
)
def test_errors_name_the_key(overrides: dict[str, object], key: str, problem: str) -> None:
    with pytest.raises(IngestConfigError) as caught:
        load_settings(**overrides)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_demo_allows_the_example_passwords() -> None:
    settings = load_settings(mqtt_url="mqtt://demo:demo@127.0.0.1:1883", demo=True)
    assert settings.mqtt_endpoint.password == "demo"


def test_secrets_stay_out_of_the_representation() -> None:
    settings = load_settings(mqtt_url="mqtt://ingest:s3cr3t-Horse@127.0.0.1")
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in repr(settings.mqtt_endpoint)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("group = [", "malformed"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_config_files_are_named(tmp_path: Path, text: str, problem: str) -> None:
    suffix = ".toml" if "=" in text else ".yaml"
    config = tmp_path / f"ingest{suffix}"
    config.write_text(text)
    with pytest.raises(IngestConfigError) as caught:
        load_settings(config_file=config)
    assert caught.value.key == "config_file"
    assert problem in caught.value.problem


def test_missing_and_unsupported_config_files(tmp_path: Path) -> None:
    with pytest.raises(IngestConfigError, match="cannot read"):
        load_settings(config_file=tmp_path / "absent.toml")
    ini = tmp_path / "ingest.ini"
    ini.write_text("[x]\n")
    with pytest.raises(IngestConfigError, match=r"\.toml, \.yaml or \.yml"):
        load_settings(config_file=ini)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", ("127.0.0.1", 1883, False, None, None)),
        ("mqtts://broker.example.org", ("broker.example.org", 8883, True, None, None)),
        ("mqtt://ingest:p%40ss@localhost:2883", ("localhost", 2883, False, "ingest", "p@ss")),
    ],
)
def test_parse_mqtt_url(url: str, expected: tuple[object, ...]) -> None:
    endpoint = parse_mqtt_url(url)
    assert (endpoint.host, endpoint.port, endpoint.tls, endpoint.username, endpoint.password) == (
        expected
    )


def test_settings_are_immutable() -> None:
    settings = IngestSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.group = "other"  # type: ignore[misc]


@pytest.mark.parametrize("secret", sorted(KNOWN_DEFAULT_SECRETS - {""}))
def test_every_shared_known_default_password_is_refused_outside_demo(secret: str) -> None:
    url = f"mqtt://ingest:{secret.upper()}@127.0.0.1"
    with pytest.raises(IngestConfigError) as caught:
        load_settings(mqtt_url=url)
    assert caught.value.key == "mqtt_url"
    assert load_settings(mqtt_url=url, demo=True).demo


def test_every_problem_is_reported_at_once_with_the_file_and_where_each_value_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ingest.toml"
    config.write_text(
        'group = "a/b"\nstore_url = "influxdb-v1://admin:password@db:8086/vg"\n'
        "[plausibility]\nno_such_limit = 1\n"
    )
    monkeypatch.setenv("VITALGATE_INGEST_RECEIVE_MAXIMUM", "0")
    with pytest.raises(IngestConfigError) as caught:
        load_settings(config_file=config, client_id="gw+1")
    keys = [key for key, _ in caught.value.problems]
    assert keys == ["group", "client_id", "receive_maximum", "plausibility.no_such_limit"]
    assert (caught.value.key, caught.value.path) == ("group", str(config))
    message = str(caught.value)
    assert f"{config}: group: must be 1-64" in message
    assert "client_id: must be 1-128 letters, digits, '_', '.' or '-' (set by an option)" in message
    assert "(set by the environment variable VITALGATE_INGEST_RECEIVE_MAXIMUM)" in message


def test_every_problem_across_settings_is_reported_at_once() -> None:
    with pytest.raises(IngestConfigError) as caught:
        load_settings(
            mqtt_url="mqtt://ingest:changethis@broker.example.org",
            store_url="influxdb-v1://admin:password@db:8086/vg",
            batch_max_messages=5000,
        )
    assert [key for key, _ in caught.value.problems] == [
        "batch_max_messages",
        "mqtt_url",
        "mqtt_url",
        "store_url",
    ]
