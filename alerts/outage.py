"""Clinic-side outages as pure functions: heartbeats and downtime in, outage intervals out.

A clinic-side outage — ingest down or cut off from the broker, the broker unreachable, the
evaluator itself down — looks, from the data, exactly like a thousand homes going quiet at
once: every CGM stale (S1), every meter silent (S2), every gateway "offline" (S3). It is
not: the readings are waiting in the gateways' outboxes and arrive once the clinic is back.
So the engine raises **one** SYS incident (``SYS1``) per outage and holds S1–S3 back while
the outage lasts and for :data:`RECOVERY_GRACE` after it, the time gateways need to
reconnect and flush their outboxes. Afterwards S1–S3 are evaluated on complete data again,
so a gateway that is really offline raises S3 then.

Nothing here reads a clock, a database or a broker:

* :func:`find_outages` — from the ingest heartbeat spans (``registry.incidents``), the
  evaluator's own broker disconnections and its own downtime (the watermark gap found at
  start-up), the outage intervals up to ``now``;
* :func:`explaining_outage` — whether a stale/missing-data finding is explained by one of
  them (its silence began before the clinic recovered, and ``now`` is inside the outage or
  its recovery grace);
* :func:`plan_incidents` — which SYS incidents to open and resolve so that there is one per
  outage, never one per gateway or patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

INCIDENT_RULE: Final = "SYS1"
"""The rule id of the clinic-side outage incident (severity SYS)."""

SUPPRESSED_RULES: Final = frozenset({"S1", "S2", "S3"})
"""Stale and missing-data rules: the ones a clinic-side outage makes cry wolf."""

HEARTBEAT_INTERVAL: Final = timedelta(seconds=15)
"""How often an ingest worker writes its heartbeat row (``ingest.heartbeat``): well inside
S1's 15-minute warning, so an outage is known long before any stale rule could fire."""

HEARTBEAT_SLACK: Final = timedelta(seconds=30)
"""A heartbeat write may wait behind a slow registry transaction (a lock, a PostgreSQL
failover) or a stop-the-world pause of the worker; 30 s covers that without calling a
healthy ingest dead."""

HEARTBEAT_GRACE: Final = 2 * HEARTBEAT_INTERVAL + HEARTBEAT_SLACK
"""Ingest is silent — down, or up but cut off from the broker — once no heartbeat came for
this long: two missed beats plus :data:`HEARTBEAT_SLACK` (60 s in all)."""

EVALUATOR_GRACE: Final = timedelta(minutes=2)
"""The evaluator moves its watermarks every 10 s while it runs (a third of the 30-s lease)
and trails them by the 60-s in-flight margin; a gap beyond 2 minutes between its last
watermark write and its start-up is downtime, not a slow tick."""

RECOVERY_GRACE: Final = timedelta(minutes=10)
"""How long after recovery S1–S3 stay held back. A gateway's reconnect back-off is capped at
60 s (``gateway.publisher.RECONNECT_MAX_SECONDS``) and it publishes its retained status on
connect, so S3's last-seen moves within a minute; a two-hour backlog is a few dozen readings
per home (24 CGM values and a few meter readings) and leaves in a handful of batches. The
rest is ingest working through every home's backlog at once after a clinic-wide outage. It
stays below S1's 15-minute warning, so a CGM that falls silent only after the recovery is
never held back by it (its silence did not begin during the outage anyway)."""


class OutageCause(StrEnum):
    """What part of the clinic was down."""

    INGEST = "ingest"
    """No ingest worker wrote a heartbeat while connected to the broker: nothing was stored."""
    BROKER = "broker"
    """The evaluator was cut off from the broker: nothing reached it."""
    EVALUATOR = "evaluator"
    """The evaluator itself was down (its watermark gap)."""

    @property
    def explains_silence(self) -> bool:
        """Whether data could look silent because of it.

        Ingest or the broker down: readings were neither stored nor delivered, so "no data"
        is unfounded. The evaluator down alone: ingest stored everything and the evaluator
        catches up from the store, so a silence it sees afterwards is real — an incident,
        but no reason to hold S1–S3 back.
        """
        return self is not OutageCause.EVALUATOR


@dataclass(frozen=True, slots=True)
class AliveSpan:
    """A stretch of time a component was known to be up (and connected, for ingest)."""

    start: datetime
    last_seen: datetime
    """Its last heartbeat; it counts as up until ``last_seen`` + the grace."""


@dataclass(frozen=True, slots=True)
class Outage:
    """A clinic-side outage: from ``start`` (the last sign of life) to ``end`` (recovery)."""

    start: datetime
    end: datetime | None
    """None while it lasts."""
    causes: frozenset[OutageCause]

    @property
    def ongoing(self) -> bool:
        """Whether it has not ended yet."""
        return self.end is None

    @property
    def explains_silence(self) -> bool:
        """Whether any of its causes could make data look silent."""
        return any(cause.explains_silence for cause in self.causes)

    def overlaps(self, start: datetime, end: datetime | None) -> bool:
        """Whether it shares any instant with ``[start, end)`` (None: open-ended)."""
        mine_ends_after_start = self.end is None or self.end > start
        other_ends_after_mine_starts = end is None or end > self.start
        return mine_ends_after_start and other_ends_after_mine_starts


def silent_gaps(
    spans: Iterable[AliveSpan],
    *,
    horizon: datetime,
    now: datetime,
    grace: timedelta,
) -> list[tuple[datetime, datetime | None]]:
    """The intervals in ``[horizon, now]`` not covered by any span (each extended by grace).

    A gap starts at the last heartbeat before it (the silence began there, not when the
    grace ran out) and ends at the next span's start, or is open (None) when nothing has
    been heard for ``grace`` or more at ``now``. With no span at all since ``horizon`` the
    whole interval is one open gap once ``grace`` has passed: nothing proves the component
    ran.
    """
    ordered = sorted((s for s in spans if s.last_seen + grace > horizon), key=lambda s: s.start)
    gaps: list[tuple[datetime, datetime | None]] = []
    # The horizon counts as a sign of life: nothing is judged silent sooner than ``grace``
    # after it (an evaluator starting a few seconds before ingest sees no outage).
    covered_until = horizon + grace
    last_seen = horizon
    for span in ordered:
        if span.start > covered_until:
            gaps.append((last_seen, span.start))
        if span.last_seen + grace > covered_until:
            covered_until = span.last_seen + grace
            last_seen = span.last_seen
    if now >= covered_until:
        gaps.append((last_seen, None))
    return gaps


def find_outages(
    ingest_spans: Sequence[AliveSpan],
    *,
    now: datetime,
    horizon: datetime,
    broker_disconnects: Sequence[tuple[datetime, datetime | None]] = (),
    evaluator_down: tuple[datetime, datetime] | None = None,
    heartbeat_grace: timedelta = HEARTBEAT_GRACE,
) -> list[Outage]:
    """The clinic-side outages between ``horizon`` and ``now``, oldest first.

    Args:
        ingest_spans: every ingest worker's heartbeat spans (a span ends when a worker
            stops or loses the broker; several workers' spans may overlap — ingest is up
            while any one of them is).
        now: the evaluation instant.
        horizon: how far back to look; before it nothing is judged.
        broker_disconnects: the evaluator's own periods without the broker (end None:
            still disconnected).
        evaluator_down: the evaluator's downtime found at start-up: (last watermark
            write, start-up), when the gap exceeded :data:`EVALUATOR_GRACE`.
        heartbeat_grace: silence longer than this is an outage (:data:`HEARTBEAT_GRACE`).

    Overlapping intervals of any causes merge into one outage: a broker crash silences
    ingest and the evaluator together, and that is one incident, not two.
    """
    intervals: list[tuple[datetime, datetime | None, OutageCause]] = [
        (start, end, OutageCause.INGEST)
        for start, end in silent_gaps(ingest_spans, horizon=horizon, now=now, grace=heartbeat_grace)
    ]
    intervals += [(start, end, OutageCause.BROKER) for start, end in broker_disconnects]
    if evaluator_down is not None and evaluator_down[1] - evaluator_down[0] > EVALUATOR_GRACE:
        intervals.append((evaluator_down[0], evaluator_down[1], OutageCause.EVALUATOR))
    intervals.sort(key=lambda item: item[0])
    merged: list[Outage] = []
    for start, end, cause in intervals:
        if merged and merged[-1].overlaps(start, end if end is not None else None):
            last = merged[-1]
            new_end = None if last.end is None or end is None else max(last.end, end)
            merged[-1] = Outage(last.start, new_end, last.causes | {cause})
        else:
            merged.append(Outage(start, end, frozenset({cause})))
    return merged


def explaining_outage(
    rule_id: str,
    silent_since: datetime | None,
    outages: Sequence[Outage],
    now: datetime,
    *,
    grace: timedelta = RECOVERY_GRACE,
) -> Outage | None:
    """The outage that explains a stale/missing-data finding of ``rule_id`` at ``now``, if any.

    A finding is explained when its rule is one of S1–S3, an outage that can make data look
    silent (ingest or broker) is ongoing or ended less than ``grace`` ago, and the silence
    began before the clinic recovered (``silent_since`` < the outage's end; None: unknown,
    taken as explained while the outage window lasts). During the outage and its grace the
    store is incomplete, so "no data" cannot be concluded; after it, it can again.
    """
    if rule_id not in SUPPRESSED_RULES:
        return None
    for outage in outages:
        if not outage.explains_silence or now < outage.start:
            continue
        if outage.end is not None:
            if now >= outage.end + grace:
                continue
            if silent_since is not None and silent_since >= outage.end:
                continue
        return outage
    return None


@dataclass(frozen=True, slots=True)
class KnownIncident:
    """A SYS1 incident already recorded."""

    incident_id: int
    started_at: datetime
    ended_at: datetime | None
    resolved: bool


class IncidentActionKind(StrEnum):
    """What :func:`plan_incidents` asks the registry to do."""

    OPEN = "open"
    """Open an incident for an ongoing outage."""
    RESOLVE = "resolve"
    """Resolve the open incident: its outage ended."""
    RECORD = "record"
    """Record an outage that began and ended unseen (found afterwards): opened and
    resolved at once, so every outage has its incident."""


@dataclass(frozen=True, slots=True)
class IncidentAction:
    """One change to the incidents."""

    kind: IncidentActionKind
    started_at: datetime
    ended_at: datetime | None
    """The recovery instant (RESOLVE, RECORD); None for OPEN."""
    causes: frozenset[OutageCause]
    incident_id: int | None = None
    """The incident to resolve (RESOLVE only)."""


def plan_incidents(
    outages: Sequence[Outage], incidents: Sequence[KnownIncident], now: datetime
) -> list[IncidentAction]:
    """The actions that leave exactly one incident per outage.

    * An ongoing outage with no open incident opens one; with one, nothing changes (a cause
      joining it does not open a second).
    * An open incident with no ongoing outage is resolved at the end of the ended outage it
      overlaps (the recovery instant) — or at ``now`` when that outage is no longer in view.
    * An ended outage no incident overlaps is recorded, opened and resolved at once (it
      happened while the evaluator was down too, or between two ticks).
    """
    actions: list[IncidentAction] = []
    open_ones = [i for i in incidents if not i.resolved]
    ongoing = [o for o in outages if o.ongoing]
    if ongoing and not open_ones:
        first = ongoing[0]
        actions.append(IncidentAction(IncidentActionKind.OPEN, first.start, None, first.causes))
    if not ongoing:
        for incident in open_ones:
            ended = [o for o in outages if o.overlaps(incident.started_at, None)]
            end = max((o.end for o in ended if o.end is not None), default=now)
            causes = frozenset().union(*(o.causes for o in ended))
            actions.append(
                IncidentAction(
                    IncidentActionKind.RESOLVE,
                    incident.started_at,
                    end,
                    causes,
                    incident.incident_id,
                )
            )
    for outage in outages:
        if outage.ongoing or any(outage.overlaps(i.started_at, i.ended_at) for i in incidents):
            continue
        actions.append(
            IncidentAction(IncidentActionKind.RECORD, outage.start, outage.end, outage.causes)
        )
    return actions
