"""Ingest's per-reading CPU, stage by stage, without broker or store: a deterministic micro-run.

Run from the repository root::

    python bench/ingest_cpu.py                       # 20,000 readings, 200 per envelope
    python bench/ingest_cpu.py --batch 10
    valgrind --tool=callgrind python bench/ingest_cpu.py --readings 2000   # instruction counts

The bench's own dataset (``bench/bench_ingest.py``: 50 gateways × 5 devices, five kinds,
≈ 358 bytes a reading) is put through the worker's per-reading stages, in process, each
timed with ``time.process_time`` (this process's CPU, which other load on the machine
inflates far less than wall time):

1. ``examine``: :func:`ingest.examine.examine_message` (decode, id check, ownership through
   a check that always answers ``ok``, plausibility);
2. ``line protocol``: :func:`ingest.stores._influx_write.write_readings` into a sink that
   answers 204 without sending anything;
3. ``accepted/``: the envelopes the worker republishes (the received slices when the code
   keeps them, else re-encoded readings).

What it leaves out is what the end-to-end bench measures: paho's network loop, the HTTP
request and the worker's threads.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import Envelope, generate_dataset

from ingest.examine import Examination, examine_message
from ingest.stores._influx_write import PendingPoint, WriteAnswer, write_readings
from ingest.validate import PlausibilityLimits
from readings.codec import encode_envelope_from_encoded, encode_reading


class _AlwaysOwned:
    def check(self, gateway_id: str, device_id: str, patient_id: str, at: datetime) -> str:
        return "ok"


class _NullSink:
    def post(self, lines: Sequence[str]) -> WriteAnswer:
        return WriteAnswer(204, "")

    def present_ids(self, points: Sequence[PendingPoint]) -> set[str]:
        return set()

    def refusal_keeps_valid_points(self, answer: WriteAnswer) -> bool:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200, help="readings per envelope")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the fastest is shown")
    args = parser.parse_args(argv)
    dataset = generate_dataset(args.readings, 50)
    envelopes = dataset.envelopes(args.batch)
    limits = PlausibilityLimits()
    ownership = _AlwaysOwned()
    now = datetime.now(UTC)
    total = sum(len(envelope.ids) for envelope in envelopes)
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, seconds in _run_once(envelopes, limits, ownership, now, total).items():
            best[name] = min(seconds, best.get(name, seconds))
    print(f"{total:,} readings in envelopes of {args.batch}: CPU µs per reading")
    for name, seconds in (*best.items(), ("total", sum(best.values()))):
        print(f"  {name:14} {seconds / total * 1e6:6.2f}")
    return 0


def _run_once(
    envelopes: Sequence[Envelope],
    limits: PlausibilityLimits,
    ownership: _AlwaysOwned,
    now: datetime,
    total: int,
) -> dict[str, float]:
    """Seconds of CPU per stage for one pass over ``envelopes``."""
    began = time.process_time()
    examinations: list[Examination] = [
        examine_message(e.topic, e.payload, ownership=ownership, limits=limits, now=now)
        for e in envelopes
    ]
    examine_s = time.process_time() - began
    stored = [d for x in examinations for d in x.decisions if d.entry is None]
    assert len(stored) == total, f"{total - len(stored)} readings refused"

    began = time.process_time()
    result = write_readings(
        [d.reading for d in stored if d.reading is not None],
        _NullSink(),
        target="null",
        container="null",
    )
    line_s = time.process_time() - began
    assert len(result.stored) == total

    began = time.process_time()
    for examination in examinations:
        raws = [
            received
            if (received := getattr(d, "received", None)) is not None
            else encode_reading(d.reading)  # type: ignore[arg-type]
            for d in examination.decisions
        ]
        encode_envelope_from_encoded(examination.gateway_id or "", now, raws)
    accepted_s = time.process_time() - began

    return {"examine": examine_s, "line protocol": line_s, "accepted/": accepted_s}


if __name__ == "__main__":
    raise SystemExit(main())
