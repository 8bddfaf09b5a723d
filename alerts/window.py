"""Per-patient reading windows for the evaluator, loaded from the reading store on a miss.

A worker that takes over a partition, or restarts, knows nothing of its patients: the
window (the rules' lookback, e.g. 14 days for the CGM summary) is read from the store the
first time a patient is evaluated, then kept and extended with what arrives on
``accepted/``. So evaluation is correct on any worker and after any restart, and a reading
that arrives twice (a redelivery, a re-sent batch) is in the window once: the window is
keyed by reading id.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import msgspec

from ingest.stores.base import ReadingStore, StoredReading
from readings.codec import format_utc
from readings.model import AnyReading, Kind, Reading

DEFAULT_MAX_PATIENTS: Final = 5_000
"""Windows kept in memory per worker; a patient beyond it is reloaded on the next reading.
At ~4 meter readings a day a 14-day window is ~60 readings; a CGM patient's is ~4,000."""


def reading_from_stored(stored: StoredReading) -> Reading:
    """The reading a store gave back, in the wire contract's form.

    The store does not keep ``received_at``; ``measured_at`` stands in for it, which no rule
    reads (lateness is judged on arrival, by the evaluator, not from this field).
    """
    wire: dict[str, object] = {
        "kind": str(stored.kind),
        "id": stored.id,
        "values": dict(stored.values),
        "source_unit": stored.source_unit,
        "measured_at": format_utc(stored.measured_at),
        "received_at": format_utc(stored.measured_at),
        "device_id": stored.device_id,
        "patient_id": stored.patient_id,
        "gateway_id": stored.gateway_id,
        "flags": list(stored.flags),
    }
    if stored.seq is not None:
        wire["seq"] = stored.seq
    if stored.device_time is not None:
        wire["device_time"] = stored.device_time.isoformat(timespec="milliseconds")
    if stored.context:
        wire["context"] = dict(stored.context)
    reading: Reading = msgspec.convert(wire, AnyReading)
    return reading


@dataclass
class _Window:
    loaded_from: datetime
    readings: dict[str, Reading]


class PatientWindows:
    """An LRU of patients' recent readings, filled from the store on a miss."""

    def __init__(
        self,
        store: ReadingStore,
        lookback: timedelta,
        *,
        kinds: Iterable[Kind] = tuple(Kind),
        max_patients: int = DEFAULT_MAX_PATIENTS,
    ) -> None:
        self._store = store
        self._lookback = lookback
        self._kinds = tuple(kinds)
        self._max = max_patients
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self.loads = 0
        """How many windows were read from the store (a metric, and for tests)."""

    def window(self, patient_id: str, now: datetime) -> list[Reading]:
        """The patient's readings of the last ``lookback`` before ``now``, oldest first."""
        entry = self._entry(patient_id, now)
        start = now - self._lookback
        return sorted(
            (r for r in entry.readings.values() if r.measured_at >= start),
            key=lambda r: (r.measured_at, r.id),
        )

    def add(self, patient_id: str, readings: Sequence[Reading], now: datetime) -> set[str]:
        """Put arrivals into the patient's window; return the ids that are new arrivals.

        On a cache miss every arrival counts as new, although the window just loaded from
        the store already holds it: ingest stores a reading *before* announcing it on
        ``accepted/``, so "already in the store" says nothing about "already evaluated".
        Only a window that was in memory before this arrival can recognise a redelivery
        (evaluating a redelivery once more is harmless: findings are per patient and rule).
        """
        cached = patient_id in self._windows and not self._stale(patient_id, now)
        entry = self._entry(patient_id, now)
        new = {r.id for r in readings if not cached or r.id not in entry.readings}
        for reading in readings:
            entry.readings.setdefault(reading.id, reading)
        self._prune(entry, now)
        return new

    def _stale(self, patient_id: str, now: datetime) -> bool:
        return self._windows[patient_id].loaded_from > now - self._lookback

    def forget(self, patient_id: str) -> None:
        """Drop a patient's window (its partition went to another worker)."""
        self._windows.pop(patient_id, None)

    def _entry(self, patient_id: str, now: datetime) -> _Window:
        entry = self._windows.get(patient_id)
        start = now - self._lookback
        if entry is None or entry.loaded_from > start:
            entry = _Window(loaded_from=start, readings={})
            for kind in self._kinds:
                for stored in self._store.readings(patient_id, kind, start, now + _FUTURE):
                    entry.readings[stored.id] = reading_from_stored(stored)
            self.loads += 1
            self._windows[patient_id] = entry
        self._windows.move_to_end(patient_id)
        while len(self._windows) > self._max:
            self._windows.popitem(last=False)
        return entry

    def _prune(self, entry: _Window, now: datetime) -> None:
        start = now - self._lookback
        for reading_id in [i for i, r in entry.readings.items() if r.measured_at < start]:
            del entry.readings[reading_id]


_FUTURE: Final = timedelta(minutes=10)
"""Readings a few minutes "in the future" (a device clock slightly ahead, within ingest's
plausibility bound) still belong in the window."""
