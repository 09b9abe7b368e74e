"""Run a ``ModbusDriver`` in-process with a minimal hub, for tests and benchmarks.

The driver gets a real ``GatewayDriverContext`` context (hub, clock, counters, an
in-memory state backend); ``DriverRun`` records what it emits and lets a test
await a condition on it instead of sleeping.
"""

from __future__ import annotations

__all__ = ["DriverRun", "bus_options"]

import asyncio
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zaas_edge.drivers.modbus import ModbusDriver, ModbusOptions

from zaas_edge.clock import SystemClock
from zaas_edge.context import GatewayDriverContext, MemoryState
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Reading

from .modbus_sim import SimServer


def bus_options(srv: SimServer, devices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A driver section reaching a simulated bus (``id`` "bus", quick timeouts unless given)."""
    d: dict[str, Any] = {"id": "bus", "type": "modbus", "transport": srv.kind, "timeout_s": 0.3,
                         "devices": devices}
    if srv.kind == "rtu":
        d.update(port=srv.pty_path, baudrate=115200)
    else:
        d.update(host=srv.host, port=srv.port)
    d.update(extra)
    return d


class DriverRun:
    """A driver running on the current loop, with everything it emits recorded."""

    def __init__(self, options: Mapping[str, Any] | ModbusOptions, *, keep_readings: bool = True) -> None:
        self.options = options if isinstance(options, ModbusOptions) else ModbusOptions.model_validate(options)
        self.driver = ModbusDriver(self.options)
        self.hub = Hub()
        self.counters: dict[str, int] = {}
        self.state = MemoryState()
        self.readings: list[Reading] = []
        self.notices: list[Event | Alarm] = []
        self.readings_total = 0
        self._keep = keep_readings
        self._changed = asyncio.Event()
        self.hub.on_readings("test", self._on_readings)
        self.hub.on_notice("test", self._on_notice)
        self.ctx = GatewayDriverContext(self.options.id, hub=self.hub, clock=SystemClock(assume_synced=True),
                                 heartbeat=lambda: None, counters=self.counters, backlog=lambda: {},
                                 state_dir=Path(tempfile.gettempdir()), state=self.state)
        self.task: asyncio.Task[None] | None = None

    def _on_readings(self, batch: Any) -> None:
        self.readings_total += len(batch)
        if self._keep:
            self.readings.extend(batch)
        self._changed.set()

    def _on_notice(self, item: Event | Alarm) -> None:
        self.notices.append(item)
        self._changed.set()

    async def start(self) -> DriverRun:
        self.task = asyncio.create_task(self.driver.run(self.ctx), name="modbus-driver")
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None

    async def __aenter__(self) -> DriverRun:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Wait until ``predicate()`` holds, re-checking on every reading or notice (and every 50 ms)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()  # surface the driver's crash
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [getattr(n, "kind", getattr(n, "alarm_id", "")) for n in self.notices]
                raise AssertionError(f"timed out waiting for {what}; counters={self.counters} notices={seen}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
            except TimeoutError:
                pass

    # -- what tests look at ---------------------------------------------------------

    def alarms(self, alarm_id: str) -> list[bool]:
        """The transitions of one alarm, in order (True: raised, False: cleared)."""
        return [n.active for n in self.notices if isinstance(n, Alarm) and n.alarm_id == alarm_id]

    def events(self, kind: str) -> list[Event]:
        return [n for n in self.notices if isinstance(n, Event) and n.kind == kind]

    def latest(self, key: str) -> Reading | None:
        return self.hub.latest.get(key)
