"""The delivery log: one row per message to one recipient, recorded once per idempotency key.

Two tables keep such a log — ``notifications`` (an alert's escalation steps,
:class:`~registry.alert_models.NotificationRow`) and ``visit_reminder_deliveries`` (visit
reminders, :class:`~registry.visit_reminder_models.VisitReminderDelivery`). They differ only
in the row they belong to (an alert and step, or a reminder), so they share their columns
(:class:`DeliveryLogColumns`) and the two functions that write them:

* :func:`begin_delivery` before a send: the row of the key is created once, and its attempt
  count is raised each time the key is sent again (a worker killed after sending and before
  recording re-sends under the same key) — never once the row says delivered;
* :func:`settle_delivery` after it: the channel's receipt, or the error.

Delivered at least once, recorded once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from registry.models import _BIG_ID, ID_LENGTH


class NotificationStatus(StrEnum):
    """Whether a notification (or a reminder's delivery) reached its channel."""

    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryLogColumns:
    """The columns every delivery-log table has (a declarative mixin; no table of its own).

    The table adds the foreign keys of what the row belongs to. ``sort_order`` keeps ``id``
    and ``idempotency_key`` before those, in the order the migrations created the columns.
    """

    id: Mapped[int] = mapped_column(_BIG_ID, primary_key=True, autoincrement=True, sort_order=-2)
    idempotency_key: Mapped[str] = mapped_column(String(191), unique=True, sort_order=-1)
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(ID_LENGTH * 2))
    """The recipient's account, family-link or patient id (``user:<id>``, ``patient:<id>``),
    never a phone number or an address."""
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    receipt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    if TYPE_CHECKING:
        # The declarative base's constructor, which the mapped tables inherit.
        def __init__(self, **kwargs: Any) -> None: ...


LogRow = TypeVar("LogRow", bound=DeliveryLogColumns)


def begin_delivery(
    session: Session,
    model: type[LogRow],
    *,
    key: str,
    channel: str,
    recipient: str,
    now: datetime,
    **owner: object,
) -> LogRow:
    """The ``model`` row of ``key``: created once, its attempt count raised each time.

    ``owner`` are the columns of what the row belongs to (``alert_id=…, step_id=…`` or
    ``reminder_id=…``); they are written only when the row is created.
    """
    row = session.scalars(select(model).where(model.idempotency_key == key)).first()
    if row is None:
        row = model(
            idempotency_key=key,
            **owner,
            channel=channel,
            recipient=recipient,
            status=NotificationStatus.SENDING.value,
            attempts=0,
            created_at=now,
        )
        session.add(row)
    if row.status != NotificationStatus.DELIVERED.value:
        row.attempts += 1
    session.flush()
    return row


def settle_delivery(
    session: Session,
    model: type[DeliveryLogColumns],
    key: str,
    *,
    delivered: bool,
    receipt: str | None,
    error: str | None,
    now: datetime,
) -> None:
    """Record the outcome of the ``model`` row of ``key`` (the channel's receipt, or the error)."""
    session.execute(
        update(model)
        .where(model.idempotency_key == key)
        .values(
            status=(NotificationStatus.DELIVERED if delivered else NotificationStatus.FAILED).value,
            delivered_at=now if delivered else None,
            receipt=receipt,
            error=error,
        )
    )
