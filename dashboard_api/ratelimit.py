"""A sliding-window limiter for login attempts, per client address (in process memory).

Account lockout stops guessing one account's password; this stops one address from trying
many accounts. It is per process: behind several API processes each counts its own share,
which still bounds the rate by the number of processes.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Final

MAX_TRACKED_KEYS: Final = 100_000
"""Bound on remembered addresses, so a flood of distinct ones cannot grow memory for ever."""


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window_seconds`` per key."""

    def __init__(self, limit: int, window_seconds: float, *, clock: Callable[[], datetime]) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False if it is over the limit (then not counted)."""
        now = self._clock().timestamp()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= MAX_TRACKED_KEYS:
                    self._events.clear()
                events = self._events[key] = deque()
            while events and events[0] <= now - self._window:
                events.popleft()
            if len(events) >= self._limit:
                return False
            events.append(now)
            return True
