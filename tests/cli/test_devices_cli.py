"""``vitalgate devices``: the profile list and a scan of the simulated home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from device_drivers.profiles import load_profiles
from vitalgate.cli import app

runner = CliRunner()


def test_profiles_lists_every_shipped_model_as_json() -> None:
    result = runner.invoke(app, ["devices", "profiles", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [item["profile_id"] for item in listed] == [p.profile_id for p in load_profiles()]
    onetouch = next(item for item in listed if item["profile_id"] == "lifescan_onetouch_ultra2")
    assert onetouch["transport"]["baud"] == 9600


def test_profiles_table_shows_each_model() -> None:
    result = runner.invoke(app, ["devices", "profiles"])
    assert result.exit_code == 0
    assert "Supported device models" in result.output
    assert "polar_h10" in result.output


def test_a_broken_profile_folder_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "bad_scale.toml").write_text('manufacturer = "X"\nmodel = "Y"\n')
    result = runner.invoke(app, ["devices", "profiles", "--profiles", str(tmp_path)])
    assert result.exit_code == 2
    assert "bad_scale.toml: driver: Field required" in result.output


def test_simulated_scan_finds_every_ble_model() -> None:
    result = runner.invoke(app, ["devices", "scan", "--simulate", "--timeout", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    heard = json.loads(result.output)
    matched = sorted(profile for device in heard for profile in device["profiles"])
    assert matched == sorted(p.profile_id for p in load_profiles() if p.is_ble)


def test_devices_help_does_not_import_bleak_or_bumble() -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vitalgate.cli import app\n"
        "assert CliRunner().invoke(app, ['devices', '--help']).exit_code == 0\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('bleak', 'bumble')]\n"
        "print(loaded)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"
