"""The gateway stops cleanly on SIGTERM while its sessions talk to devices, under CPU load.

The demo's simulated home (seven BLE devices on the virtual radio, two serial meters) is
served by a real ``python -m gateway``; busy processes on every core beside it make the
loop batch many callbacks per iteration, which is when a GATT response and the stop's
cancellation meet. SIGTERM comes while the sessions connect and download. Every stop
must end with ``"gateway stopped"`` promptly, with no task that ignored its cancel.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.runtime import SHUTDOWN_RECANCEL_SECONDS
from tests.harness.services import MosquittoServer
from vitalgate.demo import DEMO_PATIENTS, DEMO_TIME_ZONE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_DEADLINE_SECONDS = 60.0
"""Nine simulators and their pairings start in 2-4 s on an idle machine."""
STOP_DEADLINE_SECONDS = SHUTDOWN_RECANCEL_SECONDS - 4.0
"""A clean stop takes 1-2 s under load. Less than the runtime's re-cancel delay, so a stop
that needed its safety net (a task that lost its cancel) fails here too."""
SIGTERM_DELAYS_SECONDS = (0.5, 1.0, 1.5)
"""After "gateway running": the sessions are connecting, discovering, downloading."""
LOAD_SECONDS = 240.0
"""The spinners end by themselves after this, whatever happens to the test."""


def _spin(until_monotonic: float) -> None:
    while time.monotonic() < until_monotonic:
        pass


@contextlib.contextmanager
def cpu_load() -> Iterator[None]:
    """Two busy processes per core until the block ends (or ``LOAD_SECONDS`` pass)."""
    until = time.monotonic() + LOAD_SECONDS
    spinners = [
        multiprocessing.Process(target=_spin, args=(until,), daemon=True)
        for _ in range(2 * (os.cpu_count() or 1))
    ]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.terminate()
        for spinner in spinners:
            spinner.join()


def _config(mosquitto: MosquittoServer, data_dir: Path) -> str:
    lines = [
        'gateway_id = "gw-stop"',
        f'data_dir = "{data_dir}"',
        "demo = true",
        "",
        "[mqtt]",
        f'url = "{mosquitto.url}"',
        "",
        "[clock]",
        f'time_zone = "{DEMO_TIME_ZONE}"',
    ]
    for patient in DEMO_PATIENTS:
        for profile_id in patient.profiles:
            lines += ["", "[[simulators]]", f'profile = "{profile_id}"']
            lines += [f'patient_id = "{patient.patient_id}"']
    return "\n".join(lines) + "\n"


def _wait_for_line(log: Path, text: bytes, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while text not in log.read_bytes():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in time:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.parametrize("delay_seconds", SIGTERM_DELAYS_SECONDS)
def test_sigterm_during_device_exchanges_under_cpu_load_stops_cleanly(
    mosquitto: MosquittoServer, tmp_path: Path, delay_seconds: float
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(_config(mosquitto, tmp_path / "data"), encoding="utf-8")
    log = tmp_path / "gateway.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_line(log, b'"gateway running"', process)
        # The load starts with the device exchanges (a loaded start only costs time).
        with cpu_load():
            time.sleep(delay_seconds)
            process.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            try:
                process.wait(STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                pytest.fail(f"no clean stop in {STOP_DEADLINE_SECONDS:g} s:\n{log.read_text()}")
            took = time.monotonic() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert process.returncode == 0, text[-3000:]
    assert '"gateway stopped"' in text, text[-3000:]
    assert "cancelled again" not in text, "a task lost its cancellation"
    assert took < STOP_DEADLINE_SECONDS
