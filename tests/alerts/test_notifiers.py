"""Notifiers against real servers: SMTP via aiosmtpd, webhooks via a local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from alerts.notify.base import Message, PermanentFailure, RecoverableFailure, send_with_retry
from alerts.notify.email import EmailNotifier
from alerts.notify.inbox import InboxEvent, InboxNotifier
from alerts.notify.texts import render
from alerts.notify.webhook import SMS_TEMPLATE, Allowlist, WebhookNotifier, verify

SECRET = b"s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(key: str = "alert:1:step:0:0:sms:user:7", address: str = "13800000002") -> Message:
    body = render(rule_id="G1", severity="P1", audience="family")
    return Message(key, "user:7", address, "VitalGate P1 G1", body, "p-wang", 1)


class Sink:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if "refuse" in envelope.rcpt_tos[0]:
            return "550 no such user"
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Sink]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, sink
    controller.stop()


def test_email_goes_out_with_a_message_id_from_the_key(smtp: tuple[int, Sink]) -> None:
    port, sink = smtp
    notifier = EmailNotifier(host="127.0.0.1", port=port, sender="alerts@vitalgate.example")
    receipt = notifier.send(message(address="daughter@example.com"))
    [envelope] = sink.envelopes
    mail = message_from_bytes(envelope.content)
    assert envelope.rcpt_tos == ["daughter@example.com"]
    assert mail["Message-ID"] == receipt.reference == "<alert.1.step.0.0.sms.user.7@vitalgate>"
    text = mail.get_payload(decode=True).decode()
    assert "15 克" in text
    assert "120" in text


def test_email_refusal_is_permanent_and_a_dead_server_recoverable(
    smtp: tuple[int, Sink],
) -> None:
    port, _ = smtp
    with pytest.raises(PermanentFailure):
        EmailNotifier(host="127.0.0.1", port=port, sender="a@b.c").send(
            message(address="refuse@example.com")
        )
    dead = EmailNotifier(host="127.0.0.1", port=free_port(), sender="a@b.c", timeout=1)
    sleeps: list[float] = []
    with pytest.raises(RecoverableFailure):
        send_with_retry(dead, message(address="x@example.com"), sleep=sleeps.append)
    assert len(sleeps) == 3  # four attempts, backing off between them
    assert sleeps == sorted(sleeps)


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []  # noqa: RUF012
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((dict(self.headers), body))
        self.send_response(Hook.status)
        self.end_headers()
        self.wfile.write(b'{"id": "sms-1"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received = []
    Hook.status = 200
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def webhook(url: str, allowlist: Allowlist) -> WebhookNotifier:
    return WebhookNotifier(
        channel="sms",
        url=url,
        secret=SECRET,
        allowlist=allowlist,
        template=SMS_TEMPLATE,
        client=httpx.Client(timeout=2),
        clock=lambda: 1_767_000_000.0,
    )


def test_webhook_is_signed_and_carries_the_idempotency_key(hook: str) -> None:
    allow = Allowlist([hook], allow_private=["127.0.0.1"])
    receipt = webhook(hook + "/sms", allow).send(message())
    [(headers, body)] = Hook.received
    assert verify(SECRET, headers["X-VitalGate-Timestamp"], body, headers["X-VitalGate-Signature"])
    assert not verify(
        b"other", headers["X-VitalGate-Timestamp"], body, headers["X-VitalGate-Signature"]
    )
    assert not verify(
        SECRET, headers["X-VitalGate-Timestamp"], body + b" ", headers["X-VitalGate-Signature"]
    )
    assert headers["Idempotency-Key"] == "alert:1:step:0:0:sms:user:7"
    payload = json.loads(body)
    assert payload["phone"] == "13800000002"
    assert "15 克" in payload["text"]
    assert receipt.reference.startswith("HTTP 200")


def test_webhook_4xx_is_permanent_5xx_recoverable(hook: str) -> None:
    notifier = webhook(hook + "/sms", Allowlist([hook], allow_private=["127.0.0.1"]))
    Hook.status = 400
    with pytest.raises(PermanentFailure):
        notifier.send(message())
    Hook.status = 503
    with pytest.raises(RecoverableFailure):
        notifier.send(message())


@pytest.mark.parametrize(
    ("url", "resolves_to"),
    [
        ("https://evil.example/x", ["93.184.216.34"]),  # not on the allowlist
        ("https://sms.example@evil.example/x", ["93.184.216.34"]),  # credentials trick
        ("https://sms.example/x", ["127.0.0.1"]),  # allowlisted name, loopback address
        ("https://sms.example/x", ["10.0.0.5"]),  # private
        ("https://sms.example/x", ["169.254.169.254"]),  # cloud metadata
        ("https://sms.example/x", ["::1"]),
        ("file:///etc/passwd", []),
    ],
)
def test_webhook_destinations_are_allowlisted_and_public(url: str, resolves_to: list[str]) -> None:
    allow = Allowlist(["https://sms.example"], resolver=lambda _h: resolves_to)
    with pytest.raises(PermanentFailure):
        allow.check(url)


def test_an_allowlisted_public_destination_passes() -> None:
    Allowlist(["https://sms.example"], resolver=lambda _h: ["93.184.216.34"]).check(
        "https://sms.example/send"
    )


def test_the_loopback_hook_is_refused_unless_allowlisted_by_name(hook: str) -> None:
    with pytest.raises(PermanentFailure):
        webhook(hook + "/sms", Allowlist([hook])).send(message())
    assert Hook.received == []


def test_inbox_publishes_ids_only() -> None:
    events: list[InboxEvent] = []
    receipt = InboxNotifier(events.append).send(message(key="k1"))
    assert events == [InboxEvent("k1", "p-wang", 1, "user:7", "VitalGate P1 G1")]
    assert receipt.reference == "k1"


def test_texts_tell_family_what_to_do_and_carry_no_values() -> None:
    family = render(rule_id="G1", severity="P1", audience="family")
    doctor = render(rule_id="G1", severity="P1", audience="doctor")
    assert "15 克" in family
    assert "15 分钟后复测" in family
    assert "120" in family
    assert "15 克" not in doctor
    assert "mmol" not in family
