"""Leased work rows: due at a time, claimed by one worker with a lease, finished once.

Escalation steps (:class:`~registry.alert_models.EscalationStep`) and visit reminders
(:class:`~registry.visit_reminder_models.VisitReminder`) are run the same way, so they share
the columns of it (:class:`LeasedRowColumns`) and the three functions over them:

* :func:`claim_leased` claims due rows (or rows whose claimer's lease ran out), oldest first,
  atomically — ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, a conditional
  ``UPDATE … WHERE status = 'due'`` on SQLite (one writer at a time) — with a lease: a worker
  killed mid-row loses its lease and another (or the restarted one) claims the row again;
* :func:`finish_leased` closes a row only while the claim's own lease holds, so a worker
  that lost its lease changes nothing;
* :func:`release_leased` gives a row back for the next tick.

The tables' status enums spell "due" and "claimed" with :data:`DUE` and :data:`CLAIMED`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, TypeVar

from sqlalchemy import ColumnElement, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from registry.models import _BIG_ID

DUE: Final = "due"
"""The status of a row waiting for its time (or given back)."""
CLAIMED: Final = "claimed"
"""The status of a row a worker holds until ``lease_until``."""


class LeasedRowColumns:
    """The columns every leased work table has (a declarative mixin; no table of its own).

    The table adds what the row is about. ``sort_order`` keeps ``id`` first and these after
    the table's own columns, in the order the migrations created them.
    """

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True, sort_order=-1)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True)


Leased = TypeVar("Leased", bound=LeasedRowColumns)


def _claimable(model: type[LeasedRowColumns], now: datetime) -> ColumnElement[bool]:
    return or_(
        model.status == DUE,
        (model.status == CLAIMED) & (model.lease_until <= now),
    )


def claim_leased(
    session: Session,
    model: type[Leased],
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[Leased]:
    """Claim up to ``limit`` due rows of ``model`` for ``worker`` until ``now + lease``.

    Oldest due first; the rows are returned as loaded after the claim, in the caller's
    transaction (the claim holds once the caller commits).
    """
    claimable = _claimable(model, now)
    query = (
        select(model.id)
        .where(claimable, model.due_at <= now)
        .order_by(model.due_at, model.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    claimed: list[Leased] = []
    for row_id in list(session.scalars(query)):
        won = session.execute(
            update(model)
            .where(model.id == row_id, claimable)
            .values(status=CLAIMED, claimed_by=worker, lease_until=now + lease)
        )
        if won.rowcount != 1:  # type: ignore[attr-defined]
            continue
        claimed.append(session.get_one(model, row_id))
    return claimed


def finish_leased(
    session: Session,
    model: type[LeasedRowColumns],
    row_id: int,
    *,
    lease_until: datetime,
    status: str,
    outcome: str,
    now: datetime,
) -> bool:
    """Close a claimed row; False when the claim of ``lease_until`` no longer holds it
    (its lease ran out and another worker took it): then nothing is changed."""
    done = session.execute(
        update(model)
        .where(model.id == row_id, model.status == CLAIMED, model.lease_until == lease_until)
        .values(status=status, done_at=now, outcome=outcome)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def release_leased(
    session: Session,
    model: type[LeasedRowColumns],
    row_id: int,
    *,
    worker: str,
    lease_until: datetime,
) -> None:
    """Give a row back for the next tick, if ``worker``'s claim of ``lease_until`` holds it."""
    session.execute(
        update(model)
        .where(
            model.id == row_id,
            model.claimed_by == worker,
            model.lease_until == lease_until,
        )
        .values(status=DUE, claimed_by=None, lease_until=None)
    )
