"""One message to one recipient, delivered at least once and recorded once.

The escalation worker (:mod:`alerts.escalation`) and the visit-reminder worker
(:mod:`alerts.visit_reminders`) send each message the same way:

1. the delivery-log row of the message's idempotency key is created or found, its attempt
   count raised (commit) — a row already delivered is not sent again;
2. the notifier sends under that key with retries (:func:`~alerts.notify.base.send_with_retry`);
3. the receipt, or the error, is recorded and audited in one transaction (commit).

A crash between 2 and 3 re-sends under the same key on the next claim: the channel
de-duplicates by the key, and the row is recorded once. Each worker keeps its own log table
and audit actions; what to do with a permanent or recoverable failure is the worker's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Engine

from alerts.notify.base import (
    Message,
    Notifier,
    PermanentFailure,
    RecoverableFailure,
    send_with_retry,
)
from registry.audit import record_audit
from registry.db import session_scope
from registry.delivery_log import (
    DeliveryLogColumns,
    NotificationStatus,
    begin_delivery,
    settle_delivery,
)


class DeliveryOutcome(StrEnum):
    """How one message ended."""

    DELIVERED = "delivered"
    """The channel took it (now, or on an earlier attempt under the same key)."""
    PERMANENT = "permanent"
    """The channel refused it for good."""
    RECOVERABLE = "recoverable"
    """Every retry failed recoverably: worth another try on a later tick."""


@dataclass(frozen=True, slots=True)
class DeliveryAudit:
    """How a worker audits its deliveries: who, which actions, on what, about whom."""

    actor: str
    delivered_action: str
    """The audit action of a receipt (``alert.notify``, ``visit.remind``)."""
    failed_action: str
    """The audit action of a failure (``alert.notify_failed``, ``visit.remind_failed``)."""
    target: str
    patient_id: str


def deliver_once(
    engine: Engine,
    log: type[DeliveryLogColumns],
    *,
    notifier: Notifier,
    message: Message,
    channel: str,
    owner: Mapping[str, object],
    audit: DeliveryAudit,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None] | None = None,
) -> DeliveryOutcome:
    """Send ``message`` on ``channel`` once per its idempotency key, logged in ``log``.

    ``owner`` are the log row's columns of what it belongs to (``alert_id``/``step_id``, or
    ``reminder_id``). The audit detail carries the channel and the key only (no PHI).
    """
    key = message.idempotency_key
    with session_scope(engine) as session:
        row = begin_delivery(
            session,
            log,
            key=key,
            channel=channel,
            recipient=message.recipient,
            now=clock(),
            **owner,
        )
        if row.status == NotificationStatus.DELIVERED.value:
            return DeliveryOutcome.DELIVERED
    reference: str | None = None
    error: str | None = None
    try:
        receipt = send_with_retry(notifier, message, sleep=sleep)
    except PermanentFailure as exc:
        outcome, error = DeliveryOutcome.PERMANENT, str(exc)
    except RecoverableFailure as exc:
        outcome, error = DeliveryOutcome.RECOVERABLE, str(exc)
    else:
        outcome, reference = DeliveryOutcome.DELIVERED, receipt.reference
    delivered = outcome is DeliveryOutcome.DELIVERED
    now = clock()
    with session_scope(engine) as session:
        settle_delivery(
            session, log, key, delivered=delivered, receipt=reference, error=error, now=now
        )
        record_audit(
            session,
            at=now,
            actor=audit.actor,
            action=audit.delivered_action if delivered else audit.failed_action,
            target=audit.target,
            detail={"channel": channel, "key": key},
            patient_ids=[audit.patient_id],
        )
    return outcome
