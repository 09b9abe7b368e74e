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

**Resynchronising a serial line.** A meter that answers after its timeout
(slow meters do, on real RS-485 lines) puts its late answer on the line
while the master has moved on, where it would collide with, or be taken
for, the answer to the next request, to another unit. So after a request
that failed on the line (no answer, a garbled answer, an answer that does
not match), the next request waits until the line is quiet:

* for up to ``resync_s`` after the failure (default: the failed request's
  timeout, at most 0.5 s), for the late answer to come; as soon as bytes
  have arrived and the line has then been silent for the inter-frame gap
  (at least ``QUIET_FLOOR_S``: USB adapters deliver bytes in bursts), the
  wait ends early;
* a line still busy at the end of that window gets at most as long again to
  go quiet (a babbling device must not stop the bus);
* then everything received and unused is discarded (``Link.discard_input``),
  and the exchange starts clean. Frames that still arrive late (after the
  window) are recognised by their unit id and function code and discarded
  by the link while it waits for the right answer (``Link.stray_frames``).

An exception response is an answer, not a failure: the exchange completed
and the line is in step, so it needs no resync. Nor does a lost port: it is
reopened, with empty buffers.

A request never waits on the bus longer than the requests ahead of it, and
each of those is bounded by its own device's timeout (plus, on a serial line
after a failure, the resync wait), so a silent device costs the others at
most its timeout and ``resync_s`` per request it makes (and the device
poller makes one failing request per poll, not one per block; an offline
device is only retried with backoff).

When the port or endpoint cannot be opened the bus remembers why and refuses
further attempts for a growing delay (the gateway's backoff, 1 s doubling to
30 s, jittered), so twenty devices on a
missing USB adapter do not retry the open twenty times a second; each
refused request raises ``LinkDown`` with the reason, and ``on_state`` is
called once per change (down, up) for the driver to log and count.
"""

from __future__ import annotations

__all__ = ["Bus", "SerialBus", "TcpBus", "make_bus"]

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from zaas_edge.backoff import Backoff
from zaas_edge.errors import ProtocolError

from .options import ModbusOptions
from .plan import Table
from .transport import Link, LinkDown, LinkSpec, NoResponse

T = TypeVar("T")

PRIORITY_WRITE = 0
PRIORITY_READ = 1
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
RESYNC_DEFAULT_MAX_S = 0.5  # default resync window: the failed request's timeout, at most this
QUIET_FLOOR_S = 0.02  # shortest silence taken as "the line is quiet" (USB latency timers: 1-16 ms)



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

    def __init__(self, options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None,
                 count: Callable[[str, int], None] | None = None) -> None:
        self.options = options
        self.on_state = on_state or (lambda up, reason: None)
        self.count = count or (lambda name, n: None)
        self.down_reason: str | None = None
        self._retry_at = 0.0
        self._reconnect = Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self.link_failures = 0
        self.requests_in_flight = 0
        self.max_in_flight = 0

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
            self._retry_at = time.monotonic() + self._reconnect.next()
            if self.down_reason != str(exc):
                self.down_reason = str(exc)
                self.on_state(False, str(exc))
            raise
        if self.down_reason is not None:
            self.down_reason = None
            self.on_state(True, "")
        self._reconnect.reset()

    async def _run(self, link: Link, fn: Callable[[Link], Awaitable[T]]) -> T:
        await self._ensure(link)
        self.requests_in_flight += 1
        if self.requests_in_flight > self.max_in_flight:
            self.max_in_flight = self.requests_in_flight
        try:
            return await fn(link)
        except LinkDown as exc:
            if self.down_reason is None:
                self.down_reason = str(exc)
                self.on_state(False, str(exc))
            raise
        finally:
            self.requests_in_flight -= 1

    async def request(self, unit: int, fn: Callable[[Link], Awaitable[T]], *, gap_s: float = 0.0,
                      priority: int = PRIORITY_READ, timeout: float | None = None) -> T:
        """Run ``fn`` on a link under the bus discipline (``timeout``: the request's, for the resync wait)."""
        raise NotImplementedError

    def read(self, unit: int, table: Table, start: int, count: int, *, timeout: float,
             gap_s: float = 0.0) -> Awaitable[list[int]]:
        """A poll's read, to be awaited: the request itself, without a coroutine of its own around
        it (every device of a bus waits in here at the top of each second: one frame less each)."""
        return self.request(unit, lambda link: link.read(unit, table, start, count, timeout), gap_s=gap_s,
                            timeout=timeout)

    async def write_registers(self, unit: int, address: int, values: Sequence[int], *, timeout: float,
                              gap_s: float = 0.0) -> None:
        await self.request(unit, lambda link: link.write_registers(unit, address, values, timeout), gap_s=gap_s,
                           priority=PRIORITY_WRITE, timeout=timeout)

    async def write_coil(self, unit: int, address: int, value: bool, *, timeout: float, gap_s: float = 0.0) -> None:
        await self.request(unit, lambda link: link.write_coil(unit, address, value, timeout), gap_s=gap_s,
                           priority=PRIORITY_WRITE, timeout=timeout)

    async def read_for_write(self, unit: int, table: Table, start: int, count: int, *, timeout: float,
                             gap_s: float = 0.0) -> list[int]:
        """A read that is part of a write (read-back, read-modify-write): write priority."""
        return await self.request(unit, lambda link: link.read(unit, table, start, count, timeout), gap_s=gap_s,
                                  priority=PRIORITY_WRITE, timeout=timeout)

    def close(self) -> None:
        raise NotImplementedError


class SerialBus(Bus):
    """One request at a time on a half-duplex line, with silence between frames."""

    def __init__(self, options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None,
                 count: Callable[[str, int], None] | None = None) -> None:
        super().__init__(options, on_state, count)
        self._link = Link(self._spec())
        self._lock = _PriorityLock()
        self._last_end = 0.0
        self._failed_at: float | None = None  # when the last exchange failed on the line
        self._resync_span = 0.0
        self._strays_counted = 0
        self.resyncs = 0
        self.discarded_bytes = 0

    @property
    def stray_frames(self) -> int:
        return self._link.stray_frames

    def _resync_window(self, timeout: float | None) -> float:
        if self.options.resync_s is not None:
            return self.options.resync_s
        return min(timeout if timeout is not None else self.options.timeout_s, RESYNC_DEFAULT_MAX_S)

    async def _resync(self) -> None:
        """Wait for the line to go quiet after a failed exchange, then drop what came meanwhile."""
        failed_at, span = self._failed_at, self._resync_span
        assert failed_at is not None
        self._failed_at = None
        quiet = max(self.options.frame_gap_s, QUIET_FLOOR_S)
        until = failed_at + span
        give_up = until + span
        while True:
            now = time.monotonic()
            last = self._link.last_rx
            silent = now - last
            if silent >= quiet and (last > failed_at or now >= until):
                break  # the late answer has come and gone, or nothing came in the window
            if now >= give_up:
                break  # still talking: do not hold the bus any longer
            step = quiet - silent if silent < quiet else until - now
            await asyncio.sleep(max(min(step, quiet), 0.001))
        dropped = self._link.discard_input()
        self.resyncs += 1
        self.count("resyncs", 1)
        if dropped:
            self.discarded_bytes += dropped
            self.count("discarded_bytes", dropped)

    def _count_strays(self) -> None:
        n = self._link.stray_frames - self._strays_counted
        if n > 0:
            self._strays_counted += n
            self.count("stray_frames", n)

    async def request(self, unit: int, fn: Callable[[Link], Awaitable[T]], *, gap_s: float = 0.0,
                      priority: int = PRIORITY_READ, timeout: float | None = None) -> T:
        await self._lock.acquire(priority)
        try:
            if self._failed_at is not None:
                await self._resync()
            wait = self._last_end + gap_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self._run(self._link, fn)
            except (NoResponse, ProtocolError):
                # The line may still carry (part of) an answer: resync before the next exchange.
                self._failed_at = time.monotonic()
                self._resync_span = self._resync_window(timeout)
                raise
            finally:
                self._last_end = time.monotonic()
                self._count_strays()
        finally:
            self._lock.release()

    def close(self) -> None:
        self._link.close()


class TcpBus(Bus):
    """Parallel requests to one Modbus TCP endpoint over a small pool of connections.

    MBAP transaction ids match answers to requests, so a late answer is
    discarded by pymodbus and needs no resync.
    """

    def __init__(self, options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None,
                 count: Callable[[str, int], None] | None = None) -> None:
        super().__init__(options, on_state, count)
        spec = self._spec()
        self._idle: list[Link] = [Link(spec) for _ in range(options.max_concurrency)]
        self._all = list(self._idle)
        self._sem = asyncio.Semaphore(options.max_concurrency)

    async def request(self, unit: int, fn: Callable[[Link], Awaitable[T]], *, gap_s: float = 0.0,
                      priority: int = PRIORITY_READ, timeout: float | None = None) -> T:
        async with self._sem:
            # Prefer a link that is already connected.
            link = next((lk for lk in self._idle if lk.connected), self._idle[-1])
            self._idle.remove(link)
            try:
                return await self._run(link, fn)
            finally:
                self._idle.append(link)

    def close(self) -> None:
        for link in self._all:
            link.close()


def make_bus(options: ModbusOptions, on_state: Callable[[bool, str], None] | None = None,
             count: Callable[[str, int], None] | None = None) -> Bus:
    """The bus a configuration describes: serial discipline unless plain Modbus TCP.

    ``count(name, n)`` receives the line counters (``resyncs``, ``discarded_bytes``,
    ``stray_frames``) as they grow.
    """
    cls = SerialBus if options.is_serial_line else TcpBus
    return cls(options, on_state, count)
