"""An MQTT broker inside the VitalGate process, for ``vitalgate demo`` and small clinics.

amqtt (pure Python) on a loopback port, in its own thread and event loop so the rest of
the demo needs no asyncio. It speaks MQTT 3.1.1 only: clients that use it must connect
with 3.1.1, and shared subscriptions are not available (one ingest worker). It keeps its
sessions in memory: end-to-end acknowledgements, not the broker, make delivery safe, as
with Mosquitto. Production deployments use Mosquitto (see ``deploy/mosquitto``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import Future
from typing import Any, Final

from vitalgate.errors import VitalgateError

BROKER_START_TIMEOUT_SECONDS: Final = 15.0
BROKER_STOP_TIMEOUT_SECONDS: Final = 10.0
LOOPBACK: Final = "127.0.0.1"


class EmbeddedBrokerError(VitalgateError):
    """The embedded broker could not start or stop."""


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedBroker:
    """amqtt on ``127.0.0.1:port`` (a free port when ``port`` is 0).

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_loopback_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{LOOPBACK}:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{self.port}"}},
            # Loopback only and no credentials: the demo's broker is reachable from this
            # machine alone, like the demo's web pages.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {}},
        }

    def start(self) -> None:
        """Start the broker and return once it accepts connections.

        Raises:
            EmbeddedBrokerError: amqtt is not installed, or the broker did not start.
        """
        try:
            from amqtt.broker import Broker
        except ModuleNotFoundError as exc:
            raise EmbeddedBrokerError(
                "the embedded broker needs amqtt: pip install 'vitalgate[server]'"
            ) from exc
        # amqtt logs every connection at INFO; the demo's terminal is for readings.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="embedded-mqtt-broker", daemon=True
        )
        self._thread.start()

        async def start_broker() -> Any:
            broker = Broker(self._config(), loop=loop)
            await broker.start()
            return broker

        future: Future[Any] = asyncio.run_coroutine_threadsafe(start_broker(), loop)
        try:
            self._broker = future.result(BROKER_START_TIMEOUT_SECONDS)
        except Exception as exc:
            self._stop_loop()
            raise EmbeddedBrokerError(
                f"embedded broker did not start on port {self.port}: {exc}"
            ) from exc

    def stop(self) -> None:
        """Stop the broker and its thread; safe to call twice."""
        loop, broker = self._loop, self._broker
        if loop is None:
            return
        if broker is not None:
            future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
            try:
                future.result(BROKER_STOP_TIMEOUT_SECONDS)
            except Exception as exc:  # stopping must go on whatever amqtt raised
                logging.getLogger(__name__).warning("embedded broker shutdown: %s", exc)
        self._broker = None
        self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = None
        self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(BROKER_STOP_TIMEOUT_SECONDS)
        loop.close()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
