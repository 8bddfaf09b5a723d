"""The pieces of the fault-chain suite (``test_chain_faults.py``): meter to InfluxDB.

* :class:`DevicePlan` — what the simulated devices hold and measure, and when they were
  switched on (``epoch``). From it, :meth:`DevicePlan.produced_ids` computes the id of
  every reading the devices have produced by a given moment with the contract's identity
  function, never from what arrived anywhere.
* The gateway process: ``python -m tests.integration.chain_helpers --config FILE --plan
  FILE`` runs the real :class:`~gateway.runtime.GatewayRuntime` (the process ``python -m
  gateway`` runs) with the plan's BLE devices on a bumble virtual radio inside it. The
  radio cannot leave the process, so a SIGKILLed gateway takes its BLE devices with it;
  the launcher switches them back on with the plan's ``epoch`` as their start, so they
  come back with the same memory, as a real meter that outlived the gateway's crash.
  :class:`GatewayProcess` starts, kills and reads the log of that process.
* :class:`PacedOneTouch` — a OneTouch Ultra 2 on a pty in the test process (it outlives
  the gateway, as a meter in its cable does), paced like a slow serial line so that a
  download can be caught in the middle; it says how far its current dump has got.
* :func:`influx_writes` — every reading id InfluxDB received in a write request, with the
  moment it was received, from InfluxDB's own write trace (``[http] write-tracing``):
  how many times each reading was written, which a query of the store cannot show
  (a re-written point overwrites itself).
* :func:`outbox_ids` — the reading ids still in the gateway's SQLite outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from device_drivers.simulators.scenario import Scenario, ScenarioRecord
from device_drivers.simulators.serial_meters import OneTouchUltra2Simulator
from readings.identity import device_identity, reading_id
from readings.model import Kind
from readings.units import Unit

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
GATEWAY_START_TIMEOUT_SECONDS: Final = 60.0
"""Imports, profiles, the virtual radio and the first broker connection, on a loaded
2-core machine."""
POLL_SECONDS: Final = 0.05
ONETOUCH_MANUFACTURER: Final = "LifeScan"
ONETOUCH_MODEL: Final = "OneTouch Ultra 2"
ONETOUCH_PROFILE: Final = "lifescan_onetouch_ultra2"
METER_LINK_SECONDS: Final = 4.0
"""A real glucose meter usually switches its radio off a few seconds after a sync; the
simulated one would keep the link for ever. The gateway polls a held link too
(``test_a_meter_that_keeps_the_link_is_downloaded_again``), but the chain's meters drop
theirs, so every fault also meets reconnects, as it would at home."""


def wall_clock(zone_name: str) -> Callable[[], datetime]:
    """The local wall-clock time of ``zone_name``, naive: what a home device's clock shows."""
    zone = ZoneInfo(zone_name)

    def now() -> datetime:
        return datetime.now(zone).replace(tzinfo=None)

    return now


# -- what the devices produce ------------------------------------------------------------


class BleDevice(msgspec.Struct, frozen=True, kw_only=True):
    """A BLE device simulated inside the gateway process."""

    profile: str
    manufacturer: str
    model: str
    serial: str
    scenario: Scenario


class DevicePlan(msgspec.Struct, frozen=True, kw_only=True):
    """The simulated devices of one chain and the moment they were switched on.

    Attributes:
        epoch: the devices' start, in their patient's wall-clock time (naive, whole
            seconds); a record at offset ``s`` carries the device time ``epoch + s``.
        time_zone: the patient's zone, which every device clock follows.
        patient_id: the patient the devices are bound to.
        ble: BLE devices (inside the gateway process).
        onetouch_serial: serial number of the OneTouch in the test process.
        onetouch: its scenario.
    """

    epoch: datetime
    time_zone: str
    patient_id: str
    ble: tuple[BleDevice, ...]
    onetouch_serial: str
    onetouch: Scenario

    def elapsed_seconds(self) -> float:
        """Seconds since the devices were switched on."""
        return (wall_clock(self.time_zone)() - self.epoch).total_seconds()

    def produced_ids(self, elapsed_seconds: float | None = None) -> dict[str, set[str]]:
        """Ids of every reading the devices hold ``elapsed_seconds`` after the epoch
        (default: now), by device id.

        BLE glucose meters number their records 1, 2, … in the order taken and stamp them
        with their clock (one-second resolution on the air); the OneTouch has no sequence
        number and stamps whole seconds. The reading id is the contract's function of the
        device, the kind and that record key.
        """
        elapsed = self.elapsed_seconds() if elapsed_seconds is None else elapsed_seconds
        produced: dict[str, set[str]] = {}
        for device in self.ble:
            device_id = device_identity(device.manufacturer, device.model, device.serial)
            taken = _taken(device.scenario, elapsed, Kind.GLUCOSE)
            produced[device_id] = {
                _glucose_id(device_id, seq, self._device_time(record))
                for seq, record in enumerate(taken, start=1)
            }
        onetouch_id = device_identity(ONETOUCH_MANUFACTURER, ONETOUCH_MODEL, self.onetouch_serial)
        produced[onetouch_id] = {
            _glucose_id(onetouch_id, None, self._device_time(record))
            for record in _taken(self.onetouch, elapsed, Kind.GLUCOSE)
        }
        return produced

    def records_taken(self, elapsed_seconds: float) -> int:
        """How many records the devices hold ``elapsed_seconds`` after the epoch (counted
        from the scenarios, without ids: the size the id sets must have)."""
        count = sum(len(_taken(d.scenario, elapsed_seconds, Kind.GLUCOSE)) for d in self.ble)
        return count + len(_taken(self.onetouch, elapsed_seconds, Kind.GLUCOSE))

    def all_produced(self, elapsed_seconds: float | None = None) -> set[str]:
        """:meth:`produced_ids` of every device, in one set."""
        return set().union(*self.produced_ids(elapsed_seconds).values())

    def production_ends_seconds(self) -> float:
        """The offset of the last record any device takes."""
        offsets = [r.at_offset_seconds for d in self.ble for r in d.scenario.timeline()]
        offsets += [r.at_offset_seconds for r in self.onetouch.timeline()]
        return max(offsets)

    def _device_time(self, record: ScenarioRecord) -> datetime:
        return (self.epoch + timedelta(seconds=record.at_offset_seconds)).replace(microsecond=0)

    def device_ids(self) -> list[str]:
        """Every device's id."""
        return list(self.produced_ids(0.0))

    def encode(self) -> bytes:
        """The plan as JSON, for the gateway launcher."""
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> DevicePlan:
        """A plan from :meth:`encode`."""
        return msgspec.json.decode(data, type=cls)


def _taken(scenario: Scenario, elapsed_seconds: float, kind: Kind) -> list[ScenarioRecord]:
    return [r for r in scenario.stored_at(elapsed_seconds) if r.kind is kind]


def _glucose_id(device_id: str, seq: int | None, device_time: datetime) -> str:
    # received_at only enters the id of a record without seq and device time.
    return reading_id(
        device_id=device_id,
        kind=Kind.GLUCOSE.value,
        seq=seq,
        device_time=device_time,
        received_at=datetime.now(UTC),
    )


# -- the serial meter in the test process -------------------------------------------------


class PacedOneTouch(OneTouchUltra2Simulator):
    """A OneTouch Ultra 2 whose dump lines leave at ``bytes_per_second``, as over a slow
    line, and which reports the progress of its current dump.

    Args:
        plan: provides the scenario, the serial number, the zone and the epoch.
        bytes_per_second: the pace of a dump.
    """

    def __init__(self, plan: DevicePlan, *, bytes_per_second: float) -> None:
        super().__init__(
            plan.onetouch,
            serial_number=plan.onetouch_serial,
            firmware="P02.00.00 30/08/06",
            display_unit=Unit.MG_PER_DL,
            clock=wall_clock(plan.time_zone),
        )
        # Switched on at the plan's epoch: its memory is the plan's from the first dump.
        self.device_clock.started_at = plan.epoch
        self.bytes_per_second = bytes_per_second
        self.dump_bytes_sent = 0
        """Bytes of the current (or last) dump sent so far."""
        self.dumps_completed = 0
        self._lock = threading.Lock()

    def _begin_transfer(self) -> None:
        super()._begin_transfer()
        with self._lock:
            self.dump_bytes_sent = 0

    def _send_transfer_bytes(self, data: bytes) -> bool:
        time.sleep(len(data) / self.bytes_per_second)
        sent = super()._send_transfer_bytes(data)
        with self._lock:
            self.dump_bytes_sent += len(data)
        return sent

    def _dump(self) -> None:
        super()._dump()
        with self._lock:
            self.dumps_completed += 1

    def dump_in_progress(self) -> tuple[int, int]:
        """``(dumps started, dumps completed)``: a dump is under way when they differ."""
        with self._lock:
            return self.transfers, self.dumps_completed


# -- InfluxDB's own record of the writes ---------------------------------------------------

_TRACE_MESSAGE: Final = "Write body received by handler"
_ID_FIELD: Final = re.compile(
    r'\bid="([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"'
)


@dataclass
class WriteLog:
    """Every reading id InfluxDB received in a write request, with when.

    Attributes:
        writes: id → the moments (UTC) InfluxDB received a write holding it.
        requests: how many write requests the trace holds.
    """

    writes: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0

    def count(self, reading: str) -> int:
        """How many times ``reading`` was written."""
        return len(self.writes.get(reading, ()))

    def repeated(self) -> dict[str, list[datetime]]:
        """The ids written more than once, with every write's moment."""
        return {key: times for key, times in self.writes.items() if len(times) > 1}


@dataclass(frozen=True)
class FaultWindow:
    """When a fault began and when the chain had settled after it (UTC)."""

    name: str
    started: datetime
    settled: datetime


def unexplained_repeats(
    writes: WriteLog, windows: Iterable[FaultWindow]
) -> dict[str, list[datetime]]:
    """The readings written again without a fault to explain it.

    A repeat is explained when a fault's window lies between it and the write before it
    (that write happened before the chain settled, the repeat after the fault began): a
    redelivery the fault caused. Two writes of one reading in steady state are not.
    """
    chosen = list(windows)

    def explained(moments: list[datetime]) -> bool:
        return all(
            any(before <= window.settled and after >= window.started for window in chosen)
            for before, after in itertools.pairwise(moments)
        )

    return {
        key: sorted(moments)
        for key, moments in writes.repeated().items()
        if not explained(sorted(moments))
    }


def influx_writes(log_path: Path) -> WriteLog:
    """Parse influxd's JSON log (``[logging] format = "json"``, ``[http] write-tracing =
    true``) for the bodies written to it (the chain's server holds one database).

    The trace is InfluxDB's own: it survives worker crashes and counts each body the
    server received, whatever the client then heard.
    """
    result = WriteLog()
    with log_path.open("rb") as log:
        for raw in log:
            if _TRACE_MESSAGE.encode() not in raw:
                continue
            entry = json.loads(raw)
            moment = datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00"))
            result.requests += 1
            for reading in _ID_FIELD.findall(str(entry["body"])):
                result.writes[reading].append(moment)
    return result


# -- the gateway's outbox --------------------------------------------------------------------


def outbox_ids(path: Path) -> set[str]:
    """Reading ids still in the outbox (any state), read as an operator would."""
    if not path.exists():
        return set()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return {row[0] for row in db.execute("SELECT reading_id FROM outbox_rows")}


# -- the gateway process ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    """One JSON line of the gateway's log."""

    at: datetime
    message: str
    fields: Mapping[str, Any]


class GatewayProcess:
    """The gateway launcher (this module's ``__main__``) as a subprocess.

    Args:
        config: the gateway's configuration file.
        plan: the BLE devices it simulates.
        workdir: where the plan and the log go.
    """

    def __init__(self, config: Path, plan: DevicePlan, workdir: Path) -> None:
        self.config = config
        self.plan_path = workdir / "device-plan.json"
        self.plan_path.write_bytes(plan.encode())
        self.log_path = workdir / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the process (it goes on starting in the background)."""
        self.starts += 1
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        env = {k: v for k, v in env.items() if not k.startswith("VITALGATE_GATEWAY_")}
        with self.log_path.open("ab") as log:
            log.write(f'{{"harness": "start #{self.starts}"}}\n'.encode())
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.chain_helpers",
                    "--config",
                    str(self.config),
                    "--plan",
                    str(self.plan_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                env=env,
                start_new_session=True,
            )

    def wait_running(self, timeout_seconds: float = GATEWAY_START_TIMEOUT_SECONDS) -> None:
        """Wait for this start's ``gateway running`` line."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if any(line.message == "gateway running" for line in self.lines(self.starts)):
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"the gateway did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, the BLE devices die with it."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> int | None:
        """SIGTERM (a clean stop), SIGKILL if it hangs; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def lines(self, start: int | None = None) -> list[LogLine]:
        """The JSON log lines, of one start only (1-based) when ``start`` is given."""
        out: list[LogLine] = []
        current = 0
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return out
        for raw in text.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            if "harness" in entry:
                current += 1
                continue
            if start is not None and current != start:
                continue
            if "ts" in entry and "message" in entry:
                out.append(
                    LogLine(datetime.fromisoformat(entry["ts"]), str(entry["message"]), entry)
                )
        return out

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"


# -- the launcher ---------------------------------------------------------------------------


async def _end_links_after(devices: Iterable[Any], seconds: float) -> None:
    """Drop every connection of ``devices`` once it is ``seconds`` old."""
    first_seen: dict[Any, float] = {}
    while True:
        await asyncio.sleep(POLL_SECONDS * 5)
        now = time.monotonic()
        live = set()
        for device in devices:
            for connection in list(device.connections):
                live.add(connection)
                if now - first_seen.setdefault(connection, now) >= seconds:
                    await device.drop_link()
        for connection in set(first_seen) - live:
            del first_seen[connection]


async def _serve(config: Path, plan: DevicePlan) -> None:
    from device_drivers.profiles import load_profiles
    from device_drivers.simulators.ble_home import SimulatedHome
    from gateway.config import load_settings
    from gateway.links import BleBackends
    from gateway.pairing import PairingStore
    from gateway.runtime import GatewayRuntime

    settings = load_settings(config)
    profiles = {profile.profile_id: profile for profile in load_profiles(settings.profiles_dir)}
    home = SimulatedHome(
        [profiles[device.profile] for device in plan.ble],
        scenarios={device.profile: device.scenario for device in plan.ble},
        now=wall_clock(plan.time_zone),
    )
    for simulated in home.devices.values():
        # Switched on at the epoch: the same memory as before the gateway died.
        simulated.clock.started_at = plan.epoch
    await home.start()
    link_ender = asyncio.create_task(
        _end_links_after(list(home.devices.values()), METER_LINK_SECONDS), name="meter radios"
    )
    try:
        with PairingStore(settings.pairings_path, clock=lambda: datetime.now(UTC)) as pairings:
            for profile_id, simulated in home.devices.items():
                pairings.bind(
                    simulated.info,
                    patient_id=plan.patient_id,
                    profile_id=profile_id,
                    address=simulated.address,
                    time_zone=plan.time_zone,
                )
        runtime = GatewayRuntime(
            settings,
            config_path=config,
            ble=BleBackends(client=home.client_backend, scanner=home.scanner_backend),
            handle_signals=True,
        )
        await runtime.run()
    finally:
        link_ender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await link_ender
        await home.stop()


def main(argv: Iterable[str] | None = None) -> int:
    """Run the gateway with the plan's BLE devices until SIGTERM."""
    from gateway.config import load_settings
    from gateway.logging import configure_logging

    parser = argparse.ArgumentParser(prog="python -m tests.integration.chain_helpers")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--plan", type=Path, required=True)
    arguments = parser.parse_args(list(argv) if argv is not None else None)
    configure_logging(load_settings(arguments.config).log_level)
    plan = DevicePlan.decode(arguments.plan.read_bytes())
    asyncio.run(_serve(arguments.config, plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
