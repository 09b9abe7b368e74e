"""The writer serves the reading lane's latest commits from memory: exactly what SQLite gives back.

The aggregator reads every couple of seconds what was just written; the
writer keeps those readings instead of rebuilding every one from its row.
Whatever the batches, the reads, the odd values (NaN, an int, a quality
given as text) and the retention passes in between, ``Writer.read`` returns
what ``Store.read`` on the same file returns.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.model import Lane, Quality, Reading
from zaas_edge.store import Writer
from zaas_edge.store.records import Stored

values = st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=64), st.integers(-1000, 1000))
qualities = st.one_of(st.sampled_from(list(Quality)), st.sampled_from(["ok", "stale"]))
reading = st.builds(
    lambda i, v, q, synced: Reading(f"dev-{i % 5}/q{i % 3}", v, "kWh", 1_700_000_000_000_000_000 + i, 7 + i,
                                    f"boot-{i % 2}", synced, q),
    st.integers(0, 50), values, qualities, st.booleans())
step = st.one_of(
    st.tuples(st.just("write"), st.lists(reading, min_size=0, max_size=12)),
    st.tuples(st.just("read"), st.integers(-2, 40), st.integers(0, 15)),
    st.tuples(st.just("expire"), st.integers(0, 40)),
)


def same(a: list[Stored], b: list[Stored]) -> bool:
    def key(s: Stored) -> tuple:
        r = s.item
        assert isinstance(r, Reading)
        value = "nan" if math.isnan(r.value) else (r.value, type(r.value))
        return (s.lane, s.seq, r.point, value, r.unit, r.wall_ns, r.mono_ns, r.boot_id, type(r.synced), r.synced,
                type(r.quality), r.quality)
    return [key(s) for s in a] == [key(s) for s in b]


async def scenario(path: Path, steps: list[tuple]) -> None:
    w = Writer(StoreSection(flush_interval_ms=10_000), path, FakeClock())
    await w.start()
    try:
        await w.register("reader", [Lane.READING])
        for s in steps:
            if s[0] == "write":
                w.submit(s[1])
                assert await w.flush()
            elif s[0] == "read":
                _, after, limit = s
                got = await w.read(Lane.READING, after, limit)
                want = await w._call(lambda st, a=after, n=limit: st.read(Lane.READING, a, n))
                assert same(got, want), (after, limit)
            else:
                seq = min(s[1], (await w.position("reader", Lane.READING)).last_seq)
                if seq > 0:
                    await w.ack("reader", Lane.READING, seq)
                await w.expire(Lane.READING, 2_000_000_000_000_000_000)
    finally:
        await w.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=25))
def test_reads_of_the_latest_commits_equal_what_sqlite_returns(steps: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(scenario(Path(d) / "s.sqlite", steps))


async def test_a_reader_keeping_up_is_served_from_memory_and_lets_go_of_what_it_read(tmp_path: Path) -> None:
    w = Writer(StoreSection(flush_interval_ms=10_000), tmp_path / "s.sqlite", FakeClock())
    await w.start()
    try:
        batch = [Reading(f"m/{i}", float(i), "W", 10 + i, 20 + i, "b", True) for i in range(30)]
        assert await w.read(Lane.READING, 0, 100) == []  # the lane has a reader from now on
        w.submit(batch[:10])
        await w.flush()
        w.submit(batch[10:])
        await w.flush()
        got = await w.read(Lane.READING, 0, 25)
        assert [s.seq for s in got] == list(range(1, 26)) and [s.item for s in got] == batch[:25]
        assert all(a.item is b for a, b in zip(got, batch[:25], strict=True))  # nothing rebuilt
        got = await w.read(Lane.READING, 25, 100)
        assert [s.seq for s in got] == [26, 27, 28, 29, 30]
        assert w._recent_rows == 20  # the first commit, read whole, was let go
        assert await w.read(Lane.READING, 30, 100) == []
    finally:
        await w.close()
