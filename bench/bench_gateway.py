"""Gateway benchmark: outbox drain rate against the broker's raw capacity, memory, start-up.

Run from the repository root::

    python bench/bench_gateway.py                   # 200,000-reading backlog, 1,000,000 for memory
    python bench/bench_gateway.py --backlog 50000 --memory-backlog 200000 --runs 1   # quicker

It starts its own Mosquitto (the test harness's ``MosquittoServer``, on a free loopback
port, ``max_queued_messages`` raised) and measures, in one run:

1. **Raw capacity.** The gateway's own envelopes (same batches, same bytes) written one
   per line to a file, published with ``mosquitto_pub -q 1 -l`` and received by
   ``mosquitto_sub -q 1 -C <messages>``: readings/s and payload bytes/s from the start of
   ``mosquitto_pub`` until ``mosquitto_sub`` has every message.
2. **Gateway drain into the broker.** ``python -m tests.tools.drain`` on a copy of the same
   backlog, received by the same ``mosquitto_sub``: from the gateway's CONNACK (its
   ``connected to the broker`` log line) until ``mosquitto_sub`` has every message.
   The ratio to (1) is the figure of merit (aim ≥ 0.5).
3. **End to end.** The same drain with a consumer that acknowledges every envelope on
   ``gw/{id}/ack`` (ids only, no validation) until the outbox is empty and the gateway
   exits; peak resident memory (VmHWM) of the gateway process. Done for the backlog and
   for the memory backlog (aim ≤ 60 MB, flat in the backlog size).
4. **Start-up.** Process spawn to CONNACK with an empty outbox and with each backlog
   (``integrity_check`` reads the whole file, so it grows with the backlog).

Prints one JSON document with every measurement (medians of ``--runs`` for 1-2; the
ratio is the median of the ratios of paired repetitions).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import paho.mqtt  # noqa: E402

from gateway.outbox import SqliteOutbox  # noqa: E402
from gateway.publisher import (  # noqa: E402
    DEFAULT_BATCH_MAX_READINGS,
    DEFAULT_WINDOW_BATCHES,
    build_envelope,
    readings_budget,
)
from readings.codec import MAX_PAYLOAD_BYTES  # noqa: E402
from readings.topics import readings_topic  # noqa: E402
from tests.gateway.consumer import AckingConsumer  # noqa: E402
from tests.harness.services import MosquittoServer  # noqa: E402
from tests.tools.synthetic import SyntheticBurst, run_burst  # noqa: E402

GATEWAY = "gw-bench"
FILL_BATCH = 1000
SUBSCRIBER_READY_SECONDS = 0.5
RSS_POLL_SECONDS = 0.02
RUN_TIMEOUT_SECONDS = 900.0
QUOTA_BYTES = 4 * 1024**3


def utc_now() -> datetime:
    return datetime.now(UTC)


def fill_backlog(path: Path, count: int) -> float:
    """A backlog of ``count`` glucose readings committed as a device session would."""
    started = time.perf_counter()
    with SqliteOutbox(path, quota_bytes=10**12, clock=utc_now) as outbox:
        run_burst(
            SyntheticBurst(count=count, gateway_id=GATEWAY, batch_size=FILL_BATCH),
            outbox,
            clock=utc_now,
        )
    return time.perf_counter() - started


def envelopes_of(backlog: Path, workdir: Path) -> tuple[Path, int, int]:
    """The gateway's envelopes for this backlog, one per line: (file, messages, bytes)."""
    copy = workdir / "envelopes.db"
    shutil.copy(backlog, copy)
    budget = readings_budget(GATEWAY, DEFAULT_BATCH_MAX_READINGS, MAX_PAYLOAD_BYTES)
    lines = workdir / "envelopes.jsonl"
    messages = total = 0
    with SqliteOutbox(copy, quota_bytes=10**12, clock=utc_now) as outbox, lines.open("wb") as out:
        while (batch := outbox.begin_batch(budget.max_count, budget.max_bytes)) is not None:
            payload = build_envelope(GATEWAY, batch, utc_now())
            out.write(payload + b"\n")
            messages += 1
            total += len(payload)
            outbox.mark_sent(batch)
    copy.unlink()
    return lines, messages, total


def start_subscriber(broker: MosquittoServer, messages: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            readings_topic(GATEWAY),
            "-q",
            "1",
            "-C",
            str(messages),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(SUBSCRIBER_READY_SECONDS)
    return process


def raw_capacity(broker: MosquittoServer, lines: Path, messages: int) -> float:
    """Seconds for mosquitto_pub → broker → mosquitto_sub to carry every envelope."""
    subscriber = start_subscriber(broker, messages)
    started = time.perf_counter()
    with lines.open("rb") as source:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                broker.host,
                "-p",
                str(broker.port),
                "-t",
                readings_topic(GATEWAY),
                "-q",
                "1",
                "-l",
            ],
            stdin=source,
            check=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
    subscriber.wait(RUN_TIMEOUT_SECONDS)
    return time.perf_counter() - started


def drain_command(outbox: Path, broker: MosquittoServer, *extra: str) -> list[str]:
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
        "--ack-timeout",
        "3600",
        # room for the largest backlog: the drain is measured, not the quota policy
        "--quota-bytes",
        str(QUOTA_BYTES),
        *extra,
    ]


class GatewayProcess:
    """A ``python -m tests.tools.drain`` process; records its log and peak memory."""

    def __init__(self, command: Sequence[str], log: Path) -> None:
        self.log = log
        self.spawned_wall = time.time()
        self.spawned = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(list(command), cwd=REPO_ROOT, env=env, stderr=stderr)
        self.peak_rss_kib = 0
        self._watch = threading.Thread(target=self._watch_memory, daemon=True)
        self._watch.start()

    def _watch_memory(self) -> None:
        status = Path(f"/proc/{self.process.pid}/status")
        while self.process.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(RSS_POLL_SECONDS)

    def log_event(self, message: str) -> dict[str, Any]:
        for line in self.log.read_text().splitlines():
            record = json.loads(line)
            if record.get("message") == message:
                return dict(record)
        raise LookupError(f"no {message!r} in {self.log}")

    def connected_after(self) -> float:
        """Seconds from spawn to the gateway's CONNACK."""
        record = self.log_event("connected to the broker")
        return datetime.fromisoformat(record["ts"]).timestamp() - self.spawned_wall

    def wait_connected(self, timeout_seconds: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout_seconds
        while time.perf_counter() < deadline:
            try:
                self.log_event("connected to the broker")
                return
            except (LookupError, json.JSONDecodeError):
                time.sleep(0.01)
        raise TimeoutError("the gateway did not connect")

    def wait(self, timeout_seconds: float) -> int:
        code = self.process.wait(timeout_seconds)
        self._watch.join()
        return code

    def stop(self) -> None:
        self.process.terminate()
        self.wait(60)


def gateway_into_broker(
    broker: MosquittoServer, backlog: Path, workdir: Path, messages: int
) -> dict[str, float]:
    """Seconds from CONNACK until mosquitto_sub has every envelope, and the start-up."""
    copy = workdir / "drain.db"
    shutil.copy(backlog, copy)
    subscriber = start_subscriber(broker, messages)
    gateway = GatewayProcess(drain_command(copy, broker), workdir / "drain.log")
    subscriber.wait(RUN_TIMEOUT_SECONDS)
    done_wall = time.time()
    gateway.stop()
    connected = gateway.connected_after()
    copy.unlink()
    return {
        "seconds_from_connack": done_wall - gateway.spawned_wall - connected,
        "startup_seconds": connected,
    }


def end_to_end(broker: MosquittoServer, backlog: Path, workdir: Path, count: int) -> dict[str, Any]:
    """Drain with end-to-end acks until the outbox is empty; peak memory of the gateway."""
    copy = workdir / "e2e.db"
    shutil.copy(backlog, copy)
    consumer = AckingConsumer(broker.host, broker.port, validate=False)
    consumer.start()
    try:
        gateway = GatewayProcess(
            drain_command(copy, broker, "--exit-when-drained"), workdir / "e2e.log"
        )
        code = gateway.wait(RUN_TIMEOUT_SECONDS)
        finished_wall = time.time()
    finally:
        consumer.stop()
    if code != 0:
        raise RuntimeError(f"drain exited {code}: {gateway.log.read_text()[-2000:]}")
    received = len(consumer.received_ids())
    if received != count:
        raise RuntimeError(f"the consumer received {received} of {count} readings")
    connected = gateway.connected_after()
    opened = gateway.log_event("outbox opened")
    copy.unlink()
    return {
        "readings": count,
        "readings_per_second_from_connack": count
        / (finished_wall - gateway.spawned_wall - connected),
        "startup_seconds": connected,
        "outbox_open_seconds": opened["duration_seconds"],
        "peak_rss_mib": gateway.peak_rss_kib / 1024,
    }


def machine() -> dict[str, Any]:
    mosquitto = subprocess.run(
        ["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[0]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "paho_mqtt": paho.mqtt.__version__,
        "sqlite": sqlite3.sqlite_version,
        "mosquitto": mosquitto,
        "window_batches": DEFAULT_WINDOW_BATCHES,
        "batch_max_readings": DEFAULT_BATCH_MAX_READINGS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--memory-backlog", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vitalgate-bench-"))
    broker = MosquittoServer(workdir / "mosquitto")
    broker.start()
    results: dict[str, Any] = {"machine": machine(), "backlog": args.backlog}
    try:
        backlog = workdir / "backlog.db"
        results["fill_seconds"] = fill_backlog(backlog, args.backlog)
        results["backlog_file_bytes"] = backlog.stat().st_size
        lines, messages, payload_bytes = envelopes_of(backlog, workdir)
        results["messages"] = messages
        results["payload_bytes"] = payload_bytes

        raw_runs, gateway_runs, startups = [], [], []
        for _ in range(args.runs):
            raw_runs.append(raw_capacity(broker, lines, messages))
            drained = gateway_into_broker(broker, backlog, workdir, messages)
            gateway_runs.append(drained["seconds_from_connack"])
            startups.append(drained["startup_seconds"])
        raw = statistics.median(raw_runs)
        drain = statistics.median(gateway_runs)
        results["raw_seconds"] = raw_runs
        results["gateway_seconds"] = gateway_runs
        results["raw_readings_per_second"] = args.backlog / raw
        results["raw_payload_bytes_per_second"] = payload_bytes / raw
        results["gateway_readings_per_second"] = args.backlog / drain
        results["gateway_payload_bytes_per_second"] = payload_bytes / drain
        per_run = [r / g for r, g in zip(raw_runs, gateway_runs, strict=True)]
        results["ratio_per_run"] = per_run
        results["ratio"] = statistics.median(per_run)
        results["startup_seconds_backlog"] = statistics.median(startups)

        empty = workdir / "empty.db"
        SqliteOutbox(empty, quota_bytes=10**9, clock=utc_now).close()
        results["startup_seconds_empty"] = _startup_empty(broker, empty, workdir, args.runs)

        results["end_to_end"] = end_to_end(broker, backlog, workdir, args.backlog)
        backlog.unlink()
        big = workdir / "memory-backlog.db"
        results["memory_fill_seconds"] = fill_backlog(big, args.memory_backlog)
        results["memory_backlog_file_bytes"] = big.stat().st_size
        results["end_to_end_memory_backlog"] = end_to_end(broker, big, workdir, args.memory_backlog)
    finally:
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))


def _startup_empty(broker: MosquittoServer, empty: Path, workdir: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        gateway = GatewayProcess(drain_command(empty, broker), workdir / "empty.log")
        gateway.wait_connected()
        gateway.stop()
        times.append(gateway.connected_after())
    return statistics.median(times)


if __name__ == "__main__":
    main()
