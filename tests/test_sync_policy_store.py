"""The aggregator against a real store: upload lane, exactly-once across restarts, local window."""

from __future__ import annotations

import itertools
import json
import random

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.model import Alarm, Lane, Reading, UploadRecord
from zaas_edge.store import Store, Writer
from zaas_edge.store.retention import enforce, expire
from zaas_edge.store.store import UPLOAD_BLOCK
from zaas_edge.sync.aggregate import CONSUMER, Aggregator
from zaas_edge.sync.config import SyncSection
from zaas_edge.wire.codec import SOURCE_LANE, decode_batch, encode_batch

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
        assert [s.seq for s in st.read(Lane.UPLOAD, 4094, 3)] == [4095, 4096, 4097]  # inside a block
        assert st.backlog()[Lane.UPLOAD] == 5001
        more = [UploadRecord("m/v", "V", T0 + i * S, 231.0, resolution=0.1) for i in range(UPLOAD_BLOCK + 3)]
        assert st.save_uploads(more, "aggregate", 0, "{}", T0) == (5002, 5001 + len(more))
        edge = 5001 + UPLOAD_BLOCK  # the last record of the first block of that commit
        assert [(s.seq, s.item) for s in st.read(Lane.UPLOAD, edge - 2, 4)] == [
            (edge - 1, more[-5]), (edge, more[-4]), (edge + 1, more[-3]), (edge + 2, more[-2])]  # across a block edge
        assert st.read(Lane.UPLOAD, 0, edge + 1)[-1].seq == edge + 1  # the limit holds across blocks
        wire = st.read_for_wire(Lane.UPLOAD, edge - 2, 4)  # what sync encodes: the same rows, as tuples
        assert [(w.seq, UploadRecord(*w.item)) for w in wire] == [
            (edge - 1, more[-5]), (edge, more[-4]), (edge + 1, more[-3]), (edge + 2, more[-2])]
        assert encode_batch(Lane.READING, st.read_for_wire(Lane.UPLOAD, 0, 20_000)) == encode_batch(
            Lane.READING, st.read(Lane.UPLOAD, 0, 20_000))
        assert [s.item for s in st.read(Lane.UPLOAD, 5001, 100_000)] == more
        st.ack("sync", Lane.UPLOAD, 5001)
        assert st.backlog()[Lane.UPLOAD] == len(more)
        st.connection.execute("DELETE FROM upload WHERE seq > 5001")  # back to the records the test follows
        st.connection.execute("UPDATE cursor SET seq = 0 WHERE consumer = 'sync'")
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
        cursor = (await w.position(CONSUMER, Lane.READING)).cursor
        assert cursor == 120  # the second minute (from seq 121) is still open
        state = json.loads(await w.consumer_state(CONSUMER))
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


def _upload_blocks(st: Store, blocks: int, per_block: int, rnd: random.Random) -> None:
    """Noisy records (they compress little), one block per commit as the aggregator makes them."""
    for _ in range(blocks):
        recs = [UploadRecord(f"m{rnd.randrange(500)}/p", "W", T0 + rnd.randrange(10**12), rnd.random() * 1e6)
                for _ in range(per_block)]
        st.save_uploads(recs, CONSUMER, st.cursor(CONSUMER, Lane.READING), "{}", T0)


def test_retention_drops_oldest_unsent_upload_blocks_with_a_gap_never_alarms(tmp_path):
    rnd = random.Random(3)
    stamp = FakeClock(wall_ns=T0).now()
    with Store(tmp_path / "s.db") as st:
        st.register("sync", [Lane.UPLOAD, Lane.EVENT, Lane.ALARM])
        st.append(alarms=[Alarm("a.one", True, "x" * 2000, "t", stamp)] * 20)
        _upload_blocks(st, 40, 500, rnd)
        st.ack("sync", Lane.UPLOAD, 250)  # sync delivered half of the first block
        cap = st.used_bytes() // 2
        done = enforce(st, cap, stamp)
        assert done is not None and not done.blocked and done.used_after <= cap
        assert done.dropped_acked == {} and Lane.READING not in done.dropped_unacked
        lost = done.dropped_unacked[Lane.UPLOAD]
        gaps = [g.item for g in st.read(Lane.EVENT)]
        assert [g.kind for g in gaps] == ["store.gap"] * len(done.gaps) and gaps
        assert {g.data["lane"] for g in gaps} == {"upload"}
        assert gaps[0].data["first_seq"] == 251 and sum(g.data["count"] for g in gaps) == lost
        last_dropped = gaps[-1].data["last_seq"]
        assert lost == last_dropped - 250 and last_dropped % 500 == 0  # whole blocks
        left = st.read(Lane.UPLOAD, 250, 1)
        assert left[0].seq == last_dropped + 1  # the oldest went, the newest stay
        assert st.counters()["dropped_unacked.upload"] == lost
        assert len(st.read(Lane.ALARM, limit=100)) == 20  # never alarms


def test_an_outage_far_beyond_a_week_keeps_the_store_bounded(tmp_path):
    rnd = random.Random(4)
    stamp = FakeClock(wall_ns=T0).now()
    with Store(tmp_path / "s.db") as st:
        st.register("sync", [Lane.UPLOAD, Lane.EVENT, Lane.ALARM])
        _upload_blocks(st, 10, 500, rnd)
        cap = st.used_bytes()
        made = 10 * 500
        for _ in range(30):  # three times what fits, nothing ever acknowledged
            _upload_blocks(st, 1, 500, rnd)
            made += 500
            done = enforce(st, cap, stamp)
            assert done is None or not done.blocked
            assert st.used_bytes() <= cap
        kept = len(st.read(Lane.UPLOAD, 0, 100_000))
        gaps = [g.item.data for g in st.read(Lane.EVENT, 0, 1000)]
        assert kept + sum(g["count"] for g in gaps) == made  # every record is either kept or in a gap
        spans = sorted((g["first_seq"], g["last_seq"]) for g in gaps)
        assert spans[0][0] == 1 and all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))
        assert st.read(Lane.UPLOAD, 0, 1)[0].seq == spans[-1][1] + 1


async def test_a_box_that_never_gets_ntp_still_uploads_after_the_hold_flagged_unsynchronised(tmp_path):
    """The defaults on a box whose kernel never reports the clock synchronised (no NTP reachable)."""
    clock = FakeClock(wall_ns=T0, synced=False)  # the box's own, untrusted, wall clock
    cfg = SyncSection(enabled=True)  # clock_hold_s, windows, grace: the defaults
    async with Writer(StoreSection(), tmp_path / "s.db", clock) as w:
        agg = Aggregator(w, cfg, clock)
        await agg.start()
        for _ in range(int(cfg.clock_hold_s) // 60 - 1):  # up to just before the hold ends
            w.submit(readings(clock, 60))
            await w.flush()
            await agg.step()
        assert await w.read(Lane.UPLOAD, 0, 10) == []  # held: synchronisation may still come
        assert agg.status["aggregate_held_since_seq"] == 1
        hold = agg.status["aggregate_hold"]  # what `status` says: why, and when the wait ends by itself
        assert hold["reason"] == "clock not synchronised" and 0 < hold["release_in_s"] <= 120
        for _ in range(3):  # past the hold: given up on, they go up as they are
            w.submit(readings(clock, 60))
            await w.flush()
            await agg.step()
        recs = [s.item for s in await w.read(Lane.UPLOAD, 0, 1000)]
        minutes = int(cfg.clock_hold_s) // 60 + 1  # closed windows so far (the last minute is still open)
        assert len(recs) == 2 * minutes
        assert all(not r.synced and not r.corrected and r.boot_id == clock.boot_id for r in recs)
        assert all(r.mono_ns is not None for r in recs)  # the platform can place them itself
        assert [(r.point, r.wall_ns, r.count) for r in recs[:2]] == [("m/p", T0, 60), ("m/q", T0, 60)]
        assert agg.status["aggregate_held_since_seq"] is None and agg.status["aggregate_hold"] is None


async def test_a_wall_clock_step_forward_and_back_neither_pins_the_aggregator_nor_expires_history_at_once(tmp_path):
    """+1 day and back: windows stamped tomorrow close after a window of real time, the cursor reaches
    the end, and the local window is not emptied by the step."""
    day = 86_400
    clock = FakeClock(wall_ns=T0)
    cfg = SyncSection(enabled=True, aggregate_grace_s=5, local_window_h=1)
    async with Writer(StoreSection(), tmp_path / "s.db", clock) as w:
        agg = Aggregator(w, cfg, clock)
        await agg.start()
        w.submit(readings(clock, 2 * 3600, points=("m/p",)))  # two hours of history
        await w.flush()
        await agg.step()
        held = len(await w.read(Lane.READING, 0, 10**6))
        clock.jump_wall(day)
        w.submit(readings(clock, 90, points=("m/p",)))  # stamped tomorrow
        await w.flush()
        while await agg.step():
            pass
        # The step expired at most what real time allows, not the two hours at once.
        after_step = len(await w.read(Lane.READING, 0, 10**6))
        assert after_step >= held - 2 * 90 - 5
        clock.jump_wall(-day)  # and back
        w.submit(readings(clock, 120, points=("m/p",)))
        await w.flush()
        for _ in range(3):
            await agg.step()
            clock.advance(30)
        w.submit(readings(clock, 1, points=("m/p",)))
        await w.flush()
        await agg.step()
        last = (await w.position(CONSUMER, Lane.READING)).last_seq
        cursor = (await w.position(CONSUMER, Lane.READING)).cursor
        # Every window but the one the last reading opened is closed: the cursor is not pinned tomorrow.
        assert last - cursor <= 60
        ups = [s.item for s in await w.read(Lane.UPLOAD, 0, 10**6)]
        tomorrow = [u for u in ups if u.wall_ns >= T0 + day * S]
        assert sum(u.count for u in tomorrow) == 90  # every reading stamped tomorrow went up, once
