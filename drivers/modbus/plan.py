"""Read planning: which requests to send so that every due point is read.

Pure, no I/O. Three jobs:

* **Coalescing.** Points are grouped by table (function code 1 coils, 2
  discrete inputs, 3 holding registers, 4 input registers) and merged into as
  few requests as possible, under the protocol limit of 125 registers (2,000
  bits) per request, bridging gaps of up to ``max_gap`` unused registers:
  reading a few registers for nothing is cheaper than another round trip on a
  9,600 baud line.
* **Splitting.** Some devices answer exception 02 (illegal data address) when a
  request covers a register they do not map, even in a gap. ``Plan.split``
  returns a new plan that cuts the failing block at its largest gap (or in the
  middle) and remembers the cut as a *barrier*, so no later request bridges it
  again. A single point that still fails is marked unreadable and skipped from
  then on, reported through ``Plan.unreadable``, instead of failing every cycle.
* **Scheduling.** Each point has its own poll interval (power every second,
  energy every minute). ``Scheduler`` says, for a monotonic ``now_ns``, which
  points are due; deadlines advance from the previous deadline, never from
  ``now``, so there is no drift; a deadline missed by more than one period is
  skipped forward and counted as an overrun.

Requests are built from the points due at each tick (``Plan.blocks_for``), not
precomputed per interval group: when fast and slow points are due together
(every minute, since every group starts at the same instant and the periods are
multiples of each other) they share requests, so an SDM630 reads its energy
registers in the same request as its power registers instead of in a second
one. The blocks for a given set of due points are cached, so the cost of
planning is paid once per distinct set, not once per tick.
"""

from __future__ import annotations

__all__ = [
    "Table",
    "ReadPoint",
    "Block",
    "Plan",
    "Scheduler",
    "coalesce",
    "MAX_REGISTERS",
    "MAX_BITS",
]

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from zaas_edge.errors import ProtocolError

MAX_REGISTERS = 125  # Modbus application protocol, read holding/input registers
MAX_BITS = 2000  # read coils/discrete inputs

T = TypeVar("T")


class Table(IntEnum):
    """A Modbus data table, valued by its read function code."""

    COILS = 1
    DISCRETE_INPUTS = 2
    HOLDING = 3
    INPUT = 4

    @property
    def is_bits(self) -> bool:
        return self in (Table.COILS, Table.DISCRETE_INPUTS)

    @property
    def limit(self) -> int:
        return MAX_BITS if self.is_bits else MAX_REGISTERS


@dataclass(frozen=True, slots=True)
class ReadPoint:
    """What the planner needs to know of a point: where it lives and how wide it is."""

    key: str
    table: Table
    address: int  # 0-based protocol address
    count: int = 1  # registers (or bits)

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF or self.count < 1 or self.address + self.count > 0x10000:
            raise ValueError(f"point {self.key!r}: address {self.address} count {self.count} outside 0..65535")
        if self.count > self.table.limit:
            raise ValueError(f"point {self.key!r}: {self.count} exceeds the {self.table.limit} limit of one request")

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: Table
    start: int
    count: int
    points: tuple[ReadPoint, ...]

    @property
    def end(self) -> int:
        return self.start + self.count

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.points)

    def extract(self, values: Sequence[T], point: ReadPoint) -> Sequence[T]:
        """The slice of a response (``values`` of this block) that belongs to ``point``."""
        if len(values) < self.count:
            raise ProtocolError(f"response holds {len(values)} values, request asked for {self.count}")
        return values[point.address - self.start : point.end - self.start]


def coalesce(points: Iterable[ReadPoint], max_gap: int = 0,
             barriers: frozenset[tuple[Table, int]] = frozenset()) -> tuple[Block, ...]:
    """Merge points into the fewest blocks that respect the limits, gaps and barriers.

    Greedy over points sorted by address, which is optimal for this interval
    problem: a block grows while the next point starts within ``max_gap`` of its
    end, the block stays within the table's limit, and no barrier lies between
    its first address and the next point.
    """
    blocks: list[Block] = []
    by_table: dict[Table, list[ReadPoint]] = {}
    for p in points:
        by_table.setdefault(p.table, []).append(p)
    for table in sorted(by_table):
        pts = sorted(by_table[table], key=lambda p: (p.address, p.end, p.key))
        cuts = sorted(a for t, a in barriers if t == table)
        current: list[ReadPoint] = []
        start = end = 0
        for p in pts:
            if current:
                gap = p.address - end
                new_end = max(end, p.end)
                crosses = any(start < c <= p.address for c in cuts)
                if gap <= max_gap and new_end - start <= table.limit and not crosses:
                    current.append(p)
                    end = new_end
                    continue
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [p], p.address, p.end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return tuple(blocks)


@dataclass(frozen=True)
class Plan:
    """The read plan of one device: its points, what was learnt about it, and the requests.

    Immutable: ``split`` and ``reset`` return a new plan.
    """

    points: tuple[ReadPoint, ...]
    max_gap: int = 0
    barriers: frozenset[tuple[Table, int]] = frozenset()
    unreadable: frozenset[str] = frozenset()
    _cache: dict[frozenset[str], tuple[Block, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        keys = [p.key for p in self.points]
        if len(set(keys)) != len(keys):
            raise ValueError("point keys of a plan must be unique")
        if self.max_gap < 0:
            raise ValueError("max_gap cannot be negative")

    @classmethod
    def build(cls, points: Iterable[ReadPoint], max_gap: int = 0) -> Plan:
        return cls(tuple(points), max_gap)

    @property
    def readable(self) -> tuple[ReadPoint, ...]:
        return tuple(p for p in self.points if p.key not in self.unreadable)

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The requests that read every readable point once."""
        return self.blocks_for(p.key for p in self.points)

    def blocks_for(self, keys: Iterable[str]) -> tuple[Block, ...]:
        """The requests that read the readable points among ``keys`` (cached per key set)."""
        wanted = frozenset(keys) - self.unreadable
        hit = self._cache.get(wanted)
        if hit is None:
            hit = coalesce((p for p in self.points if p.key in wanted), self.max_gap, self.barriers)
            if len(self._cache) > 256:  # a device has few distinct due sets; bound it anyway
                self._cache.clear()
            self._cache[wanted] = hit
        return hit

    def split(self, block: Block) -> Plan:
        """The plan after ``block`` was refused with exception 02 (illegal data address).

        A block of several points is cut at its largest internal gap (ties: the
        one nearest the middle; no gap: the middle point) and the cut is kept as
        a barrier. A block whose points cannot be separated (one point, or
        points sharing their first address) marks them unreadable.
        """
        pts = sorted(block.points, key=lambda p: (p.address, p.end, p.key))
        starts = sorted({p.address for p in pts})
        if len(starts) < 2:
            return Plan(self.points, self.max_gap, self.barriers, self.unreadable | {p.key for p in pts})
        # candidate cuts: every distinct start but the first; gap before it
        best: tuple[int, float, int] | None = None
        middle = (block.start + block.end) / 2
        for cut in starts[1:]:
            reach = max((p.end for p in pts if p.address < cut), default=cut)
            gap = cut - reach
            score = (gap, -abs(cut - middle), cut)
            if best is None or score > best:
                best = score
        assert best is not None
        return Plan(self.points, self.max_gap, self.barriers | {(block.table, best[2])}, self.unreadable)

    def reset(self) -> Plan:
        """Forget barriers and unreadable points (after a firmware change or a device swap)."""
        return Plan(self.points, self.max_gap)


@dataclass
class _Group:
    period_ns: int
    keys: frozenset[str]
    deadline_ns: int


class Scheduler:
    """Which points are due at a monotonic instant, per poll interval, without drift.

    Every interval group starts due at ``start_ns``. When a group is served,
    its next deadline is the previous one plus its period. If that is already
    in the past (the loop stalled for more than one period), the missed
    deadlines are skipped, not replayed in a burst, and each skipped deadline
    counts in ``overruns`` (per group in ``overruns_by_period``).

    Pure in the sense that matters: it never reads a clock; the caller passes
    ``now_ns`` (``time.monotonic_ns`` live, a fake clock in tests).
    """

    def __init__(self, intervals_ns: Mapping[str, int], start_ns: int) -> None:
        by_period: dict[int, set[str]] = {}
        for key, period in intervals_ns.items():
            if period <= 0:
                raise ValueError(f"point {key!r}: poll interval must be positive, got {period} ns")
            by_period.setdefault(period, set()).add(key)
        self._groups = [_Group(p, frozenset(k), start_ns) for p, k in sorted(by_period.items())]
        self.overruns = 0
        self.overruns_by_period: dict[int, int] = {p: 0 for p in by_period}

    def next_deadline(self) -> int | None:
        """The earliest deadline not yet served (when to wake up next)."""
        return min((g.deadline_ns for g in self._groups), default=None)

    def due(self, now_ns: int) -> frozenset[str]:
        """The points due at ``now_ns``; marks them served and advances their deadlines."""
        out: set[str] = set()
        for g in self._groups:
            if g.deadline_ns > now_ns:
                continue
            out |= g.keys
            nxt = g.deadline_ns + g.period_ns
            if nxt <= now_ns:
                missed = (now_ns - g.deadline_ns) // g.period_ns
                nxt = g.deadline_ns + (missed + 1) * g.period_ns
                self.overruns += missed
                self.overruns_by_period[g.period_ns] += missed
            g.deadline_ns = nxt
        return frozenset(out)
