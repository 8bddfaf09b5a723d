"""The evaluator: accepted readings → rule findings, per partition, in order, none missed.

Ingest republishes every stored reading on ``accepted/{partition}`` (the partition is a
stable hash of the patient id). The evaluator

1. **leases partitions** in the registry (:mod:`registry.evaluation`): one worker holds a
   partition at a time, renews it while it lives, and another takes it over when it dies —
   so one patient's readings are evaluated in order by exactly one worker, which a
   ``$share`` subscription (round-robin) cannot give;
2. **catches up** on every partition it newly holds before consuming it: for each patient
   of the partition, the window since the partition's watermark is read from the reading
   store and evaluated. ``accepted/`` lives in the broker's memory; a broker restarted while
   the evaluator was down loses it, the store does not;
3. evaluates each arriving batch with the patient's window (loaded from the store on a
   miss, :mod:`alerts.window`), the ids that arrived (only they can be *late*), and the
   injected clock; hands the findings to the sink (the alert lifecycle);
4. advances the partition's **watermark** (fenced by the lease's epoch) after the sink
   returned, to the batch's ``sent_at`` minus :data:`IN_FLIGHT_MARGIN`, and exposes the lag
   (now − watermark), so pages can say "alerting delayed since 14:02";
5. on a timer, evaluates every patient of its partitions with nothing arriving, which is
   how stale and missing-data rules (S1–S3) fire; S1/S2 count a kind's silence from when
   monitoring of it started (the patient's pairings, :mod:`alerts.monitoring`), so a
   device just paired is not "silent for 3 days";
6. with an :class:`alerts.incidents.OutageMonitor`, holds S1–S3 back while the clinic
   itself is down (ingest silent, the broker unreachable) and for the recovery grace after,
   records them as suppressions, and keeps one ``SYS1`` incident per outage instead.

The message handling (:meth:`Evaluator.handle_accepted`) is a plain method fed bytes, so
tests drive it without a broker; :class:`EvaluatorService` attaches it to MQTT through the
one MQTT adapter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

from sqlalchemy import Engine, select

from alerts.incidents import OutageMonitor
from alerts.model import Finding, FindingStatus
from alerts.monitoring import (
    PairingSpan,
    ProfileKinds,
    load_pairing_spans,
    monitoring_starts,
    shipped_profile_kinds,
)
from alerts.window import PatientWindows
from ingest.stores.base import ReadingStore
from readings.codec import decode_envelope
from readings.errors import ContractError
from readings.files import PatientProfile
from readings.model import Kind, Reading
from readings.topics import DEFAULT_PARTITIONS, partition_for
from registry.care_models import PatientConditionRow
from registry.db import session_scope
from registry.evaluation import (
    HeldPartition,
    advance_watermark,
    claim_partitions,
    release_partitions,
    watermark,
    watermarks,
)
from registry.fleet_models import GatewayStatusRow
from registry.models import DevicePairing, Patient

log = logging.getLogger(__name__)

PROFILE_TTL: Final = timedelta(seconds=30)
"""How long a patient's conditions and time zone are reused between evaluations: they change
at a doctor's visit, not between two readings, and reading them for every envelope was a
tenth of the worker's time at 1,000 readings/s (bench/alerts_latency.py)."""
WATERMARK_INTERVAL: Final = timedelta(seconds=1)
"""A partition's watermark is written at most this often while messages stream in (and at
once when the inbox runs empty, :meth:`Evaluator.mark_caught_up`). Writing it after every
envelope was 40 % of the worker's time at 1,000 readings/s (bench/alerts_latency.py); a mark
up to a second older only means a catch-up after a crash re-evaluates one second more, which
the lifecycle absorbs (one open alert per patient and rule)."""
IN_FLIGHT_MARGIN: Final = timedelta(seconds=60)
"""Several ingest workers publish to one partition; a batch stored a little earlier by
another worker can arrive after a later one. The watermark trails each batch's ``sent_at``
by this much, so a catch-up after a crash re-evaluates that overlap (findings are
idempotent per patient and rule; re-evaluating is harmless, missing is not)."""
DEFAULT_LEASE_TTL: Final = timedelta(seconds=30)
"""A dead worker's partitions wait at most this long for a new holder."""
DEFAULT_TICK: Final = timedelta(minutes=1)
"""Scheduled evaluation period: S1 (CGM silent 15 min) is then late by at most a minute."""

EvaluateFn = Callable[..., list[Finding]]
"""``alerts.rules.engine.evaluate``: (readings, profile, rules, now, *, arrived=…) → findings."""
MonitoringSinceFn = Callable[[str, datetime], Mapping[Kind, datetime]]
"""(patient id, now) → per kind, since when it is expected (S1/S2; a kind absent is not):
:meth:`RegistryPatientDirectory.monitoring_since`."""
FindingSink = Callable[[str, Sequence[Finding]], None]
"""Receives one patient's findings of one evaluation (the alert lifecycle)."""


class PatientDirectory(Protocol):
    """Who the monitored patients are and what rules need to know about each."""

    def patient_ids(self) -> list[str]:
        """Every patient the evaluator should evaluate."""
        ...

    def profile(self, patient_id: str) -> PatientProfile | None:
        """The patient's conditions, zone and overrides; None if not (or no longer) known."""
        ...


@dataclass(frozen=True, slots=True)
class _Known:
    """What the directory keeps of one patient for :data:`PROFILE_TTL`."""

    profile: PatientProfile | None
    pairings: tuple[PairingSpan, ...] = ()


class RegistryPatientDirectory:
    """Patients and their conditions from the care registry, each profile kept for
    :data:`PROFILE_TTL` (a condition added by the doctor applies within that time), and
    with it the patient's device pairings, for S1/S2's :meth:`monitoring_since` (a device
    paired or unpaired counts within that time too)."""

    def __init__(
        self,
        engine: Engine,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        profile_kinds: ProfileKinds | None = None,
    ) -> None:
        """``profile_kinds``: the kinds each device profile produces (default: the shipped
        profiles, read on first use)."""
        self._engine = engine
        self._monotonic = monotonic
        self._profile_kinds = profile_kinds
        self._known: dict[str, tuple[float, _Known]] = {}

    def patient_ids(self) -> list[str]:
        with session_scope(self._engine, write=False) as session:
            return list(session.scalars(select(Patient.id).order_by(Patient.id)))

    def profile(self, patient_id: str) -> PatientProfile | None:
        return self._lookup(patient_id).profile

    def monitoring_since(self, patient_id: str, now: datetime) -> Mapping[Kind, datetime]:
        """Per kind, since when the patient's paired devices produce it, at ``now``
        (:func:`alerts.monitoring.monitoring_starts`); the evaluator's ``monitoring_since``."""
        return monitoring_starts(self._lookup(patient_id).pairings, now)

    def _lookup(self, patient_id: str) -> _Known:
        now = self._monotonic()
        cached = self._known.get(patient_id)
        if cached is not None and now - cached[0] < PROFILE_TTL.total_seconds():
            return cached[1]
        found = self._load(patient_id)
        self._known[patient_id] = (now, found)
        return found

    def _kinds_of(self, profile_id: str) -> frozenset[Kind]:
        if self._profile_kinds is None:
            self._profile_kinds = shipped_profile_kinds()
        return self._profile_kinds(profile_id)

    def _load(self, patient_id: str) -> _Known:
        from zoneinfo import ZoneInfo

        with session_scope(self._engine, write=False) as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                return _Known(None)
            conditions = frozenset(
                session.scalars(
                    select(PatientConditionRow.condition).where(
                        PatientConditionRow.patient_id == patient_id
                    )
                )
            )
            profile = PatientProfile(
                patient_id=patient_id,
                conditions=conditions,
                time_zone=ZoneInfo(patient.time_zone),
            )
            pairings = load_pairing_spans(session, patient_id, self._kinds_of)
            return _Known(profile, tuple(pairings))


class RegistryGatewayLastSeen:
    """S3's input from the fleet tables: the patient's gateways and when each was last heard.

    The gateways are those of the patient's current device pairings; the time is the fleet
    listener's ``gateway_status.last_seen_at`` (moved by every online status). A gateway
    never heard has no entry: S3 cannot call it offline before it was ever online.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, patient_id: str) -> dict[str, datetime]:
        from registry.clock import aware_utc

        with session_scope(self._engine, write=False) as session:
            rows = session.execute(
                select(GatewayStatusRow.gateway_id, GatewayStatusRow.last_seen_at)
                .join(DevicePairing, DevicePairing.gateway_id == GatewayStatusRow.gateway_id)
                .where(DevicePairing.patient_id == patient_id, DevicePairing.valid_to.is_(None))
                .distinct()
            ).all()
        return {g: aware_utc(seen, "last_seen_at") for g, seen in rows if seen is not None}


SuppressionSink = Callable[[str, Sequence[tuple[Finding, datetime]]], None]
"""Receives one patient's findings held back by an outage, each with the outage's start
(``alerts.pipeline.LifecycleSink.suppress``)."""


@dataclass
class EvaluatorStats:
    """Counts for metrics and tests."""

    batches: int = 0
    readings: int = 0
    duplicates: int = 0
    findings: int = 0
    caught_up_patients: int = 0
    ignored_not_held: int = 0
    rejected_messages: int = 0
    suppressed_by_outage: int = 0
    by_partition_lag: dict[int, float] = field(default_factory=dict)


class Evaluator:
    """Evaluates readings of the partitions it holds; see the module docstring."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: ReadingStore,
        directory: PatientDirectory,
        rules: object,
        evaluate: EvaluateFn,
        sink: FindingSink,
        clock: Callable[[], datetime],
        holder: str,
        partitions: int = DEFAULT_PARTITIONS,
        lease_ttl: timedelta = DEFAULT_LEASE_TTL,
        lookback: timedelta | None = None,
        gateway_last_seen: Callable[[str], Mapping[str, datetime]] | None = None,
        monitoring_since: MonitoringSinceFn | None = None,
        summary: Callable[..., object] | None = None,
        outage: OutageMonitor | None = None,
        on_suppressed: SuppressionSink | None = None,
    ) -> None:
        self._engine = engine
        self._directory = directory
        self._rules = rules
        self._evaluate = evaluate
        self._sink = sink
        self._clock = clock
        self.clock = clock
        """The injected clock (the service's timers read it too)."""
        self.holder = holder
        self.partitions = partitions
        self._ttl = lease_ttl
        self.lease_ttl = lease_ttl
        window = (
            lookback if lookback is not None else getattr(rules, "lookback", timedelta(days=14))
        )
        self._lookback: timedelta = window
        self.windows = PatientWindows(store, window)
        self._gateway_last_seen = gateway_last_seen
        self._monitoring_since = monitoring_since
        """S1/S2's start of monitoring per kind (None: from the readings, as a backtest)."""
        self._summary = summary
        """G7's CGM summary (``alerts.summary_adapter.cgm_summary_for_rules``)."""
        self.outage = outage
        """The clinic's own downtime (None: every finding stands, as in the backtest)."""
        self._on_suppressed = on_suppressed
        self.held: dict[int, HeldPartition] = {}
        self._advanced_at: dict[int, datetime] = {}
        self.stats = EvaluatorStats()

    # -- leases ---------------------------------------------------------------------

    def refresh_leases(self) -> list[int]:
        """Renew and claim leases; catch up each newly held partition. Returns new ones."""
        now = self._clock()
        if self.outage is not None:
            # Before any catch-up: the first refresh measures the evaluator's own downtime
            # from the watermarks, which the catch-up is about to move.
            self.outage.refresh()
        held = claim_partitions(
            self._engine, holder=self.holder, partitions=self.partitions, now=now, ttl=self._ttl
        )
        lost = set(self.held) - {h.partition for h in held}
        for partition in lost:
            self._forget_partition(partition)
        self.held = {h.partition: h for h in held}
        fresh = [h.partition for h in held if h.newly_acquired]
        for partition in fresh:
            self.catch_up(partition)
        return fresh

    def release(self) -> None:
        """Give every lease back (clean shutdown)."""
        release_partitions(self._engine, holder=self.holder, partitions=list(self.held))
        self.held = {}

    def _forget_partition(self, partition: int) -> None:
        for patient_id in self._patients_of(partition):
            self.windows.forget(patient_id)

    def _patients_of(self, partition: int) -> list[str]:
        return [
            p
            for p in self._directory.patient_ids()
            if partition_for(p, self.partitions) == partition
        ]

    # -- evaluation -----------------------------------------------------------------

    def catch_up(self, partition: int) -> None:
        """Evaluate every patient of ``partition`` for what arrived since its watermark."""
        now = self._clock()
        since = watermark(self._engine, partition)
        start = since if since is not None else now - self._lookback
        for patient_id in self._patients_of(partition):
            window = self.windows.window(patient_id, now)
            # The store keeps no arrival time: readings measured since the watermark are
            # treated as having arrived now (a late one among them gets its review alert;
            # one measured before the watermark but stored after it is in the window for
            # the window rules, and too old to page anyway).
            arrived = {r.id for r in window if r.measured_at >= start - IN_FLIGHT_MARGIN}
            self._evaluate_patient(patient_id, window, arrived, now)
            self.stats.caught_up_patients += 1
        self._advance(partition, now)

    def handle_accepted(self, partition: int, payload: bytes) -> None:
        """Evaluate one ``accepted/{partition}`` message (an envelope of stored readings).

        Messages of a partition this worker does not hold are ignored: its holder (or the
        next one, by catch-up) evaluates them. An undecodable message is logged and
        counted, never retried for ever — ingest only forwards what it stored.
        """
        held = self.held.get(partition)
        if held is None:
            self.stats.ignored_not_held += 1
            return
        try:
            envelope = decode_envelope(payload)
        except ContractError as exc:
            self.stats.rejected_messages += 1
            log.error("accepted message on partition %d not decodable: %s", partition, exc.args[0])
            return
        now = self._clock()
        by_patient: dict[str, list[Reading]] = {}
        for reading in envelope.readings:
            by_patient.setdefault(reading.patient_id, []).append(reading)
        for patient_id, readings in by_patient.items():
            new_ids = self.windows.add(patient_id, readings, now)
            self.stats.readings += len(readings)
            self.stats.duplicates += len(readings) - len(new_ids)
            if not new_ids:
                continue  # a redelivery: already evaluated
            window = self.windows.window(patient_id, now)
            self._evaluate_patient(patient_id, window, new_ids, now)
        self.stats.batches += 1
        last = self._advanced_at.get(partition)
        if last is None or now - last >= WATERMARK_INTERVAL:
            self._advance(partition, min(envelope.sent_at, now))

    def mark_caught_up(self) -> None:
        """Every message delivered so far has been evaluated: move each held partition's
        watermark to now (minus the in-flight margin).

        Called by the service only while it is connected and its inbox is empty, so the
        watermark — and the lag the pages show — means "evaluated up to", not "the last
        reading was at": a partition with no readings at night is not "behind".
        """
        now = self._clock()
        for partition in list(self.held):
            self._advance(partition, now)

    def tick(self) -> None:
        """Scheduled evaluation with nothing arriving (stale and missing-data rules)."""
        if self.outage is not None:
            self.outage.refresh()
        now = self._clock()
        for partition in list(self.held):
            for patient_id in self._patients_of(partition):
                window = self.windows.window(patient_id, now)
                self._evaluate_patient(patient_id, window, set(), now)

    def lag_seconds(self) -> dict[int, float]:
        """now − watermark of every held partition (unknown watermark: not listed)."""
        now = self._clock()
        marks = watermarks(self._engine)
        return {p: max(0.0, (now - marks[p]).total_seconds()) for p in self.held if p in marks}

    def _evaluate_patient(
        self, patient_id: str, window: list[Reading], arrived: set[str], now: datetime
    ) -> None:
        profile = self._directory.profile(patient_id)
        if profile is None:
            return
        last_seen = self._gateway_last_seen(patient_id) if self._gateway_last_seen else None
        since = self._monitoring_since(patient_id, now) if self._monitoring_since else None
        findings = self._evaluate(
            window,
            profile,
            self._rules,
            now,
            arrived=arrived,
            gateway_last_seen=last_seen,
            monitoring_since=since,
            summary=self._summary,
        )
        if self.outage is not None:
            findings = self._hold_back(patient_id, findings, window, last_seen, now)
        self.stats.findings += len(findings)
        # Also an empty list: the lifecycle resolves what no longer holds only when told.
        self._sink(patient_id, findings)

    def _hold_back(
        self,
        patient_id: str,
        findings: list[Finding],
        window: list[Reading],
        last_seen: Mapping[str, datetime] | None,
        now: datetime,
    ) -> list[Finding]:
        """The findings that stand; S1–S3 explained by a clinic-side outage are recorded
        as suppressions instead (a clear finding always stands: it resolves nothing wrongly)."""
        assert self.outage is not None
        kept: list[Finding] = []
        held: list[tuple[Finding, datetime]] = []
        for finding in findings:
            outage = None
            if finding.status is not FindingStatus.CLEAR:
                outage = self.outage.explain(finding, window, last_seen, now)
            if outage is None:
                kept.append(finding)
            else:
                held.append((finding, outage.start))
        if held:
            self.stats.suppressed_by_outage += len(held)
            if self._on_suppressed is not None:
                self._on_suppressed(patient_id, held)
        return kept

    def _advance(self, partition: int, through: datetime) -> None:
        held = self.held.get(partition)
        if held is None:
            return
        self._advanced_at[partition] = self._clock()
        advance_watermark(
            self._engine,
            partition=partition,
            through=through - IN_FLIGHT_MARGIN,
            holder=self.holder,
            epoch=held.epoch,
            now=self._clock(),
        )
