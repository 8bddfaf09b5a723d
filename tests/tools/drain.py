"""``python -m tests.tools.drain``: the outbox and the publisher as one process, from flags.

A real gateway process without devices, for fault tests and benchmarks: it opens the
outbox, starts the publisher and, on request, a synthetic burst source
(:mod:`tests.tools.synthetic`), then runs until SIGTERM/SIGINT or, with
``--exit-when-drained``, until the burst is committed and the outbox is empty (every
reading acknowledged end to end). Tests SIGKILL it at random moments and start it again
with the same flags: the burst resumes after its cursor.

Logs are JSON lines on stderr. Exit codes: 0 done, 1 runtime failure (corrupt or full
outbox, publisher failure), 2 bad flags.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Final

from gateway.errors import ConfigError, GatewayError
from gateway.logging import configure_logging
from gateway.outbox import (
    DEFAULT_ACK_TIMEOUT_SECONDS,
    DEFAULT_CLINICAL_RESERVE_BYTES,
    MAX_ACK_TIMEOUT_SECONDS,
    SqliteOutbox,
)
from gateway.publisher import (
    DEFAULT_BATCH_MAX_READINGS,
    DEFAULT_STATUS_INTERVAL_SECONDS,
    DEFAULT_WINDOW_BATCHES,
    RECONNECT_MAX_SECONDS,
    RECONNECT_MIN_SECONDS,
    BrokerSettings,
    MqttProtocol,
    Publisher,
    PublisherSettings,
)
from readings.codec import MAX_PAYLOAD_BYTES
from tests.tools.synthetic import SyntheticBurst, SyntheticKind, run_burst

logger = logging.getLogger("gateway.drain")

DEFAULT_QUOTA_BYTES: Final = 256 * 1024 * 1024
"""A quarter of a small SD card's free space; a year of a household's spot checks."""
DRAINED_POLL_SECONDS: Final = 0.1
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_BAD_INPUT: Final = 2


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tests.tools.drain``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.tools.drain",
        description="Drain a gateway outbox into MQTT (optionally fed by a synthetic burst).",
    )
    parser.add_argument("--outbox", type=Path, required=True, help="outbox database file")
    parser.add_argument("--gateway-id", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--client-id", default=None)
    parser.add_argument("--username", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument(
        "--protocol", choices=[p.value for p in MqttProtocol], default=MqttProtocol.V5.value
    )
    parser.add_argument("--quota-bytes", type=int, default=DEFAULT_QUOTA_BYTES)
    parser.add_argument("--reserve-bytes", type=int, default=DEFAULT_CLINICAL_RESERVE_BYTES)
    parser.add_argument("--ack-timeout", type=float, default=DEFAULT_ACK_TIMEOUT_SECONDS)
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_BATCHES)
    parser.add_argument("--batch-readings", type=int, default=DEFAULT_BATCH_MAX_READINGS)
    parser.add_argument("--batch-bytes", type=int, default=MAX_PAYLOAD_BYTES)
    parser.add_argument("--status-interval", type=float, default=DEFAULT_STATUS_INTERVAL_SECONDS)
    parser.add_argument("--reconnect-min", type=float, default=RECONNECT_MIN_SECONDS)
    parser.add_argument("--reconnect-max", type=float, default=RECONNECT_MAX_SECONDS)
    parser.add_argument(
        "--synthetic-count", type=int, default=0, help="readings of a synthetic burst (0: none)"
    )
    parser.add_argument(
        "--synthetic-rate", type=float, default=None, help="readings/s (default: unthrottled)"
    )
    parser.add_argument("--synthetic-batch", type=int, default=100)
    parser.add_argument("--synthetic-serial", default="0001")
    parser.add_argument(
        "--synthetic-kind", choices=[k.value for k in SyntheticKind], default="glucose"
    )
    parser.add_argument(
        "--exit-when-drained",
        action="store_true",
        help="exit once the burst is committed and every reading is acknowledged",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the drain process; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("stop requested", extra={"reason": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    started = time.monotonic()
    try:
        settings = PublisherSettings(
            gateway_id=args.gateway_id,
            broker=BrokerSettings(
                host=args.host,
                port=args.port,
                client_id=args.client_id,
                username=args.username,
                password=args.password,
                protocol=MqttProtocol(args.protocol),
            ),
            window_batches=args.window,
            batch_max_readings=args.batch_readings,
            batch_max_bytes=args.batch_bytes,
            status_interval_seconds=args.status_interval,
            reconnect_min_seconds=args.reconnect_min,
            reconnect_max_seconds=args.reconnect_max,
        )
        burst = (
            SyntheticBurst(
                count=args.synthetic_count,
                gateway_id=args.gateway_id,
                serial=args.synthetic_serial,
                kind=SyntheticKind(args.synthetic_kind),
                batch_size=args.synthetic_batch,
                rate_per_second=args.synthetic_rate,
            )
            if args.synthetic_count
            else None
        )
        outbox = SqliteOutbox(
            args.outbox,
            quota_bytes=args.quota_bytes,
            reserve_bytes=args.reserve_bytes,
            clock=_utc_now,
            ack_timeout_seconds=args.ack_timeout,
            max_ack_timeout_seconds=max(args.ack_timeout, MAX_ACK_TIMEOUT_SECONDS),
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    logger.info(
        "outbox opened",
        extra={
            "path": str(args.outbox),
            "depth": outbox.stats().depth,
            "duration_seconds": round(time.monotonic() - started, 3),
        },
    )
    publisher = Publisher(settings, outbox, clock=_utc_now)
    publisher.start()
    code = EXIT_OK
    try:
        if burst is not None:
            committed = run_burst(burst, outbox, clock=_utc_now, stop=stop)
            logger.info("synthetic burst committed", extra={"count": committed})
        while not stop.is_set():
            if publisher.failure is not None:
                code = EXIT_FAILURE
                break
            if args.exit_when_drained and outbox.stats().depth == 0:
                break
            stop.wait(DRAINED_POLL_SECONDS)
    except GatewayError as exc:
        logger.error("drain failed", extra={"error": type(exc).__name__, "reason": str(exc)})
        code = EXIT_FAILURE
    finally:
        publisher.stop()
        outbox.close()
    logger.info("drain finished", extra={"duration_seconds": round(time.monotonic() - started, 3)})
    return code


if __name__ == "__main__":
    sys.exit(main())
