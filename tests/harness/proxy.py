"""A loopback TCP proxy that can partition the network without closing a socket.

:class:`TcpProxy` listens on ``127.0.0.1`` and forwards every accepted connection to one
upstream loopback address. :meth:`TcpProxy.partition` stops forwarding in both directions
while every socket stays open: bytes already sent wait in the proxy (or in the kernel
buffers behind it) exactly as TCP segments wait behind a broken link, and nothing is
dropped. A client therefore sees a *half-open* link: its writes succeed, nothing comes
back, and only its own keep-alive can tell it the link is dead. :meth:`TcpProxy.heal`
resumes forwarding, in order, whatever was held.

New connections accepted during a partition are held too: the upstream connection is made
only when the partition heals, as a SYN retransmitted across a healed link would be.

When one side closes, the other side is closed (once the proxy is forwarding again). When
the upstream refuses a connection (its server is down), the client's connection is closed
at once, which a client sees like a server that accepted and then went away.

Runs its own asyncio loop in a daemon thread; the public methods are called from any
thread. Only loopback addresses are accepted, upstream and listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Final, TypeVar

from tests.harness.ports import LOOPBACK_HOST, free_port

READ_CHUNK_BYTES: Final = 65536
CONTROL_TIMEOUT_SECONDS: Final = 10.0
"""Bound on a control call (start, partition, heal, close) waiting for the proxy's loop."""
UPSTREAM_CONNECT_TIMEOUT_SECONDS: Final = 5.0
"""A loopback connect answers in microseconds; longer means the upstream is stuck."""


_T = TypeVar("_T")


class ProxyError(RuntimeError):
    """The proxy could not start, or a control call did not complete."""


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ProxyError(f"{host!r} is not a loopback address; the test proxy stays on 127.0.0.1")


@dataclass
class ProxyStats:
    """What the proxy has seen since it started."""

    accepted: int = 0
    """Client connections accepted."""
    upstream_refused: int = 0
    """Client connections closed because the upstream refused them."""
    bytes_to_upstream: int = 0
    bytes_to_client: int = 0


class _Link:
    """One proxied connection: two pumps that obey the proxy's forwarding switch."""

    def __init__(
        self,
        proxy: TcpProxy,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream_writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        proxy = self.proxy
        try:
            # A connection accepted during a partition waits here, unanswered.
            await proxy.forwarding.wait()
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(proxy.upstream_host, proxy.upstream_port),
                    UPSTREAM_CONNECT_TIMEOUT_SECONDS,
                )
            except (OSError, TimeoutError):
                proxy.stats.upstream_refused += 1
                return
            self.upstream_writer = upstream_writer
            to_upstream = asyncio.create_task(
                self._pump(self.client_reader, upstream_writer, upstream=True)
            )
            to_client = asyncio.create_task(
                self._pump(upstream_reader, self.client_writer, upstream=False)
            )
            # Either side closing ends the link: the other side is closed below.
            await asyncio.wait((to_upstream, to_client), return_when=asyncio.FIRST_COMPLETED)
            for task in (to_upstream, to_client):
                task.cancel()
            await asyncio.gather(to_upstream, to_client, return_exceptions=True)
        finally:
            await self.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        forwarding = self.proxy.forwarding
        while True:
            await forwarding.wait()
            try:
                data = await reader.read(READ_CHUNK_BYTES)
            except OSError:
                return
            # A chunk read just before the partition began is held, not delivered.
            await forwarding.wait()
            if not data:
                return
            try:
                writer.write(data)
                await writer.drain()
            except OSError:
                return
            if upstream:
                self.proxy.stats.bytes_to_upstream += len(data)
            else:
                self.proxy.stats.bytes_to_client += len(data)

    async def close(self) -> None:
        # Closing waits for the partition to heal: a closed link is no partition.
        await self.proxy.forwarding.wait()
        for writer in (self.client_writer, self.upstream_writer):
            if writer is None:
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self.proxy.links.discard(self)

    def abort(self) -> None:
        """Reset both sides at once, forwarding or not."""
        for writer in (self.client_writer, self.upstream_writer):
            if writer is not None:
                writer.transport.abort()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_host:upstream_port`` (see the module doc).

    Args:
        upstream_host, upstream_port: where connections go (loopback only).
        port: the port to listen on; a free one when absent. It stays the same for the
            proxy's life, so clients configured with it keep working across restarts of
            the upstream server.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int | None = None) -> None:
        _require_loopback(upstream_host)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = LOOPBACK_HOST
        self.port = port if port is not None else free_port()
        self.stats = ProxyStats()
        self.links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tcp-proxy-{self.port}", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._forwarding: asyncio.Event | None = None

    # -- control (any thread) -----------------------------------------------------------

    @property
    def forwarding(self) -> asyncio.Event:
        """Set while the proxy forwards (the loop's own object; use from the loop only)."""
        assert self._forwarding is not None, "the proxy is not started"
        return self._forwarding

    @property
    def partitioned(self) -> bool:
        """Whether forwarding is stopped."""
        return self._forwarding is not None and not self._forwarding.is_set()

    def start(self) -> TcpProxy:
        """Start listening; returns ``self``.

        Raises:
            ProxyError: the port cannot be bound.
        """
        self._thread.start()
        try:
            self._call(self._start)
        except OSError as exc:
            self.close()
            raise ProxyError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        return self

    def partition(self) -> None:
        """Stop forwarding in both directions; every socket stays open."""
        self._call(self._set_forwarding, False)

    def heal(self) -> None:
        """Forward again, first whatever was held during the partition."""
        self._call(self._set_forwarding, True)

    def connection_count(self) -> int:
        """Proxied connections now open (held ones included)."""
        return self._call(self._count_links)

    def reset_connections(self) -> None:
        """Reset every open connection (both sides), forwarding or not."""
        self._call(self._abort_links)

    def close(self) -> None:
        """Stop listening, reset every connection and stop the loop; safe to call twice."""
        if self._thread.is_alive():
            with contextlib.suppress(ProxyError):
                self._call(self._stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CONTROL_TIMEOUT_SECONDS)
        if not self._loop.is_closed() and not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop's side ----------------------------------------------------------------

    def _call(self, function: Callable[..., Coroutine[object, object, _T]], *args: object) -> _T:
        future = asyncio.run_coroutine_threadsafe(function(*args), self._loop)
        try:
            return future.result(CONTROL_TIMEOUT_SECONDS)
        except TimeoutError as exc:
            future.cancel()
            raise ProxyError(f"proxy on port {self.port} did not answer a control call") from exc

    async def _start(self) -> None:
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def _set_forwarding(self, on: bool) -> None:
        if on:
            self.forwarding.set()
        else:
            self.forwarding.clear()

    async def _count_links(self) -> int:
        return len(self.links)

    async def _abort_links(self) -> None:
        for link in list(self.links):
            link.abort()
            self.links.discard(link)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._abort_links()
        self.forwarding.set()  # held links may finish closing
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks(self._loop) if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        link = _Link(self, reader, writer)
        self.links.add(link)
        await link.run()
