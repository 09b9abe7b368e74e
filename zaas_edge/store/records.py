"""Values the store hands out: stored rows, commits, retention reports and stats."""

from __future__ import annotations

__all__ = ["Stored", "Commit", "Retention", "LaneStats", "StoreStats", "WriterStats"]

from collections.abc import Mapping
from dataclasses import dataclass, field

from zaas_edge.model import Alarm, Event, Lane, Reading


@dataclass(frozen=True, slots=True)
class Stored:
    """One row of a lane with the ``seq`` the store gave it (what sync sends)."""

    lane: Lane
    seq: int
    item: Reading | Event | Alarm


@dataclass(frozen=True, slots=True)
class Commit:
    """What one transaction made durable: first and last ``seq`` per lane written."""

    ranges: Mapping[Lane, tuple[int, int]]
    rows: int
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Retention:
    """What one retention pass dropped to get back under the size cap.

    ``dropped_acked`` lost nothing (sync had delivered those rows);
    ``dropped_unacked`` did, and each such range is also in ``gaps``, the
    ``store.gap`` events written to the event lane in the same transaction.
    """

    used_before: int
    used_after: int
    cap_bytes: int
    dropped_acked: Mapping[Lane, int]
    dropped_unacked: Mapping[Lane, int]
    gaps: tuple[Event, ...] = ()
    gap_seqs: tuple[int, int] | None = None  # event-lane seqs of the gap events
    blocked: bool = False  # still over the cap with nothing left that may be dropped


@dataclass(frozen=True, slots=True)
class LaneStats:
    rows: int
    first_seq: int | None
    last_seq: int | None  # last seq ever given, kept even when every row is gone
    oldest_wall_ns: int | None
    newest_wall_ns: int | None
    backlog: int


@dataclass(frozen=True, slots=True)
class StoreStats:
    path: str
    schema_version: int
    stream_epoch: str
    lanes: Mapping[Lane, LaneStats]
    file_bytes: int  # database plus its WAL, as the file system sees them
    wal_bytes: int
    used_bytes: int  # pages in use, what the size cap is measured against
    cap_bytes: int | None
    counters: Mapping[str, int]
    cursors: Mapping[str, Mapping[Lane, int]]
    degraded: bool | None = None  # known only to the running writer

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "schema_version": self.schema_version,
            "stream_epoch": self.stream_epoch,
            "lanes": {str(lane): {
                "rows": s.rows, "first_seq": s.first_seq, "last_seq": s.last_seq,
                "oldest_wall_ns": s.oldest_wall_ns, "newest_wall_ns": s.newest_wall_ns,
                "backlog": s.backlog,
            } for lane, s in self.lanes.items()},
            "file_bytes": self.file_bytes,
            "wal_bytes": self.wal_bytes,
            "used_bytes": self.used_bytes,
            "cap_bytes": self.cap_bytes,
            "counters": dict(self.counters),
            "cursors": {c: {str(lane): s for lane, s in m.items()} for c, m in self.cursors.items()},
            "degraded": self.degraded,
        }


@dataclass(frozen=True, slots=True)
class WriterStats:
    pending_rows: int  # waiting for the next flush (the memory ring while degraded)
    degraded: bool
    degraded_reason: str
    flushes: int
    flush_errors: int
    rows_written: int
    last_flush_s: float | None
    ring_overflow: int  # rows dropped oldest-first because the ring was full
    rejected_rows: int  # rows SQLite would not take (bad values), dropped and counted
    retention_runs: int
    extra: Mapping[str, int] = field(default_factory=dict)
