"""Judging a soak: does the daemon hold steady over time? (pure: samples in, a verdict out)

``hil.soak`` samples the running daemon every minute (RSS, open file
descriptors, the store's files on disk, the backlog of each store lane) and
hands the series to :func:`judge`. The first minutes are a warm-up (caches
fill, the store's first pages are allocated, the aggregator's first windows
open) and are not judged; after it:

* **RSS and file descriptors** grow less than ``max_growth`` (5 %): the median
  of the last quarter of the judged samples against the median of the first
  quarter (medians, so one sample taken while a sync request holds a socket
  open or a batch is being built does not decide);
* **the backlog** of each lane does not trend up: the last quarter's median
  stays within what the first quarter saw (its largest value, or its median
  plus ``max_growth``) plus ``backlog_slack`` rows. A lane drained in bursts
  (the aggregator's windows, sync's batches) saw-tooths inside that range; a
  lane nobody drains climbs out of it. The lanes only sync drains (alarm,
  event, upload) are judged only while sync is configured;
* **the store's files** (database, WAL, shared memory) stay under the store's
  size cap (``store.max_size_mb``, which retention enforces) plus
  ``wal_allowance_bytes`` for the write-ahead log, which SQLite checkpoints but
  never shrinks. Below the cap the store is expected to grow (retention keeps
  history until the cap); the verdict gives its rate and when it would reach
  the cap.

Nothing here reads a file or a clock: the tests feed made-up series.
"""

from __future__ import annotations

__all__ = ["Sample", "Bounds", "Check", "Verdict", "judge", "default_warmup", "summary_rows", "SYNC_LANES",
           "READING_LANE"]

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

MIN_JUDGED = 4  # fewer samples after the warm-up cannot show a trend
WARMUP_FRACTION = 0.10
WARMUP_MAX_S = 300.0
READING_LANE = "reading"  # drained by the aggregator, sync or not
SYNC_LANES = ("alarm", "event", "upload")  # drained by sync only


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the daemon, ``t_s`` seconds into the soak; None where the figure could not be read."""

    t_s: float
    rss_bytes: int | None = None
    fds: int | None = None
    store_bytes: int | None = None
    backlog: Mapping[str, int] = field(default_factory=dict)  # per lane; empty when status did not answer
    readings_total: int | None = None
    sync_configured: bool = False
    store_cap_bytes: int | None = None
    cpu_s: float | None = None  # CPU seconds the daemon has used so far (information, not judged)

    def as_dict(self) -> dict[str, object]:
        return {"t_s": self.t_s, "rss_bytes": self.rss_bytes, "fds": self.fds, "store_bytes": self.store_bytes,
                "backlog": dict(self.backlog), "readings_total": self.readings_total,
                "sync_configured": self.sync_configured, "store_cap_bytes": self.store_cap_bytes,
                "cpu_s": self.cpu_s}


@dataclass(frozen=True, slots=True)
class Bounds:
    max_growth: float = 0.05
    backlog_slack: int = 50  # rows: a lane near zero may read a few rows more late than early
    wal_allowance_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Check:
    """One bound, judged: ``ok`` None when it could not be (no data, sync not configured)."""

    name: str
    ok: bool | None
    early: float | None
    late: float | None
    bound: str
    detail: str = ""

    @property
    def growth(self) -> float | None:
        if self.early is None or self.late is None or self.early == 0:
            return None
        return self.late / self.early - 1

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "early": self.early, "late": self.late, "growth": self.growth,
                "bound": self.bound, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    checks: tuple[Check, ...]
    warmup_s: float
    judged: int  # samples after the warm-up
    reason: str = ""  # why the soak fails as a whole (too few samples), besides failed checks
    readings_per_s: float | None = None
    cpu_share: float | None = None  # of one core, over the judged samples

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.ok is False]

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "warmup_s": self.warmup_s, "judged_samples": self.judged, "reason": self.reason,
                "readings_per_s": self.readings_per_s, "cpu_share": self.cpu_share,
                "checks": [c.as_dict() for c in self.checks]}


def default_warmup(duration_s: float) -> float:
    """The first 10 % of the soak, at most 5 minutes (an hour's soak judges its last 55 minutes)."""
    return min(WARMUP_FRACTION * max(duration_s, 0.0), WARMUP_MAX_S)


def _quarters(values: Sequence[float]) -> tuple[list[float], list[float]]:
    k = max(1, math.ceil(len(values) / 4))
    return list(values[:k]), list(values[-k:])


def _values(samples: Sequence[Sample], get: Callable[[Sample], float | int | None]) -> list[float]:
    return [float(v) for v in map(get, samples) if v is not None]


def _growth_check(name: str, values: list[float], bounds: Bounds, unit: str) -> Check:
    bound = f"< {bounds.max_growth:.0%} growth"
    if len(values) < MIN_JUDGED:
        return Check(name, None, None, None, bound, f"only {len(values)} readable sample(s)")
    first, last = _quarters(values)
    early, late = statistics.median(first), statistics.median(last)
    if early <= 0:
        return Check(name, None, early, late, bound, f"no {unit} to compare against")
    ok = late <= early * (1 + bounds.max_growth)
    detail = "" if ok else (f"median of the last quarter {late:.0f} {unit} against {early:.0f} {unit} in the "
                            "first quarter after the warm-up")
    return Check(name, ok, early, late, bound, detail)


def _backlog_check(lane: str, values: list[float], bounds: Bounds, judged_by_sync: bool,
                   sync_configured: bool) -> Check:
    name = f"backlog {lane}"
    bound = f"not trending up (slack {bounds.backlog_slack} rows)"
    if judged_by_sync and not sync_configured:
        return Check(name, None, None, None, bound, "not judged: sync is not configured, nothing drains this lane")
    if len(values) < MIN_JUDGED:
        return Check(name, None, None, None, bound, f"only {len(values)} readable sample(s)")
    first, last = _quarters(values)
    early, late = statistics.median(first), statistics.median(last)
    ceiling = max(max(first), early * (1 + bounds.max_growth)) + bounds.backlog_slack
    ok = late <= ceiling
    detail = "" if ok else (f"the last quarter's median {late:.0f} rows is above {ceiling:.0f} (the first "
                            f"quarter's largest {max(first):.0f} plus {bounds.backlog_slack}): the lane is not "
                            "drained as fast as it fills")
    return Check(name, ok, early, late, f"<= {ceiling:.0f} rows", detail)


def _store_check(samples: Sequence[Sample], bounds: Bounds) -> Check:
    values = _values(samples, lambda s: s.store_bytes)
    caps = [s.store_cap_bytes for s in samples if s.store_cap_bytes]
    if not values:
        return Check("store size", None, None, None, "under its cap", "no readable sample")
    early, late = values[0], values[-1]
    if not caps:
        return Check("store size", None, early, late, "under its cap",
                     "the store's cap is unknown (status did not say)")
    cap = min(caps)
    limit = cap + bounds.wal_allowance_bytes
    peak = max(values)
    ok = peak <= limit
    span = samples[-1].t_s - samples[0].t_s
    rate = (late - early) / span * 3600 if span > 0 else 0.0
    if rate > 0 and late < cap:
        reach = f"reaches the cap in about {(cap - late) / rate:.0f} h at this rate"
    else:
        reach = "not growing" if rate <= 0 else "at its cap"
    detail = f"{rate / 1e6:+.1f} MB/h, {reach}"
    if not ok:
        detail = f"peak {peak:.0f} bytes above the cap {cap} plus {bounds.wal_allowance_bytes} for the WAL; " + detail
    mib = 1048576
    return Check("store size", ok, early, late,
                 f"<= cap {cap / mib:.0f} MiB + WAL {bounds.wal_allowance_bytes / mib:.0f} MiB", detail)


def _rate(samples: Sequence[Sample], get: Callable[[Sample], float | int | None]) -> float | None:
    """How fast a cumulative figure rose per second between the first and the last sample that have it."""
    counted = [(s.t_s, v) for s in samples if (v := get(s)) is not None]
    if len(counted) < 2 or counted[-1][0] <= counted[0][0]:
        return None
    return (counted[-1][1] - counted[0][1]) / (counted[-1][0] - counted[0][0])


def judge(samples: Sequence[Sample], warmup_s: float, bounds: Bounds = Bounds()) -> Verdict:
    """The soak's verdict over ``samples`` (in time order), ignoring the first ``warmup_s`` seconds."""
    judged = [s for s in samples if s.t_s >= warmup_s]
    if len(judged) < MIN_JUDGED:
        return Verdict(False, (), warmup_s, len(judged),
                       f"only {len(judged)} sample(s) after a {warmup_s:.0f} s warm-up, {MIN_JUDGED} needed: "
                       "run longer or sample more often")
    checks = [_growth_check("rss", _values(judged, lambda s: s.rss_bytes), bounds, "bytes"),
              _growth_check("fds", _values(judged, lambda s: s.fds), bounds, "fds"),
              _store_check(judged, bounds)]
    sync_configured = any(s.sync_configured for s in judged)
    lanes = [READING_LANE, *SYNC_LANES]
    lanes += sorted({lane for s in judged for lane in s.backlog} - set(lanes))
    for lane in lanes:
        values = _values(judged, lambda s, lane=lane: s.backlog.get(lane) if s.backlog else None)
        checks.append(_backlog_check(lane, values, bounds, lane in SYNC_LANES, sync_configured))
    ok = all(c.ok is not False for c in checks)
    return Verdict(ok, tuple(checks), warmup_s, len(judged), readings_per_s=_rate(judged, lambda s: s.readings_total),
                   cpu_share=_rate(judged, lambda s: s.cpu_s))


def _figure(name: str, v: float | None) -> str:
    if v is None:
        return "-"
    if name in ("rss", "store size"):
        return f"{v / 1048576:.1f} MiB"
    return f"{v:.0f}"


def summary_rows(verdict: Verdict) -> list[tuple[str, str, str, str, str, str]]:
    """One row per check: name, early, late, growth, bound, verdict (and why), for a table."""
    rows = []
    for c in verdict.checks:
        growth = "-" if c.growth is None else f"{c.growth:+.1%}"
        state = {True: "ok", False: "FAIL", None: "not judged"}[c.ok]
        rows.append((c.name, _figure(c.name, c.early), _figure(c.name, c.late), growth, c.bound,
                     f"{state}: {c.detail}" if c.detail else state))
    return rows
