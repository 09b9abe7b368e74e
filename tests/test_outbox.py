"""The outbox a consuming service holds: the writer implements every call of the Protocol, on a real store."""

from __future__ import annotations

import inspect
from pathlib import Path

from tests.test_writer import Hooks, make, readings
from zaas_edge.model import Lane, UploadRecord
from zaas_edge.store.outbox import Outbox, Position
from zaas_edge.store.writer import Writer

T0 = 1_700_000_000_000_000_000


def test_the_writer_has_every_call_of_the_outbox_with_its_signature() -> None:
    calls = [n for n, f in vars(Outbox).items() if inspect.iscoroutinefunction(f)]
    assert len(calls) == 9
    for name in calls:
        assert inspect.signature(getattr(Writer, name)) == inspect.signature(getattr(Outbox, name)), name
    assert not hasattr(Writer, "call"), "a service reaches the store through the outbox, not arbitrary callables"


async def test_a_consumer_registers_reads_commits_uploads_acknowledges_and_expires(tmp_path: Path) -> None:
    w = make(tmp_path / "s.sqlite", Hooks())
    await w.start()
    box: Outbox = w
    try:
        w.submit(readings(10))
        assert await w.flush()
        await box.register("agg", [Lane.READING])
        assert await box.position("agg", Lane.READING) == Position(0, 10)
        assert (await box.position("agg", Lane.READING)).backlog == 10
        rows = await box.read(Lane.READING, 4, 3)
        assert [r.seq for r in rows] == [5, 6, 7]
        assert await box.consumer_state("agg") is None

        recs = [UploadRecord("dev-0/energy", "kWh", T0, 1.5, resolution=0.25),
                UploadRecord("dev-1/energy", "kWh", T0, 2.0, window_s=60, count=4, min=1.0, max=3.0, last=2.0,
                             last_ns=T0 + 1)]
        await box.commit_uploads(recs, "agg", 7, '{"v":1}', T0)
        assert (await box.position("agg", Lane.READING)).cursor == 7
        assert await box.consumer_state("agg") == '{"v":1}'
        wire = await box.read_for_wire(Lane.UPLOAD, 0, 10)
        assert [(r.seq, UploadRecord(*r.item)) for r in wire] == [(1, recs[0]), (2, recs[1])]

        await box.register("sync", [Lane.UPLOAD])
        assert await box.ack("sync", Lane.UPLOAD, 1) == 1
        assert await box.ack("sync", Lane.UPLOAD, 0) == 1  # never back
        assert len(await box.stream_epoch()) == 16

        # Only what every consumer acknowledged goes: the aggregator is at 7 of 10.
        assert await box.expire(Lane.READING, T0 + 10**12) == 7
        assert [r.seq for r in await box.read(Lane.READING, 0, 100)] == [8, 9, 10]
    finally:
        await w.close()
