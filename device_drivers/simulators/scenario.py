"""Scenarios: what a simulated device measures and how it misbehaves, over time.

One small model shared by every simulator (serial meters here, BLE devices next door), so
a test or the demo scripts events the same way whatever the transport:

* ``records`` — measurements the device takes, each ``at_offset_seconds`` after the
  simulator starts (negative: already in memory at start), in canonical units
  (``values={"glucose": 5.4}`` is mmol/L) with generic ``flags`` (``control_solution``,
  ``result_high``, ``result_low``, ``communication_error``) and ``context``
  (``meal="preprandial"`` …). Each simulator encodes what its protocol can express.
* ``series`` — generated records: a base value plus seeded jitter at a fixed interval.
* ``clock_skew_seconds`` — how far the device clock is ahead of real time (negative:
  behind); the device stamps records and answers clock reads with it.
* ``memory_capacity`` — the device keeps only the newest N records (memory wrap);
  ``clear_memory_at`` — at this offset the memory is erased.
* ``link_drops`` / ``link_drop_after_bytes`` — the first N transfers stop after that many
  bytes, as if the cable were pulled; later transfers complete.
* ``corrupt_frame_numbers`` — 1-based frames (serial: the lines or frames of a transfer)
  sent with a damaged byte, each ``corruptions_per_frame`` times before a good copy.

Load from a mapping or a TOML file with :meth:`Scenario.from_dict` /
:meth:`Scenario.from_toml`; bad input raises :class:`ScenarioError` naming the field.
:class:`DeviceClock` turns offsets into device times for every simulator alike.
"""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec

from device_drivers.errors import DriverError
from readings.model import Kind

GLUCOSE_NEWEST_SECONDS_AGO: Final = 120.0
"""The demo glucose meters' (BLE and serial) newest result was taken just before the demo
started. Were it a whole number of hours old (eight, the history's spacing), its
wall-clock time in the patients' zone (UTC+8) would read like the host's clock on a UTC
machine, and a correct reading would look eight hours late."""


def local_wall_clock() -> datetime:
    """The host's local wall-clock time, naive: what a home device's clock shows."""
    return datetime.now(UTC).astimezone().replace(tzinfo=None)


ContextValue = str | int | float | bool


class ScenarioError(DriverError, ValueError):
    """A scenario that cannot be simulated.

    Subclasses :class:`ValueError` so msgspec reports the path of the offending field.

    Attributes:
        field: where in the scenario (e.g. ``$.records[2].at_offset_seconds``).
        problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _require_finite(field: str, value: float) -> None:
    if not math.isfinite(value):
        raise ScenarioError(field, "must be a finite number")


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ScenarioRecord(_Struct, frozen=True):
    """One measurement the simulated device takes.

    Attributes:
        at_offset_seconds: when, relative to the simulator's start (real time).
        values: canonical values by field name, as in :mod:`readings.model`.
        kind: what it measures.
        flags: generic conditions the device reports with it.
        context: circumstances (meal, comment …) in the drivers' vocabulary.
    """

    at_offset_seconds: float
    values: dict[str, float]
    kind: Kind = Kind.GLUCOSE
    flags: frozenset[str] = frozenset()
    context: dict[str, ContextValue] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_finite("at_offset_seconds", self.at_offset_seconds)
        for name, value in self.values.items():
            _require_finite(f"values.{name}", value)


class ValueSeries(_Struct, frozen=True):
    """Records generated at a fixed interval: ``values`` plus seeded uniform jitter.

    Attributes:
        start_offset_seconds: offset of the first record.
        interval_seconds: time between records.
        count: how many records.
        values: base canonical values by field name.
        jitter: half-width of the uniform jitter per field (0 when absent).
        decimals: values are rounded to this many decimals, as a device displays them.
        seed: seed of the jitter, so a scenario always produces the same records.
    """

    start_offset_seconds: float
    interval_seconds: float
    count: int
    values: dict[str, float]
    kind: Kind = Kind.GLUCOSE
    jitter: dict[str, float] = msgspec.field(default_factory=dict)
    decimals: int = 1
    seed: int = 0
    flags: frozenset[str] = frozenset()
    context: dict[str, ContextValue] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_finite("start_offset_seconds", self.start_offset_seconds)
        if not (math.isfinite(self.interval_seconds) and self.interval_seconds > 0):
            raise ScenarioError("interval_seconds", "must be a positive number")
        if self.count < 0:
            raise ScenarioError("count", "must not be negative")

    def records(self) -> tuple[ScenarioRecord, ...]:
        """The generated records, oldest first."""
        rng = random.Random(self.seed)
        out = []
        for index in range(self.count):
            values = {
                name: round(
                    base + rng.uniform(-1.0, 1.0) * self.jitter.get(name, 0.0), self.decimals
                )
                for name, base in self.values.items()
            }
            out.append(
                ScenarioRecord(
                    at_offset_seconds=self.start_offset_seconds + index * self.interval_seconds,
                    values=values,
                    kind=self.kind,
                    flags=self.flags,
                    context=dict(self.context),
                )
            )
        return tuple(out)


class Scenario(_Struct, frozen=True):
    """What a simulated device does over time (see the module docstring)."""

    records: tuple[ScenarioRecord, ...] = ()
    series: tuple[ValueSeries, ...] = ()
    clock_skew_seconds: float = 0.0
    memory_capacity: int | None = None
    clear_memory_at: float | None = None
    link_drops: int = 0
    link_drop_after_bytes: int = 0
    corrupt_frame_numbers: frozenset[int] = frozenset()
    corruptions_per_frame: int = 1

    def __post_init__(self) -> None:
        _require_finite("clock_skew_seconds", self.clock_skew_seconds)
        if self.memory_capacity is not None and self.memory_capacity < 1:
            raise ScenarioError("memory_capacity", "must be at least 1")
        if self.clear_memory_at is not None:
            _require_finite("clear_memory_at", self.clear_memory_at)
        if self.link_drops < 0 or self.link_drop_after_bytes < 0:
            raise ScenarioError("link_drops", "link_drops and link_drop_after_bytes must be >= 0")
        if any(number < 1 for number in self.corrupt_frame_numbers):
            raise ScenarioError("corrupt_frame_numbers", "frame numbers start at 1")
        if self.corruptions_per_frame < 1:
            raise ScenarioError("corruptions_per_frame", "must be at least 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build a scenario from plain data (parsed TOML, JSON or YAML).

        Raises:
            ScenarioError: a field is unknown, of the wrong type or out of range.
        """
        try:
            return msgspec.convert(data, type=cls)
        except msgspec.ValidationError as exc:
            message = str(exc)
            path = message.rpartition(" - at `")[2].rstrip("`") if " - at `" in message else "$"
            raise ScenarioError(path, message.partition(" - at `")[0]) from exc

    @classmethod
    def from_toml(cls, path: Path) -> Scenario:
        """Load a scenario from a TOML file (same keys as :meth:`from_dict`).

        Raises:
            ScenarioError: the file is not valid TOML or not a valid scenario.
        """
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError("$", f"cannot read {path}: {exc}") from exc
        return cls.from_dict(data)

    def timeline(self) -> tuple[ScenarioRecord, ...]:
        """Every record, scripted and generated, in the order the device takes them."""
        generated = [record for series in self.series for record in series.records()]
        return tuple(sorted((*self.records, *generated), key=lambda r: r.at_offset_seconds))

    def stored_at(self, elapsed_seconds: float) -> tuple[ScenarioRecord, ...]:
        """The records in the device's memory ``elapsed_seconds`` after the start, oldest
        first: taken by then, not erased by ``clear_memory_at``, the newest
        ``memory_capacity`` of them."""
        stored = [r for r in self.timeline() if r.at_offset_seconds <= elapsed_seconds]
        if self.clear_memory_at is not None and elapsed_seconds >= self.clear_memory_at:
            stored = [r for r in stored if r.at_offset_seconds > self.clear_memory_at]
        if self.memory_capacity is not None:
            stored = stored[-self.memory_capacity :]
        return tuple(stored)

    def is_corrupted(self, frame_number: int, transmission: int) -> bool:
        """Whether the ``transmission``-th sending (1-based) of frame ``frame_number`` of a
        transfer is damaged."""
        return (
            frame_number in self.corrupt_frame_numbers
            and transmission <= self.corruptions_per_frame
        )

    def drop_after_bytes(self, transfer_number: int) -> int | None:
        """How many bytes the ``transfer_number``-th transfer (1-based) gets through before
        the link drops; ``None`` when it completes."""
        return self.link_drop_after_bytes if transfer_number <= self.link_drops else None


class DeviceClock:
    """A simulated device's wall clock: real local time plus a skew that set-clock commands
    change. Records are stamped with the skew in force when they were taken.

    Args:
        scenario: provides the initial skew.
        now: the real local wall-clock time (naive); injected so tests control time.
    """

    def __init__(self, scenario: Scenario, now: Callable[[], datetime]) -> None:
        self._now = now
        self.started_at = now()
        self._skews: list[tuple[float, float]] = [(-math.inf, scenario.clock_skew_seconds)]

    def elapsed_seconds(self) -> float:
        """Real seconds since the simulator started."""
        return (self._now() - self.started_at).total_seconds()

    def _skew_at(self, offset_seconds: float) -> float:
        skew = self._skews[0][1]
        for since, value in self._skews:
            if since <= offset_seconds:
                skew = value
        return skew

    def device_now(self) -> datetime:
        """What the device clock shows now."""
        return self._now() + timedelta(seconds=self._skew_at(self.elapsed_seconds()))

    def set_device_time(self, device_time: datetime) -> None:
        """The device clock was set to ``device_time`` now."""
        now = self._now()
        self._skews.append(
            ((now - self.started_at).total_seconds(), (device_time - now).total_seconds())
        )

    def device_time_of(self, record: ScenarioRecord) -> datetime:
        """The device's timestamp of ``record``."""
        offset = record.at_offset_seconds
        return self.started_at + timedelta(seconds=offset + self._skew_at(offset))
