"""The ``vitalgate`` command: help, version, and the wire checker."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

from typer.testing import CliRunner

from readings.codec import encode_envelope
from readings.model import BloodPressureValues, new_reading
from vitalgate.cli import LAZY_GROUPS, app

runner = CliRunner()


def _payload() -> bytes:
    reading = new_reading(
        values=BloodPressureValues(systolic=138, diastolic=88, pulse=60),
        source_unit="mm[Hg]",
        measured_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        received_at=datetime(2026, 11, 23, 8, 0, 5, tzinfo=UTC),
        device_id="OMRON-HEM_7361T-20031234",
        patient_id="patient-0001",
        gateway_id="gw-0001",
    )
    return encode_envelope("gw-0001", datetime(2026, 11, 23, 8, 1, tzinfo=UTC), [reading])


def test_help_lists_every_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in [*LAZY_GROUPS, "wire", "version"]:
        assert name in result.output


def test_help_imports_no_group_module() -> None:
    script = (
        "import sys\n"
        "from vitalgate.cli import main\n"
        "sys.argv = ['vitalgate', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = [m for m in sys.modules if m.startswith(('vitalgate.commands', 'device_drivers',"
        " 'gateway', 'ingest', 'registry', 'fastapi', 'sqlalchemy', 'pandas', 'influxdb_client',"
        " 'bleak', 'bumble', 'paho'))]\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert "LOADED []" in result.stderr, result.stderr


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip()


def test_wire_check_prints_the_decoded_readings(tmp_path) -> None:
    path = tmp_path / "payload.json"
    path.write_bytes(_payload())
    result = runner.invoke(app, ["wire", "check", str(path)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document[0]["kind"] == "blood_pressure"
    assert document[0]["values"] == {"systolic": 138.0, "diastolic": 88.0, "pulse": 60.0}


def test_wire_check_names_the_bad_field_and_fails() -> None:
    bad = _payload().replace(b'"systolic":138.0', b'"systolic":"high"')
    result = runner.invoke(app, ["wire", "check", "-"], input=bad)
    assert result.exit_code == 1
    assert "$.readings[0].values.systolic" in result.stderr


def test_wire_check_reports_an_unusable_envelope() -> None:
    result = runner.invoke(app, ["wire", "check", "-"], input=b'{"v": 9}')
    assert result.exit_code == 1
    assert "$.v: unsupported payload version 9" in result.stderr


def test_wire_check_missing_file() -> None:
    result = runner.invoke(app, ["wire", "check", "/nonexistent/payload.json"])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr
