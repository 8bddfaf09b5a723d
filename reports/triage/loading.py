"""Gather the triage facts of many patients: the registry, the fleet tables, the store.

The one impure part of :mod:`reports.triage`. For N patients it costs a fixed handful of
registry queries per 500 patients (patients, conditions, targets, pairings, fleet status),
one batched store query for every patient's latest readings, and one store query per
patient and kind the patient has measured since the previous period began (at most five
kinds judged), so 300 patients cost well under a second on the benchmark's figures
(``bench/reports.py``: 10,000 patients × 14 days summarised in ≈ 15 s).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.window import reading_from_stored
from ingest.stores.base import ReadingStore, StoredReading
from readings.model import Kind, Reading
from registry.care import PatientCareRepository
from registry.care_models import PatientTarget
from registry.fleet import FleetRepository
from registry.models import DevicePairing, Patient
from registry.triage import ReviewRecord
from reports.loading import TARGET_METRICS
from reports.summaries import Period, Targets, summarise_patient
from reports.triage.listing import DeviceFact, GatewayFact, PatientFacts, ReviewMark

TRIAGE_KINDS: Final = (
    Kind.CGM_GLUCOSE,
    Kind.GLUCOSE,
    Kind.BLOOD_PRESSURE,
    Kind.WEIGHT,
    Kind.SPO2,
)
"""The kinds a triage rule judges (heart rate and temperature have no triage bucket)."""

COMPARED_KINDS: Final = frozenset({Kind.CGM_GLUCOSE, Kind.GLUCOSE, Kind.BLOOD_PRESSURE})
"""The kinds whose previous period is read: the TIR drop and the changes shown (TIR, meter
in target, home BP mean). Weight and SpO₂ are judged on the current period only."""

_IDS_PER_QUERY: Final = 500

Bounds: TypeAlias = tuple[float | None, float | None]
"""A target's (low, high) in canonical units; ``None`` is an open side."""


def readings_of(stored: Iterable[StoredReading]) -> list[Reading]:
    """The store's readings as :class:`Reading` values, equal to
    :func:`alerts.window.reading_from_stored`'s, at a tenth of its cost.

    The first reading of each device, kind and unit goes through the full contract check
    (``reading_from_stored``); the others are copies of it with their own id, values, time,
    flags and context. The store only holds readings that passed that check when ingest
    wrote them, and re-deriving every id (a UUIDv5) and re-validating every field was
    80 % of the triage view's time for a CGM wearer's 8,000 readings.
    """
    templates: dict[tuple[Kind, str, str, str, str], Reading] = {}
    out: list[Reading] = []
    set_field = msgspec.structs.force_setattr
    for one in stored:
        key = (one.kind, one.device_id, one.source_unit, one.patient_id, one.gateway_id)
        template = templates.get(key)
        if template is None:
            template = templates[key] = reading_from_stored(one)
            out.append(template)
            continue
        reading = copy.copy(template)
        set_field(reading, "id", one.id)
        set_field(reading, "values", type(template.values)(**one.values))
        set_field(reading, "measured_at", one.measured_at)
        set_field(reading, "received_at", one.measured_at)  # as reading_from_stored does
        set_field(reading, "flags", tuple(one.flags))
        set_field(reading, "context", dict(one.context) if one.context else {})
        set_field(reading, "seq", one.seq)
        set_field(reading, "device_time", one.device_time)
        out.append(reading)
    return out


def periods(today: date, days: int, zone: ZoneInfo) -> tuple[Period, Period]:
    """The current period (the ``days`` local days ending today) and the one before it."""
    first = today - timedelta(days=days - 1)
    current = Period.local_days(first, today + timedelta(days=1), zone)
    previous = Period.local_days(first - timedelta(days=days), first, zone)
    return current, previous


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _IDS_PER_QUERY] for i in range(0, len(ids), _IDS_PER_QUERY)]


def _targets(session: Session, ids: Sequence[str], at: datetime) -> dict[str, dict[str, Bounds]]:
    """``patient -> metric -> (low, high)`` of the target rows in force at ``at``."""
    found: dict[str, dict[str, Bounds]] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(PatientTarget.patient_id, PatientTarget.metric, PatientTarget.low,
                   PatientTarget.high)
            .where(
                PatientTarget.patient_id.in_(chunk),
                PatientTarget.metric.in_(TARGET_METRICS),
                PatientTarget.effective_from <= at,
            )
            .order_by(PatientTarget.effective_from, PatientTarget.id)
        )  # fmt: skip
        for patient_id, metric, low, high in rows:
            found.setdefault(patient_id, {})[metric] = (low, high)  # the newest wins
    return found


def _fleet(
    session: Session, ids: Sequence[str], now: datetime
) -> tuple[dict[str, tuple[GatewayFact, ...]], dict[str, tuple[DeviceFact, ...]]]:
    pairings: list[tuple[str, str, str]] = []
    for chunk in _chunks(ids):
        pairings += [
            (row.patient_id, row.device_id, row.gateway_id)
            for row in session.execute(
                select(DevicePairing.patient_id, DevicePairing.device_id, DevicePairing.gateway_id)
                .where(DevicePairing.patient_id.in_(chunk), DevicePairing.valid_to.is_(None))
                .order_by(DevicePairing.device_id)
            )
        ]
    fleet = FleetRepository(session, clock=lambda: now)
    gateway_status = fleet.gateway_statuses(sorted({g for _, _, g in pairings}))
    device_status = fleet.device_statuses(sorted({d for _, d, _ in pairings}))
    gateways: dict[str, dict[str, GatewayFact]] = {}
    devices: dict[str, list[DeviceFact]] = {}
    for patient_id, device_id, gateway_id in pairings:
        status = gateway_status.get(gateway_id)
        gateways.setdefault(patient_id, {})[gateway_id] = GatewayFact(
            gateway_id,
            status.state.value if status else "unknown",
            status.since if status else None,
        )
        device = device_status.get(device_id)
        if device is not None:
            devices.setdefault(patient_id, []).append(
                DeviceFact(device_id, device.battery_percent, device.battery_low_at is not None)
            )
    return (
        {pid: tuple(each.values()) for pid, each in gateways.items()},
        {pid: tuple(each) for pid, each in devices.items()},
    )


def load_triage_facts(
    session: Session,
    store: ReadingStore,
    patient_ids: Sequence[str],
    *,
    teams: Mapping[str, frozenset[str]],
    reviews: Mapping[str, ReviewRecord],
    period_days: int,
    now: datetime,
) -> list[PatientFacts]:
    """The :class:`PatientFacts` of each patient in ``patient_ids`` that exists, id order.

    Raises:
        ingest.stores.base.StoreError: the reading store is unavailable.
    """
    ids = sorted(set(patient_ids))
    rows: dict[str, Patient] = {}
    for chunk in _chunks(ids):
        rows.update(
            (r.id, r) for r in session.scalars(select(Patient).where(Patient.id.in_(chunk)))
        )
    care = PatientCareRepository(session, clock=lambda: now)
    conditions = care.conditions_of(list(rows))
    statuses = care.statuses_at(list(rows), now)
    bounds = _targets(session, list(rows), now)
    gateways, devices = _fleet(session, list(rows), now)
    latest = store.last_readings_of(list(rows))
    facts = []
    for patient_id in sorted(rows):
        row = rows[patient_id]
        zone = ZoneInfo(row.time_zone)
        current, previous = periods(now.astimezone(zone).date(), period_days, zone)
        own = frozenset(str(c) for c in conditions.get(patient_id, frozenset()))
        targets = Targets.from_bounds(bounds.get(patient_id, {}), own)
        last = latest.get(patient_id, {})
        readings: list[Reading] = []
        for kind in TRIAGE_KINDS:
            newest = last.get(kind)
            if newest is None or newest.measured_at < previous.start:
                continue  # nothing of this kind in either period: skip the query
            readings += readings_of(store.readings(patient_id, kind, previous.start, current.end))
        review = reviews.get(patient_id)
        facts.append(
            PatientFacts(
                patient_id=patient_id,
                display_name=row.display_name,
                conditions=own,
                community=row.community,
                village=row.village,
                teams=teams.get(patient_id, frozenset()),
                current=summarise_patient(patient_id, readings, current, targets),
                previous=summarise_patient(patient_id, readings, previous, targets),
                last_measured=max((r.measured_at for r in last.values()), default=None),
                gateways=gateways.get(patient_id, ()),
                devices=devices.get(patient_id, ()),
                reviewed=ReviewMark(review.reviewed_by, review.reviewed_at) if review else None,
                status=statuses[patient_id].status.value if patient_id in statuses else "active",
            )
        )
    return facts
