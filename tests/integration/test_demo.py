"""`vitalgate demo`: readings arrive within 30 seconds, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device_drivers.profiles import DeviceProfile, find_profile
from device_drivers.simulators.ble_home import demo_scenario
from gateway.simulation import serial_demo_scenario
from readings.identity import device_identity
from readings.model import BloodPressureValues, GlucoseValues, new_reading
from vitalgate.demo import DEMO_TIME_ZONE
from vitalgate.demo_view import format_values

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


GLUCOSE_METERS = ("roche_accu_chek_guide", "lifescan_onetouch_ultra2", "bayer_contour")
GLUCOSE_DEADLINE_SECONDS = 60.0
METER_CLOCK_RESOLUTION_SECONDS = 60.0
"""The Contour stamps its records to the minute."""


def _newest_stored(database: Path, device_id: str) -> tuple[int, str, str] | None:
    if not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
        try:
            row: tuple[int, str, str] | None = db.execute(
                "SELECT time_ns, device_time, flags FROM readings WHERE device_id = ? "
                "ORDER BY time_ns DESC LIMIT 1",
                (device_id,),
            ).fetchone()
        except sqlite3.OperationalError:  # the table is not there yet
            return None
        return row


def _newest_taken_offset_seconds(profile: DeviceProfile) -> float:
    """When the demo's meter took its newest result, relative to the simulator's start."""
    scenario = demo_scenario(profile) if profile.is_ble else serial_demo_scenario()
    return max(r.at_offset_seconds for r in scenario.timeline() if r.at_offset_seconds <= 0)


def test_demo_on_a_utc_host_stores_each_glucose_reading_at_the_time_it_was_taken(
    tmp_path: Path,
) -> None:
    profiles = [find_profile(profile_id) for profile_id in GLUCOSE_METERS]
    device_ids = {
        profile.profile_id: device_identity(
            profile.manufacturer, profile.model, profile.simulator.serial
        )
        for profile in profiles
        if profile.simulator is not None
    }
    launched = datetime.now(UTC)
    process = subprocess.Popen(
        [sys.executable, "-m", "vitalgate", "demo", "--data-dir", str(tmp_path), "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TZ": "UTC"},
    )
    database = tmp_path / "readings.db"
    newest: dict[str, tuple[int, str, str]] = {}
    try:
        deadline = time.monotonic() + GLUCOSE_DEADLINE_SECONDS
        while len(newest) < len(profiles):
            assert process.poll() is None, "the demo exited early"
            assert time.monotonic() < deadline, f"glucose only from {sorted(newest)}"
            time.sleep(0.5)
            for profile_id, device_id in device_ids.items():
                if (row := _newest_stored(database, device_id)) is not None:
                    newest[profile_id] = row
        seen = datetime.now(UTC)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=STOP_DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output.decode("utf-8", "replace")[-3000:]
    zone = ZoneInfo(DEMO_TIME_ZONE)
    for profile in profiles:
        time_ns, device_time, flags = newest[profile.profile_id]
        # The store keeps milliseconds; below them, a per-id offset keeps points distinct.
        stored = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=time_ns // 1_000_000)
        offset = timedelta(seconds=_newest_taken_offset_seconds(profile))
        # Taken at the simulator's start plus its offset; the start lies between launch
        # and the first look at the store.
        earliest = launched + offset - timedelta(seconds=METER_CLOCK_RESOLUTION_SECONDS + 1)
        latest = seen + offset + timedelta(seconds=1)
        assert earliest <= stored <= latest, (profile.profile_id, stored, earliest, latest)
        # The meter's clock is the patient's wall clock: nothing to correct.
        assert "clock_corrected" not in flags, profile.profile_id
        wall_clock = datetime.fromisoformat(device_time).replace(tzinfo=zone)
        assert wall_clock.astimezone(UTC) == stored, profile.profile_id


def test_values_are_shown_in_clinical_units() -> None:
    common: dict[str, Any] = {
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


API_LINE = re.compile(r"^API\s+(http://127\.0\.0\.1:\d+)/api/v1/docs")


def test_the_demo_serves_the_api_to_its_care_team_patient_and_family(tmp_path: Path) -> None:
    import json

    import httpx
    import pyotp

    from vitalgate.demo import DEMO_PATIENTS

    process = subprocess.Popen(
        [sys.executable, "-m", "vitalgate", "demo", "--data-dir", str(tmp_path), "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    output: list[str] = []
    base = ""
    stored = 0
    deadline = time.monotonic() + FIRST_READINGS_DEADLINE_SECONDS * 2
    try:
        while not base or stored == 0:
            assert time.monotonic() < deadline, "".join(output[-40:])
            line = process.stdout.readline().decode("utf-8", "replace")
            assert line, "the demo exited early:\n" + "".join(output[-40:])
            output.append(line)
            if match := API_LINE.match(line):
                base = match.group(1)
            if match := PROGRESS.match(line):
                stored = int(match.group(2))
        logins = json.loads((tmp_path / "demo-logins.json").read_text())
        assert oct((tmp_path / "demo-logins.json").stat().st_mode & 0o777) == "0o600"
        with httpx.Client(base_url=base, timeout=10) as client:
            login = client.post(
                "/api/v1/auth/login",
                json={
                    "username": "dr.demo",
                    "password": logins["passwords"]["dr.demo"],
                    "code": pyotp.TOTP(logins["totp"]["dr.demo"]).now(),
                },
            )
            assert login.status_code == 200, login.text
            doctor = {"Authorization": f"Bearer {login.json()['access_token']}"}
            # The live stream carries the simulated devices' new readings to the doctor.
            with client.stream(
                "GET", "/api/v1/stream", headers=doctor, timeout=FIRST_READINGS_DEADLINE_SECONDS
            ) as stream:
                assert stream.status_code == 200
                # Alert changes share the stream (the demo's first alerts may come first).
                events = (line for line in stream.iter_lines() if line.startswith("event: "))
                assert next(e for e in events if e != "event: alert") == "event: reading"
            patients = client.get("/api/v1/patients", headers=doctor).json()
            assert {p["id"] for p in patients["data"]} == {p.patient_id for p in DEMO_PATIENTS}
            assert any(p["latest"] for p in patients["data"])

            assert (
                client.post("/api/v1/auth/sms/request", json={"phone": "13800000002"}).status_code
                == 202
            )
            link = json.loads((tmp_path / "sms.jsonl").read_text().splitlines()[-1])["text"]
            token = link.split("#", 1)[1].split()[0]
            family = client.post("/api/v1/auth/sms/verify", json={"token": token})
            assert family.status_code == 200
            family_headers = {"Authorization": f"Bearer {family.json()['access_token']}"}
            first, second = (p.patient_id for p in DEMO_PATIENTS[:2])
            assert (
                client.get(f"/api/v1/patients/{first}", headers=family_headers).status_code == 200
            )
            assert (
                client.get(f"/api/v1/patients/{second}", headers=family_headers).status_code == 404
            )
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=STOP_DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, ("".join(output) + rest.decode("utf-8", "replace"))[-4000:]


ALERT_DEADLINE_SECONDS = 150.0
"""The demo meter measures 2.8 mmol/L 40 s after its start; the gateway downloads it at
its next poll, ingest stores it and the alert worker evaluates it."""


def test_the_demos_hypo_raises_g1_and_its_notifications(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "vitalgate", "demo", "--data-dir", str(tmp_path), "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    output: list[str] = []
    alert = None
    started = time.monotonic()
    try:
        while alert is None:
            remaining = ALERT_DEADLINE_SECONDS - (time.monotonic() - started)
            assert remaining > 0, "no G1 alert in time:\n" + "".join(output[-40:])
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            line = process.stdout.readline().decode("utf-8", "replace")
            assert line, "the demo exited:\n" + "".join(output[-40:])
            output.append(line)
            if line.startswith("ALERT P1 G1"):
                alert = line
        assert "patient-001" in alert
        # The cuff was just paired and has no history: no "no readings for 3 days" (S2)
        # in the demo's first minutes, though the meters' memories hold older readings.
        s2 = [line for line in output if re.match(r"ALERT \S+ S2 ", line)]
        assert not s2, "".join(s2)
        # The escalation's first steps (SMS to the patient and the consented family) go
        # to the demo's notification file, each once.
        notifications = tmp_path / "notifications.jsonl"
        deadline = time.monotonic() + 30
        while not notifications.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        lines = [ln for ln in notifications.read_text(encoding="utf-8").splitlines() if ln]
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=STOP_DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    keys = [json.loads(line)["key"] for line in lines]
    assert keys, "no notification written"
    assert len(set(keys)) == len(keys)
