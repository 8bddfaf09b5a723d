"""The systemd units in deploy/ are valid and start commands that exist.

``systemd-analyze verify`` reads each unit as systemd would (an unknown or misspelt
directive is reported, not fatal — so any output fails the test); the command line of each
``ExecStart=`` is checked against the real ``vitalgate`` command's options, so a renamed
option cannot leave a unit that fails at boot.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.config import load_settings
from vitalgate.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/vitalgate/bin/vitalgate"


def _exec_start(unit: Path) -> list[str]:
    (line,) = [
        line
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith("ExecStart=")
    ]
    command = line.removeprefix("ExecStart=")
    # A `sh -c 'exec … $((…))'` wrapper computes a port from the instance name.
    wrapped = re.fullmatch(r"/bin/sh -c '(?:exec )?(.*)'", command)
    words = shlex.split(wrapped.group(1) if wrapped else command)
    assert words[0] == INSTALLED, f"{unit.name}: ExecStart does not run {INSTALLED}"
    return words[1:]


def test_there_are_units_for_the_central_services() -> None:
    names = {unit.name for unit in UNITS}
    assert {"vitalgate-ingest@.service", "vitalgate-web.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_exec_start_uses_options_the_command_has(unit: Path) -> None:
    words = _exec_start(unit)
    subcommand = [w for w in words if not w.startswith("-")][:2]
    # Walk down to the command: `ingest run`, `serve`, `gateway run` …
    path = (
        subcommand if subcommand[0] in {"ingest", "gateway", "alerts", "fleet"} else subcommand[:1]
    )
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in (w for w in words if w.startswith("--")):
        assert option in result.output, f"{unit.name}: {' '.join(path)} has no {option}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_is_silent(unit: Path, tmp_path: Path) -> None:
    vitalgate = shutil.which("vitalgate") or "/bin/true"
    copy = tmp_path / unit.name
    copy.write_text(
        unit.read_text(encoding="utf-8").replace(INSTALLED, vitalgate), encoding="utf-8"
    )
    name = copy.name.replace("@.service", "@0.service")
    done = subprocess.run(
        ["systemd-analyze", "verify", name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert not report.strip(), report


def test_the_example_ingest_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    # As the unit gives them: the secret-bearing URLs from the environment file.
    monkeypatch.setenv(
        "VITALGATE_INGEST_MQTT_URL", "mqtts://ingest:Xq7-unit-test-only@127.0.0.1:8883"
    )
    settings = load_settings(config_file=DEPLOY / "ingest.example.toml")
    assert settings.registry_url.startswith("postgresql://")
    assert "SECRET" not in (DEPLOY / "ingest.example.toml").read_text().split("#", 1)[0]
