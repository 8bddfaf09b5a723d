"""Delivery under faults (gateway killed, broker killed, disk full): nothing committed is lost.

Real Mosquitto from the harness, a real gateway process (``python -m tests.tools.drain``)
where the gateway itself is killed, and a test consumer that acknowledges end to end
like ingest. Reading ids are deterministic (:func:`tests.tools.synthetic.synthetic_ids`),
so every test compares the exact set of ids produced with the set that arrived.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.outbox import STATE_SENT, SqliteOutbox
from gateway.publisher import BrokerSettings, Publisher, PublisherSettings
from readings.codec import GatewayState
from tests.gateway.consumer import AckingConsumer
from tests.gateway.full_database import FullDatabase
from tests.harness.services import MosquittoServer
from tests.tools.synthetic import (
    SYNTHETIC_START,
    SyntheticBurst,
    run_burst,
    synthetic_ids,
    synthetic_reading,
)

pytestmark = [pytest.mark.integration, pytest.mark.fault]

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "gw-fault"
OUTAGE_SECONDS = 30.0
DRAIN_WAIT_SECONDS = 90.0
CONNECT_WAIT_SECONDS = 10.0
# Short timeouts so each scenario takes seconds; production defaults are minutes.
ACK_TIMEOUT_SECONDS = 4.0
RECONNECT_MAX_SECONDS = 2.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def running_publisher(outbox: SqliteOutbox, broker: MosquittoServer) -> Iterator[Publisher]:
    settings = PublisherSettings(
        gateway_id=GATEWAY,
        broker=BrokerSettings(host=broker.host, port=broker.port),
        reconnect_min_seconds=0.5,
        reconnect_max_seconds=RECONNECT_MAX_SECONDS,
    )
    publisher = Publisher(settings, outbox)
    publisher.start()
    try:
        yield publisher
    finally:
        publisher.stop()


def outbox_rows(path: Path) -> dict[str, str]:
    """reading id -> state, read through its own connection (as an operator would)."""
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT reading_id, state FROM outbox_rows").fetchall())


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return "\n".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def committed_seq(path: Path, device_id: str) -> int:
    """Records up to this sequence number were committed (the cursor says so)."""
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT last_seq FROM device_cursors WHERE device_id = ?", (device_id,)
        ).fetchone()
    return -1 if row is None else int(row[0])


@pytest.mark.slow
def test_broker_stopped_for_30_seconds_during_a_burst(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    consumer = AckingConsumer(mosquitto.host, mosquitto.port)
    consumer.start()
    outbox = SqliteOutbox(tmp_path / "outbox.db", quota_bytes=10**9, clock=utc_now)
    burst = SyntheticBurst(count=5000, gateway_id=GATEWAY, batch_size=50, rate_per_second=400)
    try:
        with running_publisher(outbox, mosquitto) as publisher:
            assert publisher.wait_connected(CONNECT_WAIT_SECONDS)
            source = threading.Thread(
                target=run_burst, args=(burst, outbox), kwargs={"clock": utc_now}
            )
            source.start()
            time.sleep(3.0)
            arrived_before = len(consumer.received_ids())
            mosquitto.stop()
            stopped = time.monotonic()
            time.sleep(OUTAGE_SECONDS)
            failures_during_outage = publisher.counters().connect_failures
            mosquitto.start()
            source.join()

            assert consumer.wait_for_ids(synthetic_ids(burst), DRAIN_WAIT_SECONDS)
            assert consumer.wait_until(lambda _c: outbox.stats().depth == 0, DRAIN_WAIT_SECONDS)
            counters = publisher.counters()
    finally:
        consumer.stop()
        outbox.close()

    assert consumer.received_ids() == synthetic_ids(burst)
    assert 0 < arrived_before < burst.count  # the outage really fell inside the burst
    assert counters.connects >= 2
    # backoff: reconnect attempts during the outage respect the minimum delay (no storm)
    assert 3 <= failures_during_outage <= OUTAGE_SECONDS / 0.5
    assert time.monotonic() - stopped > OUTAGE_SECONDS
    assert consumer.errors == []


def _drain_command(outbox: Path, broker: MosquittoServer, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tests.tools.drain",
        "--outbox",
        str(outbox),
        "--gateway-id",
        GATEWAY,
        "--host",
        broker.host,
        "--port",
        str(broker.port),
        "--synthetic-count",
        "10000",
        "--synthetic-rate",
        "1000",
        "--ack-timeout",
        str(ACK_TIMEOUT_SECONDS),
        "--reconnect-min",
        "0.2",
        "--reconnect-max",
        "1",
        "--log-level",
        "WARNING",
        *extra,
    ]


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with log.open("ab") as stderr:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stderr=stderr
        )


def test_gateway_sigkilled_three_times_during_a_burst(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    burst = SyntheticBurst(count=10_000, gateway_id=GATEWAY)
    ids_by_seq = [synthetic_reading(burst, seq, SYNTHETIC_START).id for seq in range(burst.count)]
    all_ids = set(ids_by_seq)
    outbox = tmp_path / "outbox.db"
    log = tmp_path / "drain.log"
    consumer = AckingConsumer(mosquitto.host, mosquitto.port, watch_status=True)
    consumer.start()
    kills: list[dict[str, float | int]] = []
    try:
        for _ in range(3):
            seen_statuses = len(consumer.statuses)
            process = _spawn(_drain_command(outbox, mosquitto), log)
            try:
                assert consumer.wait_until(
                    lambda c, n=seen_statuses: any(
                        s.state is GatewayState.ONLINE for s in c.statuses[n:]
                    ),
                    CONNECT_WAIT_SECONDS,
                ), f"seed {seed}: the gateway did not come online"
                moment = rng.uniform(0.0, 2.5)
                time.sleep(moment)
            finally:
                process.kill()
                process.wait()
            # the broker publishes the will at once: the clinic sees the gateway offline
            assert consumer.wait_until(
                lambda c: c.statuses[-1].state is GatewayState.OFFLINE, CONNECT_WAIT_SECONDS
            ), f"seed {seed}: no will after the kill"

            assert integrity(outbox) == "ok", f"seed {seed}"
            last = committed_seq(outbox, burst.device_id)
            committed = set(ids_by_seq[: last + 1])
            in_outbox = set(outbox_rows(outbox))
            deleted = committed - in_outbox
            # nothing was deleted without an end-to-end acknowledgement
            assert deleted <= consumer.acked_ids(), f"seed {seed}"
            kills.append(
                {"after_seconds": moment, "committed": last + 1, "in_outbox": len(in_outbox)}
            )

        finisher = _spawn(_drain_command(outbox, mosquitto, "--exit-when-drained"), log)
        try:
            code = finisher.wait(DRAIN_WAIT_SECONDS)
        finally:
            finisher.kill()
            finisher.wait()
        assert code == 0, f"seed {seed}: drain exited {code}\n{log.read_text()[-3000:]}"
        assert consumer.wait_for_ids(all_ids, DRAIN_WAIT_SECONDS), f"seed {seed}"
    finally:
        consumer.stop()

    assert consumer.received_ids() == all_ids, f"seed {seed}, kills {kills}"
    assert outbox_rows(outbox) == {}
    assert integrity(outbox) == "ok"
    # the kills fell inside the burst, not after it
    assert any(int(k["committed"]) < burst.count for k in kills), f"seed {seed}, kills {kills}"
    assert consumer.errors == []


def test_broker_sigkilled_after_puback_before_delivery(
    mosquitto: MosquittoServer, tmp_path: Path
) -> None:
    # The consumer's session exists but it is away: the broker PUBACKs and queues the
    # readings for it, in memory only (Mosquitto persists by snapshot; see docs/gateway.md).
    consumer = AckingConsumer(mosquitto.host, mosquitto.port, client_id="vg-test-ingest-r2")
    consumer.start()
    consumer.stop()
    path = tmp_path / "outbox.db"
    outbox = SqliteOutbox(
        path, quota_bytes=10**9, clock=utc_now, ack_timeout_seconds=ACK_TIMEOUT_SECONDS
    )
    burst = SyntheticBurst(count=1000, gateway_id=GATEWAY)
    run_burst(burst, outbox, clock=utc_now)
    try:
        with running_publisher(outbox, mosquitto) as publisher:
            assert consumer.wait_until(
                lambda _c: publisher.counters().readings_marked_sent == burst.count,
                CONNECT_WAIT_SECONDS,
            )
            assert set(outbox_rows(path).values()) == {STATE_SENT}

            mosquitto.kill()
            mosquitto.start()
            consumer.start()
            # Control: the PUBACKed readings died with the broker. A gateway that deleted
            # rows on PUBACK would have lost all 1000 now.
            time.sleep(0.5)
            assert consumer.received_count() == 0

            # After the ack timeout the gateway publishes them again, with the same ids.
            assert consumer.wait_for_ids(synthetic_ids(burst), DRAIN_WAIT_SECONDS)
            assert consumer.wait_until(lambda _c: outbox.stats().depth == 0, DRAIN_WAIT_SECONDS)
            counters = publisher.counters()
    finally:
        consumer.stop()
        outbox.close()

    assert consumer.received_ids() == synthetic_ids(burst)
    assert counters.readings_republished >= burst.count
    assert consumer.errors == []


FULL_DISK_SECONDS = 2.0
FSYNC_FULL = 2
"""``PRAGMA synchronous`` value of FULL."""


def test_a_disk_too_full_to_record_pubacks_still_drains(
    mosquitto: MosquittoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The consumer's session exists but it is away at first, so while the disk is full
    # the gateway's only writes are PUBACK records, refused by SQLite itself (SQLITE_FULL).
    consumer = AckingConsumer(mosquitto.host, mosquitto.port, client_id="vg-test-ingest-full")
    consumer.start()
    consumer.stop()
    outbox = SqliteOutbox(tmp_path / "outbox.db", quota_bytes=10**9, clock=utc_now)
    burst = SyntheticBurst(count=3000, gateway_id=GATEWAY)
    run_burst(burst, outbox, clock=utc_now)
    full = FullDatabase(outbox)
    full.fill()
    settings = PublisherSettings(
        gateway_id=GATEWAY, broker=BrokerSettings(host=mosquitto.host, port=mosquitto.port)
    )
    publisher = Publisher(settings, outbox)
    caplog.set_level(logging.ERROR, logger="gateway.publisher")
    publisher.start()
    try:
        assert consumer.wait_until(
            lambda _c: any(
                record.getMessage() == "cannot record PUBACKs; retrying"
                for record in caplog.records
            ),
            CONNECT_WAIT_SECONDS,
        )
        # After a failed bookkeeping write, readings and cursors must still be fsynced.
        synchronous_while_full = full.synchronous()
        # Ingest comes back while the disk is still full: its acks free space.
        consumer.start()
        time.sleep(FULL_DISK_SECONDS)
        full.release()
        assert consumer.wait_for_ids(synthetic_ids(burst), DRAIN_WAIT_SECONDS)
        assert consumer.wait_until(lambda _c: outbox.stats().depth == 0, DRAIN_WAIT_SECONDS)
        counters = publisher.counters()
    finally:
        publisher.stop()
        consumer.stop()
        outbox.close()

    assert synchronous_while_full == FSYNC_FULL
    assert counters.connects == 1  # no reconnect storm over a bookkeeping failure
    assert counters.readings_republished == 0  # and nothing was published twice
    assert consumer.received_count() == burst.count
