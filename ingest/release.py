"""Releasing quarantined readings once the cause of their refusal was fixed.

An operator fixes the cause (binds the device, corrects a limit, decides whose a meter's
old readings are) and releases the entry: the same examination the worker runs
(:func:`ingest.examine.examine_message`) is run again, in this process, on the entry's
raw bytes — nothing is published in the gateway's name — and the readings that now pass
are written to the reading store. The entry is marked released (kept, never deleted) only
if every one of its readings passed and was stored; otherwise it stays, with the new
verdicts reported. Every attempt is recorded in the registry's audit log, a refused one
too.

Readings measured before their binding's history start (``before_binding``) are a
clinical decision: they are stored only when a named person decided they belong to the
bound patient (``decided_by``), and that name and the reason are recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import msgspec
from sqlalchemy import Engine

from ingest.examine import Examination, OwnershipCheck, Verdict, examine_message, notice_reason
from ingest.stores.base import ReadingStore
from ingest.validate import PlausibilityLimits
from ingest.worker import IngestError
from registry.audit import AuditOutcome, record_audit
from registry.db import session_scope
from registry.quarantine import QuarantineReason, QuarantineRecord, QuarantineStore

RELEASE_ACTION: Final = "quarantine.release"
"""The audit log's action for a release (one row per entry)."""
_WIRE_VERSION: Final = 1


class ReleaseError(IngestError):
    """An entry cannot be released as asked."""


class DecisionRequired(ReleaseError):
    """Releasing a ``before_binding`` entry needs the person who decided, and why.

    Attributes:
        entry_id: the entry's row id.
    """

    def __init__(self, entry_id: int) -> None:
        super().__init__(
            f"quarantine entry {entry_id} was measured before its device's binding: "
            "releasing it is a clinical decision; give --decided-by USER and --reason"
        )
        self.entry_id = entry_id


@dataclass(frozen=True, slots=True)
class ReleaseOutcome:
    """What releasing one entry did.

    Attributes:
        entry_id: the entry's row id.
        released: the entry is now marked released (every reading stored).
        stored_ids: readings written to the store by this release.
        refusals: why the others are still refused (``"{reason}: {detail}"`` each).
        already_released: it was released before; nothing was done.
    """

    entry_id: int
    released: bool
    stored_ids: tuple[str, ...]
    refusals: tuple[str, ...]
    already_released: bool = False


def envelope_for(record: QuarantineRecord, sent_at: datetime) -> bytes:
    """The payload to examine again: the message as it was (``envelope`` entries), or the
    reading's raw JSON in an envelope of the gateway that sent it."""
    entry = record.entry
    if entry.reason == QuarantineReason.ENVELOPE or entry.gateway_id is None:
        return entry.raw
    head = msgspec.json.encode(
        {"v": _WIRE_VERSION, "gateway_id": entry.gateway_id, "sent_at": sent_at}
    )
    return head[:-1] + b',"readings":[' + entry.raw + b"]}"


def reexamine(
    record: QuarantineRecord,
    *,
    ownership: OwnershipCheck,
    limits: PlausibilityLimits,
    now: datetime,
    decided_by: str | None = None,
) -> Examination:
    """The examination of a quarantined entry today (pure apart from ``ownership``).

    Args:
        record: the entry.
        ownership: the registry's ownership check, as it stands now.
        limits: the plausibility bounds now configured.
        now: the current time, UTC.
        decided_by: who decided that readings measured before their binding belong to
            the bound patient (``None``: they stay refused).
    """
    return examine_message(
        record.entry.topic,
        envelope_for(record, now),
        ownership=ownership,
        limits=limits,
        now=now,
        accept_before_binding=decided_by is not None,
    )


def release(
    records: Sequence[QuarantineRecord],
    *,
    engine: Engine,
    store: ReadingStore,
    ownership: OwnershipCheck,
    limits: PlausibilityLimits,
    clock: Callable[[], datetime],
    actor: str,
    reason: str,
    decided_by: str | None = None,
) -> list[ReleaseOutcome]:
    """Examine each entry again, store what passes, mark and audit what was released.

    Raises:
        DecisionRequired: a ``before_binding`` entry without ``decided_by`` (checked for
            every entry before anything is done).
        StoreError: the store failed (what was written stays, the entry unreleased).
        RegistryError: the registry failed.
    """
    undecided = decided_by is None or not reason.strip()
    for record in records:
        before_binding = record.entry.reason == QuarantineReason.BEFORE_BINDING
        if before_binding and not record.released and undecided:
            raise DecisionRequired(record.id)
    quarantine = QuarantineStore(engine)
    outcomes = []
    for record in records:
        if record.released:
            outcomes.append(ReleaseOutcome(record.id, False, (), (), already_released=True))
            continue
        decider = decided_by if record.entry.reason == QuarantineReason.BEFORE_BINDING else None
        now = clock()
        examination = reexamine(
            record, ownership=ownership, limits=limits, now=now, decided_by=decider
        )
        readings = [d.reading for d in examination.to_store if d.reading is not None]
        refusals = [notice_reason(d.entry) for d in examination.refused if d.entry is not None]
        stored: tuple[str, ...] = ()
        if readings:
            result = store.write(readings)
            stored = result.stored
            refusals += [
                f"{Verdict.STORE_REJECTED.value}: {point.reason}" for point in result.rejected
            ]
        complete = not refusals and len(set(stored)) == len(readings) > 0
        with session_scope(engine) as session:
            released = complete and quarantine.mark_released(
                session, record.id, at=now, by=actor, reason=_reason(reason, decider)
            )
            record_audit(
                session,
                at=now,
                actor=actor,
                action=RELEASE_ACTION,
                target=str(record.id),
                outcome=AuditOutcome.OK if released else AuditOutcome.REJECTED,
                detail={
                    "quarantine_reason": record.entry.reason,
                    "gateway_id": record.entry.gateway_id,
                    "reason": reason,
                    "decided_by": decider,
                    "stored": len(stored),
                    "still_refused": len(refusals),
                },
            )
        outcomes.append(ReleaseOutcome(record.id, released, stored, tuple(refusals)))
    return outcomes


def _reason(reason: str, decided_by: str | None) -> str:
    return reason if decided_by is None else f"decided by {decided_by}: {reason}"
