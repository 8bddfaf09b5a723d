"""Sending text messages (login links, later reminders) through a pluggable sender.

Two senders: :class:`FileSmsSender` appends each message as a JSON line to a file (the demo
and tests, where no SMS gateway exists) and :class:`WebhookSmsSender` posts it to the
clinic's own SMS gateway over HTTP. Message text may contain a login link, which is a
credential: it is never logged.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Final, Protocol

import httpx

WEBHOOK_TIMEOUT_SECONDS: Final = 10.0
"""An SMS gateway answers in well under a second; ten leaves room for a slow intranet."""


class SmsError(Exception):
    """The message could not be handed to the SMS gateway."""


class SmsSender(Protocol):
    """Hands one message to whatever delivers SMS."""

    def send(self, phone: str, text: str) -> None:
        """Send ``text`` to ``phone``.

        Raises:
            SmsError: it could not be handed over.
        """
        ...


class FileSmsSender:
    """Writes messages to a JSON Lines file instead of a phone (demo, tests)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def send(self, phone: str, text: str) -> None:
        """Append ``{"phone", "text"}`` to the file."""
        line = json.dumps({"phone": phone, "text": text}, ensure_ascii=False)
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")


class WebhookSmsSender:
    """Posts ``{"phone", "text"}`` as JSON to the clinic's SMS gateway."""

    def __init__(self, url: str, *, token: str | None = None, client: httpx.Client | None = None):
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS)

    def send(self, phone: str, text: str) -> None:
        """POST the message; any non-2xx answer is an :class:`SmsError`."""
        try:
            response = self._client.post(
                self._url, json={"phone": phone, "text": text}, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise SmsError(f"SMS gateway unreachable: {type(exc).__name__}") from exc
        if not response.is_success:
            raise SmsError(f"SMS gateway answered {response.status_code}")
