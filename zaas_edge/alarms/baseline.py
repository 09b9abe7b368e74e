"""Consumption baselines: how much an index usually moves in a given hour, from the store's history.

The abnormal-consumption rule compares the current hour's use with the same
hour of the previous weeks. :func:`hourly_use` and :func:`baseline` are pure
(tables of cases test them); :class:`StoreHistory` reads a point's index
history from the store through its own read-only connection (WAL lets it read
while the daemon writes, as ``zaas-edge buffer export`` does), on a thread, so
the writer is never held up by a scan of weeks of readings.

Hours are UTC hours (Unix seconds // 3600); a week is 168 of them. The use of
an hour is the index at its last reading minus the index at the last reading
of the hour before; an hour without readings on both sides has no figure, and
a negative one (an index reset or a replaced meter) is left out.
"""

from __future__ import annotations

__all__ = ["hourly_use", "baseline", "HistoryReader", "StoreHistory", "HOUR_S", "WEEK_H"]

import asyncio
import math
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from zaas_edge.model import Lane

HOUR_S = 3600
WEEK_H = 168
_NS = 1_000_000_000


def hour_of(wall_ns: int) -> int:
    return wall_ns // _NS // HOUR_S


def hourly_use(samples: Iterable[tuple[int, float]]) -> dict[int, float]:
    """The use per hour from ``(wall_ns, index)`` samples in any order (non-finite values skipped)."""
    last: dict[int, tuple[int, float]] = {}
    for wall_ns, value in samples:
        if not isinstance(value, int | float) or not math.isfinite(value):
            continue
        h = hour_of(wall_ns)
        got = last.get(h)
        if got is None or wall_ns >= got[0]:
            last[h] = (wall_ns, float(value))
    out: dict[int, float] = {}
    for h, (_, v) in last.items():
        prev = last.get(h - 1)
        use = v - prev[1] if prev is not None else -1.0
        if 0 <= use < math.inf:
            out[h] = use
    return out


def baseline(use: Mapping[int, float], hour: int, weeks: int) -> float | None:
    """The median use of ``hour``'s hour of the week over the ``weeks`` before it; None without any."""
    seen = [use[h] for h in (hour - WEEK_H * k for k in range(1, weeks + 1)) if h in use]
    return statistics.median(seen) if seen else None


class HistoryReader(Protocol):
    """Where the alarm service gets an index's past from (the store; a table in tests)."""

    async def hourly(self, point: str, since_ns: int, until_ns: int) -> dict[int, float]:
        """The use of ``point`` per hour between the two times."""
        ...


class StoreHistory:
    """Hourly use read from the store file, on a thread, through a read-only connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self, point: str, since_ns: int, until_ns: int) -> dict[int, float]:
        from zaas_edge.store import Store

        def samples() -> Iterable[tuple[int, float]]:
            with Store(self.path, readonly=True) as store:
                for row in store.export(Lane.READING, since_ns=since_ns, until_ns=until_ns, point=point):
                    if row["quality"] in ("ok", "estimated"):
                        yield row["wall_ns"], row["value"]
        return hourly_use(samples())

    async def hourly(self, point: str, since_ns: int, until_ns: int) -> dict[int, float]:
        return await asyncio.to_thread(self._read, point, since_ns, until_ns)
