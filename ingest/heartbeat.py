"""The ingest heartbeat: a registry row per span of a worker running connected to the broker.

The alert evaluator must tell "the homes went quiet" from "the clinic stopped listening"
(``alerts.outage``). It reads these rows rather than a retained MQTT status because:

* the registry is what the evaluator already depends on for its leases and watermarks, so
  a heartbeat there is readable exactly when the evaluator can work at all — a retained
  status on the broker is unreadable precisely when the broker is the thing that is down;
* a retained message holds only the latest value, and a broker restarted without
  persistence forgets it; the rows are a history, so an ingest outage that began and ended
  while the evaluator was down too is still found afterwards (one incident recorded);
* a status published by ingest says "the process lives", not "it is subscribed and
  connected": here a beat is written only while the worker's MQTT session is connected
  and the worker has not failed, so an ingest cut off from the broker counts as silent.

One span per uninterrupted stretch: a worker that loses the broker ends its span (no beat),
and the next connected beat opens a new one, so the gap between them is visible.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from alerts.outage import HEARTBEAT_INTERVAL
from registry.errors import RegistryError
from registry.incidents import beat, start_span

logger = logging.getLogger(__name__)


class IngestHeartbeat:
    """Writes the worker's heartbeat every ``interval`` on its own thread (or by :meth:`pulse`).

    Args:
        engine: the registry.
        instance: the worker's name (its fixed MQTT client id).
        connected: whether the worker is connected to the broker and working right now.
        clock: current time, UTC (injected).
        interval: the heartbeat period (:data:`alerts.outage.HEARTBEAT_INTERVAL`).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        instance: str,
        connected: Callable[[], bool],
        clock: Callable[[], datetime],
        interval: timedelta = HEARTBEAT_INTERVAL,
    ) -> None:
        self._engine = engine
        self._instance = instance
        self._connected = connected
        self._clock = clock
        self._interval = interval
        self._span: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def span_id(self) -> int | None:
        """The span being extended, or None between spans."""
        return self._span

    def pulse(self) -> None:
        """One heartbeat: extend the span while connected, end it when not.

        A registry that cannot be written is logged and the beat skipped: the gap it leaves
        is what the evaluator should see (ingest without its registry stores nothing).
        """
        if not self._connected():
            self._span = None
            return
        now = self._clock()
        try:
            if self._span is None:
                self._span = start_span(self._engine, instance=self._instance, now=now)
            else:
                beat(self._engine, self._span, now=now)
        except (RegistryError, SQLAlchemyError) as exc:
            # Never let the thread die: a beat missed is a gap, a dead thread a false outage
            # that lasts until the worker restarts.
            logger.warning("ingest heartbeat not recorded: %s", type(exc).__name__)

    def start(self) -> None:
        """Beat now and then every ``interval`` until :meth:`stop`."""
        self._stop.clear()

        def run() -> None:
            while not self._stop.is_set():
                self.pulse()
                self._stop.wait(self._interval.total_seconds())

        self._thread = threading.Thread(target=run, name="ingest-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating; the span ends with its last beat."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._span = None
