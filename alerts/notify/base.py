"""What every notifier shares: the message, the receipt, the two kinds of failure, retries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)


class NotifyError(Exception):
    """Root of the notifiers' errors."""


class RecoverableFailure(NotifyError):
    """Worth retrying: a timeout, a 5xx, a refused connection."""


class PermanentFailure(NotifyError):
    """Retrying cannot help: a 4xx, an address refused, a destination not allowlisted."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one recipient: the least health data that lets them act."""

    idempotency_key: str
    recipient: str
    """The recipient's id (account or family link), never the address itself."""
    address: str
    """Where it goes (phone, e-mail, webhook URL); kept out of logs and the registry."""
    subject: str
    body: str
    patient_id: str
    alert_id: int | None
    """The alert the message is about; ``None`` for a visit reminder (most tasks have none)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """The channel's proof of acceptance (a message id, an HTTP status and id)."""

    channel: str
    reference: str


class Notifier(Protocol):
    """Sends one message; raises :class:`RecoverableFailure` or :class:`PermanentFailure`."""

    channel: str

    def send(self, message: Message) -> Receipt:
        """Deliver ``message`` once (idempotent under its key downstream)."""
        ...


RETRY_ATTEMPTS = 4
"""Attempts per notification before the step gives up for now (the step lease re-runs it)."""


def send_with_retry(
    notifier: Notifier,
    message: Message,
    *,
    attempts: int = RETRY_ATTEMPTS,
    sleep: Callable[[float], None] | None = None,
) -> Receipt:
    """Send with exponential back-off on recoverable failures; permanent ones at once.

    Raises:
        PermanentFailure: the notifier refused for good.
        RecoverableFailure: every attempt failed recoverably.
    """
    retrying = Retrying(
        retry=retry_if_exception_type(RecoverableFailure),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
        sleep=time.sleep if sleep is None else sleep,
    )
    try:
        return retrying(notifier.send, message)
    except RetryError as exc:  # pragma: no cover - reraise=True re-raises the last error
        raise RecoverableFailure(str(exc)) from exc
