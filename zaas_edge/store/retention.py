"""Retention by size: keep the store under its cap with an explicit drop order.

Order: first rows every consumer has acknowledged (any lane: nothing is lost),
then the oldest unacknowledged raw readings, then the oldest unacknowledged
upload blocks (the records the upload policies made; an outage far beyond a
week ends here, so the store stays bounded instead of blocked). Data lost is
counted and written as a ``store.gap`` event (lane and seq range) in the same
transaction. Unacknowledged alarms and events are never dropped. Used bytes
are ``(page_count - freelist_count) * page_size``; the freed pages go back to
the file system through ``incremental_vacuum`` (the database is created with
``auto_vacuum=INCREMENTAL``) and a WAL checkpoint.
"""

from __future__ import annotations

__all__ = ["enforce", "expire", "gap_event", "GAP_KIND", "HEADROOM", "KEEP_PER_EVENT_KIND"]

import contextlib
import math

from zaas_edge.errors import StoreUnavailable
from zaas_edge.model import Event, Lane, Severity, Stamp
from zaas_edge.store.records import Retention
from zaas_edge.store.schema import LANE_TABLES, guarded
from zaas_edge.store.store import Store

GAP_KIND = "store.gap"
# Drop down to 90 % of the cap so retention does not run again on the next flush.
HEADROOM = 0.9
_MAX_ROUNDS = 16
_ACKED_ORDER = (Lane.READING, Lane.UPLOAD, Lane.EVENT, Lane.ALARM)
_EXPIRE_CHUNK = 50_000  # rows per transaction, so the writer is never held up long
# Over the cap with only unsent events left: each kind keeps at least its newest this many; older ones
# of a kind that has more may go (one noisy source must not hold the store). Gap records never go.
KEEP_PER_EVENT_KIND = 1000


def gap_event(lane: Lane, count: int, reason: str, text: str, source: str, stamp: Stamp, *,
              first_seq: int | None = None, last_seq: int | None = None, **extra: int | str | None) -> Event:
    """The one record of rows that will never reach the platform: which lane, how many, which seqs
    (None when they were never given one) and why. The platform turns it into a visible hole in a
    series instead of a silent one; every path that drops unsent rows writes it."""
    return Event(GAP_KIND, text, source, stamp, Severity.WARNING,
                 {"lane": str(lane), "first_seq": first_seq, "last_seq": last_seq, "count": count,
                  "reason": reason, **extra})


def _bounds(store: Store, table: str) -> tuple[int | None, int | None]:
    return store.connection.execute(f"SELECT min(seq), max(seq) FROM {table}").fetchone()


def _vacuum(store: Store) -> None:
    with guarded(store.path, "returning free pages"):
        store.connection.execute("PRAGMA incremental_vacuum").fetchall()
    # A checkpoint moves the shrink into the main file; readers may hold it
    # back (busy), which only delays the space coming back.
    with contextlib.suppress(StoreUnavailable), guarded(store.path, "checkpointing"):
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def enforce(store: Store, cap_bytes: int, stamp: Stamp, source: str = "store") -> Retention | None:
    """Drop rows until the store is under ``cap_bytes`` (with headroom); None when already under."""
    used = store.used_bytes()
    if used <= cap_bytes:
        return None
    before, target = used, int(cap_bytes * HEADROOM)
    acked_out = {lane: 0 for lane in Lane}
    unacked_out = {lane: 0 for lane in Lane}
    gaps: list[Event] = []
    gap_first = gap_last = None
    blocked = False
    conn = store.connection
    for _ in range(_MAX_ROUNDS):
        if used <= target:
            break
        with guarded(store.path, "measuring rows"):
            bounds = {lane: _bounds(store, t) for lane, t in LANE_TABLES.items()}
        rows = sum((hi - lo + 1) for lo, hi in bounds.values() if lo is not None)
        per_row = max(16.0, used / max(rows, 1))
        budget = max(256, math.ceil((used - target) / per_row))
        done = 0
        counters: dict[str, int] = {}
        with store.transaction("dropping old rows"):
            for lane in _ACKED_ORDER:
                lo = bounds[lane][0]
                acked = store.acked_through(lane)
                if done >= budget or lo is None or lo > acked:
                    continue
                upto = min(acked, lo + (budget - done) - 1)
                n = conn.execute(f"DELETE FROM {LANE_TABLES[lane]} WHERE seq <= ?", (upto,)).rowcount
                done += n
                acked_out[lane] += n
                counters[f"dropped_acked.{lane}"] = n
            if done < budget:
                lo, hi = _bounds(store, "reading")
                if lo is not None:
                    upto = min(hi, lo + (budget - done) - 1)
                    n = conn.execute("DELETE FROM reading WHERE seq <= ?", (upto,)).rowcount
                    done += n
                    unacked_out[Lane.READING] += n
                    counters["dropped_unacked.reading"] = n
                    gap = gap_event(Lane.READING, n, "size_cap",
                                    f"store over its size cap ({cap_bytes} bytes): dropped {n} unsent readings, "
                                    f"seq {lo} to {upto}", source, stamp, first_seq=lo, last_seq=upto)
                    first, last = store.insert_events([gap])  # type: ignore[misc]
                    gaps.append(gap)
                    gap_first = first if gap_first is None else gap_first
                    gap_last = last
            if done < budget:
                n, span = _drop_upload_blocks(store, budget - done)
                if n:
                    done += n
                    unacked_out[Lane.UPLOAD] += n
                    counters["dropped_unacked.upload"] = n
                    gap = gap_event(Lane.UPLOAD, n, "size_cap",
                                    f"store over its size cap ({cap_bytes} bytes): dropped {n} unsent upload "
                                    f"records, seq {span[0]} to {span[1]}", source, stamp,
                                    first_seq=span[0], last_seq=span[1])
                    first, last = store.insert_events([gap])  # type: ignore[misc]
                    gaps.append(gap)
                    gap_first = first if gap_first is None else gap_first
                    gap_last = last
            if done < budget:
                for kind, n, span in _drop_flooding_events(store, budget - done):
                    done += n
                    unacked_out[Lane.EVENT] += n
                    counters["dropped_unacked.event"] = counters.get("dropped_unacked.event", 0) + n
                    gap = gap_event(Lane.EVENT, n, "event_flood",
                                    f"store over its size cap ({cap_bytes} bytes): dropped the {n} oldest unsent "
                                    f"{kind!r} events, seq {span[0]} to {span[1]}, keeping the newest "
                                    f"{KEEP_PER_EVENT_KIND}", source, stamp, first_seq=span[0], last_seq=span[1],
                                    event_kind=kind)
                    first, last = store.insert_events([gap])  # type: ignore[misc]
                    gaps.append(gap)
                    gap_first = first if gap_first is None else gap_first
                    gap_last = last
            if done == 0:
                counters["retention_blocked"] = 1
            store.bump_counters(counters)
        if done == 0:
            blocked = True  # only unsent alarms and events left: they are never dropped
            break
        _vacuum(store)
        used = store.used_bytes()
    return Retention(
        used_before=before, used_after=used, cap_bytes=cap_bytes,
        dropped_acked={k: v for k, v in acked_out.items() if v},
        dropped_unacked={k: v for k, v in unacked_out.items() if v},
        gaps=tuple(gaps),
        gap_seqs=(gap_first, gap_last) if gap_first is not None else None,
        blocked=blocked,
    )


def _drop_flooding_events(store: Store, budget: int) -> list[tuple[str, int, tuple[int, int]]]:
    """Delete the oldest unacknowledged events of each kind beyond its newest ``KEEP_PER_EVENT_KIND``,
    the most numerous kind first, about ``budget`` in all. Returns (kind, dropped, seq range) per kind."""
    conn = store.connection
    acked = store.acked_through(Lane.EVENT)
    kinds = conn.execute("SELECT kind, count(*) FROM event WHERE seq > ? AND kind != ? GROUP BY kind "
                         "HAVING count(*) > ? ORDER BY 2 DESC", (acked, GAP_KIND, KEEP_PER_EVENT_KIND)).fetchall()
    out = []
    for kind, n in kinds:
        if budget <= 0:
            break
        take = min(n - KEEP_PER_EVENT_KIND, budget)
        lo, hi = conn.execute("SELECT min(seq), max(seq) FROM (SELECT seq FROM event WHERE kind = ? AND seq > ? "
                              "ORDER BY seq LIMIT ?)", (kind, acked, take)).fetchone()
        dropped = conn.execute("DELETE FROM event WHERE kind = ? AND seq > ? AND seq <= ?", (kind, acked, hi)).rowcount
        budget -= dropped
        out.append((kind, dropped, (lo, hi)))
    return out


def _drop_upload_blocks(store: Store, budget: int) -> tuple[int, tuple[int, int]]:
    """Delete the oldest upload blocks holding about ``budget`` unacknowledged records (at least one block).

    Returns the unacknowledged records dropped and their seq range. A block
    sync has partly acknowledged loses only its unacknowledged part.
    """
    acked = store.acked_through(Lane.UPLOAD)
    cur = store.connection.execute("SELECT seq, first_seq FROM upload WHERE seq > ? ORDER BY seq", (acked,))
    lost, first, upto = 0, None, None
    while lost < budget and (row := cur.fetchone()) is not None:
        last_seq, block_first = row
        lo = max(block_first, acked + 1)
        first = lo if first is None else first
        lost += last_seq - lo + 1
        upto = last_seq
    cur.close()
    if upto is None or first is None:
        return 0, (0, 0)
    store.connection.execute("DELETE FROM upload WHERE seq <= ?", (upto,))
    return lost, (first, upto)


def expire(store: Store, lane: Lane, before_ns: int) -> int:
    """Drop rows of ``lane`` older than ``before_ns`` that every consumer has acknowledged.

    The local window of raw readings: once the aggregator (their only
    consumer) is done with them, they are kept for the rules engine and the
    CLI up to this age. Rows are in seq order and, the clock aside, in time
    order, so the boundary is found by bisecting seqs (a clock step only
    moves it by the step). Returns the rows dropped.
    """
    table = LANE_TABLES[Lane(lane)]
    conn = store.connection
    with guarded(store.path, "finding expired rows"):
        lo, hi = _bounds(store, table)
        acked = store.acked_through(lane)
        if lo is None or lo > acked:
            return 0
        hi = min(hi, acked)

        def wall(seq: int) -> int | None:
            row = conn.execute(f"SELECT wall_ns FROM {table} WHERE seq >= ? ORDER BY seq LIMIT 1", (seq,)).fetchone()
            return row[0] if row else None

        first_wall = wall(lo)
        if first_wall is None or first_wall >= before_ns:
            return 0
        a, b = lo, hi  # invariant: the row at or after a is older than before_ns
        while a < b:
            mid = (a + b + 1) // 2
            w = wall(mid)
            if w is not None and w < before_ns:
                a = mid
            else:
                b = mid - 1
        upto = a
    dropped = 0
    start = lo
    while start <= upto:
        end = min(upto, start + _EXPIRE_CHUNK - 1)
        with store.transaction("dropping rows older than the local window"):
            n = conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (end,)).rowcount
            store.bump_counters({f"expired.{Lane(lane)}": n})
        dropped += n
        start = end + 1
    if dropped:
        _vacuum(store)
    return dropped
