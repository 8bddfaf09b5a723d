"""cancel_and_wait ends a task that swallowed its cancellation; honour_cancellation keeps
a cancel that asyncio.wait_for (Python 3.11) drops when the result arrives with it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from device_drivers.simulators.bumble_link import honour_cancellation
from gateway.tasks import cancel_and_wait


async def _answer_and_cancel_together(operation_wrapper: bool) -> asyncio.Task[str]:
    """A bumble-style request (``wait_for`` on a response future) whose response and the
    caller's cancel arrive in the same loop iteration."""
    response: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def request() -> str:
        return await asyncio.wait_for(response, 5)

    async def caller() -> str:
        if operation_wrapper:
            return await honour_cancellation(request())
        return await request()

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)
    response.set_result("response")
    task.cancel()
    await asyncio.wait([task])
    return task


async def test_a_cancel_dropped_by_wait_for_is_raised_by_honour_cancellation() -> None:
    plain = await _answer_and_cancel_together(operation_wrapper=False)
    guarded = await _answer_and_cancel_together(operation_wrapper=True)
    # The race this guards against, on this interpreter: the cancel is lost …
    assert not plain.cancelled(), "asyncio.wait_for no longer drops the cancel"
    # … unless the request goes through honour_cancellation.
    assert guarded.cancelled()


async def test_honour_cancellation_passes_results_and_errors_through() -> None:
    async def answer() -> int:
        return 7

    async def fail() -> None:
        raise ValueError("refused")

    assert await honour_cancellation(answer()) == 7
    with pytest.raises(ValueError, match="refused"):
        await honour_cancellation(fail())


async def test_a_task_that_swallows_its_cancel_is_cancelled_again() -> None:
    cleaned_up = asyncio.Event()

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # a library that loses the cancel: the task carries on
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned_up.set()

    async def polite() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(polite())]
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await cancel_and_wait(tasks, recancel_after_seconds=0.05)
    assert all(task.done() for task in tasks)
    assert cleaned_up.is_set()


async def test_tasks_that_end_on_their_cancel_are_waited_for_once() -> None:
    ended: list[str] = []

    async def with_cleanup(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # a bounded clean-up, not interrupted
            ended.append(name)

    async def crashes() -> None:
        raise RuntimeError("bug")

    tasks = [asyncio.create_task(with_cleanup(name)) for name in ("a", "b")]
    tasks.append(asyncio.create_task(crashes()))
    await asyncio.sleep(0)
    await cancel_and_wait(tasks, recancel_after_seconds=1.0)
    assert sorted(ended) == ["a", "b"]
