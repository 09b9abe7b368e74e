"""The aggregator against a real store: upload lane, exactly-once across restarts, local window."""

from __future__ import annotations

import json

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.model import Lane, Reading, UploadRecord
from zaas_edge.store import Store, Writer
from zaas_edge.store.retention import expire
from zaas_edge.sync.aggregate import CONSUMER, Aggregator
from zaas_edge.sync.codec import SOURCE_LANE, decode_batch, encode_batch
from zaas_edge.sync.config import SyncSection

S = 1_000_000_000
T0 = 1_700_000_040 * S  # a minute boundary


def readings(clock: FakeClock, seconds: int, points=("m/p", "m/q")) -> list[Reading]:
    out = []
    for _ in range(seconds):
        st = clock.now()
        out.extend(Reading.at(st, p, float(i + st.wall_ns // S % 7), "W") for i, p in enumerate(points))
        clock.advance(1)
    return out


def test_upload_lane_round_trips_records_in_blocks(tmp_path):
    recs = [UploadRecord("m/v", "V", T0 + i * S, 230.0 + i % 5 / 10, resolution=0.1) for i in range(5000)]
    recs.append(UploadRecord("m/v", "V", T0, 230.0, resolution=0.1, window_s=60, count=60, min=229.5, max=231.0,
                             last=230.1, last_ns=T0 + 59 * S))
    with Store(tmp_path / "s.db") as st:
        st.register("sync", [Lane.UPLOAD])
        assert st.save_uploads(recs, "aggregate", 0, '{"v":1}', T0) == (1, 5001)
        assert st.consumer_state("aggregate") == '{"v":1}'
        got = st.read(Lane.UPLOAD, 0, 10_000)
        assert [s.seq for s in got] == list(range(1, 5002))
        assert [s.item for s in got] == recs
        assert [s.seq for s in st.read(Lane.UPLOAD, 4094, 3)] == [4095, 4096, 4097]  # across a block edge
        assert st.backlog()[Lane.UPLOAD] == 5001
        st.ack("sync", Lane.UPLOAD, 4100)
        assert st.backlog()[Lane.UPLOAD] == 901
        stats = st.stats()
        assert (stats.lanes[Lane.UPLOAD].rows, stats.lanes[Lane.UPLOAD].first_seq) == (5001, 1)
        # What sync sends: the upload lane's rows, encoded for the wire reading lane.
        body = encode_batch(Lane.READING, st.read(SOURCE_LANE[Lane.READING], 4100, 10))
        d = decode_batch(body)
        assert (d.first_seq, d.last_seq, d.rows[0]["value"]) == (4101, 4110, recs[4100].value)
        exported = list(st.export(Lane.UPLOAD))
        assert len(exported) == 5001 and exported[-1]["kind"] == "agg"


async def test_aggregator_writes_upload_records_and_survives_a_restart(tmp_path):
    clock = FakeClock(wall_ns=T0)
    cfg = SyncSection(enabled=True, aggregate_grace_s=5)
    path = tmp_path / "s.db"
    async with Writer(StoreSection(), path, clock) as w:
        w.submit(readings(clock, 90))  # 90 s of two points: one closed minute, one open
        await w.flush()
        agg = Aggregator(w, cfg, clock, resolution={"m/p": 1.0}.get)
        await agg.start()
        await agg.step()
        first = await w.read(Lane.UPLOAD, 0, 100)
        assert [(s.item.point, s.item.kind, s.item.count, s.item.wall_ns) for s in first] == [
            ("m/p", "agg", 60, T0), ("m/q", "agg", 60, T0)]
        assert first[0].item.resolution == 1.0
        cursor = await w.call(lambda s: s.cursor(CONSUMER, Lane.READING))
        assert cursor == 120  # the second minute (from seq 121) is still open
        state = json.loads(await w.call(lambda s: s.consumer_state(CONSUMER)))
        assert state["last_seq"] == 180
        # Restart: a new aggregator replays from the cursor and sends nothing twice.
        again = Aggregator(w, cfg, clock)
        await again.start()
        await again.step()
        assert len(await w.read(Lane.UPLOAD, 0, 100)) == 2
        clock.advance(60)
        w.submit(readings(clock, 1))
        await w.flush()
        await again.step()
        recs = [s.item for s in await w.read(Lane.UPLOAD, 0, 100)]
        assert [(r.point, r.count, r.wall_ns) for r in recs[2:]] == [("m/p", 30, T0 + 60 * S),
                                                                     ("m/q", 30, T0 + 60 * S)]
        assert len(recs) == 4  # the reading at 150 s is in a window still open


async def test_local_window_drops_only_what_the_aggregator_acknowledged(tmp_path):
    clock = FakeClock(wall_ns=T0)
    path = tmp_path / "s.db"
    with Store(path) as st:
        st.register(CONSUMER, [Lane.READING])
        st.append(readings(clock, 100, points=("m/p",)))
        assert expire(st, Lane.READING, T0 + 50 * S) == 0  # nothing acknowledged yet
        st.ack(CONSUMER, Lane.READING, 30)
        assert expire(st, Lane.READING, T0 + 50 * S) == 30
        st.ack(CONSUMER, Lane.READING, 100)
        assert expire(st, Lane.READING, T0 + 50 * S) == 20  # seqs 31..50: older than the window
        assert [s.seq for s in st.read(Lane.READING, 0, 1)] == [51]
        assert st.counters()["expired.reading"] == 50
