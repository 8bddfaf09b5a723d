"""`vitalgate demo`: readings arrive within 30 seconds, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from readings.model import BloodPressureValues, GlucoseValues, new_reading
from vitalgate.demo import format_values

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST_READINGS_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 45.0
PROGRESS = re.compile(r"^-- accepted (\d+), stored (\d+), quarantined (\d+)")


def test_demo_shows_readings_within_30_seconds_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "vitalgate", "demo", "--data-dir", str(tmp_path), "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    output: list[str] = []
    stored = 0
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        while stored == 0:
            remaining = FIRST_READINGS_DEADLINE_SECONDS - (time.monotonic() - started)
            assert remaining > 0, "no reading within 30 s:\n" + "".join(output[-40:])
            if not selector.select(remaining):
                continue
            line = process.stdout.readline().decode("utf-8", "replace")
            assert line, "the demo exited early:\n" + "".join(output[-40:])
            output.append(line)
            if match := PROGRESS.match(line):
                stored = int(match.group(2))
                # Quarantine here would mean the clinic registered other ids than the
                # simulated devices report, or a reading broke the contract.
                assert int(match.group(3)) == 0, "the demo's own readings were quarantined"
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=STOP_DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = "".join(output) + rest.decode("utf-8", "replace")
    assert process.returncode == 0, text[-4000:]
    assert "VitalGate demo stopped" in text
    assert "Traceback" not in text
    gateway_log = (tmp_path / "gateway.log").read_text()
    assert '"gateway stopped"' in gateway_log
    assert (tmp_path / "readings.db").exists()


def test_values_are_shown_in_clinical_units() -> None:
    common = {
        "measured_at": datetime(2026, 11, 23, tzinfo=UTC),
        "received_at": datetime(2026, 11, 23, tzinfo=UTC),
        "device_id": "Roche-Accu_Chek_Guide-92310000123",
        "patient_id": "patient-001",
        "gateway_id": "demo-home-1",
        "seq": 1,
    }
    low = new_reading(
        values=GlucoseValues(glucose=1.1), source_unit="mmol/L", flags=["result_low"], **common
    )
    assert format_values(low) == "LO ≤ 1.1 mmol/L"
    pressure = new_reading(
        values=BloodPressureValues(systolic=138, diastolic=88, pulse=60),
        source_unit="mm[Hg]",
        **common,
    )
    assert format_values(pressure) == "138/88 mmHg  ♥ 60/min"
