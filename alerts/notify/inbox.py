"""The in-app inbox: the alert published to the API's live hub through an injected sink."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alerts.notify.base import Message, PermanentFailure, Receipt


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """What the live stream carries: ids only; the client fetches the alert it may see."""

    idempotency_key: str
    patient_id: str
    alert_id: int | None
    """``None`` for a visit reminder: the client opens the nurse's queue instead."""
    recipient: str
    subject: str


class InboxNotifier:
    """Hands each message to ``sink`` (e.g. the API's live hub); the key deduplicates."""

    channel = "inbox"

    def __init__(self, sink: Callable[[InboxEvent], None]) -> None:
        self._sink = sink

    def send(self, message: Message) -> Receipt:
        """Publish to the sink; a sink that raises ValueError refuses for good."""
        try:
            self._sink(
                InboxEvent(
                    message.idempotency_key,
                    message.patient_id,
                    message.alert_id,
                    message.recipient,
                    message.subject,
                )
            )
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        return Receipt(self.channel, message.idempotency_key)
