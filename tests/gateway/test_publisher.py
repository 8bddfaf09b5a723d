"""The publisher's pure parts: reconnect backoff, batch building, status and quota events."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.outbox import OutboxStats, SqliteOutbox
from gateway.publisher import (
    BrokerSettings,
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
    DeviceStatus,
    EventType,
    GatewayState,
    decode_envelope,
)
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
