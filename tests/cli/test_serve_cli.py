"""``vitalgate serve`` refuses to start without a usable signing key or SMS sender."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.db import upgrade
from vitalgate.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "VITALGATE_API_TOKEN_SECRET"),
        ("short", "at least 32 characters"),
    ],
)
def test_a_bad_signing_key_stops_the_server(
    monkeypatch: pytest.MonkeyPatch, secret: str | None, message: str
) -> None:
    monkeypatch.delenv("VITALGATE_API_TOKEN_SECRET", raising=False)
    if secret is not None:
        monkeypatch.setenv("VITALGATE_API_TOKEN_SECRET", secret)
    result = runner.invoke(app, ["serve", "--sms-file", "sms.jsonl"])
    assert result.exit_code == 2
    assert message in result.output


def test_exactly_one_sms_sender_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALGATE_API_TOKEN_SECRET", "k" * 40)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "exactly one of --sms-webhook and --sms-file" in result.output


def test_an_unusable_ingest_config_stops_the_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Releases through the API use ingest's limits; a broken file is refused, not ignored."""
    monkeypatch.setenv("VITALGATE_API_TOKEN_SECRET", "k" * 40)
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(registry)
    config = tmp_path / "ingest.yaml"
    config.write_text("plausibility:\n  glucose_meter_max_mmol_per_l: not-a-number\n")
    result = runner.invoke(
        app,
        [
            "serve",
            "--registry",
            registry,
            "--store",
            f"sqlite:///{tmp_path / 'readings.db'}",
            "--sms-file",
            str(tmp_path / "sms.jsonl"),
            "--ingest-config",
            str(config),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--ingest-config" in result.output
