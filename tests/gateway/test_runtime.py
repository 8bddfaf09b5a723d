"""The gateway runtime against a real Mosquitto: commands, pairing window, pairings made
outside the process, systemd notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.publish as mqtt_publish
import pytest

from device_drivers.profiles import find_profile
from device_drivers.simulators.ble_home import SimulatedHome
from device_drivers.simulators.bumble_link import BumbleLink
from device_drivers.simulators.scenario import Scenario
from gateway.config import ClockSettings, GatewaySettings, SimulatedDevice
from gateway.links import BleBackends
from gateway.pairing import PairingStore
from gateway.runtime import GatewayRuntime
from gateway.session import SessionState
from gateway.systemd import SystemdNotifier
from readings.codec import (
    EventMessage,
    EventType,
    PairCommand,
    SyncTimeCommand,
    UnpairCommand,
    decode_envelope,
    encode_envelope_from_encoded,
    encode_message,
)
from readings.model import Reading
from readings.topics import Command, command_topic
from tests.gateway.consumer import AckingConsumer
from tests.harness.services import MosquittoServer

GATEWAY_ID = "gw-runtime"
WAIT_SECONDS = 20.0


def settings_for(mosquitto: MosquittoServer, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "gateway_id": GATEWAY_ID,
            "data_dir": tmp_path / "data",
            "demo": True,
            "mqtt": {"url": mosquitto.url, "status_interval_seconds": 1},
            "devices": {"ble_retry_seconds": 0.5},
        }
    )


@pytest.fixture
def consumer(mosquitto: MosquittoServer) -> Iterator[AckingConsumer]:
    consumer = AckingConsumer(mosquitto.host, mosquitto.port, watch_status=True)
    consumer.start()
    yield consumer
    consumer.stop()


class Running:
    """A runtime task and the means to stop it."""

    def __init__(self, runtime: GatewayRuntime) -> None:
        self.runtime = runtime
        self.task = asyncio.create_task(runtime.run())

    async def ready(self) -> GatewayRuntime:
        async with asyncio.timeout(WAIT_SECONDS):
            await self.runtime.ready.wait()
        return self.runtime

    async def stop(self) -> None:
        self.runtime.stop()
        await asyncio.wait_for(self.task, WAIT_SECONDS)


@pytest.fixture
async def start() -> AsyncIterator[Callable[[GatewayRuntime], Running]]:
    started: list[Running] = []

    def run(runtime: GatewayRuntime) -> Running:
        started.append(Running(runtime))
        return started[-1]

    yield run
    for running in started:
        if not running.task.done():
            await running.stop()


@pytest.fixture
async def empty_radio() -> AsyncIterator[BleBackends]:
    """A virtual radio with no device on it: scans hear nothing, no OS Bluetooth needed."""
    link = BumbleLink()
    await link.start()
    yield BleBackends(client=link.client_backend, scanner=link.scanner_backend)
    await link.close()


def send_command(mosquitto: MosquittoServer, command: Command, payload: bytes) -> None:
    mqtt_publish.single(
        command_topic(GATEWAY_ID, command),
        payload,
        qos=1,
        hostname=mosquitto.host,
        port=mosquitto.port,
        client_id="vg-test-clinic",
    )


def events_of(consumer: AckingConsumer, event: EventType) -> list[EventMessage]:
    return [e for e in consumer.events if e.event is event and e.gateway_id == GATEWAY_ID]


async def wait_for(consumer: AckingConsumer, predicate: Callable[[AckingConsumer], bool]) -> None:
    assert await asyncio.to_thread(consumer.wait_until, predicate, WAIT_SECONDS), [
        (e.event.value, e.detail) for e in consumer.events
    ]


@pytest.mark.integration
async def test_cmd_pair_opens_a_window_that_times_out(
    mosquitto: MosquittoServer,
    consumer: AckingConsumer,
    tmp_path: Path,
    empty_radio: BleBackends,
    start: Callable[[GatewayRuntime], Running],
) -> None:
    runtime = await start(
        GatewayRuntime(settings_for(mosquitto, tmp_path), ble=empty_radio)
    ).ready()
    await asyncio.to_thread(runtime.publisher.wait_connected, WAIT_SECONDS)
    command = PairCommand(patient_id="p-0042", window_seconds=1, profile="roche_accu_chek_guide")
    await asyncio.to_thread(send_command, mosquitto, Command.PAIR, encode_message(command))
    await wait_for(consumer, lambda c: bool(events_of(c, EventType.PAIRING_WINDOW_CLOSED)))
    [opened] = events_of(consumer, EventType.PAIRING_WINDOW_OPENED)
    [closed] = events_of(consumer, EventType.PAIRING_WINDOW_CLOSED)
    assert opened.detail == {"window_seconds": 1, "profile": "roche_accu_chek_guide"}
    assert closed.detail == {"reason": "timeout", "paired": 0}
    assert (closed.at - opened.at).total_seconds() >= 1.0
    assert runtime.window.current() is None
    assert runtime.sessions == {}


@pytest.mark.integration
async def test_an_invalid_command_is_ignored(
    mosquitto: MosquittoServer,
    consumer: AckingConsumer,
    tmp_path: Path,
    empty_radio: BleBackends,
    start: Callable[[GatewayRuntime], Running],
) -> None:
    runtime = await start(
        GatewayRuntime(settings_for(mosquitto, tmp_path), ble=empty_radio)
    ).ready()
    await asyncio.to_thread(runtime.publisher.wait_connected, WAIT_SECONDS)
    await asyncio.to_thread(
        send_command,
        mosquitto,
        Command.PAIR,
        b'{"v": 1, "patient_id": "p 1", "window_seconds": 9999}',
    )
    valid = PairCommand(patient_id="p-1", window_seconds=1)
    await asyncio.to_thread(send_command, mosquitto, Command.PAIR, encode_message(valid))
    await wait_for(consumer, lambda c: bool(events_of(c, EventType.PAIRING_WINDOW_CLOSED)))
    assert len(events_of(consumer, EventType.PAIRING_WINDOW_OPENED)) == 1


@pytest.mark.integration
async def test_cmd_pair_binds_a_device_heard_in_the_window_and_cmd_unpair_forgets_it(
    mosquitto: MosquittoServer,
    consumer: AckingConsumer,
    tmp_path: Path,
    start: Callable[[GatewayRuntime], Running],
) -> None:
    meter = find_profile("roche_accu_chek_guide")
    scenario = Scenario.from_dict(
        {"records": [{"at_offset_seconds": -600, "values": {"glucose": 5.6}}]}
    )
    async with SimulatedHome([meter], scenarios={meter.profile_id: scenario}) as home:
        backends = BleBackends(client=home.client_backend, scanner=home.scanner_backend)
        runtime = await start(
            GatewayRuntime(settings_for(mosquitto, tmp_path), ble=backends)
        ).ready()
        await asyncio.to_thread(runtime.publisher.wait_connected, WAIT_SECONDS)
        assert runtime.sessions == {}
        command = PairCommand(patient_id="p-0042", window_seconds=3)
        await asyncio.to_thread(send_command, mosquitto, Command.PAIR, encode_message(command))
        await wait_for(consumer, lambda c: bool(events_of(c, EventType.PAIRED)))
        [paired] = events_of(consumer, EventType.PAIRED)
        device_id = home.devices[meter.profile_id].info.device_id
        assert paired.device_id == device_id
        assert paired.detail["patient_id"] == "p-0042"
        assert runtime.pairings.get(device_id) is not None
        await wait_for(consumer, lambda c: len(c.received_ids()) == 1)
        unpair = UnpairCommand(device_id=device_id)
        await asyncio.to_thread(send_command, mosquitto, Command.UNPAIR, encode_message(unpair))
        await wait_for(consumer, lambda c: bool(events_of(c, EventType.UNPAIRED)))
        assert runtime.pairings.get(device_id) is None
        assert device_id not in runtime.sessions
        await wait_for(consumer, lambda c: bool(events_of(c, EventType.PAIRING_WINDOW_CLOSED)))
        [closed] = events_of(consumer, EventType.PAIRING_WINDOW_CLOSED)
        assert closed.detail == {"reason": "timeout", "paired": 1}


@pytest.mark.integration
async def test_a_pairing_made_outside_the_process_is_served_and_announced(
    mosquitto: MosquittoServer,
    consumer: AckingConsumer,
    tmp_path: Path,
    start: Callable[[GatewayRuntime], Running],
) -> None:
    meter = find_profile("roche_accu_chek_guide")
    async with SimulatedHome([meter], scenarios={meter.profile_id: Scenario()}) as home:
        backends = BleBackends(client=home.client_backend, scanner=home.scanner_backend)
        settings = settings_for(mosquitto, tmp_path)
        runtime = await start(GatewayRuntime(settings, ble=backends)).ready()
        simulated = home.devices[meter.profile_id]
        with PairingStore(settings.pairings_path, clock=lambda: datetime.now(UTC)) as cli_store:
            cli_store.bind(
                simulated.info,
                patient_id="p-0007",
                profile_id=meter.profile_id,
                address=simulated.address,
                time_zone="Asia/Shanghai",
            )
        await wait_for(consumer, lambda c: bool(events_of(c, EventType.PAIRED)))

        def connected(c: AckingConsumer) -> bool:
            return any(
                d.device_id == simulated.info.device_id and d.state == "connected"
                for status in c.statuses
                for d in status.devices
            )

        await wait_for(consumer, connected)
        assert set(runtime.sessions) == {simulated.info.device_id}


@pytest.mark.integration
async def test_systemd_hears_ready_watchdog_and_stopping(
    mosquitto: MosquittoServer, tmp_path: Path, start: Callable[[GatewayRuntime], Running]
) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.setblocking(False)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"})
        assert notifier.watchdog_seconds == 0.2
        running = start(GatewayRuntime(settings_for(mosquitto, tmp_path), notifier=notifier))
        await running.ready()
        await asyncio.sleep(0.5)
        await running.stop()
        messages = []
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except BlockingIOError:
                break
    assert messages[0].startswith("READY=1")
    assert messages.count("WATCHDOG=1") >= 2
    assert messages[-1] == "STOPPING=1"


def test_systemd_notifier_is_silent_outside_systemd() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.watchdog_seconds is None
    assert not notifier.notify("READY=1")


def test_watchdog_for_another_process_is_ignored() -> None:
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": "@vg", "WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "1"}
    )
    assert notifier.enabled
    assert notifier.watchdog_seconds is None


@pytest.mark.integration
def test_python_m_gateway_serves_and_stops_cleanly_on_sigterm(
    mosquitto: MosquittoServer, consumer: AckingConsumer, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'gateway_id = "{GATEWAY_ID}"\ndata_dir = "{tmp_path / "data"}"\ndemo = true\n'
        f'[mqtt]\nurl = "{mosquitto.url}"\n'
        "[devices]\nserial_presence_check_seconds = 0.1\n"
        '[[simulators]]\nprofile = "lifescan_onetouch_ultra2"\npatient_id = "p-subprocess"\n'
        "[simulators.scenario]\n"
        "records = [{ at_offset_seconds = -60, values = { glucose = 5.5 } }]\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert consumer.wait_until(lambda c: len(c.acked_ids()) == 1, WAIT_SECONDS), consumer.errors
    finally:
        process.send_signal(signal.SIGTERM)
        _, logs = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, logs[-3000:]
    assert consumer.wait_until(
        lambda c: any(s.state.value == "offline" for s in c.statuses + c.retained_statuses),
        WAIT_SECONDS,
    )
    lines = [json.loads(line) for line in logs.splitlines()]
    assert {"gateway running", "readings stored", "gateway stopped"} <= {
        line["message"] for line in lines
    }
    assert "p-subprocess" not in logs  # no patient ids (nor values) in the logs


def test_python_m_gateway_names_a_bad_setting(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('gateway_id = "gw"\ndata_dir = "/tmp"\n[mqtt]\nurl = "http://x"\n')
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert result.returncode == 2
    assert f"{config}: mqtt.url: 'http://x' must start with mqtt:// or mqtts://" in result.stderr


@pytest.mark.integration
async def test_cmd_sync_time_contacts_every_device_now(
    mosquitto: MosquittoServer, tmp_path: Path, start: Callable[[GatewayRuntime], Running]
) -> None:
    settings = settings_for(mosquitto, tmp_path).model_copy(
        update={
            "simulators": (
                SimulatedDevice(profile="lifescan_onetouch_ultra2", patient_id="p-0001"),
            )
        }
    )
    runtime = await start(GatewayRuntime(settings)).ready()
    await asyncio.to_thread(runtime.publisher.wait_connected, WAIT_SECONDS)
    [session] = runtime.sessions.values()
    async with asyncio.timeout(WAIT_SECONDS):
        while session.counters.contacts < 1 or session.state is not SessionState.WAITING:  # noqa: ASYNC110 - the session's own progress
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert session.counters.contacts == 1  # the next download is 15 minutes away
    await asyncio.to_thread(
        send_command, mosquitto, Command.SYNC_TIME, encode_message(SyncTimeCommand())
    )
    async with asyncio.timeout(WAIT_SECONDS):
        while session.counters.contacts < 2:  # noqa: ASYNC110 - the session's own progress
            await asyncio.sleep(0.05)


def _outbox_readings(settings: GatewaySettings) -> list[Reading]:
    """What the gateway stored, straight from its outbox (nobody acknowledged it)."""
    with contextlib.closing(sqlite3.connect(settings.outbox_path)) as db:
        encoded = [row[0] for row in db.execute("SELECT encoded FROM outbox ORDER BY rowid")]
    if not encoded:
        return []
    envelope = encode_envelope_from_encoded(GATEWAY_ID, datetime.now(UTC), encoded)
    return list(decode_envelope(envelope).readings)


UTC_CLOCK_IN_SHANGHAI_SECONDS = -8 * 3600
"""A meter set to UTC (the factory's, or the host's in a lab) for a patient in Shanghai."""


@pytest.mark.integration
async def test_a_meter_whose_clock_keeps_utc_for_a_patient_in_shanghai_is_corrected(
    mosquitto: MosquittoServer,
    consumer: AckingConsumer,
    tmp_path: Path,
    start: Callable[[GatewayRuntime], Running],
) -> None:
    taken_seconds_ago = 60.0
    scenario = {
        "clock_skew_seconds": UTC_CLOCK_IN_SHANGHAI_SECONDS,
        "records": [{"at_offset_seconds": -taken_seconds_ago, "values": {"glucose": 6.2}}],
    }
    meters = ("roche_accu_chek_guide", "lifescan_onetouch_ultra2")  # clock settable / not
    settings = settings_for(mosquitto, tmp_path).model_copy(
        update={
            "clock": ClockSettings(time_zone="Asia/Shanghai"),
            "simulators": tuple(
                SimulatedDevice(profile=profile, patient_id="p-0008", scenario=scenario)
                for profile in meters
            ),
        }
    )
    consumer.pause_acks()  # the readings stay in the outbox, to be read back
    started = datetime.now(UTC)
    runtime = await start(GatewayRuntime(settings)).ready()
    await wait_for(consumer, lambda c: len(events_of(c, EventType.CLOCK_CORRECTED)) == len(meters))
    readings = {reading.device_id: reading for reading in _outbox_readings(settings)}
    assert set(readings) == set(runtime.sessions)
    for reading in readings.values():
        taken = started - timedelta(seconds=taken_seconds_ago)
        assert abs((reading.measured_at - taken).total_seconds()) < 10, reading.device_id
        assert "clock_corrected" in reading.flags
        assert reading.device_time is not None
        # The meter's own stamp is kept raw: 8 hours behind the patient's wall clock.
        shanghai = reading.measured_at.astimezone(ZoneInfo("Asia/Shanghai"))
        raw_offset = reading.device_time - shanghai.replace(tzinfo=None)
        assert abs(raw_offset.total_seconds() - UTC_CLOCK_IN_SHANGHAI_SECONDS) < 2
    offsets = [e.detail["offset_seconds"] for e in events_of(consumer, EventType.CLOCK_CORRECTED)]
    assert all(abs(float(offset) - UTC_CLOCK_IN_SHANGHAI_SECONDS) < 2 for offset in offsets)
    # The meter that allows it gets its clock set, so later records need no correction.
    [clock_set] = events_of(consumer, EventType.CLOCK_SET)
    assert clock_set.device_id is not None
    assert clock_set.device_id.startswith("Roche-")
