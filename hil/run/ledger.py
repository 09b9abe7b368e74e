"""Every committed reading at the central exactly once: the accounting (pure, rows in, figures out).

The runner uploads every point raw (``sync.default_policy = "raw"``), so
each reading the daemon committed to its store must arrive at the central as
one raw record of the same point at the same instant. A reading is named by
what the gateway stamped on it, not by a seq (store and wire number their
lanes apart):

- a reading taken on a synchronised clock: its point and wall time;
- one taken before synchronisation: its point, boot and monotonic time (the
  wire keeps both for such rows). A row the gateway's clock fix-up
  corrected may travel without them (its wall time moved); those are
  matched point by point by count against the unsynchronised readings left.

``lost`` counts the store's readings the central never got plus the readings
the store itself dropped unsent (its ``store.gap`` events); ``duplicated``
counts records the central holds more than once under different seqs (the
central already folds a batch sent twice under one seq: that is a resend,
not a duplicate). Rows the store no longer holds (acknowledged, then dropped
by retention) are delivered and not judged.
"""

from __future__ import annotations

__all__ = ["Ledger", "account", "reading_key", "record_key"]

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Ledger:
    produced: int  # readings the store committed (the reading lane's last seq)
    in_store: int  # of which the store still holds at the end
    delivered: int  # distinct readings at the central
    duplicated: int  # records at the central beyond the first of each reading
    lost: int  # committed and never delivered: missing ones plus those the store dropped unsent
    dropped: int  # of which the store dropped itself (store.gap events: size cap, full memory ring)
    missing: tuple[str, ...] = ()  # a few of the missing ones, for people

    def as_dict(self) -> dict[str, Any]:
        return {"produced": self.produced, "in_store": self.in_store, "delivered": self.delivered,
                "duplicated": self.duplicated, "lost": self.lost, "dropped": self.dropped,
                "missing": list(self.missing)}


MS = 1_000_000  # upload records carry times to the millisecond


def reading_key(row: Mapping[str, Any]) -> Key:
    """A stored reading's name (``Store.export(Lane.READING)`` rows)."""
    if row.get("synced"):
        return ("w", row["point"], int(row["wall_ns"]) // MS)
    return ("m", row["point"], str(row["boot_id"]), int(row["mono_ns"]) // MS)


def record_key(row: Mapping[str, Any]) -> Key:
    """A raw record's name as the central decoded it (``/test/rows`` rows)."""
    if row.get("mono_ns") is not None and row.get("boot_id") is not None:
        return ("m", row["point"], str(row["boot_id"]), int(row["mono_ns"]) // MS)
    return ("w", row["point"], int(row["wall_ns"]) // MS)


def account(stored: Iterable[Mapping[str, Any]], received: Iterable[Mapping[str, Any]], *, produced: int,
            dropped: int = 0, through: int | None = None, after: int = 0) -> Ledger:
    """The figures of a run from the store's readings and the central's raw records of the reading lane.

    Readings are compared as multisets: a meter that stamps its own values
    (the Linky's daily maximum, with the time it happened) may give the same
    point the same instant twice across a restart, and both were committed.
    Only readings of seq ``through`` or lower are judged for loss (later ones
    were on their way when the run ended) and above ``after`` (history sent
    before the run); duplicates are judged on all.
    """
    seen: collections.Counter[Key] = collections.Counter()
    corrected: collections.Counter[str] = collections.Counter()  # corrected rows (no mono) per point
    for r in received:
        k = record_key(r)
        seen[k] += 1
        if r.get("corrected") and k[0] == "w":
            corrected[r["point"]] += 1
    held: collections.Counter[Key] = collections.Counter()
    judged: collections.Counter[Key] = collections.Counter()
    for row in stored:
        k = reading_key(row)
        held[k] += 1
        if row["seq"] > after and (through is None or row["seq"] <= through):
            judged[k] += 1
    duplicated = sum(max(0, n - max(1, held[k])) for k, n in seen.items())
    missing: list[str] = []
    lost = 0
    unsynced: collections.Counter[str] = collections.Counter()
    for k, n in judged.items():
        short = n - seen.get(k, 0)
        if short <= 0:
            continue
        if k[0] == "m":
            unsynced[k[1]] += short
            continue
        lost += short
        if len(missing) < 5:
            missing.append(f"{k[1]} at {k[2]} ms")
    for point, n in unsynced.items():
        # taken before the clock was synchronised and corrected since: matched by count on their point
        short = n - corrected.get(point, 0)
        if short > 0:
            lost += short
            if len(missing) < 5:
                missing.append(f"{short} unsynchronised readings of {point}")
    return Ledger(produced=produced, in_store=sum(held.values()), delivered=len(seen), duplicated=duplicated,
                  lost=lost + dropped, dropped=dropped, missing=tuple(missing))
