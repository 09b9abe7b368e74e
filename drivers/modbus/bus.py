"""Bus discipline: who may talk on the bus, when, and how many at once.

* **Serial line** (RTU on a serial port, or RTU frames through a serial
  device server): RS-485 is half-duplex and every device hears every frame,
  so exactly one request is on the line at a time, and before each request
  the line stays silent for the device's inter-frame delay (3.5 character
  times by default) after the end of the previous exchange. Waiters are
  served in order, writes before reads, so a load-shedding write does not
  queue behind a whole polling cycle.
* **Modbus TCP endpoint**: requests go out in parallel over up to
  ``max_concurrency`` connections (a pymodbus client carries one request at a
  time), because many gateways and meters serve several connections but
  limit how many.

A request never waits on the bus longer than the requests ahead of it, and
each of those is bounded by its own device's timeout, so a silent device
costs the others at most its timeout per request it makes (and the device
poller makes one failing request per poll, not one per block).

When the port or endpoint cannot be opened the bus remembers why and refuses
further attempts for a growing delay (1 s to 30 s), so twenty devices on a
missing USB adapter do not retry the open twenty times a second; each
refused request raises ``LinkDown`` with the reason, and ``on_state`` is
called once per change (down, up) for the driver to log and count.
"""

from __future__ import annotations

__all__ = ["Bus", "SerialBus", "TcpBus", "make_bus", "RequestLog"]

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from .options import ModbusOptions
from .plan import Table
from .transport import Link, LinkDown, LinkSpec

T = TypeVar("T")

PRIORITY_WRITE = 0
PRIORITY_READ = 1
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0

RequestLog = deque  # (start, end, unit) of recent requests, for diagnostics


class _PriorityLock:
    """A FIFO lock whose waiters of a lower priority number go first."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def acquire(self, priority: int) -> None:
        if not self._held and not self._waiters:
            self._held = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return  # ownership handed over, still held
        self._held = False


class Bus:
    """Base: the reconnect gate shared by both disciplines."""

    def __init__(self, options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None) -> None:
        self.options = options
        self.on_state = on_state or (lambda up, reason: None)
        self.down_reason: str | None = None
        self._retry_at = 0.0
        self._retry_delay = RECONNECT_MIN_S
        self.link_failures = 0
        self.requests_in_flight = 0
        self.max_in_flight = 0
        self.recent: RequestLog = deque(maxlen=256)

    def _spec(self) -> LinkSpec:
        o = self.options
        if o.transport == "rtu":
            return LinkSpec("rtu", port=str(o.port), baudrate=o.baudrate, parity=o.parity, stopbits=o.stopbits,
                            bytesize=o.bytesize, connect_timeout_s=max(o.timeout_s, 1.0))
        return LinkSpec(o.transport, host=o.host or "", port=o.tcp_port, connect_timeout_s=max(o.timeout_s, 1.0))

    async def _ensure(self, link: Link) -> None:
        if link.connected:
            return
        now = time.monotonic()
        if self.down_reason is not None and now < self._retry_at:
            raise LinkDown(self.down_reason)
        try:
            await link.connect()
        except LinkDown as exc:
            self.link_failures += 1
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, RECONNECT_MAX_S)
            if self.down_reason != str(exc):
                self.down_reason = str(exc)
                self.on_state(False, str(exc))
            raise
        if self.down_reason is not None:
            self.down_reason = None
            self.on_state(True, "")
        self._retry_delay = RECONNECT_MIN_S

    async def _run(self, link: Link, fn: Callable[[Link], Awaitable[T]], unit: int) -> T:
        await self._ensure(link)
        self.requests_in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.requests_in_flight)
        start = time.monotonic()
        try:
            return await fn(link)
        except LinkDown as exc:
            if self.down_reason is None:
                self.down_reason = str(exc)
                self.on_state(False, str(exc))
            raise
        finally:
            self.requests_in_flight -= 1
            self.recent.append((start, time.monotonic(), unit))

    async def request(self, unit: int, fn: Callable[[Link], Awaitable[T]], *, gap_s: float = 0.0,
                      priority: int = PRIORITY_READ) -> T:
        raise NotImplementedError

    async def read(self, unit: int, table: Table, start: int, count: int, *, timeout: float,
                   gap_s: float = 0.0) -> list[int]:
        return await self.request(unit, lambda link: link.read(unit, table, start, count, timeout), gap_s=gap_s)

    async def write_registers(self, unit: int, address: int, values: Sequence[int], *, timeout: float,
                              gap_s: float = 0.0) -> None:
        await self.request(unit, lambda link: link.write_registers(unit, address, values, timeout), gap_s=gap_s,
                           priority=PRIORITY_WRITE)

    async def write_coil(self, unit: int, address: int, value: bool, *, timeout: float, gap_s: float = 0.0) -> None:
        await self.request(unit, lambda link: link.write_coil(unit, address, value, timeout), gap_s=gap_s,
                           priority=PRIORITY_WRITE)

    async def read_for_write(self, unit: int, table: Table, start: int, count: int, *, timeout: float,
                             gap_s: float = 0.0) -> list[int]:
        """A read that is part of a write (read-back, read-modify-write): write priority."""
        return await self.request(unit, lambda link: link.read(unit, table, start, count, timeout), gap_s=gap_s,
                                  priority=PRIORITY_WRITE)

    def close(self) -> None:
        raise NotImplementedError


class SerialBus(Bus):
    """One request at a time on a half-duplex line, with silence between frames."""

    def __init__(self, options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None) -> None:
        super().__init__(options, on_state)
        self._link = Link(self._spec())
        self._lock = _PriorityLock()
        self._last_end = 0.0

    async def request(self, unit: int, fn: Callable[[Link], Awaitable[T]], *, gap_s: float = 0.0,
                      priority: int = PRIORITY_READ) -> T:
        await self._lock.acquire(priority)
        try:
            wait = self._last_end + gap_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self._run(self._link, fn, unit)
            finally:
                self._last_end = time.monotonic()
        finally:
            self._lock.release()

    def close(self) -> None:
        self._link.close()


class TcpBus(Bus):
    """Parallel requests to one Modbus TCP endpoint over a small pool of connections."""

    def __init__(self, options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None) -> None:
        super().__init__(options, on_state)
        spec = self._spec()
        self._idle: list[Link] = [Link(spec) for _ in range(options.max_concurrency)]
        self._all = list(self._idle)
        self._sem = asyncio.Semaphore(options.max_concurrency)

    async def request(self, unit: int, fn: Callable[[Link], Awaitable[T]], *, gap_s: float = 0.0,
                      priority: int = PRIORITY_READ) -> T:
        async with self._sem:
            # Prefer a link that is already connected.
            link = next((lk for lk in self._idle if lk.connected), self._idle[-1])
            self._idle.remove(link)
            try:
                return await self._run(link, fn, unit)
            finally:
                self._idle.append(link)

    def close(self) -> None:
        for link in self._all:
            link.close()


def make_bus(options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None) -> Bus:
    """The bus a configuration describes: serial discipline unless plain Modbus TCP."""
    return SerialBus(options, on_state) if options.is_serial_line else TcpBus(options, on_state)
