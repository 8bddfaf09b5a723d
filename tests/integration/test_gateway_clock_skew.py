"""Done when: a meter whose clock is 3 hours fast yields readings with a corrected
``measured_at``, the raw ``device_time`` and the ``clock_corrected`` flag — end to end.

A real gateway process runtime (configuration file, simulated meter started and paired by
it, device session, SQLite outbox, paho publisher) against a real Mosquitto, read back by
a consumer that acknowledges end to end like ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import FLAG_CLOCK_CORRECTED
from gateway.config import load_settings
from gateway.runtime import GatewayRuntime
from readings.codec import EventType, decode_envelope
from readings.model import Reading
from tests.gateway.consumer import AckingConsumer
from tests.harness.services import MosquittoServer

pytestmark = [pytest.mark.integration]

SHANGHAI = ZoneInfo("Asia/Shanghai")
SKEW = timedelta(hours=3)
WAIT_SECONDS = 30.0


class RecordingConsumer(AckingConsumer):
    """The acking consumer, keeping every reading it received."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, watch_status=True)
        self.readings: list[Reading] = []

    def _on_readings(self, payload: bytes) -> None:
        self.readings.extend(decode_envelope(payload).readings)
        super()._on_readings(payload)


@pytest.fixture
def consumer(mosquitto: MosquittoServer) -> Iterator[RecordingConsumer]:
    consumer = RecordingConsumer(mosquitto.host, mosquitto.port)
    consumer.start()
    yield consumer
    consumer.stop()


def write_config(tmp_path: Path, mosquitto: MosquittoServer, simulator: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
gateway_id = "gw-clock"
data_dir = "{tmp_path / "data"}"
demo = true

[mqtt]
url = "{mosquitto.url}"
status_interval_seconds = 1

[devices]
serial_presence_check_seconds = 0.1
ble_retry_seconds = 0.5

{simulator}
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
async def running(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    mosquitto: MosquittoServer,
    consumer: RecordingConsumer,
) -> AsyncIterator[GatewayRuntime]:
    # Depends on ``consumer`` so that it is subscribed before the gateway starts: events
    # (PAIRED, CLOCK_CORRECTED) are not retained, and one sent earlier would be missed.
    del consumer
    settings = load_settings(write_config(tmp_path, mosquitto, request.param))
    runtime = GatewayRuntime(settings)
    task = asyncio.create_task(runtime.run())
    async with asyncio.timeout(WAIT_SECONDS):
        await runtime.ready.wait()
    yield runtime
    runtime.stop()
    await asyncio.wait_for(task, WAIT_SECONDS)


ONETOUCH_THREE_HOURS_FAST = """
[[simulators]]
profile = "lifescan_onetouch_ultra2"
patient_id = "p-clock"
time_zone = "Asia/Shanghai"
[simulators.scenario]
clock_skew_seconds = 10800
records = [
    { at_offset_seconds = -3600, values = { glucose = 6.2 } },
    { at_offset_seconds = -1800, values = { glucose = 7.4 }, context = { meal = "postprandial" } },
]
"""

ACCU_CHEK_THREE_HOURS_FAST = """
[[simulators]]
profile = "roche_accu_chek_guide"
patient_id = "p-clock"
time_zone = "Asia/Shanghai"
[simulators.scenario]
clock_skew_seconds = 10800
records = [
    { at_offset_seconds = -3600, values = { glucose = 6.2 } },
    { at_offset_seconds = -1800, values = { glucose = 7.4 } },
]
"""


@pytest.mark.parametrize(
    ("running", "expected_clock_set"),
    [(ONETOUCH_THREE_HOURS_FAST, False), (ACCU_CHEK_THREE_HOURS_FAST, True)],
    ids=["serial_onetouch_time_keyed", "ble_glucose_sequence_keyed"],
    indirect=["running"],
)
async def test_meter_clock_three_hours_fast(
    running: GatewayRuntime, consumer: RecordingConsumer, expected_clock_set: bool
) -> None:
    started = datetime.now(UTC)
    await asyncio.to_thread(consumer.wait_until, lambda c: len(c.readings) >= 2, WAIT_SECONDS)
    readings = sorted(consumer.readings, key=lambda r: r.measured_at)
    assert len(readings) == 2, consumer.errors
    [device_id] = running.sessions
    for reading, offset in zip(readings, (-3600, -1800), strict=True):
        assert reading.device_id == device_id
        assert reading.patient_id == "p-clock"
        assert reading.gateway_id == "gw-clock"
        assert FLAG_CLOCK_CORRECTED in reading.flags
        assert reading.device_time is not None
        # device_time is the meter's raw (fast) wall clock; measured_at is the truth.
        corrected_local = reading.measured_at.astimezone(SHANGHAI).replace(tzinfo=None)
        assert abs(reading.device_time - SKEW - corrected_local) <= timedelta(seconds=2)
        expected = started + timedelta(seconds=offset)
        assert abs(reading.measured_at - expected) <= timedelta(seconds=WAIT_SECONDS)
    assert readings[1].context == {"meal": "postprandial"} or expected_clock_set

    def event_types(c: AckingConsumer) -> set[EventType]:
        return {event.event for event in c.events}

    wanted = {EventType.PAIRED, EventType.CLOCK_CORRECTED}
    if expected_clock_set:
        wanted.add(EventType.CLOCK_SET)
    assert await asyncio.to_thread(
        consumer.wait_until, lambda c: wanted <= event_types(c), WAIT_SECONDS
    ), event_types(consumer)
    [corrected] = [e for e in consumer.events if e.event is EventType.CLOCK_CORRECTED]
    assert corrected.device_id == device_id
    assert abs(int(corrected.detail["offset_seconds"]) - 10800) <= 2
    assert not any(isinstance(value, float) for e in consumer.events for value in e.detail.values())
    assert await asyncio.to_thread(consumer.wait_for_ids, {r.id for r in readings}, WAIT_SECONDS)
    # Acknowledged end to end: the outbox lets them go.
    outbox_path = running.settings.outbox_path

    def outbox_empty() -> bool:
        import sqlite3

        with sqlite3.connect(outbox_path) as db:
            return db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0

    async with asyncio.timeout(WAIT_SECONDS):
        while not await asyncio.to_thread(outbox_empty):  # noqa: ASYNC110 - another process's state
            await asyncio.sleep(0.1)
