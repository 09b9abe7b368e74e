"""Shared pieces for the LoRa driver tests: a running driver on a real UDP socket, a Hub that records."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from zaas_edge.drivers.lora import LoraDriver, LoraOptions
from zaas_edge.drivers.lora.keys import save_keys

from hil.driver_run import DriverRun
from hil.lora_forwarder import DEMO_DEVICES
from zaas_edge.context import MemoryState


class Rig(DriverRun):
    """The generic driver harness around a running LoRa driver, with the port it listens on."""

    driver: LoraDriver

    @property
    def port(self) -> int:
        assert self.driver.address is not None
        return self.driver.address[1]


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
                       **{"dedup_window_s": 0.05, **options})
    driver = LoraDriver(opts) if clock is None else LoraDriver(opts, clock=clock)
    async with Rig(driver, "lora", state=state, state_dir=keys_file.parent) as rig:
        assert rig.task is not None
        ready = asyncio.create_task(driver.ready.wait())
        done, _ = await asyncio.wait({rig.task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if rig.task in done:
            ready.cancel()
            rig.task.result()  # raises the driver's start-up error
        assert ready in done, "the driver did not start"
        yield rig
