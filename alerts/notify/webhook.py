"""Webhooks (also SMS, WeChat and voice gateways): HMAC-SHA256 signed, destinations allowlisted.

A destination must match an allowlisted ``scheme://host[:port]`` prefix, and its host must not
resolve to a private, loopback, link-local or reserved address unless that host is
allowlisted by name with ``allow_private`` — a configured webhook cannot be turned into a
probe of the clinic's own network (SSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx
from jinja2 import Environment, StrictUndefined

from alerts.notify.base import Message, PermanentFailure, Receipt, RecoverableFailure

SIGNATURE_HEADER = "X-VitalGate-Signature"
"""``sha256=<hex>`` of ``timestamp.body`` with the shared secret (the Stripe/GitHub scheme)."""

Resolver = Callable[[str], Sequence[str]]


def _resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None)]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the signature of ``body`` (constant-time compare)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Allowlist:
    """Destination prefixes a webhook may go to."""

    def __init__(
        self,
        prefixes: Sequence[str],
        *,
        allow_private: Sequence[str] = (),
        resolver: Resolver = _resolve,
    ) -> None:
        self._prefixes = tuple(prefixes)
        self._private_ok = frozenset(h.lower() for h in allow_private)
        self._resolver = resolver

    def check(self, url: str) -> None:
        """Raise :class:`PermanentFailure` unless ``url`` may be called."""
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise PermanentFailure("webhook destination must be an http(s) URL")
        if parts.username or parts.password:
            raise PermanentFailure("webhook destination must not carry credentials")
        if not any(url.startswith(p.rstrip("/") + "/") or url == p for p in self._prefixes):
            raise PermanentFailure("webhook destination is not allowlisted")
        host = parts.hostname.lower()
        if host in self._private_ok:
            return
        for address in self._resolver(host):
            ip = ipaddress.ip_address(address)
            if not ip.is_global:
                raise PermanentFailure("webhook destination resolves to a non-public address")


class WebhookNotifier:
    """POSTs a JSON body rendered from a Jinja2 template, signed, with an Idempotency-Key."""

    def __init__(
        self,
        *,
        channel: str,
        url: str,
        secret: bytes,
        allowlist: Allowlist,
        template: str,
        client: httpx.Client,
        clock: Callable[[], float],
    ) -> None:
        self.channel = channel
        self._url = url
        self._secret = secret
        self._allowlist = allowlist
        # JSON bodies, not HTML: every value is inserted already JSON-encoded (json.dumps).
        env = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701
        self._template = env.from_string(template)
        self._client = client
        self._clock = clock

    def send(self, message: Message) -> Receipt:
        """POST the rendered message; 2xx is a receipt, 4xx permanent, 5xx/timeouts recoverable."""
        self._allowlist.check(self._url)
        payload = json.loads(
            self._template.render(
                to=json.dumps(message.address, ensure_ascii=False),
                text=json.dumps(message.body, ensure_ascii=False),
                subject=json.dumps(message.subject, ensure_ascii=False),
                key=json.dumps(message.idempotency_key),
            )
        )
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.idempotency_key,
            "X-VitalGate-Timestamp": timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RecoverableFailure(type(exc).__name__) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RecoverableFailure(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise PermanentFailure(f"HTTP {response.status_code}")
        return Receipt(self.channel, f"HTTP {response.status_code} {response.text[:200]}")


SMS_TEMPLATE = '{"phone": {{ to }}, "text": {{ text }}, "key": {{ key }}}'
WECHAT_TEMPLATE = (
    '{"touser": {{ to }}, "msgtype": "text", "text": {"content": {{ text }}}, "key": {{ key }}}'
)
VOICE_TEMPLATE = '{"called": {{ to }}, "tts": {{ text }}, "lang": "zh-CN", "key": {{ key }}}'
"""Body templates of the SMS, WeChat and telephony gateways (their HTTP APIs)."""
