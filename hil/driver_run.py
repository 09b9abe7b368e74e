"""One harness for driver tests: a driver running on a real hub and context, and what it emitted.

In the spirit of h11's ``ConnectionPair``: every driver's tests (Modbus,
M-Bus, BLE, LoRa, TIC, system) start the driver the way the daemon does
(``driver.run(ctx)`` with a ``GatewayDriverContext`` on a real ``Hub``) and
wait on what comes out, instead of each carrying its own copy of that
wiring; the benchmarks use it too, so it lives in ``hil/``. ``stored`` is
what the store would get, ``readings`` what every other consumer gets (they
differ for drivers that hand live readings).
"""

from __future__ import annotations

__all__ = ["DriverRun"]

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from zaas_edge.clock import Clock, SystemClock
from zaas_edge.context import GatewayDriverContext, MemoryState, StateBackend
from zaas_edge.driver import Driver
from zaas_edge.hub import STORE_SINK, Hub
from zaas_edge.logsetup import log_notice
from zaas_edge.model import Alarm, Event, Reading


class DriverRun:
    """``async with DriverRun(driver) as run:`` runs ``driver`` until the block ends."""

    def __init__(self, driver: Driver, driver_id: str | None = None, *, state: StateBackend | None = None,
                 clock: Clock | None = None, heartbeat: Callable[[], None] | None = None,
                 backlog: Callable[[], Mapping[str, int]] | None = None, state_dir: Path | None = None,
                 keep_readings: bool = True) -> None:
        self.driver = driver
        self.hub = Hub()
        self.stored: list[Reading] = []
        self.readings: list[Reading] = []
        self.batches: list[Sequence[Reading]] = []
        self.readings_total = 0
        self._keep = keep_readings  # a benchmark's long run counts readings without keeping them
        self.notices: list[Event | Alarm] = []
        self.counters: dict[str, int] = {}
        self.changed = asyncio.Event()
        self.state: StateBackend = state if state is not None else MemoryState()
        self.hub.on_readings(STORE_SINK, self._on_stored)
        self.hub.on_readings("test", self._on_readings)
        self.hub.on_notice("test", self._on_notice)
        self.hub.on_notice("log", log_notice)  # the journal lines the daemon would write
        self.ctx = GatewayDriverContext(
            driver_id or getattr(getattr(driver, "options", None), "id", None) or "driver",
            hub=self.hub, clock=clock or SystemClock(assume_synced=True), heartbeat=heartbeat or (lambda: None),
            counters=self.counters, backlog=backlog or dict, state_dir=state_dir or Path(tempfile.gettempdir()),
            state=self.state)
        self.task: asyncio.Task[None] | None = None

    def _on_stored(self, batch: Sequence[Reading]) -> None:
        if self._keep:
            self.stored.extend(batch)

    def _on_readings(self, batch: Sequence[Reading]) -> None:
        self.readings_total += len(batch)
        if self._keep:
            self.batches.append(batch)
            self.readings.extend(batch)
        self.changed.set()

    def _on_notice(self, item: Event | Alarm) -> None:
        self.notices.append(item)
        self.changed.set()

    async def start(self) -> DriverRun:
        self.task = asyncio.create_task(self.driver.run(self.ctx), name=f"driver.{self.ctx.driver_id}")
        return self

    async def stop(self) -> BaseException | None:
        """Cancel the driver; return what it died of if it stopped on its own first."""
        task, self.task = self.task, None
        if task is None:
            return None
        died = task.exception() if task.done() and not task.cancelled() else None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return died

    async def __aenter__(self) -> DriverRun:
        return await self.start()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        died = await self.stop()
        if died is not None and kind is None:
            raise AssertionError(f"the driver stopped on its own: {died!r}")

    async def until(self, predicate: Callable[[], Any], what: str = "condition", timeout: float = 20.0) -> None:
        """Wait until ``predicate()`` holds; fail naming ``what`` (and the counters) after ``timeout``."""

        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                if self.task is not None and self.task.done():
                    raise AssertionError(f"driver stopped: {self.task.exception()!r}")
                # also wake on a short tick: some predicates look at counters, not emissions
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.05)

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            kinds = [getattr(n, "kind", None) or getattr(n, "alarm_id", "") for n in self.notices]
            raise AssertionError(f"timed out waiting for {what}; counters={self.counters}; notices={kinds}") from None

    def latest(self, point: str) -> Reading | None:
        """The point's last reading (the hub's latest-value table)."""
        return self.hub.latest.get(point)

    def values(self, point: str) -> list[float]:
        return [r.value for r in self.readings if r.point == point]

    def alarms(self, alarm_id: str) -> list[bool]:
        """The transitions of one alarm, in order: True raised, False cleared."""
        return [n.active for n in self.notices if isinstance(n, Alarm) and n.alarm_id == alarm_id]

    def alarm_items(self) -> list[Alarm]:
        return [n for n in self.notices if isinstance(n, Alarm)]

    def events(self, kind: str | None = None) -> list[Event]:
        return [n for n in self.notices if isinstance(n, Event) and (kind is None or n.kind == kind)]
