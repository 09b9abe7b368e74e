"""The aggregator: raw readings in, upload records out, durably and exactly once.

A store consumer (``aggregate``) with its own cursor on the raw ``reading``
lane. Each pass reads the readings after its position, fixes up their wall
clock (:mod:`zaas_edge.sync.clockfix`), applies each point's upload policy
(:mod:`zaas_edge.sync.policy`) and closes the windows whose end is more than
the grace behind the clock; the records made go to the ``upload`` lane (which
sync drains, see ``codec.SOURCE_LANE``) in the same transaction that moves
the cursor and saves the aggregator's state. Raw readings then need nothing
from the uplink: retention drops them once older than the local window.

Exactly once across restarts: the cursor stays just before the oldest
reading still in an open window (or held for a clock fix-up), and the saved
state says the last seq processed and up to when windows were closed; on
start, open windows are rebuilt from the readings after the cursor, and the
replayed readings whose fate was already decided (sent raw, or in a window
already closed) are skipped.

Aggregates merge: count adds, min and max take the extremes, avg is
weighted by count, last is the one with the latest ``last_ns``. A reading
arriving after its window was closed makes a further partial aggregate for
that window, which the platform merges.

:class:`Aggregation` is the pure core (tests drive it directly);
:class:`Aggregator` runs it against the store's outbox; :class:`AggregatorService`
is the daemon's supervised service for it, enabled with ``[sync]``.
"""

from __future__ import annotations

__all__ = ["Aggregation", "Aggregator", "AggregatorService", "CONSUMER", "policies_from_config"]

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from zaas_edge.clock import Clock
from zaas_edge.model import Lane, Quality, Reading, Stamp, UploadRecord
from zaas_edge.service import Service
from zaas_edge.store.outbox import Outbox
from zaas_edge.sync import clockfix
from zaas_edge.sync.clockfix import Decision
from zaas_edge.sync.config import SyncSection
from zaas_edge.sync.policy import PolicySet, UploadPolicy, window_start

log = logging.getLogger("zaas_edge.sync.aggregate")

CONSUMER = "aggregate"
STATE_VERSION = 1
READ_CHUNK = 20_000
_SCAN_CHUNKS = 10  # per pass, while looking ahead for a clock synchronisation
_NS = 1_000_000_000
_MS = 1_000_000


@dataclass(slots=True)
class _Window:
    """A mergeable partial aggregate of one point over one window.

    The open windows of a point form a chain, newest first (``older``): one most of the time, two
    while the previous window waits out the grace. ``boot_id`` is empty unless the window holds
    readings whose clock could not be fixed up (then it keeps them apart from the synchronised ones).
    """

    unit: str
    start_ns: int
    end_ns: int
    window_s: int
    first_seq: int
    kind: str  # the policy: aggregate or last
    count: int = 0
    total: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    last: float = math.nan
    last_ns: int = -(1 << 62)
    quality: Quality | None = None
    mixed: bool = False
    corrected: bool = False
    mono_ns: int | None = None
    boot_id: str = ""
    # The box's own monotonic clock when the window opened (its first reading's), so a window
    # closes after window_s + grace of real time even if the wall clock stepped meanwhile.
    opened_mono_ns: int = 0
    opened_boot: str = ""
    older: _Window | None = None

    def add(self, value: float, wall_ns: int, quality: Quality, corrected: bool) -> None:
        self.count += 1
        self.total += value
        if value < self.lo:
            self.lo = value
        if value > self.hi:
            self.hi = value
        if wall_ns >= self.last_ns:
            self.last, self.last_ns = value, wall_ns
        if self.quality is None:
            self.quality = quality
        elif quality is not self.quality:
            self.mixed = True
        self.corrected = self.corrected or corrected


@dataclass(slots=True)
class _Sent:
    """What deadband remembers of a point: the last value sent."""

    value: float
    wall_ns: int
    quality: str


@dataclass
class Aggregation:
    """The pure core: readings in (in seq order), upload records out.

    ``resolution(key)`` is the point's declared step (from its profile), kept
    on each record for the wire encoding. State that must survive a restart
    is :meth:`state` / ``Aggregation(..., state=...)``.
    """

    policies: PolicySet
    grace_s: float = 10.0
    hold_s: float = 900.0
    resolution: Callable[[str], float | None] = lambda key: None
    state: dict[str, Any] | None = None
    # point -> its newest open window (the head of its chain): a dict entry per point, no key tuple.
    windows: dict[str, _Window] = field(default_factory=dict, init=False)
    open_windows: int = field(default=0, init=False)
    offsets: dict[str, int | None] = field(default_factory=dict, init=False)
    sent: dict[str, _Sent] = field(default_factory=dict, init=False)
    last_seq: int = field(default=0, init=False)  # last reading processed
    closed_ns: int = field(default=-(1 << 62), init=False)  # every window ending at or before is closed
    _replay_seq: int = field(default=0, init=False)
    _replay_closed: int = field(default=-(1 << 62), init=False)
    # (seq, boot_id, mono_ns) of the first reading held for a clock fix-up
    held: tuple[int, str, int] | None = field(default=None, init=False)
    # (window_s, start_ns, end_ns) of the window opened last: the windows of every point open on the
    # same edges, which then share two int objects instead of holding two each.
    _edges: tuple[int, int, int] = field(default=(0, 0, 0), init=False)

    def __post_init__(self) -> None:
        st = self.state or {}
        self.state = None
        if st.get("v") == STATE_VERSION:
            self.last_seq = self._replay_seq = int(st.get("last_seq", 0))
            self.closed_ns = self._replay_closed = int(st.get("closed_ns", self.closed_ns))
            self.offsets = {str(k): (None if v is None else int(v)) for k, v in st.get("offsets", {}).items()}
            self.sent = {k: _Sent(float(v[0]) if v[0] is not None else math.nan, int(v[1]), str(v[2]))
                         for k, v in st.get("deadband", {}).items()}

    # ----------------------------------------------------------- state

    def snapshot(self) -> dict[str, Any]:
        """What to save with the cursor (small: offsets of recent boots, deadband points)."""
        return {
            "v": STATE_VERSION,
            "last_seq": self.last_seq,
            "closed_ns": self.closed_ns,
            "offsets": clockfix.prune(self.offsets),
            "deadband": {k: [None if math.isnan(s.value) else s.value, s.wall_ns, s.quality]
                         for k, s in self.sent.items()},
        }

    def ack_seq(self) -> int:
        """How far the raw lane may be acknowledged: just before the oldest reading still needed."""
        needed = [w.first_seq for w in self._all_windows()]
        if self.held is not None:
            needed.append(self.held[0])
        return min(needed) - 1 if needed else self.last_seq

    def _all_windows(self) -> Iterator[_Window]:
        for w in self.windows.values():
            while w is not None:
                yield w
                w = w.older

    # ----------------------------------------------------------- intake

    def feed(self, rows: Sequence[Any], now: Stamp | None = None) -> tuple[list[UploadRecord], int]:
        """Process ``rows`` (Stored readings, seq order); returns the records made and how many rows were taken.

        An unsynchronised reading of a boot whose offset is not known yet
        stops the intake there (``held`` is set) unless :func:`clockfix.resolve`
        decides from the rest of ``rows`` and ``now``; the caller then looks
        further ahead (:meth:`decide`) and feeds the rest again.
        """
        out: list[UploadRecord] = []
        offsets = self.offsets
        windows = self.windows
        replay_seq = self._replay_seq
        self.held = None
        for i, s in enumerate(rows):
            r: Reading = s.item
            if r.synced:
                if offsets.get(r.boot_id) is None:
                    offsets[r.boot_id] = r.wall_ns - r.mono_ns
                # The usual reading: synchronised, new, inside its point's newest window. Its policy
                # made that window, so neither the policy nor the clock fix-up is looked up again.
                w = windows.get(r.point)
                if (w is not None and w.start_ns <= r.wall_ns < w.end_ns and not w.boot_id
                        and s.seq > replay_seq and w.unit == r.unit):
                    w.add(r.value, r.wall_ns, r.quality, False)
                    self.last_seq = s.seq
                    continue
            elif r.boot_id not in offsets:
                rest = (x.item for x in rows[i + 1:])
                decision, off = clockfix.resolve(r.boot_id, r.mono_ns, rest, int(self.hold_s * _NS), now)
                if decision is Decision.WAIT:
                    self.held = (s.seq, r.boot_id, r.mono_ns)
                    return out, i
                self.decide(r.boot_id, off)
            self._one(s.seq, r, out)
            self.last_seq = s.seq
        return out, len(rows)

    def decide(self, boot_id: str, offset: int | None) -> None:
        """Settle the clock of ``boot_id``: its offset, or ``None`` to send its readings unsynchronised."""
        self.offsets[boot_id] = offset
        self.held = None
        log.info("clock of boot %s: %s", boot_id,
                 f"offset {offset} ns learnt, earlier readings corrected" if offset is not None
                 else "not synchronised in time, its readings go up unsynchronised")

    def _one(self, seq: int, r: Reading, out: list[UploadRecord]) -> None:
        fx = clockfix.fix(r, self.offsets)
        pol = self.policies.for_point(r.point, r.unit)
        replay = seq <= self._replay_seq
        if not pol.windowed:
            if replay:
                return  # decided before the restart
            if pol.kind == "raw" or self._moved(r, fx, pol):
                out.append(self._raw(r.point, r.unit, fx, r.value, r.quality))
            return
        start = window_start(fx.wall_ns, pol.window_s)
        if replay and start + pol.window_s * _NS <= self._replay_closed:
            return  # its window was closed (and sent) before the restart
        boot = "" if fx.synced else fx.boot_id  # fx.boot_id is empty once fixed up
        head = w = self.windows.get(r.point)
        while w is not None and not (w.start_ns == start and w.boot_id == boot and w.unit == r.unit):
            w = w.older
        if w is None:
            edges = self._edges
            if edges[0] == pol.window_s and edges[1] == start:
                start, end = edges[1], edges[2]
            else:
                end = start + pol.window_s * _NS
                self._edges = (pol.window_s, start, end)
            w = self.windows[r.point] = _Window(r.unit, start, end, pol.window_s, seq, pol.kind,
                                                mono_ns=fx.mono_ns, boot_id=boot,
                                                opened_mono_ns=r.mono_ns, opened_boot=r.boot_id, older=head)
            self.open_windows += 1
            if not replay and w.end_ns <= self.closed_ns:
                # The wall clock went back below the watermark: lower it, so a restart replays this
                # window instead of taking it for one already sent.
                self.closed_ns = w.end_ns - 1
        w.add(r.value, fx.wall_ns, r.quality, fx.corrected)

    def _moved(self, r: Reading, fx: clockfix.Fixed, pol: UploadPolicy) -> bool:
        last = self.sent.get(r.point)
        moved = (last is None or str(r.quality) != last.quality
                 or math.isnan(r.value) != math.isnan(last.value)
                 or abs(r.value - last.value) > pol.deadband
                 or fx.wall_ns - last.wall_ns >= pol.heartbeat_s * _NS)
        if moved:
            self.sent[r.point] = _Sent(r.value, fx.wall_ns, str(r.quality))
        return moved

    def _raw(self, point: str, unit: str, fx: clockfix.Fixed, value: float, quality: Quality) -> UploadRecord:
        return UploadRecord(point, unit, _ms(fx.wall_ns), value, quality, fx.synced, fx.corrected,
                            fx.mono_ns, fx.boot_id, self.resolution(point) or 0.0)

    # ----------------------------------------------------------- closing

    def close(self, now: Stamp, *, everything: bool = False) -> list[UploadRecord]:
        """Close the windows due at ``now``; ``everything`` closes them all.

        A window is due when its end plus the grace has passed on the wall
        clock, or on the box's monotonic clock (a window opened under a wall
        clock that later stepped back must not wait for the wall to catch up:
        it would pin the raw cursor for as long as the step), or when it starts
        in the future of the wall clock (only a step back makes one).
        """
        grace_ns = int(self.grace_s * _NS)
        cutoff = now.wall_ns - grace_ns
        ahead = now.wall_ns + grace_ns
        boot_now, mono_now, synced_now = now.boot_id, now.mono_ns, now.synced
        window_grace: dict[int, int] = {}  # window_s -> its length plus the grace, in ns

        def closing(w: _Window) -> bool:
            span = window_grace.get(w.window_s)
            if span is None:
                span = window_grace[w.window_s] = w.window_s * _NS + grace_ns
            if everything or (w.opened_boot == boot_now and mono_now - w.opened_mono_ns >= span):
                return True  # aged on the box's own clock
            if w.boot_id:
                # Uncorrected windows: by this boot's own (unsynchronised) wall clock; another boot's are over.
                return w.boot_id != boot_now or w.end_ns <= cutoff
            return synced_now and (w.end_ns <= cutoff or w.start_ns > ahead)

        due: list[tuple[int, int, str, _Window]] = []
        emptied: list[str] = []
        windows = self.windows
        for point, head in windows.items():
            if head.older is None:  # the usual: one open window
                if closing(head):
                    due.append((head.end_ns, head.first_seq, point, head))
                    emptied.append(point)
                continue
            kept: list[_Window] = []
            w: _Window | None = head
            while w is not None:
                if closing(w):
                    due.append((w.end_ns, w.first_seq, point, w))
                else:
                    kept.append(w)
                w = w.older
            for newer, older in zip(kept, kept[1:], strict=False):
                newer.older = older
            if kept:
                kept[-1].older = None
                windows[point] = kept[0]  # an existing key: no resize while iterating
            else:
                emptied.append(point)
        for point in emptied:
            del windows[point]
        self.open_windows -= len(due)
        due.sort(key=lambda d: (d[0], d[1]))
        out = [self._record(point, w) for _end, _first, point, w in due]
        for *_, w in due:
            w.older = None
        if now.synced:
            # The replay watermark: every window ending at or before it is closed. Never past an
            # open window, whatever the clock did.
            open_end = min((w.end_ns for w in self._all_windows()), default=cutoff + 1)
            mark = min(cutoff, open_end - 1)
            if mark > self.closed_ns:
                self.closed_ns = mark
        return out

    def _record(self, point: str, w: _Window) -> UploadRecord:
        quality = Quality.ESTIMATED if w.mixed else (w.quality or Quality.OK)
        synced = not w.boot_id or w.mono_ns is None
        fx = clockfix.Fixed(w.last_ns, synced, w.corrected, None if synced else w.mono_ns,
                            "" if synced else w.boot_id)
        if w.kind == "last" or w.count == 1:
            return self._raw(point, w.unit, fx, w.last, quality)
        return UploadRecord(point, w.unit, w.start_ns, w.total / w.count, quality, fx.synced, fx.corrected,
                            fx.mono_ns, fx.boot_id, self.resolution(point) or 0.0, w.window_s, w.count,
                            w.lo, w.hi, w.last, _ms(w.last_ns))


def _ms(ns: int) -> int:
    """Upload records carry time to the millisecond: finer is jitter, and it costs bytes on the wire."""
    return ns - ns % _MS


def policies_from_config(sync: Any) -> PolicySet:
    return PolicySet(sync.policies, window_s=sync.window_s, counter_policy=sync.counter_policy,
                     default_policy=sync.default_policy)


# ------------------------------------------------------------------ runner

class Aggregator:
    """Runs :class:`Aggregation` against the store's outbox until cancelled.

    ``config`` is the ``[sync]`` section; ``resolution(key)`` the points'
    declared steps (the daemon gives those of its drivers' points).
    """

    def __init__(self, outbox: Outbox, config: SyncSection, clock: Clock, *,
                 resolution: Callable[[str], float | None] = lambda key: None,
                 status: dict[str, Any] | None = None,
                 heartbeat: Callable[[], None] = lambda: None) -> None:
        self.outbox = outbox
        self.config = config
        self.clock = clock
        self.resolution = resolution
        self.status = status if status is not None else {}
        self.core: Aggregation | None = None
        self.records_written = 0
        self.readings_done = 0
        self.heartbeat = heartbeat
        self._pos = 0
        self._last_expiry = -math.inf
        self._expiry_cutoff: int | None = None  # the last local-window cutoff, wall ns
        self._scan = (0, 0)  # (held seq, scanned up to seq) while readings wait for a clock fix-up

    async def start(self) -> None:
        await self.outbox.register(CONSUMER, [Lane.READING])
        cursor = (await self.outbox.position(CONSUMER, Lane.READING)).cursor
        raw = await self.outbox.consumer_state(CONSUMER)
        state = None
        if raw:
            with contextlib.suppress(ValueError, TypeError):
                state = json.loads(raw)
        cfg = self.config
        self.core = Aggregation(policies_from_config(cfg), cfg.aggregate_grace_s, cfg.clock_hold_s,
                                self.resolution, state)
        self._pos = cursor

    async def run(self) -> None:
        """Pass after pass, until cancelled."""
        if self.core is None:
            await self.start()
        while True:
            self.heartbeat()
            if not await self.step():
                await asyncio.sleep(self.config.aggregate_interval_s)

    async def step(self, *, everything: bool = False) -> bool:
        """One pass: aggregate what is new, close what is due, commit. True when more rows wait."""
        core = self.core
        assert core is not None, "start() first"
        rows = await self.outbox.read(Lane.READING, self._pos, READ_CHUNK)
        now = self.clock.now()
        records, taken = core.feed(rows, now)
        if core.held is not None and await self._look_ahead(core, rows[-1].seq, now):
            more, extra = core.feed(rows[taken:], now)
            records += more
            taken += extra
        if taken:
            self._pos = rows[taken - 1].seq
        records += core.close(now, everything=everything)
        ack = core.ack_seq()
        state = json.dumps(core.snapshot(), separators=(",", ":"))
        if records or taken:
            await self.outbox.commit_uploads(records, CONSUMER, ack, state, now.wall_ns)
            self.records_written += len(records)
            self.readings_done += taken
        await self._expire(now)
        self.status.update({"aggregate_records": self.records_written, "aggregate_readings": self.readings_done,
                            "aggregate_open_windows": core.open_windows,
                            "aggregate_held_since_seq": core.held[0] if core.held else None,
                            "aggregate_hold": self._hold(core, now)})
        return bool(rows) and taken == len(rows) == READ_CHUNK

    def _hold(self, core: Aggregation, now: Stamp) -> dict[str, object] | None:
        """Why readings wait, for ``status``: their boot's clock was never synchronised, and when the
        wait ends on its own (``None``: as soon as the clock synchronises, or what a later boot says)."""
        if core.held is None:
            return None
        _, boot, mono = core.held
        release = None
        if boot == now.boot_id:
            release = round(max(0.0, self.config.clock_hold_s - (now.mono_ns - mono) / _NS), 1)
        return {"reason": "clock not synchronised", "since_seq": core.held[0], "release_in_s": release}

    async def _look_ahead(self, core: Aggregation, after: int, now: Stamp) -> bool:
        """Scan the readings beyond the held ones for the boot's fate; True once decided."""
        assert core.held is not None
        seq, boot, mono = core.held
        if self._scan[0] != seq:
            self._scan = (seq, after)
        hold_ns = int(self.config.clock_hold_s * _NS)
        for _ in range(_SCAN_CHUNKS):
            more = await self.outbox.read(Lane.READING, max(self._scan[1], after), READ_CHUNK)
            decision, off = clockfix.resolve(boot, mono, (s.item for s in more), hold_ns,
                                             now if len(more) < READ_CHUNK else None)
            if decision is not Decision.WAIT:
                core.decide(boot, off)
                return True
            if not more:
                return False
            self._scan = (seq, more[-1].seq)
        return False

    async def _expire(self, now: Stamp) -> None:
        """Drop raw readings older than the local window that the aggregator is done with.

        The cutoff follows the wall clock but advances at most twice as fast as
        real (monotonic) time: a forward step of the clock then expires the
        history it skipped over gradually, not all at once, and a step back
        expires nothing until the wall clock is past the old cutoff again.
        """
        mono = self.clock.monotonic_ns() / _NS
        elapsed = mono - self._last_expiry
        if elapsed < 60 or not now.synced:
            return
        self._last_expiry = mono
        target = now.wall_ns - int(self.config.local_window_h * 3600 * _NS)
        last = self._expiry_cutoff
        cutoff = target if last is None or math.isinf(elapsed) else min(target, last + int(2 * elapsed * _NS))
        self._expiry_cutoff = max(cutoff, last) if last is not None else cutoff
        dropped = await self.outbox.expire(Lane.READING, self._expiry_cutoff)
        if dropped:
            log.info("dropped %d raw readings older than the local window of %g h", dropped,
                     self.config.local_window_h)


def _resolutions(ctx: Any) -> Callable[[str], float | None]:
    """The declared resolution of the drivers' points, looked up lazily (drivers come and go).

    Kept by the key the caller looks up (a reading's own, the daemon's one string per point):
    what the drivers declare waits in ``declared`` (keys of their own) only until first asked for.
    """
    cache: dict[str, float | None] = {}
    declared: dict[str, float | None] = {}
    refreshes = [0]

    def lookup(key: str) -> float | None:
        if key in cache:
            return cache[key]
        if key not in declared and refreshes[0] < 3:
            refreshes[0] += 1
            with contextlib.suppress(Exception):
                for info in ctx.drivers.drivers_info().values():
                    for p in info.points:
                        k = p.key
                        if k in cache:
                            cache[k] = p.resolution or None  # an existing entry keeps its key
                        else:
                            declared[k] = p.resolution or None
        got = cache[key] = declared.pop(key, None)
        return got
    return lookup


class AggregatorService(Service):
    """The aggregator as a supervised service beside sync, following ``[sync]``.

    A failing pass (a degraded store, a bug) raises out of :meth:`run`: the
    runtime restarts it with backoff, records ``task.crashed``, raises the
    ``task.service.aggregate.failing`` alarm when it keeps failing, and
    ``zaas-edge status`` shows it like any other service. Sync itself keeps
    draining the alarm and event lanes meanwhile.
    """

    name = "aggregate"

    async def run(self) -> None:
        ctx = self.ctx
        agg = Aggregator(ctx.outbox, ctx.config().sync, ctx.clock, resolution=_resolutions(ctx),
                         status=ctx.status, heartbeat=ctx.heartbeat)
        await agg.run()
