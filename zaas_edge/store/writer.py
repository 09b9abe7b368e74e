"""The batched asynchronous writer: every reading, event and alarm goes through it.

Callers on the event loop hand values over without waiting (``submit``,
``event``, ``alarm``); the writer commits them in one transaction per flush,
every ``flush_interval_ms`` or ``flush_rows`` rows, on one dedicated thread so
SQLite never blocks the loop.

When the store cannot be written (disk full, read-only file system, I/O error,
missing state directory) the writer does not crash: it raises the
``store.degraded`` alarm, keeps what arrives in a bounded memory ring (oldest
readings dropped first, counted, reported as a ``store.gap`` once back),
retries every ``retry_interval_s``, drains the ring in order when the store
works again, then clears the alarm.
"""

from __future__ import annotations

__all__ = ["Writer", "DEGRADED_ALARM", "RETENTION_BLOCKED_ALARM", "RETENTION_INTERVAL_S"]

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from zaas_edge.errors import ProtocolError, StoreUnavailable, ZaasError
from zaas_edge.files import atomic_write
from zaas_edge.model import Alarm, Event, Lane, Quality, Reading, Severity, UploadRecord
from zaas_edge.store import lost, retention
from zaas_edge.store.outbox import Position
from zaas_edge.store.records import Commit, Retention, Stored, StoreStats, WriterStats
from zaas_edge.store.store import Store
from zaas_edge.wire.codec import WireRow

if TYPE_CHECKING:
    from zaas_edge.clock import Clock
    from zaas_edge.config_model import StoreSection

log = logging.getLogger("zaas_edge.store")

T = TypeVar("T")

DEGRADED_ALARM = "store.degraded"
RETENTION_BLOCKED_ALARM = "store.retention_blocked"
RETENTION_INTERVAL_S = 5.0
# Readings of the latest commits kept for the reading lane's reader (the aggregator reads every
# couple of seconds what was just written): at most this many, and only what it has not read yet.
RECENT_READINGS = 10_000
# Errors that leave the connection usable: retry on it. Anything else (I/O
# error, file gone) reopens the file on the next retry.
_KEEP_CONNECTION = {"SQLITE_FULL", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED"}


class Writer:
    """Batches appends into transactions on a dedicated thread; degrades instead of failing.

    Hooks (each called on the event loop; an exception in one is logged, never fatal):
    ``on_commit(Commit)`` after each transaction, ``on_alarm(Alarm)`` and
    ``on_event(Event)`` for what the writer itself raises (``store.degraded``,
    ``store.gap``) so the runtime can log and publish them, ``heartbeat()`` on
    every turn of the loop so the watchdog is fed only while the writer lives.
    """

    def __init__(
        self,
        config: StoreSection,
        path: Path | str,
        clock: Clock,
        *,
        on_commit: Callable[[Commit], Any] | None = None,
        on_alarm: Callable[[Alarm], Any] | None = None,
        on_event: Callable[[Event], Any] | None = None,
        heartbeat: Callable[[], Any] | None = None,
        source: str = "store",
        cap_bytes: int | None = None,
        retention_interval_s: float = RETENTION_INTERVAL_S,
        spill_dirs: Sequence[Path] = (),
    ) -> None:
        self.config = config
        self.path = Path(path)
        self.clock = clock
        self.source = source
        self.cap_bytes = cap_bytes if cap_bytes is not None else config.max_size_mb * 1024 * 1024
        self._on_commit, self._on_alarm, self._on_event, self._heartbeat = on_commit, on_alarm, on_event, heartbeat
        self._interval = config.flush_interval_ms / 1000
        self._rows = config.flush_rows
        self._ring_limit = config.memory_ring_rows
        self._retry_s = config.retry_interval_s
        self._retention_s = retention_interval_s
        self._readings: list[Reading] = []
        self._events: list[Event] = []
        self._alarms: list[Alarm] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="zaas-store")
        self._store: Store | None = None
        self._opened = False
        self._closed = False
        self._degraded: str | None = None  # the reason, while degraded
        self._next_retry = 0.0
        self._last_retention = float("-inf")
        self._overflow: dict[Lane, list[int]] = {}  # lane -> [count, first wall_ns, last wall_ns]
        self._retention_blocked = False
        # Where a stop that cannot write records what it loses: beside the store, else (a full or
        # read-only disk) in the given directories, such as the runtime directory on tmpfs.
        self._lost_files = [d / f"{self.path.name}{lost.LOST_SUFFIX}" for d in (self.path.parent, *spill_dirs)]
        self._unsaved: dict[str, int] = {}  # counters to persist with the next transaction
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.flushes = self.flush_errors = self.rows_written = 0
        self.ring_overflow = self.rejected_rows = self.retention_runs = 0
        self.last_flush_s: float | None = None
        # The readings of the latest commits, (first seq, readings) in seq order up to the last
        # committed reading, for as long as nobody has read them: reading them back from SQLite
        # would rebuild every one the writer just had in hand. Kept only once the lane has a reader.
        self._recent: collections.deque[tuple[int, list[Reading]]] = collections.deque()
        self._recent_rows = 0
        self._recent_wanted = False

    # -------------------------------------------------------------- intake

    def submit(self, readings: Iterable[Reading]) -> None:
        """Queue readings for the next flush (never blocks, never raises for a full store)."""
        self._readings.extend(readings)
        if len(self._readings) + len(self._events) > self._ring_limit:
            self._trim()
        if len(self._readings) >= self._rows:
            self._wake.set()

    def event(self, event: Event) -> None:
        self._events.append(event)
        if self.pending_rows > self._ring_limit:
            self._trim()

    def alarm(self, alarm: Alarm) -> None:
        """Alarms are kept through any outage: the ring never drops them."""
        self._alarms.append(alarm)
        self._wake.set()  # an alarm transition is worth a flush of its own

    @property
    def pending_rows(self) -> int:
        return len(self._readings) + len(self._events) + len(self._alarms)

    @property
    def degraded(self) -> bool:
        return self._degraded is not None

    def _trim(self) -> None:
        """Drop the oldest readings (then events) beyond the ring bound, counted per lane."""
        excess = self.pending_rows - self._ring_limit
        for lane, rows in ((Lane.READING, self._readings), (Lane.EVENT, self._events)):
            if excess <= 0:
                break
            n = min(excess, len(rows))
            if n:
                slot = self._overflow.setdefault(lane, [0, rows[0].wall_ns if lane is Lane.READING
                                                        else rows[0].stamp.wall_ns, 0])
                last = rows[n - 1]
                slot[0] += n
                slot[2] = last.wall_ns if isinstance(last, Reading) else last.stamp.wall_ns
                del rows[:n]
                excess -= n
                self.ring_overflow += n
                self._unsaved[f"ring_overflow.{lane}"] = self._unsaved.get(f"ring_overflow.{lane}", 0) + n

    # ----------------------------------------------------------- lifecycle

    async def open(self) -> bool:
        """Open (and migrate) the store; on failure start degraded. True when open."""
        self._opened = True
        if self._store is None:
            await self._try_open()
        if self._store is not None:
            await self._take_lost()
        return self._store is not None

    # ------------------------------------------- rows a stop could not write

    def _record_lost(self) -> str:
        """Write what this stop loses to the first side file that takes it; says where."""
        rows = [(Lane.READING, r.wall_ns) for r in self._readings]
        rows += [(Lane.EVENT, e.stamp.wall_ns) for e in self._events]
        lanes = lost.tally(rows)
        for lane, (n, first, last) in self._overflow.items():  # dropped from the ring, never reported
            had = lanes.get(lane)
            lanes[lane] = (n, first, last) if had is None else (had[0] + n, min(had[1], first), max(had[2], last))
        record = lost.LostRows(self.clock.now().wall_ns, self._degraded or "", lanes, tuple(self._alarms))
        errors = []
        for target in self._lost_files:
            try:
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                atomic_write(target, lost.encode(record), 0o600)
            except OSError as exc:
                errors.append(f"{target}: {exc.strerror or exc}")
                continue
            return f"recorded in {target} for the next start"
        return "recorded nowhere: " + "; ".join(errors)

    async def _take_lost(self) -> None:
        """Write what an earlier stop recorded as lost (its alarms, one gap per lane), then forget it."""
        found = []
        for target in self._lost_files:
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("store %s: cannot read %s: %s", self.path, target, exc)
                continue
            try:
                found.append((target, lost.decode(data)))
            except ProtocolError as exc:
                log.warning("store %s: %s set aside as %s.bad: %s", self.path, target, target.name, exc)
                with contextlib.suppress(OSError):
                    target.replace(target.with_name(target.name + ".bad"))
        for _target, record in found:
            self._alarms[:0] = record.alarms
            for lane, (n, first, last) in sorted(record.lanes.items()):
                self._raise_event(retention.gap_event(
                    lane, n, "lost_at_stop",
                    f"{n} {lane} rows could not be written when the daemon stopped with the store unavailable "
                    f"({record.reason or 'degraded'})", self.source, self.clock.now(),
                    first_wall_ns=first, last_wall_ns=last, stopped_ns=record.stopped_ns))
                self._unsaved[f"lost_at_stop.{lane}"] = self._unsaved.get(f"lost_at_stop.{lane}", 0) + n
            log.warning("store %s: the last stop could not write %d rows; recorded as gaps", self.path,
                        record.count - len(record.alarms))
        if found and await self.flush():
            for target, _record in found:
                with contextlib.suppress(OSError):
                    target.unlink()

    async def start(self) -> None:
        """Open and run the flush loop as a task of its own (tests, tools, the benchmark)."""
        await self.open()
        self._task = asyncio.create_task(self.run(), name="store-writer")

    async def run(self) -> None:
        """The flush loop, until cancelled. Safe to run again after a crash: state lives on the object."""
        if not self._opened:
            await self.open()
        loop = asyncio.get_running_loop()
        while True:
            self._beat()
            timeout = self._interval
            if self._degraded is not None:
                timeout = max(0.0, min(timeout, self._next_retry - loop.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            if self._degraded is not None and loop.time() < self._next_retry:
                continue
            async with self._lock:
                await self._flush_locked()

    async def flush(self) -> bool:
        """Write everything pending now (retrying the store if degraded). True when all was written."""
        async with self._lock:
            return await self._flush_locked()

    async def drain(self, below: int | None = None) -> None:
        """Wait until fewer than ``below`` rows are pending (default: one flush worth).

        Back-pressure for bulk producers (imports, the benchmark); drivers
        polling at their normal rate never need it.
        """
        limit = self._rows if below is None else below
        while self.pending_rows >= limit and not self.degraded:
            self._wake.set()
            progress = self._progress
            await progress.wait()

    async def close(self) -> None:
        """Stop the loop, write what is pending, close the file. Idempotent."""
        if self._closed:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            if not await self.flush():
                log.error("store %s: closing degraded, %d rows not written (%s): %s",
                          self.path, self.pending_rows, self._record_lost(), self._degraded)
        finally:
            self._closed = True
            if self._store is not None:
                store, self._store = self._store, None
                await asyncio.get_running_loop().run_in_executor(self._executor, store.close)
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> Writer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------- the store's thread

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The thread finishes its transaction regardless: wait for it so
            # the caller's bookkeeping (rows back in the ring, or committed)
            # matches what SQLite did.
            with contextlib.suppress(BaseException):
                await asyncio.wait([fut])
            raise

    async def _call(self, fn: Callable[[Store], T]) -> T:
        """Run ``fn(store)`` on the writer's thread: the one way in for everything below."""
        if self._store is None:
            raise StoreUnavailable(f"store {self.path} is not open: {self._degraded or 'not started'}")
        store = self._store
        return await self._in_thread(fn, store)

    # ------------------------------------- the outbox (zaas_edge.store.outbox)

    async def register(self, consumer: str, lanes: Sequence[Lane]) -> None:
        await self._call(lambda s: s.register(consumer, list(lanes)))

    async def stream_epoch(self) -> str:
        return await self._call(lambda s: s.stream_epoch)

    async def position(self, consumer: str, lane: Lane) -> Position:
        return await self._call(lambda s: Position(s.cursor(consumer, lane), s.last_seq(lane)))

    async def read_for_wire(self, lane: Lane, after_seq: int = 0, limit: int = 1000) -> list[Stored | WireRow]:
        return await self._call(lambda s: s.read_for_wire(lane, after_seq, limit))

    async def commit_uploads(self, records: Sequence[UploadRecord], consumer: str, acked: int, state: str,
                             now_ns: int) -> None:
        await self._call(lambda s: s.save_uploads(list(records), consumer, acked, state, now_ns))

    async def consumer_state(self, consumer: str) -> str | None:
        return await self._call(lambda s: s.consumer_state(consumer))

    async def expire(self, lane: Lane, before_ns: int) -> int:
        dropped = await self._call(lambda s: retention.expire(s, lane, before_ns))
        if dropped and Lane(lane) is Lane.READING:
            self._forget_recent()
        return dropped

    async def ack(self, consumer: str, lane: Lane, seq: int) -> int:
        now_ns = self.clock.now().wall_ns
        return await self._call(lambda s: s.ack(consumer, lane, seq, now_ns))

    async def read(self, lane: Lane, after_seq: int = 0, limit: int = 1000) -> list[Stored]:
        """``Store.read`` on the writer's thread; the readings of the latest commits come from memory."""
        if Lane(lane) is Lane.READING:
            self._recent_wanted = True
            got = self._read_recent(after_seq, limit)
            if got is not None:
                return got
        return await self._call(lambda s: s.read(lane, after_seq, limit))

    # ------------------------------------- readings just committed, in memory

    def _keep_recent(self, first: int, readings: list[Reading]) -> None:
        """Remember a commit's readings (seqs ``first``...) when they read back from SQLite exactly as
        they are: a float value, a ``Quality``, a bool ``synced``. Anything else starts over."""
        if not self._recent_wanted:
            return
        exact = all(type(r.value) is float and type(r.quality) is Quality and type(r.synced) is bool
                    for r in readings)
        if not exact or self._recent_rows + len(readings) > RECENT_READINGS:
            self._forget_recent()
            if not exact or len(readings) > RECENT_READINGS:
                return
        if self._recent:
            last_first, last = self._recent[-1]
            if last_first + len(last) != first:
                self._forget_recent()
        self._recent.append((first, readings))
        self._recent_rows += len(readings)

    def _forget_recent(self) -> None:
        self._recent.clear()
        self._recent_rows = 0

    def _read_recent(self, after_seq: int, limit: int) -> list[Stored] | None:
        """``Store.read(READING, after_seq, limit)`` from the latest commits, or None when they do not
        hold every row it would return. What was read before ``after_seq`` is let go."""
        recent = self._recent
        while recent and recent[0][0] + len(recent[0][1]) - 1 <= after_seq:
            self._recent_rows -= len(recent.popleft()[1])
        if not recent or recent[0][0] > after_seq + 1 or limit <= 0:
            if recent or self._store is None or after_seq < self._store.last_seq(Lane.READING):
                return None
            return []  # nothing committed beyond after_seq
        out: list[Stored] = []
        want = after_seq + 1
        for first, readings in recent:
            i = want - first
            take = readings[i:i + limit - len(out)]
            out.extend([Stored(Lane.READING, seq, r) for seq, r in enumerate(take, want)])
            want += len(take)
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------- the drivers' state

    async def load_state(self, driver: str, key: str) -> dict[str, Any] | None:
        return await self._call(lambda s: s.load_state(driver, key))

    async def save_state(self, driver: str, key: str, value: Mapping[str, Any], now_ns: int) -> None:
        await self._call(lambda s: s.save_state(driver, key, value, now_ns))

    async def backlog(self) -> dict[Lane, int]:
        return await self._call(lambda s: s.backlog())

    async def store_stats(self) -> StoreStats:
        degraded = self.degraded
        return await self._call(lambda s: s.stats(self.cap_bytes, degraded))

    def stats(self) -> WriterStats:
        return WriterStats(
            pending_rows=self.pending_rows, degraded=self.degraded, degraded_reason=self._degraded or "",
            flushes=self.flushes, flush_errors=self.flush_errors, rows_written=self.rows_written,
            last_flush_s=self.last_flush_s, ring_overflow=self.ring_overflow,
            rejected_rows=self.rejected_rows, retention_runs=self.retention_runs,
        )

    # ------------------------------------------------------------ flushing

    async def _try_open(self) -> bool:
        try:
            store = await self._in_thread(lambda: Store(self.path, synchronous=self.config.synchronous))
        except ZaasError as exc:  # StoreUnavailable, or PermanentError (schema newer than us)
            self._fail(exc, opening=True)
            return False
        self._store = store
        return True

    async def _flush_locked(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            if self._store is None and not await self._try_open():
                return False
            turns = self.pending_rows // self._rows + 3  # bounded even under a flood
            while turns > 0:
                turns -= 1
                if not self.pending_rows:
                    if self._degraded is None:
                        break
                    self._recover()  # queues the alarm clear and the gap report: one more turn
                    continue
                if not await self._write_batch():
                    return False
            if loop.time() - self._last_retention >= self._retention_s:
                self._last_retention = loop.time()
                await self._retention()
            return True
        finally:
            self._signal_progress()

    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def _write_batch(self) -> bool:
        readings = self._readings[: self._rows]
        del self._readings[: self._rows]
        events, alarms, counters = self._events, self._alarms, self._unsaved
        self._events, self._alarms, self._unsaved = [], [], {}
        counters = dict(counters)
        counters["flushes"] = counters.get("flushes", 0) + 1
        store = self._store
        assert store is not None
        started = time.perf_counter()
        fut = asyncio.get_running_loop().run_in_executor(
            self._executor, store.append, readings, events, alarms, counters)
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The thread finishes the transaction regardless: settle the books
            # with what SQLite did (committed, or rows back in the ring) first.
            await asyncio.wait([fut])
            self._settle(fut, started, readings, events, alarms, counters)
            raise
        except Exception:  # noqa: S110 - inspected through the future below
            pass
        return self._settle(fut, started, readings, events, alarms, counters)

    def _settle(self, fut: asyncio.Future, started: float, readings: list[Reading], events: list[Event],
                alarms: list[Alarm], counters: dict[str, int]) -> bool:
        exc = fut.exception()
        if exc is None:
            self.last_flush_s = time.perf_counter() - started
            self.flushes += 1
            rows = len(readings) + len(events) + len(alarms)
            self.rows_written += rows
            ranges = fut.result()
            if readings and Lane.READING in ranges:
                self._keep_recent(ranges[Lane.READING][0], readings)
            self._report(Commit(ranges, rows, self.last_flush_s))
            self._signal_progress()  # wakes bulk producers waiting in drain()
            return True
        self._readings[:0] = readings
        self._events[:0] = events
        self._alarms[:0] = alarms
        counters["flushes"] -= 1
        for k, v in counters.items():
            self._unsaved[k] = self._unsaved.get(k, 0) + v
        if not isinstance(exc, StoreUnavailable) and self._reject_bad_rows():
            return True  # the bad rows are out: the next turn writes the rest
        if not isinstance(exc, ZaasError):
            log.error("store %s: unexpected error writing a batch", self.path, exc_info=exc)
            exc = StoreUnavailable(f"store {self.path}: writing failed: {type(exc).__name__}: {exc}")
        self._fail(exc)
        self._trim()
        return False

    def _reject_bad_rows(self) -> bool:
        """Drop pending rows SQLite cannot take (a caller's bug); True when some were found."""
        found = 0
        for lane, rows, ok in ((Lane.READING, self._readings, _good_reading), (Lane.EVENT, self._events, _good_event),
                               (Lane.ALARM, self._alarms, _good_alarm)):
            good = [r for r in rows if ok(r)]
            bad = len(rows) - len(good)
            if bad:
                rows[:] = good
                found += bad
                self._unsaved[f"rejected.{lane}"] = self._unsaved.get(f"rejected.{lane}", 0) + bad
                log.error("store %s: dropped %d %s rows with values the store cannot hold", self.path, bad, lane)
        if not found:
            return False
        self.rejected_rows += found
        self._raise_event(Event("store.rejected", f"dropped {found} rows with values the store cannot hold",
                                self.source, self.clock.now(), Severity.ERROR, {"count": found}))
        return True

    async def _retention(self) -> None:
        store = self._store
        if store is None:
            return
        stamp = self.clock.now()
        try:
            done: Retention | None = await self._in_thread(retention.enforce, store, self.cap_bytes, stamp, self.source)
        except ZaasError as exc:
            log.warning("store %s: retention failed: %s", self.path, exc)
            self._unsaved["retention_errors"] = self._unsaved.get("retention_errors", 0) + 1
            return
        blocked = done is not None and done.blocked
        if blocked != self._retention_blocked:
            self._retention_blocked = blocked
            text = (f"store over its cap of {self.cap_bytes} bytes with only unsent alarms and gap records left: "
                    "new rows grow the file; restore the uplink or raise store.max_size_mb" if blocked
                    else "store back under its cap")
            self._raise_alarm(Alarm(RETENTION_BLOCKED_ALARM, blocked, text, self.source, self.clock.now(),
                                    Severity.ERROR, {"path": str(self.path), "cap_bytes": self.cap_bytes}))
        if done is None:
            return
        self._forget_recent()  # rows may have gone from under the readings kept in memory
        self.retention_runs += 1
        log.info("store %s: over its cap, dropped %s acknowledged and %s unsent rows (%d -> %d bytes)",
                 self.path, dict(done.dropped_acked), dict(done.dropped_unacked), done.used_before, done.used_after)
        if done.blocked:
            log.warning("store %s: still over its cap of %d bytes with only unsent alarms/events left",
                        self.path, done.cap_bytes)
        if done.gap_seqs:
            self._report(Commit({Lane.EVENT: done.gap_seqs}, len(done.gaps)))
        for gap in done.gaps:
            self._hook(self._on_event, gap)

    # ------------------------------------------------- degrade and recover

    def _fail(self, exc: ZaasError, opening: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.flush_errors += 1
        self._forget_recent()
        self._unsaved["flush_errors"] = self._unsaved.get("flush_errors", 0) + 1
        self._next_retry = loop.time() + self._retry_s
        code = getattr(exc, "code", "")
        if not opening and code not in _KEEP_CONNECTION and self._store is not None:
            store, self._store = self._store, None
            self._executor.submit(store.close)
        if self._degraded is not None:
            return
        self._degraded = str(exc)
        log.error("store %s: degraded, keeping up to %d rows in memory and retrying every %gs: %s",
                  self.path, self._ring_limit, self._retry_s, exc)
        self._raise_alarm(Alarm(
            DEGRADED_ALARM, True, f"store cannot be written, buffering in memory: {exc}", self.source,
            self.clock.now(), Severity.ERROR,
            {"path": str(self.path), "code": code, "ring_rows": self._ring_limit},
        ))

    def _recover(self) -> None:
        reason, self._degraded = self._degraded, None
        log.warning("store %s: writable again, memory ring drained", self.path)
        for lane, (n, first_wall, last_wall) in sorted(self._overflow.items()):
            self._raise_event(retention.gap_event(
                lane, n, "memory_ring_overflow",
                f"memory ring full while the store was unavailable: dropped {n} {lane} rows",
                self.source, self.clock.now(), first_wall_ns=first_wall, last_wall_ns=last_wall))
        self._overflow = {}
        self._raise_alarm(Alarm(DEGRADED_ALARM, False, "store writable again", self.source,
                                self.clock.now(), Severity.ERROR, {"path": str(self.path), "was": reason or ""}))

    # ---------------------------------------------------------------- hooks

    def _raise_alarm(self, alarm: Alarm) -> None:
        self._alarms.append(alarm)
        self._hook(self._on_alarm, alarm)

    def _raise_event(self, event: Event) -> None:
        self._events.append(event)
        self._hook(self._on_event, event)

    def _report(self, commit: Commit) -> None:
        self._hook(self._on_commit, commit)

    def _beat(self) -> None:
        self._hook(self._heartbeat)

    @staticmethod
    def _hook(fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # a faulty hook must not stop the store
            log.exception("store writer hook %r failed", fn)


# ------------------------------------------------------- row validation
# Used only after a batch failed for a reason other than the storage, to find
# and drop the rows at fault instead of retrying the same batch forever.

def _good_stamp(wall: object, mono: object, boot: object, synced: object) -> bool:
    return (type(wall) is int and type(mono) is int and isinstance(boot, str) and isinstance(synced, (bool, int))
            and -(2**63) <= wall < 2**63 and -(2**63) <= mono < 2**63)


def _good_reading(r: object) -> bool:
    from zaas_edge.store.schema import QUALITY_CODES
    return (isinstance(r, Reading) and isinstance(r.point, str) and isinstance(r.unit, str)
            and (r.value is None or isinstance(r.value, (int, float))) and r.quality in QUALITY_CODES
            and _good_stamp(r.wall_ns, r.mono_ns, r.boot_id, r.synced)
            and (not isinstance(r.value, int) or -(2**63) <= r.value < 2**63))


def _good_event(e: object) -> bool:
    return (isinstance(e, Event) and all(isinstance(x, str) for x in (e.kind, e.text, e.source))
            and _good_stamp(e.stamp.wall_ns, e.stamp.mono_ns, e.stamp.boot_id, e.stamp.synced))


def _good_alarm(a: object) -> bool:
    return (isinstance(a, Alarm) and all(isinstance(x, str) for x in (a.alarm_id, a.text, a.source))
            and _good_stamp(a.stamp.wall_ns, a.stamp.mono_ns, a.stamp.boot_id, a.stamp.synced))
