"""The batched writer on real SQLite files, including real full, read-only and missing storage."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.errors import StoreUnavailable
from zaas_edge.model import Alarm, Event, Lane, Reading, Severity, Stamp
from zaas_edge.store import DEGRADED_ALARM, Commit, Store, Writer

WAIT = 10.0  # upper bound for awaited effects; never a measured duration


def readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading(f"dev-{i % 7}/energy", i * 0.25, "kWh", 1_700_000_000_000_000_000 + i, 5_000 + i, "boot-1",
                    True) for i in range(start, start + n)]


class Hooks:
    """Collects what the writer reports and lets a test await it."""

    def __init__(self) -> None:
        self.commits: list[Commit] = []
        self.alarms: list[Alarm] = []
        self.events: list[Event] = []
        self.beats = 0
        self.changed = asyncio.Event()
        self.threads: set[str] = set()

    def commit(self, c: Commit) -> None:
        self.commits.append(c)
        self.threads.add(threading.current_thread().name)
        self.changed.set()

    def alarm(self, a: Alarm) -> None:
        self.alarms.append(a)
        self.changed.set()

    def event(self, e: Event) -> None:
        self.events.append(e)
        self.changed.set()

    def beat(self) -> None:
        self.beats += 1
        self.changed.set()

    async def until(self, cond) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(WAIT):
            while not cond():
                self.changed.clear()
                await self.changed.wait()

    def committed(self, lane: Lane = Lane.READING) -> int:
        return sum(c.ranges[lane][1] - c.ranges[lane][0] + 1 for c in self.commits if lane in c.ranges)


def make(path: Path, hooks: Hooks, writer_kw: dict | None = None, **cfg: object) -> Writer:
    section = StoreSection(**{"flush_interval_ms": 20, "retry_interval_s": 0.05, **cfg})
    return Writer(section, path, FakeClock(), on_commit=hooks.commit, on_alarm=hooks.alarm,
                  on_event=hooks.event, heartbeat=hooks.beat, **(writer_kw or {}))


def stored(path: Path, lane: Lane = Lane.READING) -> list:
    with Store(path, readonly=True) as s:
        return s.read(lane, 0, 10**9)


async def test_rows_reaching_flush_rows_are_committed_in_batches_of_that_size(tmp_path: Path) -> None:
    hooks = Hooks()
    w = make(tmp_path / "s.sqlite", hooks, flush_rows=100, flush_interval_ms=10_000)
    await w.start()
    w.submit(readings(250))
    # Reaching flush_rows wakes the writer long before the interval; it then
    # writes all that is pending, one transaction per flush_rows rows.
    await hooks.until(lambda: hooks.committed() == 250)
    assert [c.ranges[Lane.READING] for c in hooks.commits] == [(1, 100), (101, 200), (201, 250)]
    assert [c.rows for c in hooks.commits] == [100, 100, 50]
    w.submit(readings(5, start=250))
    assert await w.flush() is True  # forced, well before the 10 s interval
    assert hooks.commits[-1].ranges[Lane.READING] == (251, 255)
    assert hooks.threads == {"MainThread"}  # hooks run on the event loop's thread
    await w.close()
    assert [r.item for r in stored(tmp_path / "s.sqlite")] == readings(255)


async def test_interval_flushes_small_batches_and_heartbeats_while_idle(tmp_path: Path) -> None:
    hooks = Hooks()
    async with make(tmp_path / "s.sqlite", hooks, flush_interval_ms=20) as w:
        w.submit(readings(3))
        w.event(Event("test.hello", "hi", "tests", FakeClock().now()))
        await hooks.until(lambda: hooks.committed() == 3)
        assert hooks.commits[0].ranges == {Lane.READING: (1, 3), Lane.EVENT: (1, 1)}
        beats = hooks.beats
        await hooks.until(lambda: hooks.beats >= beats + 3)
        assert w.stats().flushes == 1 and w.stats().rows_written == 4
        assert len(await w.stream_epoch()) == 16
    assert [r.item.kind for r in stored(tmp_path / "s.sqlite", Lane.EVENT)] == ["test.hello"]


async def test_close_writes_what_is_pending(tmp_path: Path) -> None:
    hooks = Hooks()
    w = make(tmp_path / "s.sqlite", hooks, flush_interval_ms=10_000)
    await w.start()
    w.submit(readings(10))
    await w.close()
    assert hooks.committed() == 10 and len(stored(tmp_path / "s.sqlite")) == 10
    await w.close()  # idempotent


async def test_ack_read_backlog_and_stats_run_on_the_writer_thread(tmp_path: Path) -> None:
    hooks = Hooks()
    async with make(tmp_path / "s.sqlite", hooks) as w:
        w.submit(readings(10))
        await w.flush()
        assert [r.seq for r in await w.read(Lane.READING, 5, 3)] == [6, 7, 8]
        assert await w.ack("sync", Lane.READING, 6) == 6
        assert (await w.backlog())[Lane.READING] == 4
        st = await w.store_stats()
        assert st.lanes[Lane.READING].rows == 10 and st.degraded is False
        assert st.counters["flushes"] == 1
        names = await w._call(lambda s: __import__("threading").current_thread().name)
        assert names.startswith("zaas-store")


async def test_disk_full_degrades_to_the_ring_then_recovers_without_losing_rows(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    hooks = Hooks()
    async with make(path, hooks, flush_rows=1000) as w:
        w.submit(readings(10))
        await w.flush()
        # A real SQLITE_FULL: the database may not grow by a single page.
        await w._call(lambda s: s.connection.execute(
            f"PRAGMA max_page_count={s.connection.execute('PRAGMA page_count').fetchone()[0]}"))
        w.submit(readings(3000, start=10))
        await hooks.until(lambda: w.degraded)
        assert hooks.alarms[0].alarm_id == DEGRADED_ALARM and hooks.alarms[0].active is True
        assert "SQLITE_FULL" in hooks.alarms[0].text and hooks.alarms[0].severity is Severity.ERROR
        assert w.stats().flush_errors >= 1 and w.pending_rows >= 3000
        w.submit(readings(500, start=3010))  # still accepted while degraded
        await w._call(lambda s: s.connection.execute("PRAGMA max_page_count=1073741823"))
        await hooks.until(lambda: not w.degraded and w.pending_rows == 0)
        assert [(a.alarm_id, a.active) for a in hooks.alarms] == [(DEGRADED_ALARM, True), (DEGRADED_ALARM, False)]
        st = await w.store_stats()
    rows = stored(path)
    assert [r.seq for r in rows] == list(range(1, 3511))
    assert [r.item for r in rows] == readings(3510)
    alarms = [(r.item.alarm_id, r.item.active) for r in stored(path, Lane.ALARM)]
    assert alarms == [(DEGRADED_ALARM, True), (DEGRADED_ALARM, False)]
    assert st.counters["flush_errors"] >= 1 and "ring_overflow.reading" not in st.counters
    assert hooks.events == []  # nothing was dropped: no gap


async def test_read_only_store_degrades_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    hooks = Hooks()
    async with make(path, hooks) as w:
        await w._call(lambda s: s.connection.execute("PRAGMA query_only=1"))
        w.submit(readings(20))
        await hooks.until(lambda: w.degraded)
        assert "SQLITE_READONLY" in hooks.alarms[0].text
        with pytest.raises(StoreUnavailable):
            await w._call(lambda s: s.append(readings(1)))
        await w._call(lambda s: s.connection.execute("PRAGMA query_only=0"))
        await hooks.until(lambda: not w.degraded and w.pending_rows == 0)
    assert [r.item for r in stored(path)] == readings(20)
    assert [a.active for a in hooks.alarms] == [True, False]


async def test_missing_state_dir_starts_degraded_overflows_the_ring_and_recovers_when_it_appears(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = state / "store.sqlite"
    hooks = Hooks()
    async with make(path, hooks, memory_ring_rows=1000) as w:
        assert w.degraded and "SQLITE_CANTOPEN" in hooks.alarms[0].text
        assert not state.exists()  # never created behind the operator's back
        w.submit(readings(1500))
        w.event(Event("test.kept", "kept", "tests", FakeClock().now()))
        assert w.pending_rows == 1000  # the raise alarm, the event and the newest readings
        dropped = w.stats().ring_overflow
        assert dropped == 1500 + 1 + 1 - 1000
        await hooks.until(lambda: w.stats().flush_errors >= 3)  # retries while the directory is missing
        assert w.degraded and hooks.commits == []
        state.mkdir()
        await hooks.until(lambda: not w.degraded and w.pending_rows == 0)
        st = await w.store_stats()
    rows = stored(path)
    assert [r.item for r in rows] == readings(1500)[dropped:]  # the newest, in order
    assert [r.seq for r in rows] == list(range(1, 1501 - dropped))
    events = [r.item for r in stored(path, Lane.EVENT)]
    assert [e.kind for e in events] == ["test.kept", "store.gap"]
    gap = events[1].data
    assert gap == {"lane": "reading", "first_seq": None, "last_seq": None, "count": dropped,
                   "reason": "memory_ring_overflow", "first_wall_ns": readings(1)[0].wall_ns,
                   "last_wall_ns": readings(dropped)[-1].wall_ns}
    assert [e.kind for e in hooks.events] == ["store.gap"]
    assert st.counters["ring_overflow.reading"] == dropped
    assert st.counters["flush_errors"] >= 2
    assert [(r.item.alarm_id, r.item.active) for r in stored(path, Lane.ALARM)] == [
        (DEGRADED_ALARM, True), (DEGRADED_ALARM, False)]


async def test_unbindable_values_are_rejected_counted_and_the_rest_written(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    hooks = Hooks()
    async with make(path, hooks) as w:
        bad = Reading("dev-0/energy", {"not": "a number"}, "kWh", 1, 2, "b", True)  # type: ignore[arg-type]
        w.submit(readings(5) + [bad] + readings(5, start=5))
        await hooks.until(lambda: hooks.committed() == 10)
        assert not w.degraded and w.stats().rejected_rows == 1
        st = await w.store_stats()
    assert [r.item for r in stored(path)] == readings(10)
    assert st.counters["rejected.reading"] == 1
    assert [e.kind for e in hooks.events] == ["store.rejected"]


async def test_retention_runs_from_the_writer_and_reports_gaps(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    hooks = Hooks()
    # A small cap, checked after every flush for the test.
    w = make(path, hooks, writer_kw={"cap_bytes": 200_000, "retention_interval_s": 0.0}, flush_rows=5000)
    async with w:
        for start in range(0, 20_000, 5000):
            w.submit(readings(5000, start=start))
            await w.flush()
        await hooks.until(lambda: any(e.kind == "store.gap" for e in hooks.events))
        st = await w.store_stats()
    assert st.used_bytes <= 200_000
    assert w.stats().retention_runs >= 1
    gaps = [r.item.data for r in stored(path, Lane.EVENT) if r.item.kind == "store.gap"]
    assert sum(g["count"] for g in gaps) == st.counters["dropped_unacked.reading"] > 0
    rows = stored(path)
    assert rows[0].seq == st.counters["dropped_unacked.reading"] + 1 and rows[-1].seq == 20_000


async def test_retention_blocked_by_unsent_alarms_raises_its_alarm_once_and_clears_it(tmp_path: Path) -> None:
    from zaas_edge.store import RETENTION_BLOCKED_ALARM

    path = tmp_path / "s.sqlite"
    hooks = Hooks()
    w = make(path, hooks, writer_kw={"cap_bytes": 150_000, "retention_interval_s": 0.0})
    async with w:
        await w.register("sync", [Lane.ALARM])
        stamp = Stamp(1_700_000_000_000_000_000, 1, "b", True)
        for i in range(60):  # alarms are never dropped: nothing may go
            w.alarm(Alarm(f"big.{i}", True, "x" * 4000, "t", stamp))
        await w.flush()
        w.submit(readings(1))
        await w.flush()
        await hooks.until(lambda: any(a.alarm_id == RETENTION_BLOCKED_ALARM for a in hooks.alarms))
        w.submit(readings(1, start=1))
        await w.flush()  # still blocked: not raised again
        assert [a.active for a in hooks.alarms if a.alarm_id == RETENTION_BLOCKED_ALARM] == [True]
        w.cap_bytes = 10**9  # the operator raised the cap
        w.submit(readings(1, start=2))
        await w.flush()
        await hooks.until(lambda: len([a for a in hooks.alarms if a.alarm_id == RETENTION_BLOCKED_ALARM]) == 2)
    states = [(r.item.alarm_id, r.item.active) for r in stored(path, Lane.ALARM)
              if r.item.alarm_id == RETENTION_BLOCKED_ALARM]
    assert states == [(RETENTION_BLOCKED_ALARM, True), (RETENTION_BLOCKED_ALARM, False)]


async def test_rows_a_degraded_stop_cannot_write_are_recorded_and_written_as_gaps_at_the_next_start(
        tmp_path: Path) -> None:
    import stat

    from zaas_edge.store.retention import GAP_KIND

    path = tmp_path / "s.sqlite"
    side = tmp_path / "s.sqlite.lost.json"
    spill = tmp_path / "run"
    hooks = Hooks()
    w = make(path, hooks, writer_kw={"spill_dirs": (spill,)}, flush_rows=1000)
    await w.start()
    w.submit(readings(10))
    assert await w.flush()
    await w._call(lambda s: s.connection.execute(  # a real SQLITE_FULL
        f"PRAGMA max_page_count={s.connection.execute('PRAGMA page_count').fetchone()[0]}"))
    lost = readings(2774, start=10)
    w.submit(lost)
    await hooks.until(lambda: w.degraded)
    device = Alarm("device.m1.offline", True, "m1 offline", "modbus", Stamp(lost[5].wall_ns, 1, "boot-1", True))
    w.alarm(device)
    await w.close()  # SIGTERM while degraded

    assert side.exists() and stat.S_IMODE(side.stat().st_mode) == 0o600
    assert len(stored(path)) == 10 and stored(path, Lane.ALARM) == []

    hooks2 = Hooks()
    again = make(path, hooks2, writer_kw={"spill_dirs": (spill,)})
    await again.start()
    await again.close()
    assert not side.exists()
    alarms = [r.item for r in stored(path, Lane.ALARM)]
    assert [(a.alarm_id, a.active) for a in alarms] == [(DEGRADED_ALARM, True), ("device.m1.offline", True)]
    assert alarms[1] == device  # exactly as raised, its time included
    gaps = [r.item for r in stored(path, Lane.EVENT) if r.item.kind == GAP_KIND]
    assert [(g.data["lane"], g.data["count"], g.data["reason"]) for g in gaps] == [("reading", 2774, "lost_at_stop")]
    assert (gaps[0].data["first_wall_ns"], gaps[0].data["last_wall_ns"]) == (lost[0].wall_ns, lost[-1].wall_ns)
    with Store(path, readonly=True) as s:
        assert s.counters()["lost_at_stop.reading"] == 2774


async def test_a_stop_that_cannot_write_beside_the_store_records_its_loss_in_the_runtime_directory(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    (tmp_path / "s.sqlite.lost.json").mkdir()  # the side file cannot be written there
    spill = tmp_path / "run"
    hooks = Hooks()
    w = make(path, hooks, writer_kw={"spill_dirs": (spill,)})
    await w.start()
    await w._call(lambda s: s.connection.execute("PRAGMA query_only=1"))
    w.submit(readings(20))
    await hooks.until(lambda: w.degraded)
    await w.close()
    assert (spill / "s.sqlite.lost.json").is_file()
    (tmp_path / "s.sqlite.lost.json").rmdir()

    again = make(path, Hooks(), writer_kw={"spill_dirs": (spill,)})
    await again.start()
    await again.close()
    assert not (spill / "s.sqlite.lost.json").exists()
    gaps = [r.item.data for r in stored(path, Lane.EVENT) if r.item.kind == "store.gap"]
    assert [(g["lane"], g["count"]) for g in gaps] == [("reading", 20)]
    assert [r.item.alarm_id for r in stored(path, Lane.ALARM)] == [DEGRADED_ALARM]


def test_the_lost_rows_record_round_trips_and_refuses_garbage() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from zaas_edge.errors import ProtocolError
    from zaas_edge.store import lost

    rec = lost.LostRows(5, "disk full", {Lane.READING: (3, 1, 9), Lane.EVENT: (1, 4, 4)},
                        (Alarm("a", True, "t", "s", Stamp(1, 2, "b", False), Severity.ERROR, {"k": 1}),))
    assert lost.decode(lost.encode(rec)) == rec and rec.count == 5
    assert lost.tally([(Lane.READING, 5), (Lane.READING, 2), (Lane.EVENT, 7)]) == {
        Lane.READING: (2, 2, 5), Lane.EVENT: (1, 7, 7)}

    @given(st.binary(max_size=200))
    def garbage(data: bytes) -> None:
        try:
            lost.decode(data)
        except ProtocolError:
            pass

    garbage()
    with pytest.raises(ProtocolError):
        lost.decode(b'{"format": 1, "lanes": {"nope": [1, 2, 3]}}')
