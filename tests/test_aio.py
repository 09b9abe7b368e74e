"""The daemon's waits with a deadline go through zaas_edge.aio, never asyncio.wait_for."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from zaas_edge.aio import checkpoint, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_no_module_of_the_package_calls_asyncio_wait_for() -> None:
    """On 3.11 it can swallow a stop that arrives as the awaited future completes: a sync service
    cancelled just as a 503 came back went on retrying for ever."""
    found = [f"{p.relative_to(ROOT)}:{n}" for d in ("zaas_edge", "drivers") for p in (ROOT / d).rglob("*.py")
             if p.name != "aio.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if "asyncio.wait_for(" in line]
    assert found == []


async def test_wait_for_raises_timeout_and_passes_a_stop_through() -> None:
    with pytest.raises(TimeoutError):
        await wait_for(asyncio.Event().wait(), 0.01)
    never = asyncio.Event()
    task = asyncio.create_task(wait_for(never.wait(), 30))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_checkpoint_ends_a_loop_whose_stop_was_swallowed() -> None:
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                pass  # a library that swallows the stop
            turns += 1
            checkpoint()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert turns == 1
