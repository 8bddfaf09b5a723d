"""The publisher's pure parts: reconnect backoff, batch building, status and quota events."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.outbox import OutboxStats, SqliteOutbox
from gateway.publisher import (
    BrokerSettings,
    LinkState,
    Publisher,
    PublisherSettings,
    QuotaWatch,
    TlsSettings,
    build_envelope,
    build_status,
    next_reconnect_delay,
    offline_status,
    quota_events,
    readings_budget,
)
from readings.codec import (
    MAX_PAYLOAD_BYTES,
    AckMessage,
    DeviceStatus,
    EventType,
    GatewayState,
    StatusMessage,
    decode_envelope,
    decode_message,
    encode_message,
)
from readings.model import GlucoseValues, Reading, new_reading
from readings.topics import ack_topic, readings_topic, status_topic
from readings.units import Unit
from tests.infra.fake_mqtt import FakeBroker, FakeClient, Published
from tests.tools.synthetic import SyntheticBurst, SyntheticKind, run_burst, synthetic_ids

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class ExtremeJitter:
    """Always draws the low (or the high) end of the range."""

    def __init__(self, *, high: bool) -> None:
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize(
    ("attempt", "shortest", "longest"),
    [
        (1, 1.0, 1.0),  # never sooner than the minimum, even the first time
        (2, 1.0, 2.0),
        (3, 2.0, 4.0),
        (4, 4.0, 8.0),
        (6, 16.0, 32.0),
        (7, 30.0, 60.0),  # the ceiling stops at the maximum
        (50, 30.0, 60.0),
        (10_000, 30.0, 60.0),
    ],
)
def test_reconnect_delay_table(attempt: int, shortest: float, longest: float) -> None:
    low = next_reconnect_delay(attempt, ExtremeJitter(high=False), min_seconds=1, max_seconds=60)
    high = next_reconnect_delay(attempt, ExtremeJitter(high=True), min_seconds=1, max_seconds=60)
    assert (low, high) == (shortest, longest)


def test_reconnect_delay_never_leaves_its_bounds() -> None:
    rng = random.Random(1)
    delays = [
        next_reconnect_delay(attempt, rng, min_seconds=0.5, max_seconds=20)
        for attempt in range(1, 200)
    ]
    assert min(delays) >= 0.5
    assert max(delays) <= 20
    assert len(set(delays)) > 100  # jittered: gateways do not reconnect in lockstep


def test_reconnect_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        next_reconnect_delay(0, random.Random(1))


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[SqliteOutbox]:
    box = SqliteOutbox(tmp_path / "outbox.db", quota_bytes=10**9, clock=lambda: NOW)
    yield box
    box.close()


@pytest.mark.parametrize(
    ("max_readings", "max_bytes"),
    [(500, MAX_PAYLOAD_BYTES), (1000, MAX_PAYLOAD_BYTES), (1000, 20_000), (7, 4096)],
)
def test_batches_make_envelopes_within_the_contract_limits(
    outbox: SqliteOutbox, max_readings: int, max_bytes: int
) -> None:
    burst = SyntheticBurst(count=2500, gateway_id="gw-1", batch_size=500)
    run_burst(burst, outbox, clock=lambda: NOW)
    budget = readings_budget("gw-1", max_readings, max_bytes)
    seen: list[str] = []

    while (batch := outbox.begin_batch(budget.max_count, budget.max_bytes)) is not None:
        payload = build_envelope("gw-1", batch, NOW)
        envelope = decode_envelope(payload)
        assert len(payload) <= max_bytes
        assert len(batch) <= max_readings
        assert [reading.id for reading in envelope.readings] == list(batch.reading_ids)
        seen.extend(batch.reading_ids)
        outbox.mark_sent(batch)

    assert len(seen) == 2500
    assert set(seen) == synthetic_ids(burst)


def test_a_full_batch_is_close_to_the_byte_limit(outbox: SqliteOutbox) -> None:
    run_burst(SyntheticBurst(count=400, gateway_id="gw-1"), outbox, clock=lambda: NOW)
    budget = readings_budget("gw-1", 1000, 20_000)

    batch = outbox.begin_batch(budget.max_count, budget.max_bytes)

    assert batch is not None
    size = len(build_envelope("gw-1", batch, NOW))
    one_more = size + 1 + len(batch.encoded[0])
    assert size <= 20_000 < one_more


def _stats(**overrides: object) -> OutboxStats:
    values: dict[str, object] = {
        "depth": 10,
        "oldest_created_at": NOW - timedelta(seconds=90),
        "used_bytes": 50_000,
        "quota_bytes": 100_000,
        "ceiling_bytes": 150_000,
        "over_quota": False,
        "full": False,
        "refused_low_value": 0,
        "refused_clinical": 0,
    }
    values.update(overrides)
    return OutboxStats(**values)  # type: ignore[arg-type]


def test_status_reports_the_outbox_and_the_devices() -> None:
    device = DeviceStatus(
        device_id="Roche-Accu_Chek_Guide-92310000123",
        state="idle",
        last_contact=NOW - timedelta(minutes=5),
        battery_percent=40,
    )

    status = build_status("gw-1", _stats(over_quota=True), [device], NOW, "1.2.3")

    assert status.state is GatewayState.ONLINE
    assert status.queue_depth == 10
    assert status.oldest_unacked_age_seconds == 90.0
    assert (status.outbox_bytes, status.outbox_quota_bytes) == (50_000, 100_000)
    assert status.over_quota
    assert status.devices == [device]
    assert status.software_version == "1.2.3"


def test_status_of_an_empty_outbox_has_no_oldest_age() -> None:
    status = build_status("gw-1", _stats(depth=0, oldest_created_at=None), [], NOW, None)
    assert status.oldest_unacked_age_seconds is None


def test_offline_status_is_the_will() -> None:
    will = offline_status("gw-1", NOW, None)
    assert will.state is GatewayState.OFFLINE
    assert will.queue_depth is None


@pytest.mark.parametrize(
    ("watch", "stats", "expected"),
    [
        (QuotaWatch(), _stats(), []),
        (QuotaWatch(), _stats(over_quota=True), [(EventType.OUTBOX_OVER_QUOTA, "quota")]),
        (
            QuotaWatch(),
            _stats(over_quota=True, full=True, refused_clinical=3),
            [(EventType.OUTBOX_OVER_QUOTA, "quota"), (EventType.OUTBOX_OVER_QUOTA, "ceiling")],
        ),
        (
            QuotaWatch(over_quota=True),
            _stats(over_quota=True, refused_clinical=1),
            [(EventType.OUTBOX_OVER_QUOTA, "ceiling")],
        ),
        # a real disk full below the ceiling refuses clinical readings too
        (QuotaWatch(), _stats(refused_clinical=2), [(EventType.OUTBOX_OVER_QUOTA, "ceiling")]),
        (
            QuotaWatch(over_quota=True, refusing_clinical=True, refused_clinical=3),
            _stats(over_quota=True, full=True, refused_clinical=9),
            [],
        ),
        (QuotaWatch(over_quota=True), _stats(), [(EventType.OUTBOX_BELOW_QUOTA, None)]),
    ],
)
def test_quota_transitions_become_events(
    watch: QuotaWatch, stats: OutboxStats, expected: list[tuple[EventType, str | None]]
) -> None:
    _new_watch, events = quota_events(watch, stats, "gw-1", NOW)

    assert [(event.event, event.detail.get("level")) for event in events] == expected
    for event in events:
        assert event.detail["refused_clinical"] == stats.refused_clinical
        assert event.detail["quota_bytes"] == stats.quota_bytes


def test_a_refusal_episode_raises_one_event() -> None:
    watch = QuotaWatch(over_quota=True)
    watch, first = quota_events(watch, _stats(over_quota=True, refused_clinical=1), "gw-1", NOW)
    watch, same_episode = quota_events(
        watch, _stats(over_quota=True, refused_clinical=5), "gw-1", NOW
    )
    watch, calm = quota_events(watch, _stats(over_quota=True, refused_clinical=5), "gw-1", NOW)
    _watch, next_episode = quota_events(
        watch, _stats(over_quota=True, refused_clinical=6), "gw-1", NOW
    )

    assert [len(first), len(same_episode), len(calm), len(next_episode)] == [1, 0, 0, 1]


def test_low_value_stream_is_refused_over_quota_and_counted_in_events(tmp_path: Path) -> None:
    with SqliteOutbox(tmp_path / "q.db", quota_bytes=64 * 1024, clock=lambda: NOW) as outbox:
        burst = SyntheticBurst(count=2000, gateway_id="gw-1", kind=SyntheticKind.HEART_RATE)
        run_burst(burst, outbox, clock=lambda: NOW)
        stats = outbox.stats()

    _watch, events = quota_events(QuotaWatch(), stats, "gw-1", NOW)

    assert stats.over_quota
    assert stats.refused_low_value > 0
    assert stats.depth + stats.refused_low_value == 2000
    assert events[0].detail["refused_low_value"] == stats.refused_low_value


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: BrokerSettings(host="", port=1883), "broker.host"),
        (lambda: BrokerSettings(host="h", port=0), "broker.port"),
        (lambda: BrokerSettings(host="h", port=1, password="x"), "broker.password"),
        (lambda: BrokerSettings(host="h", port=1, keepalive_seconds=1), "broker.keepalive_seconds"),
        (lambda: TlsSettings(ca_file=Path("ca.pem"), cert_file=Path("c.pem")), "tls.key_file"),
        (lambda: PublisherSettings("gw-1", _broker(), window_batches=0), "window_batches"),
        (
            lambda: PublisherSettings("gw-1", _broker(), batch_max_readings=1001),
            "batch_max_readings",
        ),
        (lambda: PublisherSettings("gw-1", _broker(), batch_max_bytes=10**6), "batch_max_bytes"),
        (
            lambda: PublisherSettings(
                "gw-1", _broker(), reconnect_min_seconds=9, reconnect_max_seconds=2
            ),
            "reconnect_min_seconds",
        ),
    ],
)
def test_bad_settings_name_the_field(build: object, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build()  # type: ignore[operator]
    assert raised.value.field == field


def _broker() -> BrokerSettings:
    return BrokerSettings(host="127.0.0.1", port=1883)


def test_a_gateway_id_that_cannot_be_a_topic_level_is_refused() -> None:
    with pytest.raises(ConfigError, match="not allowed in a topic") as raised:
        PublisherSettings("gw/1", _broker())
    assert raised.value.field == "gateway_id"


# -- the publisher's loop against a fake client (tests/infra/fake_mqtt.py) ----------------

LOOP_TIMEOUT_SECONDS = 10.0
"""Bound on anything the fake-driven loop should do in milliseconds."""


def _readings(count: int, gateway_id: str = "gw-1") -> list[Reading]:
    start = NOW - timedelta(hours=2)
    return [
        new_reading(
            values=GlucoseValues(glucose=5.5),
            source_unit=Unit.MMOL_PER_L,
            measured_at=start + timedelta(minutes=seq),
            device_time=(start + timedelta(minutes=seq)).replace(tzinfo=None),
            received_at=NOW,
            device_id="acme-glucose-0001",
            patient_id="patient-1",
            gateway_id=gateway_id,
            seq=seq,
        )
        for seq in range(count)
    ]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LOOP_TIMEOUT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _acking_ingest(broker: FakeBroker, gateway_id: str = "gw-1") -> None:
    """Answer every readings envelope with an end-to-end ack of all its ids."""

    def answer(message: Published) -> None:
        if message.topic != readings_topic(gateway_id):
            return
        ids = [reading.id for reading in decode_envelope(message.payload).readings]
        ack = AckMessage(gateway_id=gateway_id, acked_at=NOW, ids=ids)
        broker.inject(ack_topic(gateway_id), encode_message(ack))

    broker.on_publish = answer


def _fast_settings(**overrides: Any) -> PublisherSettings:
    values: dict[str, Any] = {
        "batch_max_readings": 50,
        "reconnect_min_seconds": 0.01,
        "reconnect_max_seconds": 0.02,
    }
    values.update(overrides)
    return PublisherSettings("gw-1", _broker(), **values)


def test_the_loop_publishes_batches_and_deletes_them_on_the_end_to_end_ack(
    outbox: SqliteOutbox,
) -> None:
    outbox.add(_readings(120))
    broker = FakeBroker()
    _acking_ingest(broker)
    publisher = Publisher(
        _fast_settings(), outbox, clock=lambda: NOW, client_factory=broker.factory
    )
    publisher.start()
    try:
        _wait_for(lambda: outbox.stats().depth == 0, "the outbox to empty")
    finally:
        publisher.stop()

    published = [
        reading.id
        for message in broker.messages(readings_topic("gw-1"))
        for reading in decode_envelope(message.payload).readings
    ]
    assert sorted(published) == sorted(reading.id for reading in _readings(120))
    assert publisher.counters().readings_acknowledged == 120
    statuses = [
        decode_message(message.payload, StatusMessage)
        for message in broker.messages(status_topic("gw-1"))
    ]
    assert all(message.retain for message in broker.messages(status_topic("gw-1")))
    assert statuses[0].state is GatewayState.ONLINE
    assert statuses[-1].state is GatewayState.OFFLINE  # the clean stop's last word
    client = broker.clients[0]
    assert isinstance(client, FakeClient)
    assert client.will is not None
    assert decode_message(client.will.payload, StatusMessage).state is GatewayState.OFFLINE
    assert client.settings.persistent_session
    assert client.settings.client_id == "vitalgate-gw-gw-1"


def test_batches_in_flight_when_the_link_breaks_are_sent_again_with_the_same_ids(
    outbox: SqliteOutbox,
) -> None:
    outbox.add(_readings(30))
    broker = FakeBroker(auto_puback=False)  # nothing is acknowledged on the first link
    publisher = Publisher(
        _fast_settings(), outbox, clock=lambda: NOW, client_factory=broker.factory
    )
    publisher.start()
    try:
        _wait_for(lambda: bool(broker.messages(readings_topic("gw-1"))), "a first batch")
        first = decode_envelope(broker.messages(readings_topic("gw-1"))[0].payload)
        broker.auto_puback = True
        _acking_ingest(broker)
        broker.drop("vitalgate-gw-gw-1")
        _wait_for(lambda: outbox.stats().depth == 0, "the outbox to empty after reconnecting")
    finally:
        publisher.stop()

    envelopes = [
        decode_envelope(message.payload) for message in broker.messages(readings_topic("gw-1"))
    ]
    assert [reading.id for reading in envelopes[1].readings] == [
        reading.id for reading in first.readings
    ]
    assert publisher.counters().connects == 2
    assert publisher.counters().readings_published == 2 * len(first.readings)


def _link_file_state(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["state"])
    except FileNotFoundError:
        return None


def test_a_refused_connection_is_reported_in_the_link_status_until_it_succeeds(
    outbox: SqliteOutbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status_file = tmp_path / "broker-link.json"
    broker = FakeBroker(refuse_connects=2, refusal="Not authorized")
    refused: list[dict[str, Any]] = []
    connected = threading.Event()

    def watch(message: Published) -> None:
        if message.topic == status_topic("gw-1"):
            connected.set()

    broker.on_publish = watch
    publisher = Publisher(
        _fast_settings(
            link_status_path=status_file, reconnect_min_seconds=0.3, reconnect_max_seconds=0.6
        ),
        outbox,
        clock=lambda: NOW,
        client_factory=broker.factory,
    )
    with caplog.at_level(logging.WARNING, logger="gateway.publisher"):
        publisher.start()
        try:
            _wait_for(lambda: _link_file_state(status_file) == "disconnected", "the refusal")
            refused.append(json.loads(status_file.read_text()))
            link = publisher.link()
            assert connected.wait(LOOP_TIMEOUT_SECONDS)
            _wait_for(lambda: _link_file_state(status_file) == "connected", "the connection")
            assert publisher.link().state is LinkState.CONNECTED
            accepted = json.loads(status_file.read_text())
        finally:
            publisher.stop()

    assert link.reason == "broker refused the connection: Not authorized"
    assert "credentials" in link.advice
    assert refused[0]["state"] == "disconnected"
    assert refused[0]["reason"] == link.reason
    assert refused[0]["advice"] == link.advice
    assert accepted["state"] == "connected"
    assert accepted["reason"] is None
    assert json.loads(status_file.read_text())["state"] == "stopped"
    assert publisher.counters().connect_failures == 2
    logged = [record for record in caplog.records if record.msg == "cannot connect to the broker"]
    assert logged
    assert "Not authorized" in logged[0].__dict__["reason"]
    assert "credentials" in logged[0].__dict__["reason"]
