"""The SQLite outbox: lanes with their own ``seq``, cursors per consumer, stats, export.

A :class:`Store` is one connection used from one thread. The daemon's only
writer is :class:`zaas_edge.store.Writer`, which owns a ``Store`` on its own
thread; readers (the CLI, diagnostics) open ``Store(path, readonly=True)`` on
their own connection, which WAL lets run while the daemon writes.

``seq`` is the ordering authority of each lane. The store hands it out itself
(one writer) and records the last one given in ``lane_seq`` within the same
transaction, so a seq is never reused, not even after every row is dropped.
"""

from __future__ import annotations

__all__ = ["Store", "DEFAULT_CONSUMER_LANES"]

import contextlib
import fnmatch
import json
import math
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from zaas_edge.errors import PermanentError, StoreUnavailable, ZaasError
from zaas_edge.model import Alarm, Event, Lane, Quality, Reading, Severity, Stamp, UploadRecord
from zaas_edge.store.records import LaneStats, Stored, StoreStats
from zaas_edge.store.schema import (
    LANE_TABLES,
    QUALITY_CODES,
    QUALITY_NAMES,
    SCHEMA_VERSION,
    connect,
    guarded,
    migrate,
)
from zaas_edge.wire.codec import WireRow, decode_batch, decode_records, encode_batch

DEFAULT_CONSUMER_LANES = tuple(Lane)
T = TypeVar("T")
UPLOAD_BLOCK = 4096  # upload records per stored block (at most; a commit of fewer makes a smaller one)
# Rows after a seq: the upload lane counts the records of its blocks, a partly acknowledged one in part.
_COUNT_AFTER = {Lane.UPLOAD: "SELECT coalesce(sum(min(n, seq - ?1)), 0) FROM upload WHERE seq > ?1"}


_QUALITY = {str(q): q for q in Quality}  # a dict lookup: Quality(text) costs more than the rest of a row


def _upload_record(row: dict[str, Any], resolution: float) -> UploadRecord:
    # Hot: sync reads the upload lane at hundreds of thousands of records a second.
    if row["kind"] != "agg":
        return UploadRecord(row["point"], row["unit"], row["wall_ns"], row["value"], _QUALITY[row["quality"]],
                            row["synced"], row["corrected"], row.get("mono_ns"), row.get("boot_id", ""), resolution)
    return UploadRecord(
        row["point"], row["unit"], row["wall_ns"], row["value"], _QUALITY[row["quality"]], row["synced"],
        row["corrected"], row.get("mono_ns"), row.get("boot_id", ""), resolution,
        row["window_s"], row["count"], row.get("min"), row.get("max"), row.get("last"), row.get("last_ns"))

_INSERT_READING = "INSERT INTO reading VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_EVENT = "INSERT INTO event VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_ALARM = "INSERT INTO alarm VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _json(data: Mapping[str, Any]) -> str:
    # default=str: an odd value in an event's data is kept as text, never a crash.
    return json.dumps(dict(data), default=str, separators=(",", ":"), sort_keys=True)


class _PointNames:
    """Point id -> ``(key, unit)``. SQLite hands rowids out one after the other, so a list indexed
    by id holds them in 8 bytes an entry where a dict takes some 50; an id far beyond the others
    (written by hand) goes to a dict instead of stretching the list."""

    __slots__ = ("_dense", "_sparse")
    _STRETCH = 4096  # how far past the end of the list an id may land and still extend it

    def __init__(self, items: Iterable[tuple[int, tuple[str, str]]] = ()) -> None:
        self._dense: list[tuple[str, str] | None] = []
        self._sparse: dict[int, tuple[str, str]] = {}
        for i, ku in items:
            self[i] = ku

    def __contains__(self, i: int) -> bool:
        return self.get(i) is not None

    def get(self, i: int, default: tuple[str, str] | None = None) -> tuple[str, str] | None:
        if 0 <= i < len(self._dense):
            got = self._dense[i]
            return default if got is None else got
        return self._sparse.get(i, default)

    def __setitem__(self, i: int, ku: tuple[str, str]) -> None:
        dense = self._dense
        if 0 <= i < len(dense):
            dense[i] = ku
        elif len(dense) <= i <= len(dense) + self._STRETCH:
            dense.extend([None] * (i - len(dense)))
            dense.append(ku)
            for j in [j for j in self._sparse if j < len(dense)]:  # now within the list
                if dense[j] is None:
                    dense[j] = self._sparse[j]
                del self._sparse[j]
        else:
            self._sparse[i] = ku

    def pop(self, i: int, default: tuple[str, str] | None = None) -> tuple[str, str] | None:
        if 0 <= i < len(self._dense):
            got, self._dense[i] = self._dense[i], None
            return default if got is None else got
        return self._sparse.pop(i, default)

    def items(self) -> Iterator[tuple[int, tuple[str, str]]]:
        for i, ku in enumerate(self._dense):
            if ku is not None:
                yield i, ku
        yield from self._sparse.items()


class Store:
    """One connection to the store file, migrated to the current schema on open."""

    def __init__(self, path: Path | str, *, synchronous: str = "full", readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StoreUnavailable(
                f"no store at {self.path}: the daemon may not have run yet "
                "(check gateway.state_dir in the configuration, or pass --db PATH)"
            )
        with guarded(self.path, "opening"):
            self._conn = connect(self.path, synchronous=synchronous, readonly=readonly)
        try:
            with guarded(self.path, "migrating" if not readonly else "reading the schema"):
                if readonly:
                    version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                    if version > SCHEMA_VERSION:
                        migrate(self._conn, self.path)  # raises the "newer than this zaas-edge" error
                    if version != SCHEMA_VERSION:
                        raise PermanentError(
                            f"store {self.path}: schema version {version}, this zaas-edge reads "
                            f"{SCHEMA_VERSION}: let the daemon (same version) open it once first"
                        )
                else:
                    migrate(self._conn, self.path)
                self.schema_version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                self.stream_epoch: str = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'stream_epoch'").fetchone()[0]
                self._load()
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------ lifecycle

    def _load(self) -> None:
        c = self._conn
        self._pid: dict[tuple[str, str], int] = {
            (k, u): i for i, k, u in c.execute("SELECT id, key, unit FROM point")}
        self._bid: dict[str, int] = {b: i for i, b in c.execute("SELECT id, boot_id FROM boot")}
        self._point_by_id = _PointNames((i, ku) for ku, i in self._pid.items())
        self._boot_by_id = {i: b for b, i in self._bid.items()}
        self._last: dict[Lane, int] = {}
        for lane, table in LANE_TABLES.items():
            counted = c.execute("SELECT last_seq FROM lane_seq WHERE lane = ?", (str(lane),)).fetchone()
            top = c.execute(f"SELECT max(seq) FROM {table}").fetchone()[0]
            self._last[lane] = max(counted[0] if counted else 0, top or 0)
        self._tx: dict[Lane, int] | None = None
        self._new_points: list[tuple[str, str]] = []
        self._new_boots: list[str] = []

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for migrations tooling and tests (same thread only)."""
        return self._conn

    def last_seq(self, lane: Lane) -> int:
        return self._last[Lane(lane)]

    # ----------------------------------------------------------- transactions

    @contextlib.contextmanager
    def transaction(self, doing: str = "writing") -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT``; seqs and lookups given inside roll back with it."""
        with guarded(self.path, doing):
            self._conn.execute("BEGIN IMMEDIATE")
            self._tx = dict(self._last)
            try:
                yield
                for lane, last in self._tx.items():
                    if last != self._last[lane]:
                        self._conn.execute("UPDATE lane_seq SET last_seq = ? WHERE lane = ?", (last, str(lane)))
                self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                for key in self._new_points:
                    self._point_by_id.pop(self._pid.pop(key), None)
                for boot in self._new_boots:
                    self._boot_by_id.pop(self._bid.pop(boot), None)
                raise
            else:
                self._last = self._tx
            finally:
                self._tx = None
                self._new_points = []
                self._new_boots = []

    def _take(self, lane: Lane, n: int) -> int:
        assert self._tx is not None, "inside transaction() only"
        first = self._tx[lane] + 1
        self._tx[lane] += n
        return first

    def _point_id(self, key: str, unit: str) -> int:
        pid = self._conn.execute("INSERT INTO point (key, unit) VALUES (?, ?)", (key, unit)).lastrowid
        ku = (key, unit)  # one tuple for both lookups
        self._pid[ku] = pid
        self._point_by_id[pid] = ku
        self._new_points.append(ku)
        return pid

    def _boot_id(self, boot: str) -> int:
        bid = self._conn.execute("INSERT INTO boot (boot_id) VALUES (?)", (boot,)).lastrowid
        self._bid[boot] = bid
        self._boot_by_id[bid] = boot
        self._new_boots.append(boot)
        return bid

    # ------------------------------------------------------------- appending

    def insert_readings(self, readings: list[Reading]) -> tuple[int, int] | None:
        """Append readings inside :meth:`transaction`; returns their seq range."""
        if not readings:
            return None
        first = self._take(Lane.READING, len(readings))
        pget, bget, q = self._pid.get, self._bid.get, QUALITY_CODES
        new_p, new_b = self._point_id, self._boot_id
        # One comprehension, cached lookups: this loop is the ingest hot path.
        rows = [
            (s, pget((r.point, r.unit)) or new_p(r.point, r.unit), r.value, q[r.quality],
             r.wall_ns, r.mono_ns, bget(r.boot_id) or new_b(r.boot_id), r.synced)
            for s, r in zip(count(first), readings)
        ]
        self._conn.executemany(_INSERT_READING, rows)
        return first, first + len(rows) - 1

    def insert_events(self, events: list[Event]) -> tuple[int, int] | None:
        if not events:
            return None
        first = self._take(Lane.EVENT, len(events))
        bget, new_b = self._bid.get, self._boot_id
        rows = [
            (s, e.kind, str(e.severity), e.source, e.text, _json(e.data), e.stamp.wall_ns,
             e.stamp.mono_ns, bget(e.stamp.boot_id) or new_b(e.stamp.boot_id), e.stamp.synced)
            for s, e in zip(count(first), events)
        ]
        self._conn.executemany(_INSERT_EVENT, rows)
        return first, first + len(rows) - 1

    def insert_alarms(self, alarms: list[Alarm]) -> tuple[int, int] | None:
        if not alarms:
            return None
        first = self._take(Lane.ALARM, len(alarms))
        bget, new_b = self._bid.get, self._boot_id
        rows = [
            (s, a.alarm_id, a.active, str(a.severity), a.source, a.text, _json(a.data), a.stamp.wall_ns,
             a.stamp.mono_ns, bget(a.stamp.boot_id) or new_b(a.stamp.boot_id), a.stamp.synced)
            for s, a in zip(count(first), alarms)
        ]
        self._conn.executemany(_INSERT_ALARM, rows)
        return first, first + len(rows) - 1

    def insert_uploads(self, records: list[UploadRecord]) -> tuple[int, int] | None:
        """Append upload records inside :meth:`transaction`, in blocks (see the ``upload`` table)."""
        if not records:
            return None
        first = self._take(Lane.UPLOAD, len(records))
        rows = []
        for i in range(0, len(records), UPLOAD_BLOCK):
            chunk = records[i:i + UPLOAD_BLOCK]
            lo = first + i
            body = encode_batch(Lane.READING, [Stored(Lane.UPLOAD, lo + j, r) for j, r in enumerate(chunk)])
            rows.append((lo + len(chunk) - 1, lo, len(chunk), min(r.wall_ns for r in chunk), zlib.compress(body, 1)))
        self._conn.executemany("INSERT INTO upload VALUES (?, ?, ?, ?, ?)", rows)
        return first, first + len(records) - 1

    def save_uploads(self, records: list[UploadRecord], consumer: str, acked: int, state: str,
                     now_ns: int | None = None) -> tuple[int, int] | None:
        """One transaction: upload records in, ``consumer``'s reading cursor to ``acked``, its state saved.

        The aggregator's commit: records, cursor and state move together, so a
        crash leaves either all of them or none.
        """
        if acked > self._last[Lane.READING]:
            raise PermanentError(f"store {self.path}: {consumer!r} acknowledges reading seq {acked}, "
                                 f"beyond the last given ({self._last[Lane.READING]})")
        with self.transaction("saving upload records"):
            got = self.insert_uploads(list(records))
            self._conn.execute(
                "INSERT INTO cursor (consumer, lane, seq, updated_ns) VALUES (?, 'reading', ?, ?)"
                " ON CONFLICT (consumer, lane) DO UPDATE SET seq = max(seq, excluded.seq),"
                " updated_ns = excluded.updated_ns", (consumer, int(acked), now_ns))
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               (f"consumer_state.{consumer}", state))
        return got

    def consumer_state(self, consumer: str) -> str | None:
        """The state ``consumer`` saved with :meth:`save_uploads` (None before the first)."""
        with guarded(self.path, "reading consumer state"):
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (f"consumer_state.{consumer}",)).fetchone()
        return row[0] if row else None

    def bump_counters(self, counters: Mapping[str, int]) -> None:
        """Add to persistent counters (inside or outside a transaction)."""
        items = [(k, v) for k, v in counters.items() if v]
        if items:
            self._conn.executemany(
                "INSERT INTO counter (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", items)

    def append(self, readings: Iterable[Reading] = (), events: Iterable[Event] = (),
               alarms: Iterable[Alarm] = (), counters: Mapping[str, int] | None = None,
               ) -> dict[Lane, tuple[int, int]]:
        """Write everything given in one transaction; returns the seq range per lane."""
        ranges: dict[Lane, tuple[int, int]] = {}
        with self.transaction("appending"):
            for lane, got in (
                (Lane.ALARM, self.insert_alarms(list(alarms))),
                (Lane.EVENT, self.insert_events(list(events))),
                (Lane.READING, self.insert_readings(list(readings))),
            ):
                if got:
                    ranges[lane] = got
            if counters:
                self.bump_counters(counters)
        return ranges

    # ------------------------------------------------------------ cursors

    def register(self, consumer: str, lanes: Iterable[Lane] = DEFAULT_CONSUMER_LANES) -> None:
        """Make ``consumer`` count for backlog and retention from now on (cursor at 0)."""
        with self.transaction("registering a consumer"):
            self._conn.executemany(
                "INSERT OR IGNORE INTO cursor (consumer, lane, seq) VALUES (?, ?, 0)",
                [(consumer, str(Lane(lane))) for lane in lanes])

    def ack(self, consumer: str, lane: Lane, seq: int, now_ns: int | None = None) -> int:
        """Move ``consumer``'s cursor on ``lane`` up to ``seq`` (never backwards); returns it."""
        lane = Lane(lane)
        if seq > self._last[lane]:
            raise PermanentError(
                f"store {self.path}: ack of {lane} seq {seq} by {consumer!r} is beyond the last "
                f"seq given ({self._last[lane]}): refusing, it would skip rows not yet written")
        with self.transaction("acknowledging"):
            self._conn.execute(
                "INSERT INTO cursor (consumer, lane, seq, updated_ns) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (consumer, lane) DO UPDATE SET seq = max(seq, excluded.seq),"
                " updated_ns = excluded.updated_ns", (consumer, str(lane), int(seq), now_ns))
        return self.cursor(consumer, lane)

    def cursor(self, consumer: str, lane: Lane) -> int:
        with guarded(self.path, "reading a cursor"):
            row = self._conn.execute("SELECT seq FROM cursor WHERE consumer = ? AND lane = ?",
                                     (consumer, str(Lane(lane)))).fetchone()
        return row[0] if row else 0

    def cursors(self) -> dict[str, dict[Lane, int]]:
        out: dict[str, dict[Lane, int]] = {}
        with guarded(self.path, "reading cursors"):
            for consumer, lane, seq in self._conn.execute("SELECT consumer, lane, seq FROM cursor ORDER BY 1, 2"):
                out.setdefault(consumer, {})[Lane(lane)] = seq
        return out

    def acked_through(self, lane: Lane) -> int:
        """Highest seq every registered consumer has acknowledged (0 with no consumer)."""
        row = self._conn.execute("SELECT min(seq) FROM cursor WHERE lane = ?", (str(Lane(lane)),)).fetchone()
        return row[0] or 0

    def backlog(self) -> dict[Lane, int]:
        """Rows per lane not yet acknowledged by every registered consumer."""
        with guarded(self.path, "counting the backlog"):
            return {lane: self._conn.execute(_COUNT_AFTER.get(lane, f"SELECT count(*) FROM {table} WHERE seq > ?1"),
                                             (self.acked_through(lane),)).fetchone()[0]
                    for lane, table in LANE_TABLES.items()}

    # --------------------------------------------------------------- reading

    def _names(self, point_id: int, boot: int) -> tuple[tuple[str, str], str]:
        if point_id not in self._point_by_id or boot not in self._boot_by_id:
            self._refresh_lookups()
        return self._point_by_id.get(point_id, (f"?{point_id}", "")), self._boot_by_id.get(boot, "")

    def _refresh_lookups(self) -> None:
        # A reader's lookups go stale while the daemon adds points: reload on a miss.
        for i, k, u in self._conn.execute("SELECT id, key, unit FROM point"):
            self._point_by_id[i] = (k, u)
        for i, b in self._conn.execute("SELECT id, boot_id FROM boot"):
            self._boot_by_id[i] = b

    def _reading(self, row: tuple) -> Reading:
        _seq, pid, value, quality, wall, mono, boot, synced = row
        (key, unit), boot_id = self._names(pid, boot)
        value = math.nan if value is None else value
        return Reading(key, value, unit, wall, mono, boot_id, bool(synced), QUALITY_NAMES.get(quality, Quality.ERROR))

    def _boot_name(self, boot: int) -> str:
        if boot not in self._boot_by_id:
            self._refresh_lookups()
        return self._boot_by_id.get(boot, "")

    def _event(self, row: tuple) -> Event:
        _seq, kind, sev, source, text, data, wall, mono, boot, synced = row
        return Event(kind, text, source, Stamp(wall, mono, self._boot_name(boot), bool(synced)),
                     Severity(sev), json.loads(data))

    def _alarm(self, row: tuple) -> Alarm:
        _seq, alarm_id, active, sev, source, text, data, wall, mono, boot, synced = row
        return Alarm(alarm_id, bool(active), text, source, Stamp(wall, mono, self._boot_name(boot), bool(synced)),
                     Severity(sev), json.loads(data))

    def _upload_blocks(self, after_seq: int, decode: Callable[[bytes], T]) -> Iterator[T]:
        """``decode(body)`` of each upload block holding seqs > ``after_seq``, in seq order."""
        cur = self._conn.execute("SELECT body FROM upload WHERE seq > ? ORDER BY seq", (int(after_seq),))
        while chunk := cur.fetchmany(4):
            for (body,) in chunk:
                try:
                    yield decode(zlib.decompress(body))
                except (zlib.error, ZaasError) as exc:
                    raise PermanentError(f"store {self.path}: an upload block is unreadable: {exc}") from exc

    def _upload_rows(self, after_seq: int) -> Iterator[tuple[list[dict[str, Any]], dict[str, float]]]:
        """(decoded rows, resolutions) of each upload block holding seqs > ``after_seq``."""

        def rows(body: bytes) -> tuple[list[dict[str, Any]], dict[str, float]]:
            d = decode_batch(body)
            return d.rows, d.resolutions
        return self._upload_blocks(after_seq, rows)

    def _uploads(self, after_seq: int) -> Iterator[tuple[int, UploadRecord, dict[str, Any]]]:
        """Upload records with seq > ``after_seq``, in seq order, with their decoded rows."""
        for rows, res in self._upload_rows(after_seq):
            for row in rows:
                if row["seq"] > after_seq:
                    yield row["seq"], _upload_record(row, res.get(row["point"], 0.0)), row

    def _read_uploads(self, after_seq: int, limit: int) -> list[Stored]:
        out: list[Stored] = []
        lane = Lane.UPLOAD
        for rows, res in self._upload_rows(after_seq):
            if rows and rows[0]["seq"] <= after_seq:
                rows = [r for r in rows if r["seq"] > after_seq]
            rows = rows[:limit - len(out)]
            out.extend([Stored(lane, r["seq"], _upload_record(r, res.get(r["point"], 0.0))) for r in rows])
            if len(out) >= limit:
                break
        return out

    def read_for_wire(self, lane: Lane, after_seq: int = 0, limit: int = 1000) -> list[Stored | WireRow]:
        """The rows of :meth:`read` as sync encodes them: ``seq`` and ``item`` each.

        The upload lane's come as ``codec.WireRow(seq, UploadRecord)`` tuples
        instead of ``Stored``/``UploadRecord``: the same fields, built in a
        fraction of the time, which is most of the cost of draining a backlog.
        """
        lane = Lane(lane)
        if lane is not Lane.UPLOAD:
            return list(self.read(lane, after_seq, limit))
        out: list[Stored | WireRow] = []
        with guarded(self.path, "reading the upload lane"):
            # Hot (sync drains a backlog through it): tuples straight from the decoder, no dict per record.
            for rows in self._upload_blocks(after_seq, decode_records):
                if rows and rows[0].seq <= after_seq:
                    rows = [r for r in rows if r.seq > after_seq]
                out.extend(rows[:limit - len(out)])
                if len(out) >= limit:
                    break
        return out

    def read(self, lane: Lane, after_seq: int = 0, limit: int = 1000) -> list[Stored]:
        """Rows of ``lane`` with seq > ``after_seq``, in seq order, at most ``limit``."""
        lane = Lane(lane)
        if lane is Lane.UPLOAD:
            with guarded(self.path, "reading the upload lane"):
                return self._read_uploads(after_seq, limit)
        make = {Lane.READING: self._reading, Lane.EVENT: self._event, Lane.ALARM: self._alarm}[lane]
        with guarded(self.path, f"reading the {lane} lane"):
            rows = self._conn.execute(f"SELECT * FROM {LANE_TABLES[lane]} WHERE seq > ? ORDER BY seq LIMIT ?",
                                      (int(after_seq), int(limit))).fetchall()
            return [Stored(lane, row[0], make(row)) for row in rows]

    def export(self, lane: Lane, since_ns: int | None = None, until_ns: int | None = None,
               point: str | None = None) -> Iterator[dict[str, Any]]:
        """Rows of ``lane`` as plain dicts, in seq order, streamed.

        ``since_ns``/``until_ns`` bound the wall time (inclusive, exclusive);
        ``point`` selects readings by key, ``*`` and ``?`` allowed.
        """
        lane = Lane(lane)
        if lane is Lane.UPLOAD:
            if point is not None:
                raise PermanentError("a point filter applies to the reading lane only")
            with guarded(self.path, "exporting the upload lane"):
                for _seq, _rec, row in self._uploads(0):
                    if (since_ns is None or row["wall_ns"] >= since_ns) and (until_ns is None
                                                                             or row["wall_ns"] < until_ns):
                        yield row
            return
        where, args = ["1"], []
        if since_ns is not None:
            where.append("wall_ns >= ?")
            args.append(int(since_ns))
        if until_ns is not None:
            where.append("wall_ns < ?")
            args.append(int(until_ns))
        if point is not None:
            if lane is not Lane.READING:
                raise PermanentError("a point filter applies to the reading lane only")
            self._refresh_lookups()
            ids = [i for i, (k, _u) in self._point_by_id.items() if fnmatch.fnmatchcase(k, point)]
            if not ids:
                return
            where.append(f"point_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        sql = f"SELECT * FROM {LANE_TABLES[lane]} WHERE {' AND '.join(where)} ORDER BY seq"
        with guarded(self.path, f"exporting the {lane} lane"):
            cur = self._conn.execute(sql, args)
            while chunk := cur.fetchmany(2000):
                for row in chunk:
                    yield self._as_dict(lane, row)

    def _as_dict(self, lane: Lane, row: tuple) -> dict[str, Any]:
        if lane is Lane.READING:
            r = self._reading(row)
            return {"seq": row[0], "point": r.point, "value": r.value, "unit": r.unit, "quality": str(r.quality),
                    "wall_ns": r.wall_ns, "mono_ns": r.mono_ns, "boot_id": r.boot_id, "synced": r.synced}
        item = self._event(row) if lane is Lane.EVENT else self._alarm(row)
        out: dict[str, Any] = {"seq": row[0]}
        if isinstance(item, Alarm):
            out.update(alarm_id=item.alarm_id, active=item.active)
        else:
            out["kind"] = item.kind
        out.update(severity=str(item.severity), source=item.source, text=item.text, data=dict(item.data),
                   wall_ns=item.stamp.wall_ns, mono_ns=item.stamp.mono_ns, boot_id=item.stamp.boot_id,
                   synced=item.stamp.synced)
        return out

    # ----------------------------------------------------------------- sizes

    def used_bytes(self) -> int:
        """Bytes in pages that hold data: what the size cap is measured against."""
        with guarded(self.path, "measuring"):
            c = self._conn
            pages = c.execute("PRAGMA page_count").fetchone()[0]
            free = c.execute("PRAGMA freelist_count").fetchone()[0]
            size = c.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def file_bytes(self) -> tuple[int, int]:
        """Sizes of the database file and of its WAL."""
        def size(p: str) -> int:
            try:
                return os.stat(p).st_size
            except OSError:
                return 0
        return size(str(self.path)), size(f"{self.path}-wal")

    # ------------------------------------------------------------ driver state

    def load_state(self, driver: str, key: str) -> dict[str, Any] | None:
        with guarded(self.path, "reading driver state"):
            row = self._conn.execute("SELECT value FROM driver_state WHERE driver = ? AND key = ?",
                                     (driver, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def save_state(self, driver: str, key: str, value: Mapping[str, Any], now_ns: int) -> None:
        """Replace one document, durably (its own transaction, like a flush)."""
        with self.transaction("saving driver state"):
            self._conn.execute(
                "INSERT INTO driver_state (driver, key, value, updated_ns) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (driver, key) DO UPDATE SET value = excluded.value, updated_ns = excluded.updated_ns",
                (driver, key, json.dumps(value, separators=(",", ":"), sort_keys=True), now_ns))

    def counters(self) -> dict[str, int]:
        with guarded(self.path, "reading counters"):
            return dict(self._conn.execute("SELECT name, value FROM counter ORDER BY name"))

    def stats(self, cap_bytes: int | None = None, degraded: bool | None = None) -> StoreStats:
        """Everything an operator asks about the buffer, in one read transaction."""
        with guarded(self.path, "reading stats"):
            c = self._conn
            lanes: dict[Lane, LaneStats] = {}
            backlog = self.backlog()
            for lane, table in LANE_TABLES.items():
                rows, first, last = c.execute(f"SELECT count(*), min(seq), max(seq) FROM {table}").fetchone()
                if lane is Lane.UPLOAD:  # blocks: count records, keep block keys for the time lookups
                    rows = c.execute("SELECT coalesce(sum(n), 0) FROM upload").fetchone()[0]
                oldest = c.execute(f"SELECT wall_ns FROM {table} WHERE seq = ?", (first,)).fetchone() if rows else None
                newest = c.execute(f"SELECT wall_ns FROM {table} WHERE seq = ?", (last,)).fetchone() if rows else None
                given = c.execute("SELECT last_seq FROM lane_seq WHERE lane = ?", (str(lane),)).fetchone()[0]
                if lane is Lane.UPLOAD and rows:
                    first = c.execute("SELECT first_seq FROM upload WHERE seq = ?", (first,)).fetchone()[0]
                lanes[lane] = LaneStats(rows, first, max(given, last or 0) or None,
                                        oldest[0] if oldest else None, newest[0] if newest else None, backlog[lane])
            db, wal = self.file_bytes()
            return StoreStats(
                path=str(self.path), schema_version=self.schema_version, stream_epoch=self.stream_epoch,
                lanes=lanes, file_bytes=db + wal, wal_bytes=wal, used_bytes=self.used_bytes(),
                cap_bytes=cap_bytes, counters=self.counters(), cursors=self.cursors(), degraded=degraded)

