"""Test doubles shared by the whole suite: clocks that move only when a test moves them.

Production code takes its clocks as arguments (a ``Callable[[], datetime]`` for wall time,
a ``Callable[[], float]`` for monotonic time, an ``async`` sleep), so a test hands it one
of these instead of patching the ``time`` or ``datetime`` modules.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    """A wall clock that shows ``now`` until the test moves it.

    It returns whatever it was given: aware UTC for the gateway, the registry and the API,
    naive local time for a simulated device's own clock. Move it with :meth:`advance` or by
    assigning ``now``; it never moves by itself.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move forward (or back, with a negative amount) by ``seconds`` and any other
        :class:`~datetime.timedelta` keywords (``minutes=5``, ``days=1`` …)."""
        self.now += timedelta(seconds=seconds, **delta)


class ManualMonotonic:
    """A monotonic clock in seconds that moves only by hand or by its own :meth:`sleep`.

    Pass the instance where a ``monotonic`` callable is expected and :meth:`sleep` where an
    ``async`` sleep is: a sleep returns at once, advances the clock by its duration and is
    recorded in ``sleeps``, so a test sees every back-off without waiting for it.
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep and let its time pass at once."""
        self.sleeps.append(seconds)
        self.now += seconds
