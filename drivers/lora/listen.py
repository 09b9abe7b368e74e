"""``zaas-edge lora frames`` with no daemon: the driver itself on the configured port, listening only.

With the daemon stopped, a technician still wants to see what the forwarders
send. Rather than a second classifier that could disagree with the driver,
this runs the driver's own code (``LoraDriver``) on an in-memory context: the
same checks, the same verdicts in its frame log. What it must not do is act
as the network server: it answers no join request (no join accept is sent,
the keys file is never written) and keeps its frame counters in memory only,
so they start from what this command hears (a replay is one of a frame heard
during this run).
"""

from __future__ import annotations

__all__ = ["ListeningDriver", "listening"]

import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from zaas_edge.clock import SystemClock
from zaas_edge.context import GatewayDriverContext, MemoryState
from zaas_edge.driver import DriverContext
from zaas_edge.hub import Hub

from .driver import LoraDriver
from .options import LoraOptions


class ListeningDriver(LoraDriver):
    """The LoRa driver without its network-server side: join requests are logged, never answered."""

    async def _accept_join(self, ctx: DriverContext, item: Any) -> None:
        return None


@contextlib.asynccontextmanager
async def listening(options: LoraOptions) -> AsyncIterator[ListeningDriver]:
    """Run a ``ListeningDriver`` on ``options``' bind and port until the block ends; its log stays quiet
    (the frame log says it all, a warning per refused frame on the terminal would say it twice)."""
    import asyncio

    driver = ListeningDriver(options)
    quiet = logging.getLogger(f"zaas_edge.driver.{options.id}")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    ctx = GatewayDriverContext(options.id, hub=Hub(), clock=SystemClock(), heartbeat=lambda: None, counters={},
                               backlog=dict, state_dir=Path(tempfile.gettempdir()), state=MemoryState())
    task = asyncio.create_task(driver.run(ctx), name=f"driver.{options.id}")
    ready = asyncio.create_task(driver.ready.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # the start-up error (port in use, keys file refused)
        yield driver
    finally:
        ready.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
