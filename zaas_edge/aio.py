"""asyncio helpers the whole daemon shares.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives
as the awaited future completes, leaving a task that loops on after it was
told to stop (and a shutdown that waits for its timeout). ``asyncio.timeout``
does not: every wait with a deadline inside a long-running loop goes through
the helpers below.
"""

from __future__ import annotations

__all__ = ["wait_event", "wait_for", "checkpoint"]

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for ``event`` at most ``timeout`` seconds; True when it was set."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for`` without the lost-cancellation race; raises TimeoutError."""
    async with asyncio.timeout(timeout):
        return await aw


def checkpoint() -> None:
    """Raise CancelledError if this task was asked to stop and a library swallowed it.

    A library that uses ``wait_for`` internally (pymodbus does) can return a
    result instead of the cancellation on 3.11; the task's ``cancelling()``
    count still says a stop was requested. Long-running loops call this once
    per turn, so a swallowed stop costs one iteration, not a hung shutdown.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
