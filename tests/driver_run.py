"""One harness for driver tests: a driver running on a real hub and context, and what it emitted.

In the spirit of h11's ``ConnectionPair``: every driver's tests (Modbus,
M-Bus, BLE, LoRa, TIC, system) start the driver the way the daemon does
(``driver.run(ctx)`` with a ``GatewayDriverContext`` on a real ``Hub``) and
wait on what comes out, instead of each carrying its own copy of that
wiring. ``stored`` is what the store would get, ``seen`` what every other
consumer gets (they differ for drivers that hand live readings).
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
from zaas_edge.model import Alarm, Event, Reading


class DriverRun:
    """``async with DriverRun(driver) as run:`` runs ``driver`` until the block ends."""

    def __init__(self, driver: Driver, driver_id: str | None = None, *, state: StateBackend | None = None,
                 clock: Clock | None = None, heartbeat: Callable[[], None] | None = None,
                 backlog: Callable[[], Mapping[str, int]] | None = None, state_dir: Path | None = None) -> None:
        self.driver = driver
        self.hub = Hub()
        self.stored: list[Reading] = []
        self.seen: list[Reading] = []
        self.batches: list[Sequence[Reading]] = []
        self.notices: list[Event | Alarm] = []
        self.counters: dict[str, int] = {}
        self.changed = asyncio.Event()
        self.state: StateBackend = state if state is not None else MemoryState()
        self.hub.on_readings(STORE_SINK, self.stored.extend)
        self.hub.on_readings("test", self._on_readings)
        self.hub.on_notice("test", self._on_notice)
        self.ctx = GatewayDriverContext(
            driver_id or getattr(getattr(driver, "options", None), "id", None) or "driver",
            hub=self.hub, clock=clock or SystemClock(assume_synced=True), heartbeat=heartbeat or (lambda: None),
            counters=self.counters, backlog=backlog or dict, state_dir=state_dir or Path(tempfile.gettempdir()),
            state=self.state)
        self.task: asyncio.Task[None] | None = None

    def _on_readings(self, batch: Sequence[Reading]) -> None:
        self.batches.append(batch)
        self.seen.extend(batch)
        self.changed.set()

    def _on_notice(self, item: Event | Alarm) -> None:
        self.notices.append(item)
        self.changed.set()

    async def __aenter__(self) -> DriverRun:
        self.task = asyncio.create_task(self.driver.run(self.ctx))
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self.task is not None
        died = self.task.done() and not self.task.cancelled() and self.task.exception() is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        if died and kind is None:
            raise AssertionError(f"the driver stopped on its own: {self.task.exception()!r}")

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
        """Wait until ``predicate()`` holds; fail naming ``what`` (and the counters) after ``timeout``."""

        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                if self.task is not None and self.task.done():
                    raise AssertionError(f"driver stopped: {self.task.exception()!r}")
                # also wake on a short tick: some predicates look at counters, not emissions
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.2)

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            kinds = [getattr(n, "kind", None) or getattr(n, "alarm_id", "") for n in self.notices]
            raise AssertionError(f"timed out waiting for {what}; counters={self.counters}; notices={kinds}") from None

    def latest(self) -> dict[str, Reading]:
        return {r.point: r for r in self.seen}

    def values(self, point: str) -> list[float]:
        return [r.value for r in self.seen if r.point == point]

    def alarms(self, alarm_id: str) -> list[bool]:
        """The transitions of one alarm, in order: True raised, False cleared."""
        return [n.active for n in self.notices if isinstance(n, Alarm) and n.alarm_id == alarm_id]

    def alarm_items(self) -> list[Alarm]:
        return [n for n in self.notices if isinstance(n, Alarm)]

    def events(self, kind: str | None = None) -> list[Event]:
        return [n for n in self.notices if isinstance(n, Event) and (kind is None or n.kind == kind)]
