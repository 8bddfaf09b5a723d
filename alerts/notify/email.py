"""E-mail over SMTP; the Message-ID is derived from the idempotency key."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from alerts.notify.base import Message, PermanentFailure, Receipt, RecoverableFailure


class EmailNotifier:
    """Sends through an SMTP server (STARTTLS when ``starttls``)."""

    channel = "email"

    def __init__(
        self, *, host: str, port: int, sender: str, starttls: bool = False, timeout: float = 10.0
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._starttls = starttls
        self._timeout = timeout

    def send(self, message: Message) -> Receipt:
        """Send one mail; 5xx refusals are permanent, connection trouble and 4xx recoverable."""
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Message-ID"] = f"<{message.idempotency_key.replace(':', '.')}@vitalgate>"
        mail.set_content(message.body)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls()
                refused = smtp.send_message(mail)
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500:
                raise PermanentFailure(f"SMTP {exc.smtp_code}") from exc
            raise RecoverableFailure(f"SMTP {exc.smtp_code}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentFailure("recipient refused") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise RecoverableFailure(type(exc).__name__) from exc
        if refused:
            raise PermanentFailure("recipient refused")
        return Receipt(self.channel, mail["Message-ID"])
