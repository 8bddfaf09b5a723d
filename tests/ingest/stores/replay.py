"""Replay of recorded InfluxDB 2 HTTP exchanges for the real ``influxdb-client``.

No InfluxDB 2.x server can be installed here, so the v2 backend is tested against
exchanges written by hand from the InfluxDB 2 API documentation (``POST /api/v2/write``,
``POST /api/v2/query``, annotated CSV). :class:`ReplayServer` is a real HTTP server on
loopback: the client library does real HTTP against it. Each request must match the next
recorded one (method, path, query parameters, ``Authorization: Token …``, body); the
answer is the recorded response. Mismatches are collected and reported by
:meth:`ReplayServer.verify`, which also fails if a recorded exchange was never requested.

Recording format (one JSON file per test)::

    {"source": "...", "exchanges": [
      {"request": {"method": "POST", "path": "/api/v2/write",
                   "query": {"org": "vitalgate", "bucket": "readings", "precision": "ns"},
                   "lines": ["glucose,patient_id=… …"]},          # line-protocol body, or
                   "flux": ["from(bucket: …)", "  |> range(…)"]},  # a Flux query body
       "response": {"status": 200, "headers": {…}, "csv": ["#datatype,…", …]}}  # or "json"
    ]}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDED_DIR = Path(__file__).parent / "recorded" / "influx_v2"
TOKEN = "vitalgate-test-token"
ORG = "vitalgate"
BUCKET = "readings"

# The dialect influxdb-client 1.x sends with every query (annotated CSV with header).
CLIENT_DIALECT = {
    "header": True,
    "delimiter": ",",
    "annotations": ["datatype", "group", "default"],
    "commentPrefix": "#",
    "dateTimeFormat": "RFC3339",
}
# With no bind parameters the client still sends an empty Flux AST file as "extern".
CLIENT_EXTERN: dict[str, list[Any]] = {"imports": [], "body": []}


@dataclass
class SeenRequest:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """One recorded request and the response to give."""

    request: Mapping[str, Any]
    response: Mapping[str, Any]

    def expected_body(self) -> tuple[str, Any]:
        if "lines" in self.request:
            return "text", "\n".join(self.request["lines"])
        if "flux" in self.request:
            return "json", {
                "query": "\n".join(self.request["flux"]),
                "dialect": CLIENT_DIALECT,
                "extern": CLIENT_EXTERN,
            }
        return "text", ""

    def mismatch(self, seen: SeenRequest) -> str | None:
        """Why ``seen`` is not this exchange's request, or None if it is."""
        problems = []
        for name in ("method", "path"):
            if getattr(seen, name) != self.request[name]:
                problems.append(f"{name}: {getattr(seen, name)!r} != {self.request[name]!r}")
        if seen.query != self.request.get("query", {}):
            problems.append(f"query: {seen.query!r} != {self.request.get('query', {})!r}")
        if seen.headers.get("authorization") != f"Token {TOKEN}":
            problems.append(f"authorization: {seen.headers.get('authorization')!r}")
        kind, expected = self.expected_body()
        if kind == "json":
            try:
                actual: Any = json.loads(seen.body)
            except ValueError:
                actual = seen.body.decode(errors="replace")
        else:
            actual = seen.body.decode(errors="replace")
        if actual != expected:
            problems.append(f"body:\n  sent     {actual!r}\n  recorded {expected!r}")
        return "; ".join(problems) or None

    def response_bytes(self) -> tuple[int, dict[str, str], bytes]:
        response = self.response
        headers = dict(response.get("headers", {}))
        if "csv" in response:
            # Annotated CSV: RFC 4180 line ends, a blank line after each result; an empty
            # result is a bare line end.
            lines = response["csv"]
            body = ("\r\n".join(lines) + "\r\n\r\n" if lines else "\r\n").encode()
            headers.setdefault("Content-Type", "text/csv; charset=utf-8")
        elif "json" in response:
            body = json.dumps(response["json"]).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        else:
            body = b""
        return int(response["status"]), headers, body


def load_exchanges(name: str) -> list[Exchange]:
    """The exchanges recorded in ``recorded/influx_v2/<name>.json``."""
    document = json.loads((RECORDED_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return [Exchange(item["request"], item["response"]) for item in document["exchanges"]]


@dataclass
class _State:
    exchanges: list[Exchange]
    position: int = 0
    seen: list[SeenRequest] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        seen = SeenRequest(
            method=self.command,
            path=parts.path,
            query={key: values[0] for key, values in parse_qs(parts.query).items()},
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        state = self.server.state
        with state.lock:
            state.seen.append(seen)
            if state.position >= len(state.exchanges):
                state.mismatches.append(f"unexpected request #{len(state.seen)}: {seen}")
                exchange = None
            else:
                exchange = state.exchanges[state.position]
                problem = exchange.mismatch(seen)
                if problem is not None:
                    state.mismatches.append(f"request #{len(state.seen)}: {problem}")
                    exchange = None
                else:
                    state.position += 1
        if exchange is None:
            status, headers, payload = 418, {"Content-Type": "text/plain"}, b"replay mismatch"
        else:
            status, headers, payload = exchange.response_bytes()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class ReplayServer:
    """Serves recorded exchanges in order on ``http://127.0.0.1:<port>``."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self._state = _State(exchanges)
        self._server = _Server(self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def seen(self) -> list[SeenRequest]:
        """Every request received so far."""
        return list(self._state.seen)

    def verify(self) -> None:
        """Fail unless every recorded exchange was requested, in order, and nothing else."""
        state = self._state
        problems = list(state.mismatches)
        if state.position < len(state.exchanges):
            missing = len(state.exchanges) - state.position
            problems.append(f"{missing} recorded exchange(s) never requested")
        assert not problems, "InfluxDB 2 replay:\n" + "\n".join(problems)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
