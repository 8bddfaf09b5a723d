"""Tails the registry's alert events into the live stream.

The alert worker records every transition in ``alert_events``; one :class:`AlertTail` per API
process reads what is new every :data:`POLL_SECONDS` and hands it to the
:class:`~dashboard_api.live.LiveHub`, whose stream route decides per subscriber and per event
whether the caller may read that patient's alerts. So a doctor's inbox shows a new alert a
fraction of a second after the worker recorded it, without a reload and without the worker
knowing who is watching.

Ids come from a sequence, and on PostgreSQL a transaction that took a lower id can commit after
one that took a higher id: reading "everything above the highest id seen" would skip it for
ever. The tail therefore re-reads above a *settled* mark — the highest id seen at least
:data:`SETTLE_SECONDS` ago — and remembers which ids it already announced above that mark.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dashboard_api.live import LiveAlert, LiveHub
from registry.alert_feed import changes_after, last_event_id

logger = logging.getLogger(__name__)

POLL_SECONDS: Final = 0.2
"""How often the registry is asked: an alert reaches the inbox within about this long after
the worker recorded it. Five indexed range reads a second per API process cost little (they
find nothing most of the time); at 1 s the poll alone put publish → inbox p99 at 1.5 s,
over the 1 s the alert issue aims at (docs/benchmarks.md)."""
SETTLE_SECONDS: Final = 10.0
"""How long an id may stay out of order: far above the worker's transactions (milliseconds),
which commit an alert and its events together."""
BATCH_EVENTS: Final = 2_000
"""Events read per poll; a burst beyond it is read on the next polls."""


class AlertTail:
    """Reads new alert events from the registry and publishes them to a hub."""

    def __init__(
        self,
        engine: Engine,
        hub: LiveHub,
        *,
        poll_seconds: float = POLL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._hub = hub
        self._poll_seconds = poll_seconds
        self._monotonic = monotonic
        self._settled = 0
        self._announced: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def start(self) -> None:
        """Begin at the newest event (history is the inbox's job) and poll in a thread."""
        self.begin()
        self._thread = threading.Thread(target=self._run, name="alert-tail", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        """Set the starting mark to the newest event now recorded."""
        with Session(self._engine) as session:
            self._settled = last_event_id(session)
        self._started = True

    def poll_once(self) -> int:
        """Publish the events recorded since the last poll; returns how many were new."""
        if not self._started:
            self.begin()
        now = self._monotonic()
        with Session(self._engine) as session:
            changes = changes_after(session, self._settled, limit=BATCH_EVENTS)
        fresh = [change for change in changes if change.event_id not in self._announced]
        for change in fresh:
            self._announced[change.event_id] = now
        if len(changes) == BATCH_EVENTS:
            # A burst: move on rather than re-read the same page; a late commit inside it
            # still reaches the page at its next reload.
            self._settled = changes[-1].event_id
        else:
            settled = [i for i, seen in self._announced.items() if now - seen >= SETTLE_SECONDS]
            if settled:
                self._settled = max(self._settled, max(settled))
        self._announced = {i: s for i, s in self._announced.items() if i > self._settled}
        if fresh:
            self._hub.publish_alerts([LiveAlert.of(change) for change in fresh])
        return len(fresh)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except SQLAlchemyError as exc:
                # The registry is briefly unreachable: the inbox's own reload still works;
                # try again at the next poll.
                logger.warning("alert tail: the registry did not answer (%s)", type(exc).__name__)

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
