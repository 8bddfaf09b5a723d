"""The backtest over stored history: patients from the registry, readings from the store.

``vitalgate alerts backtest --store URL --registry URL --since 30d`` runs the same
:func:`alerts.backtest.run_backtest` as the file form: each registry patient's profile
(conditions, time zone) as the evaluator sees it, the readings measured in the last
``since`` before ``now`` (the injected clock), and the clock run on to ``now`` so that a
patient who went silent shows the stale and missing-data alerts the rules would have raised.
The read is recorded in the audit log, naming every patient whose readings were read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.engine import Engine

from alerts.backtest import BacktestError, BacktestResult, run_backtest
from alerts.evaluator import RegistryPatientDirectory
from alerts.rules.loader import parse_duration
from alerts.rules.model import RuleSet
from alerts.window import reading_from_stored
from ingest.stores.base import ReadingStore
from readings.files import PatientProfile
from readings.model import Kind, Reading
from registry.audit import record_audit
from registry.db import session_scope

MAX_SINCE: Final = timedelta(days=366)
"""The longest history one run reads: a year of a CGM patient is ≈ 105,000 readings in
memory (≈ 60 MB); longer studies go through files."""

AUDIT_ACTION: Final = "alerts.backtest"


@dataclass(frozen=True, slots=True)
class StoredHistory:
    """What the stored-history backtest read."""

    readings: list[Reading]
    profiles: list[PatientProfile]
    start: datetime
    end: datetime


def parse_since(text: str) -> timedelta:
    """``--since``: ``30d``, ``12h``, ``90min``, positive and at most :data:`MAX_SINCE`.

    Raises:
        BacktestError: naming the option and what is wrong with the value.
    """
    try:
        since = parse_duration(text)
    except ValueError:
        raise BacktestError(f"--since: {text!r} is not a duration like 30d, 12h or 90min") from None
    if since <= timedelta(0):
        raise BacktestError(f"--since: {text!r} must be longer than zero")
    if since > MAX_SINCE:
        raise BacktestError(f"--since: {text!r} is longer than {MAX_SINCE.days} days")
    return since


def load_stored_history(
    engine: Engine, store: ReadingStore, since: timedelta, now: datetime
) -> StoredHistory:
    """Every registry patient's profile and readings measured in ``[now − since, now]``."""
    directory = RegistryPatientDirectory(engine)
    start = now - since
    profiles: list[PatientProfile] = []
    readings: list[Reading] = []
    for patient_id in directory.patient_ids():
        profile = directory.profile(patient_id)
        if profile is None:  # removed between the two queries
            continue
        profiles.append(profile)
        for kind in Kind:
            # The store's end is exclusive: a reading measured at `now` belongs in.
            stored = store.readings(patient_id, kind, start, now + timedelta(microseconds=1))
            readings.extend(reading_from_stored(s) for s in stored)
    return StoredHistory(readings, profiles, start, now)


def backtest_stored(
    engine: Engine,
    store: ReadingStore,
    rules: RuleSet,
    since: timedelta,
    now: datetime,
    *,
    actor: str,
) -> BacktestResult:
    """Backtest the rules over the stored history, and audit the read.

    Raises:
        BacktestError: an override that cannot apply.
        registry.errors.RegistryError, ingest.stores.base.StoreError: the registry or the
            store failed.
    """
    history = load_stored_history(engine, store, since, now)
    result = run_backtest(history.readings, history.profiles, rules, until=now)
    read = sorted({r.patient_id for r in history.readings})
    _audit(engine, actor, now, history, read)
    return result


def _audit(
    engine: Engine, actor: str, now: datetime, history: StoredHistory, read: Sequence[str]
) -> None:
    with session_scope(engine) as session:
        record_audit(
            session,
            at=now,
            actor=actor,
            action=AUDIT_ACTION,
            target="readings",
            detail={
                "from": history.start.isoformat(),
                "to": history.end.isoformat(),
                "patients": len(history.profiles),
                "readings": len(history.readings),
            },
            patient_ids=list(read),
        )
