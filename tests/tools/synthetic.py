"""A synthetic burst source: a load generator for tests and benchmarks, not a device.

It plays a device that hands over ``count`` well-formed readings, committing them to the
outbox in batches exactly as a device session does: readings and the device's download
cursor in one transaction. Stopped and started again (for instance after the gateway
was killed), it resumes after the cursor, like a real download; readings of a glucose
burst have deterministic ids (:func:`synthetic_ids`), so a test knows the full set it
must see arrive.

Values follow a fixed saw-tooth in the normal range; they mean nothing clinically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from device_drivers.base import RecordCursor
from gateway.errors import ConfigError
from gateway.outbox import Clock, Outbox
from readings.identity import device_identity
from readings.model import GlucoseValues, HeartRateValues, Reading, new_reading
from readings.units import Unit

SYNTHETIC_MANUFACTURER: Final = "VitalGate"
SYNTHETIC_MODEL: Final = "Synthetic Burst"
SYNTHETIC_START: Final = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
"""Time of record 0 (the device's wall clock shows it without the offset); each glucose
record is one minute after the previous one."""
DEFAULT_BATCH_SIZE: Final = 100
"""Readings per outbox transaction: one fsync per 100 readings, like a meter download."""


class SyntheticKind(StrEnum):
    """What the synthetic device measures."""

    GLUCOSE = "glucose"
    """A meter's stored records: clinical, with sequence numbers (deterministic ids)."""
    HEART_RATE = "heart_rate"
    """A strap's stream: low-value telemetry, stamped on receipt."""


@dataclass(frozen=True, slots=True)
class SyntheticBurst:
    """One synthetic device and how much it hands over.

    Attributes:
        count: readings in the whole burst.
        gateway_id: the gateway the readings are received by.
        serial: the synthetic device's serial (its id is ``VitalGate-Synthetic_Burst-<serial>``).
        patient_id: the patient the device is bound to.
        kind: glucose records or a heart-rate stream.
        batch_size: readings per outbox transaction.
        rate_per_second: average readings per second, or ``None`` for as fast as possible.
    """

    count: int
    gateway_id: str
    serial: str = "0001"
    patient_id: str = "synthetic-patient"
    kind: SyntheticKind = SyntheticKind.GLUCOSE
    batch_size: int = DEFAULT_BATCH_SIZE
    rate_per_second: float | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ConfigError("count", f"must not be negative, got {self.count}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be at least 1, got {self.batch_size}")
        if self.rate_per_second is not None and self.rate_per_second <= 0:
            raise ConfigError(
                "rate_per_second", f"must be positive (or unset), got {self.rate_per_second}"
            )

    @property
    def device_id(self) -> str:
        """The synthetic device's identity."""
        return device_identity(SYNTHETIC_MANUFACTURER, SYNTHETIC_MODEL, self.serial)


def synthetic_reading(burst: SyntheticBurst, seq: int, received_at: datetime) -> Reading:
    """Record ``seq`` (0-based) of the burst.

    A glucose record's id depends only on the device, ``seq`` and its device time, never
    on ``received_at``. A heart-rate sample is stamped ``seq`` milliseconds after
    :data:`SYNTHETIC_START` (UTC), which keeps its receipt-time id unique and repeatable.
    """
    if burst.kind is SyntheticKind.GLUCOSE:
        measured_at = SYNTHETIC_START + timedelta(minutes=seq)
        device_time = measured_at.replace(tzinfo=None)
        return new_reading(
            values=GlucoseValues(glucose=4.0 + (seq % 40) / 10),
            source_unit=Unit.MMOL_PER_L,
            measured_at=measured_at,
            received_at=received_at,
            device_id=burst.device_id,
            patient_id=burst.patient_id,
            gateway_id=burst.gateway_id,
            device_time=device_time,
            context={"meal": "fasting"},
            seq=seq,
        )
    stamped = SYNTHETIC_START + timedelta(milliseconds=seq)
    return new_reading(
        values=HeartRateValues(heart_rate=60.0 + seq % 30),
        source_unit=Unit.PER_MIN,
        measured_at=stamped,
        received_at=stamped,
        device_id=burst.device_id,
        patient_id=burst.patient_id,
        gateway_id=burst.gateway_id,
    )


def synthetic_ids(burst: SyntheticBurst, start: int = 0, stop: int | None = None) -> set[str]:
    """The ids of records ``start`` to ``stop`` (default: the whole burst)."""
    received_at = SYNTHETIC_START
    end = burst.count if stop is None else stop
    return {synthetic_reading(burst, seq, received_at).id for seq in range(start, end)}


def _batches(start: int, count: int, size: int) -> Iterator[range]:
    for first in range(start, count, size):
        yield range(first, min(first + size, count))


def run_burst(
    burst: SyntheticBurst,
    outbox: Outbox,
    *,
    clock: Clock,
    stop: threading.Event | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> int:
    """Hand the burst over to the outbox; returns how many readings this call committed.

    A glucose burst resumes after the cursor stored in the outbox. A heart-rate stream
    has no cursor: it starts again from 0 (the outbox ignores the repeated ids). Stops
    early when ``stop`` is set.

    Raises:
        OutboxFull: the outbox refused clinical readings (the cursor did not move).
    """
    start = 0
    if burst.kind is SyntheticKind.GLUCOSE:
        stored = outbox.cursor(burst.device_id)
        if stored is not None and stored.last_seq is not None:
            start = stored.last_seq + 1
    committed = 0
    began = monotonic()
    for seqs in _batches(start, burst.count, burst.batch_size):
        if stop is not None and stop.is_set():
            break
        received_at = clock()
        readings = [synthetic_reading(burst, seq, received_at) for seq in seqs]
        cursor = None
        if burst.kind is SyntheticKind.GLUCOSE:
            last = readings[-1]
            cursor = (
                burst.device_id,
                RecordCursor(last_seq=last.seq, last_device_time=last.device_time),
            )
        result = outbox.add(readings, cursor=cursor)
        committed += result.added
        if burst.rate_per_second is not None:
            due = began + (seqs.stop - start) / burst.rate_per_second
            delay = due - monotonic()
            if delay > 0:
                if stop is not None:
                    stop.wait(delay)
                else:
                    time.sleep(delay)
    return committed
