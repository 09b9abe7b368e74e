"""The store on real SQLite files: schema, migrations, seqs, cursors, reads, export, stats, errors."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from zaas_edge.clock import FakeClock
from zaas_edge.errors import PermanentError, StoreUnavailable
from zaas_edge.model import Alarm, Event, Lane, Quality, Reading, Severity
from zaas_edge.store import SCHEMA_VERSION, Store, enforce_retention, migrate
from zaas_edge.store.schema import MIGRATIONS, connect, translate

CLOCK = FakeClock()


def readings(n: int, start: int = 0, boot: str = "boot-a") -> list[Reading]:
    return [Reading(f"meter-{i % 5}/power", i * 1.5, "W", 1_700_000_000_000_000_000 + i * 1_000_000_000,
                    10_000 + i, boot, i % 2 == 0, list(Quality)[i % 4]) for i in range(start, start + n)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store.sqlite")
    yield s
    s.close()


def test_new_store_is_wal_incremental_vacuum_and_current_schema(store: Store) -> None:
    c = store.connection
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert len(store.stream_epoch) == 16 and int(store.stream_epoch, 16) >= 0


def test_synchronous_normal_is_configurable(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite", synchronous="normal") as s:
        assert s.connection.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_stream_epoch_is_kept_across_opens_and_differs_between_databases(tmp_path: Path) -> None:
    with Store(tmp_path / "a.sqlite") as a:
        epoch = a.stream_epoch
    with Store(tmp_path / "a.sqlite") as again, Store(tmp_path / "b.sqlite") as b:
        assert again.stream_epoch == epoch
        assert b.stream_epoch != epoch


def test_v1_database_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = connect(path)
    migrate(conn, path, target=1)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.execute("INSERT INTO point (id, key, unit) VALUES (1, 'm/p', 'W')")
    conn.execute("INSERT INTO boot (id, boot_id) VALUES (1, 'b')")
    conn.execute("INSERT INTO reading VALUES (1, 1, 42.5, 0, 5, 6, 1, 1)")
    conn.execute("UPDATE lane_seq SET last_seq = 1 WHERE lane = 'reading'")
    epoch = conn.execute("SELECT value FROM meta WHERE key = 'stream_epoch'").fetchone()[0]
    conn.close()
    with Store(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.stream_epoch == epoch
        got = s.read(Lane.READING)
        assert [(r.seq, r.item.point, r.item.value, r.item.wall_ns) for r in got] == [(1, "m/p", 42.5, 5)]
        # v2 added the counters table and the cursor's updated_ns column.
        s.ack("sync", Lane.READING, 1, now_ns=99)
        assert s.connection.execute("SELECT updated_ns FROM cursor").fetchone()[0] == 99
        assert s.append(readings(1))[Lane.READING] == (2, 2)


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(PermanentError, match=r"newer than this zaas-edge understands.*upgrade zaas-edge"):
        Store(path)
    with pytest.raises(PermanentError, match="newer"):
        Store(path, readonly=True)


def test_append_assigns_contiguous_seqs_per_lane_and_reads_back_exact_values(store: Store) -> None:
    stamp = CLOCK.now()
    ranges = store.append(
        readings(3), [Event("test.one", "hello", "tests", stamp, Severity.NOTICE, {"a": [1, 2]})],
        [Alarm("meter.offline", True, "gone", "tests", stamp, Severity.ERROR, {"n": 1})])
    assert ranges == {Lane.READING: (1, 3), Lane.EVENT: (1, 1), Lane.ALARM: (1, 1)}
    assert store.append(readings(2, start=3))[Lane.READING] == (4, 5)
    got = store.read(Lane.READING, after_seq=0, limit=10)
    assert [r.seq for r in got] == [1, 2, 3, 4, 5]
    assert [r.item for r in got] == readings(5)
    ev = store.read(Lane.EVENT)[0].item
    assert (ev.kind, ev.text, ev.severity, dict(ev.data), ev.stamp) == (
        "test.one", "hello", Severity.NOTICE, {"a": [1, 2]}, stamp)
    al = store.read(Lane.ALARM)[0].item
    assert (al.alarm_id, al.active, al.severity, dict(al.data)) == ("meter.offline", True, Severity.ERROR, {"n": 1})
    assert [r.seq for r in store.read(Lane.READING, after_seq=2, limit=2)] == [3, 4]


def test_points_and_boots_are_normalised_into_lookup_tables(store: Store) -> None:
    store.append(readings(100) + readings(100, boot="boot-b"))
    c = store.connection
    assert c.execute("SELECT count(*) FROM point").fetchone()[0] == 5
    assert sorted(r[0] for r in c.execute("SELECT boot_id FROM boot")) == ["boot-a", "boot-b"]
    row = c.execute("SELECT * FROM reading WHERE seq = 1").fetchone()
    assert [type(v) for v in row] == [int, int, float, int, int, int, int, int]


def test_nan_is_stored_as_null_and_read_back_as_nan(store: Store) -> None:
    r = Reading("m/p", math.nan, "W", 1, 2, "b", True)
    store.append([r])
    assert store.connection.execute("SELECT value FROM reading").fetchone()[0] is None
    assert math.isnan(store.read(Lane.READING)[0].item.value)


def test_failed_transaction_rolls_back_seqs_and_lookups(store: Store) -> None:
    store.append(readings(2))
    bad = readings(1, start=7) + [Reading("new/point", object(), "W", 1, 2, "new-boot", True)]  # type: ignore[arg-type]
    with pytest.raises(PermanentError):
        store.append(bad)
    assert store.last_seq(Lane.READING) == 2
    assert store.connection.execute("SELECT count(*) FROM point WHERE key = 'new/point'").fetchone()[0] == 0
    assert store.append([Reading("new/point", 1.0, "W", 1, 2, "new-boot", True)])[Lane.READING] == (3, 3)
    assert store.read(Lane.READING, 2)[0].item.point == "new/point"


def test_seq_is_never_reused_after_every_row_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        s.append(readings(10))
        s.register("sync")
        s.ack("sync", Lane.READING, 10)
        s.connection.execute("DELETE FROM reading")
    with Store(path) as s:
        assert s.read(Lane.READING) == []
        assert s.append(readings(1))[Lane.READING] == (11, 11)


def test_cursors_are_monotonic_and_ack_beyond_the_last_seq_is_refused(store: Store) -> None:
    store.append(readings(10))
    assert store.cursor("sync", Lane.READING) == 0
    assert store.ack("sync", Lane.READING, 7) == 7
    assert store.ack("sync", Lane.READING, 3) == 7  # never backwards
    assert store.cursor("sync", Lane.READING) == 7
    with pytest.raises(PermanentError, match="beyond the last seq"):
        store.ack("sync", Lane.READING, 11)
    assert store.cursors() == {"sync": {Lane.READING: 7}}


def test_backlog_counts_rows_above_the_slowest_registered_consumer(store: Store) -> None:
    store.append(readings(10), [Event("k", "t", "s", CLOCK.now())] * 3)
    # No consumer registered: every row is unacknowledged.
    assert store.backlog()[Lane.READING] == 10 and store.backlog()[Lane.EVENT] == 3
    store.register("sync")
    store.register("archive", [Lane.READING])
    store.ack("sync", Lane.READING, 8)
    store.ack("sync", Lane.EVENT, 3)
    assert store.backlog()[Lane.READING] == 10  # archive is still at 0
    store.ack("archive", Lane.READING, 4)
    assert store.backlog()[Lane.READING] == 6
    assert store.backlog()[Lane.EVENT] == 0


def test_readonly_reader_sees_committed_rows_while_the_writer_is_open(store: Store) -> None:
    store.append(readings(3))
    with Store(store.path, readonly=True) as reader:
        assert [r.seq for r in reader.read(Lane.READING)] == [1, 2, 3]
        store.append(readings(2, start=3, boot="boot-later"))
        got = reader.read(Lane.READING, after_seq=3)
        assert [(r.seq, r.item.boot_id) for r in got] == [(4, "boot-later"), (5, "boot-later")]
        with pytest.raises(StoreUnavailable, match="SQLITE_READONLY"):
            reader.append(readings(1))


def test_readonly_open_of_a_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"no store at .*nothere.sqlite: the daemon may not have run yet"):
        Store(tmp_path / "nothere.sqlite", readonly=True)


def test_missing_state_directory_is_store_unavailable_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="SQLITE_CANTOPEN"):
        Store(tmp_path / "absent" / "store.sqlite")
    assert not (tmp_path / "absent").exists()


def test_sqlite_errors_are_translated_by_code(tmp_path: Path) -> None:
    full = sqlite3.connect(tmp_path / "f.sqlite")
    full.execute("CREATE TABLE t (x BLOB)")
    full.execute(f"PRAGMA max_page_count={full.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.Error) as info:
        full.execute("INSERT INTO t VALUES (zeroblob(100000))")
    err = translate(info.value, "f.sqlite", "appending")
    assert isinstance(err, StoreUnavailable) and err.code == "SQLITE_FULL"
    assert "full" in str(err) and "f.sqlite" in str(err)
    full.execute("PRAGMA query_only=1")
    with pytest.raises(sqlite3.Error) as info:
        full.execute("DELETE FROM t")
    assert translate(info.value, "f.sqlite", "x").code == "SQLITE_READONLY"
    bad = tmp_path / "notadb.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(PermanentError, match="not a SQLite database"):
        Store(bad)


def test_export_filters_by_time_and_point_glob(store: Store) -> None:
    store.append(readings(20))
    t0 = 1_700_000_000_000_000_000
    rows = list(store.export(Lane.READING, since_ns=t0 + 5_000_000_000, until_ns=t0 + 15_000_000_000,
                             point="meter-[12]/*"))
    assert [(r["seq"], r["point"], r["value"]) for r in rows] == [
        (7, "meter-1/power", 9.0), (8, "meter-2/power", 10.5), (12, "meter-1/power", 16.5),
        (13, "meter-2/power", 18.0)]
    assert rows[0] == {"seq": 7, "point": "meter-1/power", "value": 9.0, "unit": "W", "quality": "error",
                       "wall_ns": t0 + 6_000_000_000, "mono_ns": 10_006, "boot_id": "boot-a", "synced": True}
    assert list(store.export(Lane.READING, point="nothing/*")) == []
    with pytest.raises(PermanentError, match="reading lane only"):
        list(store.export(Lane.EVENT, point="x"))


def test_stats_report_lanes_sizes_counters_and_cursors(store: Store) -> None:
    store.append(readings(10), [Event("k", "t", "s", CLOCK.now())])
    store.register("sync")
    store.ack("sync", Lane.READING, 4)
    st = store.stats(cap_bytes=8 << 20, degraded=False)
    r = st.lanes[Lane.READING]
    assert (r.rows, r.first_seq, r.last_seq, r.backlog) == (10, 1, 10, 6)
    assert (r.oldest_wall_ns, r.newest_wall_ns) == (1_700_000_000_000_000_000, 1_700_000_009_000_000_000)
    assert st.lanes[Lane.ALARM].rows == 0 and st.lanes[Lane.ALARM].first_seq is None
    assert st.cursors["sync"][Lane.READING] == 4
    assert st.counters.get("flushes") is None  # only the writer counts flushes
    assert st.used_bytes > 0 and st.file_bytes >= st.wal_bytes > 0
    assert st.cap_bytes == 8 << 20 and st.degraded is False
    d = st.as_dict()
    assert d["lanes"]["reading"]["backlog"] == 6 and d["stream_epoch"] == store.stream_epoch


# ------------------------------------------------------------------ retention

def _fill(store: Store, n: int) -> None:
    for start in range(0, n, 5000):
        store.append(readings(min(5000, n - start), start=start))


def test_retention_drops_acknowledged_rows_first_without_a_gap(store: Store) -> None:
    _fill(store, 30_000)
    store.register("sync")
    store.ack("sync", Lane.READING, 20_000)
    cap = store.used_bytes() // 2
    done = enforce_retention(store, cap, CLOCK.now())
    assert done is not None and not done.blocked
    assert done.used_after <= cap < done.used_before
    assert done.dropped_unacked == {} and done.gaps == ()
    dropped = done.dropped_acked[Lane.READING]
    assert store.read(Lane.READING, limit=1)[0].seq == dropped + 1
    assert store.counters()["dropped_acked.reading"] == dropped
    assert store.read(Lane.EVENT) == []


def test_retention_then_drops_oldest_unacked_readings_with_a_gap_event_never_alarms(store: Store) -> None:
    stamp = CLOCK.now()
    store.append(alarms=[Alarm("a.one", True, "x" * 2000, "t", stamp)] * 50)
    _fill(store, 30_000)
    store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    size_before = store.file_bytes()[0]
    cap = store.used_bytes() // 3
    done = enforce_retention(store, cap, stamp)
    assert done is not None and done.used_after <= cap
    n = done.dropped_unacked[Lane.READING]
    assert done.dropped_acked == {}
    first_left = store.read(Lane.READING, limit=1)[0].seq
    assert first_left == n + 1
    gap_rows = store.read(Lane.EVENT)
    assert [g.item.kind for g in gap_rows] == ["store.gap"] * len(done.gaps)
    assert sum(g.item.data["count"] for g in gap_rows) == n
    assert gap_rows[0].item.data["first_seq"] == 1 and gap_rows[-1].item.data["last_seq"] == n
    assert {g.item.data["reason"] for g in gap_rows} == {"size_cap"}
    assert store.counters()["dropped_unacked.reading"] == n
    assert len(store.read(Lane.ALARM, limit=100)) == 50
    # The freed pages went back to the file system.
    assert store.file_bytes()[0] < size_before


def test_retention_is_blocked_by_unacked_alarms_only(store: Store) -> None:
    stamp = CLOCK.now()
    store.append(alarms=[Alarm("a.big", True, "x" * 4000, "t", stamp)] * 100)
    done = enforce_retention(store, store.used_bytes() // 4, stamp)
    assert done is not None and done.blocked
    assert len(store.read(Lane.ALARM, limit=1000)) == 100
    assert store.counters()["retention_blocked"] == 1
    assert enforce_retention(store, store.used_bytes() * 2, stamp) is None


def test_a_flood_of_one_event_kind_cannot_hold_the_store_over_its_cap(store: Store) -> None:
    """The forged-frame flood: with nothing acknowledged, the oldest events of the flooding kind go (a gap
    records it), the newest of each kind stay, other kinds, gap records and alarms are untouched."""
    from zaas_edge.store.retention import GAP_KIND, KEEP_PER_EVENT_KIND

    stamp = CLOCK.now()
    store.register("sync", [Lane.EVENT, Lane.ALARM])
    store.append(alarms=[Alarm("a.one", True, "x", "t", stamp)])
    store.append(events=[Event("other.kind", "y" * 200, "t", stamp)] * 50)
    flood = 30_000
    for _ in range(flood // 5000):
        store.append(events=[Event("lora.security", "bad MIC " + "z" * 200, "lora", stamp)] * 5000)
    cap = store.used_bytes() // 3
    done = enforce_retention(store, cap, stamp)
    assert done is not None and not done.blocked and done.used_after <= cap
    kinds: dict[str, int] = {}
    rows = store.read(Lane.EVENT, 0, 10**6)
    for r in rows:
        kinds[r.item.kind] = kinds.get(r.item.kind, 0) + 1
    assert kinds["other.kind"] == 50
    assert KEEP_PER_EVENT_KIND <= kinds["lora.security"] < flood
    gaps = [r.item.data for r in rows if r.item.kind == GAP_KIND]
    assert gaps and {g["reason"] for g in gaps} == {"event_flood"}
    assert {g["event_kind"] for g in gaps} == {"lora.security"}
    assert sum(g["count"] for g in gaps) == flood - kinds["lora.security"]
    # The newest of the flooding kind are what is kept.
    kept = [r.seq for r in rows if r.item.kind == "lora.security"]
    assert kept == list(range(kept[0], kept[0] + len(kept)))
    assert len(store.read(Lane.ALARM, limit=10)) == 1


def test_point_names_read_back_for_dense_ids_and_one_written_far_beyond(store: Store) -> None:
    store.append(readings(2))
    store.connection.execute("INSERT INTO point (id, key, unit) VALUES (1000000, 'far/away', 'W')")
    store.connection.execute("INSERT INTO reading VALUES (100, 1000000, 1.5, 0, 1, 1, 1, 1)")
    store.connection.commit()
    with Store(store.path, readonly=True) as reader:
        got = [(s.seq, s.item.point, s.item.unit) for s in reader.read(Lane.READING)]
    first = [(s.seq, s.item.point, s.item.unit) for s in store.read(Lane.READING)][:2]
    assert got == [*first, (100, "far/away", "W")]
    assert [r["point"] for r in store.export(Lane.READING, point="far/*")] == ["far/away"]
