"""Shared pieces for the LoRa driver tests: a running driver on a real UDP socket, a Hub that records."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zaas_edge.drivers.lora import LoraDriver, LoraOptions
from zaas_edge.drivers.lora.keys import save_keys

from hil.lora_forwarder import DEMO_DEVICES
from zaas_edge.clock import SystemClock
from zaas_edge.context import GatewayDriverContext, MemoryState
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Reading


@dataclass
class Rig:
    driver: LoraDriver
    ctx: GatewayDriverContext
    hub: Hub
    readings: list[Reading] = field(default_factory=list)
    notices: list[Event | Alarm] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def port(self) -> int:
        assert self.driver.address is not None
        return self.driver.address[1]

    def values(self, point: str) -> list[float]:
        return [r.value for r in self.readings if r.point == point]

    def events(self, kind: str) -> list[Event]:
        return [n for n in self.notices if isinstance(n, Event) and n.kind == kind]


async def until(cond: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait for a condition the driver makes true from its own task."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def write_keys(path: Path) -> Path:
    save_keys(path, DEMO_DEVICES)
    assert os.stat(path).st_mode & 0o777 == 0o600
    return path


@contextlib.asynccontextmanager
async def running(keys_file: Path, state: MemoryState | None = None, *, clock: Callable[[], float] | None = None,
                  **options: Any) -> AsyncIterator[Rig]:
    opts = LoraOptions(id="lora", type="lora", port=0, keys_file=keys_file,
                       **{"dedup_window_s": 0.05, "state_save_interval_s": 0, **options})
    hub = Hub()
    counters: dict[str, int] = {}
    ctx = GatewayDriverContext("lora", hub=hub, clock=SystemClock(assume_synced=True), heartbeat=lambda: None,
                        counters=counters, backlog=lambda: {}, state_dir=keys_file.parent,
                        state=state if state is not None else MemoryState())
    rig = Rig(LoraDriver(opts) if clock is None else LoraDriver(opts, clock=clock), ctx, hub, counters=counters)
    hub.on_readings("test", rig.readings.extend)
    hub.on_notice("test", rig.notices.append)
    task = asyncio.create_task(rig.driver.run(ctx))
    ready = asyncio.create_task(rig.driver.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises the driver's start-up error
    assert ready in done, "the driver did not start"
    try:
        yield rig
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
