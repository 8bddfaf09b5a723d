"""Thundering herd: N gateways with a backlog reconnect at once after a broker outage.

Run from the repository root::

    python bench/herd.py --gateways 100            # quick
    python bench/herd.py --gateways 1000 --backlog 50

What runs (all real, on loopback):

* Mosquitto with the shipped ``deploy/mosquitto/mosquitto.conf`` general options (queue
  limits, ``max_inflight_messages`` — the receive maximum it announces to every client —,
  persistence, autosave); listener, TLS, ACL and password options are left out (plain
  anonymous loopback; the TLS and ACL paths have their own tests).
* InfluxDB 1.x (the test harness's ``InfluxDBServer``) as the reading store.
* One or more ingest workers, ``python -m vitalgate ingest run`` (shared subscription
  group ``herd``), each its own process.
* The gateways: ``--processes`` helper processes, each running its share of the N
  gateways as the real gateway does it — a :class:`gateway.outbox.SqliteOutbox` per
  gateway filled with ``--backlog`` glucose readings, drained by a real
  :class:`gateway.publisher.Publisher` (its own thread and MQTT client, the shipped
  backoff with jitter and reconnect bounds). No BLE stack: readings go straight into
  the outbox.

The scenario: broker and ingest up; the broker stops (clean stop, persistence written);
the gateways start during the outage, fill their outboxes and keep failing to connect
(their backoff grows); after ``--outage`` seconds the broker starts again on the same
port. Measured from that moment: when each gateway reconnected (its link's ``since``),
when InfluxDB holds every reading, when every outbox is empty (acknowledged end to end),
and, sampled every 0.5 s from ``/proc``, CPU and resident memory of the broker, the ingest
workers, influxd and the gateway processes.

Exact counts: ``sent`` is every reading the publishers put on the wire (first sends and
re-sends, from :class:`gateway.publisher.PublisherCounters`); ``stored`` is every point
InfluxDB holds (one row per point, so a duplicate point would show); ``write requests``
is InfluxDB's own count of points it was asked to write (``SHOW STATS`` ``pointReq``), so
``requested - stored`` is the number of repeated writes InfluxDB collapsed. The stored
ids are compared with the ids the gateways generated.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from gateway.logging import configure_logging  # noqa: E402
from gateway.outbox import SqliteOutbox  # noqa: E402
from gateway.publisher import (  # noqa: E402
    RECONNECT_MAX_SECONDS,
    RECONNECT_MIN_SECONDS,
    BrokerSettings,
    LinkState,
    Publisher,
    PublisherSettings,
)
from readings.model import Kind  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402
from tests.harness.services import InfluxDBServer, MosquittoServer  # noqa: E402
from tests.harness.shipped_mosquitto import shipped_options  # noqa: E402
from tests.integration.ingest_helpers import (  # noqa: E402
    Binding,
    IngestProcess,
    influx_ids,
    influx_points_requested,
    make_readings,
    make_registry,
)

SAMPLE_SECONDS = 0.5
POLL_SECONDS = 0.5
MONITOR_SECONDS = 1.0
"""How often a gateway process looks at its publishers and outboxes. Each look is one
SQLite query per outbox: at 0.1 s, 250 outboxes cost the helper a core on this box."""
FD_LIMIT = 65_536
"""Each gateway holds a socket and its outbox's database, WAL and shared-memory files;
the broker a socket per gateway: 1,000 gateways need well over the usual 1,024."""
OUTBOX_QUOTA_BYTES = 64 * 1024**2
DRAIN_TIMEOUT_SECONDS = 900.0
EXCLUDED_BROKER_OPTIONS = frozenset(
    {
        "per_listener_settings",
        "allow_anonymous",
        "acl_file",
        "listener",
        "protocol",
        "cafile",
        "certfile",
        "keyfile",
        "tls_version",
        "require_certificate",
        "use_identity_as_username",
        "crlfile",
        "persistence_location",
        "persistence_file",
        "log_dest",
    }
)


def binding(index: int) -> Binding:
    return Binding(f"gw-herd-{index:05d}", f"Acme-GlucoMeter-H{index:05d}", f"patient-h{index:05d}")


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_LIMIT if hard == resource.RLIM_INFINITY else min(FD_LIMIT, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the gateway helper process ----------------------------------------------------------


def gateway_worker(args: argparse.Namespace) -> None:
    """Run gateways ``first .. first+count-1`` until every outbox is empty, then report."""
    raise_fd_limit()
    # The publishers' warnings (why a connection failed) as JSON lines in gateways-*.log.
    configure_logging(logging.WARNING, sys.stderr)
    workdir = Path(args.workdir)
    outboxes: list[SqliteOutbox] = []
    ids: list[str] = []
    for index in range(args.first, args.first + args.count):
        outbox = SqliteOutbox(
            workdir / f"outbox-{index:05d}.db",
            quota_bytes=OUTBOX_QUOTA_BYTES,
            clock=lambda: datetime.now(UTC),
        )
        readings = make_readings(binding(index), args.backlog)
        outbox.add(readings)
        ids += [reading.id for reading in readings]
        outboxes.append(outbox)
    publishers = [
        Publisher(
            PublisherSettings(
                gateway_id=binding(index).gateway_id,
                broker=BrokerSettings(host=args.host, port=args.port),
            ),
            outbox,
        )
        for index, outbox in zip(range(args.first, args.first + args.count), outboxes, strict=True)
    ]
    for publisher in publishers:
        publisher.start()
    (workdir / f"ready-{args.first}").write_text("ready")
    connected_at: dict[int, float] = {}
    failed_before: dict[int, int] = {}
    drained_at: dict[int, float] = {}
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while len(drained_at) < len(publishers) and time.monotonic() < deadline:
        for number, (publisher, outbox) in enumerate(zip(publishers, outboxes, strict=True)):
            if number not in connected_at:
                link = publisher.link()
                if link.state is LinkState.CONNECTED:
                    connected_at[number] = link.since.timestamp()
                else:
                    failed_before[number] = link.failed_attempts
            if number not in drained_at and outbox.stats().depth == 0:
                drained_at[number] = time.time()
        time.sleep(MONITOR_SECONDS)
    counters = [publisher.counters() for publisher in publishers]
    report = {
        "ids": ids,
        "connected_at": list(connected_at.values()),
        "failed_attempts_before_connect": list(failed_before.values()),
        "drained_at": list(drained_at.values()),
        "undrained": len(publishers) - len(drained_at),
        "connects": sum(c.connects for c in counters),
        "connect_failures": sum(c.connect_failures for c in counters),
        "readings_published": sum(c.readings_published for c in counters),
        "readings_republished": sum(c.readings_republished for c in counters),
        "readings_acknowledged": sum(c.readings_acknowledged for c in counters),
        "batches_published": sum(c.batches_published for c in counters),
    }
    (workdir / f"report-{args.first}.json").write_text(json.dumps(report))
    # The measurement is over; the publishers' clean stop (offline status, 2 s flush
    # each) is not part of it.
    os._exit(0)


# -- sampling ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """Peak CPU (share of one core over 0.5 s) and peak RSS of named process groups."""

    def __init__(self, pids: dict[str, Sequence[int]]) -> None:
        super().__init__(daemon=True)
        self.pids = dict(pids)
        self.peak_cpu: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.peak_rss: dict[str, float] = dict.fromkeys(pids, 0.0)
        self.cpu_total: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._halt = threading.Event()

    def _read(self) -> dict[str, tuple[float, float]]:
        out = {}
        for name, pids in self.pids.items():
            cpu = rss = 0.0
            for pid in pids:
                try:
                    cpu += cpu_seconds(pid)
                    rss += rss_mb(pid)
                except (FileNotFoundError, ProcessLookupError):
                    continue
            out[name] = (cpu, rss)
        return out

    def run(self) -> None:
        previous, last = self._read(), time.monotonic()
        while not self._halt.wait(SAMPLE_SECONDS):
            now_sample, now = self._read(), time.monotonic()
            for name, (cpu, rss) in now_sample.items():
                delta = max(0.0, cpu - previous[name][0])
                self.cpu_total[name] += delta
                self.peak_cpu[name] = max(self.peak_cpu[name], delta / (now - last))
                self.peak_rss[name] = max(self.peak_rss[name], rss)
            previous, last = now_sample, now

    def stop(self) -> None:
        self._halt.set()
        self.join()


# -- the run --------------------------------------------------------------------------------


def tsm_size(influx_dir: Path) -> int:
    """Bytes of compacted TSM files once the WAL has been snapshotted (waits up to 60 s)."""
    deadline = time.monotonic() + 60.0
    while True:
        tsm = sum(p.stat().st_size for p in influx_dir.rglob("*.tsm"))
        wal = sum(p.stat().st_size for p in influx_dir.rglob("*.wal"))
        if (tsm and wal == 0) or time.monotonic() > deadline:
            return tsm
        time.sleep(1.0)


def ingest_connects(log_path: Path) -> list[float]:
    """Wall-clock times of the worker's "connected as" log lines."""
    times = []
    for line in log_path.read_text(errors="replace").splitlines():
        if "ingest.worker connected as" in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
            times.append(stamp.timestamp())
    return times


def spread(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 2),
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "max": round(ordered[-1], 2),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    fd_limit = raise_fd_limit()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    n = args.gateways
    registry_url = make_registry(workdir / "registry.db", [binding(i) for i in range(n)])
    # Cold shards are snapshotted and compacted after a second instead of 10 minutes, so
    # the TSM files' size per point can be read after the drain.
    influx = InfluxDBServer(
        workdir / "influx",
        config_overrides={
            "data": {
                "cache-snapshot-write-cold-duration": "1s",
                "compact-full-write-cold-duration": "1s",
            }
        },
    )
    influx.start()
    database = "herd"
    influx.create_database(database)
    broker_options = shipped_options(EXCLUDED_BROKER_OPTIONS)
    broker = MosquittoServer(workdir / "mosquitto", port=free_port(), extra_config=broker_options)
    broker.start()
    ingest_config = workdir / "ingest.toml"
    ingest_config.write_text("")
    workers = [
        IngestProcess(
            workdir / f"ingest-{k}",
            [
                "--mqtt-url",
                broker.url,
                "--store",
                f"influxdb-v1://{influx.host}:{influx.port}/{database}",
                "--registry",
                registry_url,
                "--group",
                "herd",
                "--client-id",
                f"herd-ingest-{k}",
                "--metrics-port",
                "0",
            ],
        )
        for k in range(args.workers)
    ]
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        for worker in workers:
            worker.workdir.mkdir(exist_ok=True)
            worker.start()
        time.sleep(1.0)  # the workers' subscriptions are in place (persistent sessions)
        broker.stop()  # the outage starts
        outage_started = time.monotonic()
        per_process = -(-n // args.processes)
        for first in range(0, n, per_process):
            count = min(per_process, n - first)
            gateways.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--gateway-worker",
                        "--workdir",
                        str(workdir),
                        "--first",
                        str(first),
                        "--count",
                        str(count),
                        "--backlog",
                        str(args.backlog),
                        "--host",
                        broker.host,
                        "--port",
                        str(broker.port),
                    ],
                    env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                    stdout=(workdir / f"gateways-{first}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
        firsts = list(range(0, n, per_process))
        while not all((workdir / f"ready-{first}").exists() for first in firsts):
            if any(g.poll() is not None for g in gateways):
                raise RuntimeError("a gateway process died; see gateways-*.log")
            time.sleep(POLL_SECONDS)
        filled = time.monotonic()
        time.sleep(max(0.0, args.outage - (filled - outage_started)))
        points_before = influx_points_requested(influx)
        sampler = Sampler(
            {
                "broker": [],
                "ingest": [w.process.pid for w in workers if w.process is not None],
                "influxd": [influx.pid] if influx.pid is not None else [],
                "gateways": [g.pid for g in gateways],
            }
        )
        broker.start()  # the outage ends: every gateway is due to reconnect
        restarted_wall, restarted = time.time(), time.monotonic()
        sampler.pids["broker"] = [broker.pid] if broker.pid is not None else []
        sampler.start()
        expected_total = n * args.backlog
        stored_at: float | None = None
        deadline = restarted + DRAIN_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            rows = influx.series_values(database, f'SELECT count("id") FROM "{Kind.GLUCOSE.value}"')
            if rows and rows[0][1] >= expected_total:
                stored_at = time.monotonic()
                break
            time.sleep(POLL_SECONDS)
        for g in gateways:
            g.wait(DRAIN_TIMEOUT_SECONDS)
        acked_at = time.monotonic()
        sampler.stop()
        reports = [json.loads((workdir / f"report-{f}.json").read_text()) for f in firsts]
        sent_ids = [i for r in reports for i in r["ids"]]
        stored = influx_ids(influx, database, [Kind.GLUCOSE])
        requested = influx_points_requested(influx) - points_before
        connected = [t - restarted_wall for r in reports for t in r["connected_at"]]
        drained = [t - restarted_wall for r in reports for t in r["drained_at"]]
        failed = [a for r in reports for a in r["failed_attempts_before_connect"]]
        published = sum(r["readings_published"] for r in reports)
        tsm_bytes = tsm_size(workdir / "influx")
        ingest_connected = [
            t - restarted_wall for w in workers for t in ingest_connects(w.log_path)
        ]
        broker_log = (workdir / "mosquitto" / "mosquitto.log").read_text(errors="replace")
        return {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "gateways": n,
            "backlog_per_gateway": args.backlog,
            "gateway_processes": len(gateways),
            "ingest_workers": args.workers,
            "outage_seconds": round(
                filled - outage_started + max(0.0, args.outage - (filled - outage_started)), 1
            ),
            "fd_limit": fd_limit,
            "broker_options": broker_options,
            "reconnect_bounds_seconds": [RECONNECT_MIN_SECONDS, RECONNECT_MAX_SECONDS],
            "counts": {
                "generated": len(sent_ids),
                "distinct_generated": len(set(sent_ids)),
                "sent_readings": published,
                "republished_readings": sum(r["readings_republished"] for r in reports),
                "batches_published": sum(r["batches_published"] for r in reports),
                "acknowledged_readings": sum(r["readings_acknowledged"] for r in reports),
                "influx_points_requested": requested,
                "stored_points": len(stored),
                "stored_distinct": len(set(stored)),
                "duplicates_collapsed": requested - len(set(stored)),
                "missing": len(set(sent_ids) - set(stored)),
                "unexpected": len(set(stored) - set(sent_ids)),
                "undrained_gateways": sum(r["undrained"] for r in reports),
                "connects": sum(r["connects"] for r in reports),
                "connect_failures": sum(r["connect_failures"] for r in reports),
            },
            "seconds_after_broker_restart": {
                "all_stored": None if stored_at is None else round(stored_at - restarted, 2),
                "all_acknowledged": round(acked_at - restarted, 2),
                "gateway_connected": spread(connected),
                "gateway_drained": spread(drained),
            },
            "ingest_reconnected_seconds_after_broker_restart": [
                round(t, 2) for t in ingest_connected if t > 0
            ],
            "influx_tsm_bytes_per_point": round(tsm_bytes / max(1, len(stored)), 1),
            "failed_attempts_before_reconnect": spread([float(a) for a in failed]),
            "readings_per_second_stored": (
                None if stored_at is None else round(expected_total / (stored_at - restarted))
            ),
            "peak_cpu_core_share": {k: round(v, 2) for k, v in sampler.peak_cpu.items()},
            "cpu_seconds_during_drain": {k: round(v, 2) for k, v in sampler.cpu_total.items()},
            "peak_rss_mb": {k: round(v, 1) for k, v in sampler.peak_rss.items()},
            "broker_log_errors": sum(
                1
                for line in broker_log.splitlines()
                if "rror" in line or "Outgoing messages are being dropped" in line
            ),
        }
    finally:
        for g in gateways:
            if g.poll() is None:
                g.kill()
                g.wait()
        for worker in workers:
            worker.close()
        broker.stop()
        influx.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=50, help="readings per gateway")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the broker is down")
    parser.add_argument("--workers", type=int, default=1, help="ingest workers")
    parser.add_argument("--processes", type=int, default=4, help="gateway helper processes")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--gateway-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gateway_worker:
        gateway_worker(args)
        return
    # SIGTERM ends the run through its clean-up (servers stopped, helpers killed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.workdir is None:
        import tempfile

        args.workdir = tempfile.mkdtemp(prefix="vitalgate-herd-")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
