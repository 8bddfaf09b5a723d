"""Ending asyncio tasks for certain, even when a library swallowed their cancellation.

``task.cancel()`` is a request, delivered once, at the task's next ``await``. A library
that catches the resulting :class:`asyncio.CancelledError` — on Python 3.11 every
:func:`asyncio.wait_for` whose result arrives in the same loop iteration as the cancel
does (CPython gh-86296) — lets the task carry on as if nothing happened, and whoever
then waits for the task without a bound waits for ever. :func:`cancel_and_wait` repeats
the request to a task that outlives it, so a stopping gateway always gets to the end of
its stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, recancel_after_seconds: float
) -> None:
    """Cancel ``tasks`` and return once every one of them has ended.

    A task still running ``recancel_after_seconds`` after its cancel lost it (the bound
    must exceed the longest clean-up a task does once cancelled): it is cancelled again,
    logged by name, until it ends. Exceptions of the tasks are retrieved, not raised.

    Args:
        tasks: the tasks to end (done ones are skipped).
        recancel_after_seconds: how long a cancelled task may take to end.
    """
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    for task in pending:
        task.cancel()
    while pending:
        _, pending = await asyncio.wait(pending, timeout=recancel_after_seconds)
        for task in pending:
            logger.warning(
                "task did not end after its cancellation; cancelled again",
                extra={"reason": task.get_name()},
            )
            task.cancel()
    for task in every:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio would log it as never retrieved
