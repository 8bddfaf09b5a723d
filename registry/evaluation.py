"""Partition leases and evaluation watermarks of the alert evaluator.

Every operation is a short transaction of its own, and every claim is a conditional
statement the database decides atomically (``UPDATE … WHERE holder = me OR expires_at <
now``; an ``INSERT`` that loses a race fails on the primary key), so two workers can never
both believe they hold a partition after their transactions commit. A worker's share is
``ceil(partitions / live workers)``, so a second worker that starts takes half of the free
or expiring partitions instead of none, and the partitions of a dead worker are taken over
once its leases expire.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from registry.clock import aware_utc
from registry.db import session_scope
from registry.evaluation_models import EvaluationLease, EvaluationWatermark


@dataclass(frozen=True, slots=True)
class HeldPartition:
    """A partition this worker holds, with the fencing epoch of its lease."""

    partition: int
    epoch: int
    newly_acquired: bool
    """True when this claim took it (start-up or take-over): catch up before consuming."""


def claim_partitions(
    engine: Engine,
    *,
    holder: str,
    partitions: int,
    now: datetime,
    ttl: timedelta,
) -> list[HeldPartition]:
    """Renew this worker's leases and take free or expired partitions up to its share.

    Returns every partition the worker holds after the claim, in partition order.
    """
    now = aware_utc(now, "now")
    expires = now + ttl
    held: list[HeldPartition] = []
    with session_scope(engine) as session:
        rows = {lease.partition: lease for lease in session.scalars(select(EvaluationLease)).all()}
        live_others = {
            lease.holder
            for lease in rows.values()
            if lease.holder != holder and aware_utc(lease.expires_at, "expires_at") > now
        }
    share = math.ceil(partitions / (len(live_others) + 1))
    mine = sorted(p for p, lease in rows.items() if lease.holder == holder and p < partitions)
    # Renew first: a worker keeps what it has (even above its share until the others take
    # over expired leases; giving back is release_partitions' job).
    for partition in mine:
        epoch = _renew(engine, partition, holder, now, expires)
        if epoch is not None:
            held.append(HeldPartition(partition, epoch, newly_acquired=False))
    for partition in range(partitions):
        if len(held) >= share:
            break
        if any(h.partition == partition for h in held):
            continue
        lease = rows.get(partition)
        if lease is not None and aware_utc(lease.expires_at, "expires_at") > now:
            continue
        epoch = _take(engine, partition, holder, now, expires, existing=lease is not None)
        if epoch is not None:
            held.append(HeldPartition(partition, epoch, newly_acquired=True))
    return sorted(held, key=lambda h: h.partition)


def _renew(
    engine: Engine, partition: int, holder: str, now: datetime, expires: datetime
) -> int | None:
    with session_scope(engine) as session:
        result = session.execute(
            update(EvaluationLease)
            .where(EvaluationLease.partition == partition, EvaluationLease.holder == holder)
            .values(expires_at=expires)
            .returning(EvaluationLease.epoch)
        ).scalar_one_or_none()
    return result


def _take(
    engine: Engine,
    partition: int,
    holder: str,
    now: datetime,
    expires: datetime,
    *,
    existing: bool,
) -> int | None:
    try:
        with session_scope(engine) as session:
            if not existing:
                session.execute(
                    insert(EvaluationLease).values(
                        partition=partition,
                        holder=holder,
                        epoch=1,
                        acquired_at=now,
                        expires_at=expires,
                    )
                )
                return 1
            # Only an expired lease can be taken; the database decides, not our read.
            return session.execute(
                update(EvaluationLease)
                .where(EvaluationLease.partition == partition, EvaluationLease.expires_at < now)
                .values(
                    holder=holder,
                    epoch=EvaluationLease.epoch + 1,
                    acquired_at=now,
                    expires_at=expires,
                )
                .returning(EvaluationLease.epoch)
            ).scalar_one_or_none()
    except IntegrityError:
        return None  # another worker inserted it first


def release_partitions(engine: Engine, *, holder: str, partitions: Iterable[int]) -> None:
    """Give partitions back (clean shutdown), so another worker can take them at once."""
    wanted = list(partitions)
    if not wanted:
        return
    with session_scope(engine) as session:
        session.execute(
            delete(EvaluationLease).where(
                EvaluationLease.holder == holder, EvaluationLease.partition.in_(wanted)
            )
        )


def still_holds(engine: Engine, *, holder: str, partition: int, epoch: int) -> bool:
    """Whether the lease is still this holder's at this epoch (the fencing check)."""
    with session_scope(engine, write=False) as session:
        found = session.scalar(
            select(func.count())
            .select_from(EvaluationLease)
            .where(
                EvaluationLease.partition == partition,
                EvaluationLease.holder == holder,
                EvaluationLease.epoch == epoch,
            )
        )
    return bool(found)


def watermark(engine: Engine, partition: int) -> datetime | None:
    """Up to when ``partition`` has been evaluated, or None if never."""
    with session_scope(engine, write=False) as session:
        value = session.scalar(
            select(EvaluationWatermark.evaluated_through).where(
                EvaluationWatermark.partition == partition
            )
        )
    return None if value is None else aware_utc(value, "evaluated_through")


def watermarks(engine: Engine) -> dict[int, datetime]:
    """Every partition's watermark (for the lag metric and the pages' "delayed since")."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(
            select(EvaluationWatermark.partition, EvaluationWatermark.evaluated_through)
        ).all()
    return {int(p): aware_utc(at, "evaluated_through") for p, at in rows}


def advance_watermark(
    engine: Engine, *, partition: int, through: datetime, holder: str, epoch: int, now: datetime
) -> bool:
    """Move ``partition``'s watermark forward to ``through`` (never back).

    Fenced: nothing is written unless ``holder`` still holds the lease at ``epoch``, so a
    worker that lost its lease while paused cannot move a watermark past readings the new
    holder has not evaluated. Returns whether it was written.
    """
    through = aware_utc(through, "through")
    with session_scope(engine) as session:
        lease_ok = session.scalar(
            select(func.count())
            .select_from(EvaluationLease)
            .where(
                EvaluationLease.partition == partition,
                EvaluationLease.holder == holder,
                EvaluationLease.epoch == epoch,
            )
        )
        if not lease_ok:
            return False
        updated = session.execute(
            update(EvaluationWatermark)
            .where(
                EvaluationWatermark.partition == partition,
                EvaluationWatermark.evaluated_through < through,
            )
            .values(evaluated_through=through, updated_at=now, updated_by=holder)
            .returning(EvaluationWatermark.partition)
        ).scalar_one_or_none()
        if updated is not None:
            return True
        exists = session.scalar(
            select(func.count())
            .select_from(EvaluationWatermark)
            .where(EvaluationWatermark.partition == partition)
        )
        if exists:
            return False  # already at or past ``through``
        session.execute(
            insert(EvaluationWatermark).values(
                partition=partition, evaluated_through=through, updated_at=now, updated_by=holder
            )
        )
        return True
