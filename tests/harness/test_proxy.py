"""The partitioning TCP proxy of :mod:`tests.harness.proxy`, against a plain echo server."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.harness.ports import LOOPBACK_HOST
from tests.harness.proxy import ProxyError, TcpProxy

SHORT_WAIT_SECONDS = 0.5
"""Long enough for a loopback byte to cross the proxy many times over."""
READ_TIMEOUT_SECONDS = 5.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[_EchoServer]:
    server = _EchoServer((LOOPBACK_HOST, 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def proxy(echo: _EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy(LOOPBACK_HOST, echo.server_address[1]) as running:
        yield running


def connect(proxy: TcpProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=READ_TIMEOUT_SECONDS)
    return sock


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def nothing_arrives(sock: socket.socket) -> bool:
    sock.settimeout(SHORT_WAIT_SECONDS)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(READ_TIMEOUT_SECONDS)
    raise AssertionError(f"received {data!r} during the partition")


def test_forwards_both_ways(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert receive_exactly(sock, 5) == b"hello"
    assert proxy.stats.accepted == 1


def test_a_partition_holds_bytes_without_closing_and_heal_delivers_them_in_order(
    proxy: TcpProxy,
) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"before")
        assert receive_exactly(sock, 6) == b"before"
        proxy.partition()
        assert proxy.partitioned
        # Half-open: the client's writes succeed, nothing comes back, nothing is closed.
        sock.sendall(b"during-1")
        sock.sendall(b"during-2")
        assert nothing_arrives(sock)
        assert proxy.connection_count() == 1
        proxy.heal()
        assert receive_exactly(sock, 16) == b"during-1during-2"
        sock.sendall(b"after")
        assert receive_exactly(sock, 5) == b"after"


def test_a_connection_made_during_a_partition_waits_for_the_heal(proxy: TcpProxy) -> None:
    proxy.partition()
    with connect(proxy) as sock:
        sock.sendall(b"syn")
        assert nothing_arrives(sock)
        proxy.heal()
        assert receive_exactly(sock, 3) == b"syn"


def test_a_client_close_during_a_partition_reaches_upstream_only_after_the_heal(
    proxy: TcpProxy,
) -> None:
    sock = connect(proxy)
    sock.sendall(b"x")
    assert receive_exactly(sock, 1) == b"x"
    proxy.partition()
    sock.close()
    time.sleep(SHORT_WAIT_SECONDS)
    assert proxy.connection_count() == 1  # nobody upstream has heard of the close
    proxy.heal()
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    while proxy.connection_count() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.connection_count() == 0


def test_an_upstream_that_refuses_closes_the_client(echo: _EchoServer) -> None:
    with socket.socket() as placeholder:
        placeholder.bind((LOOPBACK_HOST, 0))
        dead_port = placeholder.getsockname()[1]
    with TcpProxy(LOOPBACK_HOST, dead_port) as proxy, connect(proxy) as sock:
        assert sock.recv(1) == b""
        assert proxy.stats.upstream_refused == 1


def test_an_upstream_that_goes_away_closes_the_client() -> None:
    with (
        socket.create_server((LOOPBACK_HOST, 0)) as upstream,
        TcpProxy(LOOPBACK_HOST, upstream.getsockname()[1]) as proxy,
        connect(proxy) as sock,
    ):
        sock.sendall(b"ping")
        accepted, _ = upstream.accept()
        with accepted:
            assert receive_exactly(accepted, 4) == b"ping"
        assert sock.recv(1) == b""


def test_reset_connections_ends_every_connection(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        assert receive_exactly(sock, 4) == b"ping"
        proxy.reset_connections()
        try:
            ended = sock.recv(1) == b""
        except ConnectionResetError:
            ended = True
        assert ended
        assert proxy.connection_count() == 0


def test_refuses_a_non_loopback_upstream() -> None:
    with pytest.raises(ProxyError, match="not a loopback address"):
        TcpProxy("192.0.2.1", 1883)
