"""Each rule kind's condition: what a reading teaches about a subject, and whether it is in alarm.

Pure and small: :func:`feed` folds one reading into a subject's
:class:`Track`; :func:`judge` says, at ``now``, whether the raise condition
holds (``trips``) and whether the clear condition holds (``clears``, past the
hysteresis margin), with the figures behind it. Between the two lies the
hysteresis band where an active alarm stays active and an inactive one stays
quiet. The lifecycle (delay, flap control, summaries) is the evaluator's.

Subjects: a point for most kinds; the rule itself for a difference or a sum;
a device for ``silent`` and ``fault`` by quality; a driver's alarm id for
``fault`` by alarm.
"""

from __future__ import annotations

__all__ = ["Track", "Verdict", "feed", "judge", "subject_of", "fresh_track", "unit_of", "QUIET"]

import math
from typing import Any, NamedTuple

from zaas_edge.model import Quality, Reading
from zaas_edge.rules.alarms.config import AlarmRule
from zaas_edge.rules.alarms.model import AlarmInputs

_FRESH = (Quality.OK, Quality.ESTIMATED)


class Track(NamedTuple):
    """What one rule remembers of one subject (only the fields its kind uses are set).

    A named tuple, not a frozen dataclass: one is made for every reading a
    rule takes, and a tuple costs a fifth of a frozen dataclass to build.
    """

    heard: bool = False  # a reading (or an alarm transition) came for it since the start
    last_s: float | None = None  # monotonic s of the last fresh reading (stale, silent)
    value: float | None = None  # the latest value of the point, or the derived one (a rate, a flow)
    unit: str = ""
    ref_value: float | None = None  # rate and flow from an index: the reference reading
    ref_wall: float | None = None
    parts: tuple[float | None, ...] = ()  # difference and sum: the latest of each point
    first_s: float | None = None  # leak by flow: when the meter was first heard
    last_zero_s: float | None = None  # leak by flow: the last time the flow was at or under min_flow
    flag: bool = False  # fault: the meter says it is in error
    hour: int | None = None  # consumption: the hour (Unix s // 3600) being measured
    hour_start: float | None = None  # the index when it started
    used: float = 0.0  # the use so far in the hour
    hour_thr: float | None = None  # the hour's threshold (None: no condition this hour)
    hour_base: float | None = None  # the baseline it came from
    closed_ok: bool = False  # the last closed hour stayed under its threshold (minus hysteresis)


def _evolve(t: Track, **changes: Any) -> Track:
    return t._replace(**changes)


class Verdict(NamedTuple):
    trips: bool
    clears: bool
    value: float | None = None
    threshold: float | None = None
    detail: str = ""
    since_s: float | None = None  # when the trouble began, where the rule knows better than its condition


QUIET = Verdict(False, False)


def fresh_track(rule: AlarmRule, now: float) -> Track:
    """The track of a subject named in the configuration before anything was heard of it."""
    if rule.kind in ("stale", "silent"):
        return Track(last_s=now)
    if rule.derive in ("difference", "sum"):
        return Track(parts=(None,) * len(rule.points))
    return Track()


def unit_of(rule: AlarmRule, t: Track | None) -> str:
    """The unit of the figures an alarm carries: the point's, per hour for a rate or a flow from an index."""
    unit = t.unit if t is not None else ""
    if stale_like(rule):
        return "s"
    per_hour = rule.derive == "rate" or (rule.kind == "leak" and rule.mode == "flow" and not rule.flow_point)
    return f"{unit}/h" if per_hour and unit else unit


def stale_like(rule: AlarmRule) -> bool:
    return rule.kind in ("stale", "silent")


def subject_of(rule: AlarmRule, point: str) -> str:
    """Which subject a reading of ``point`` speaks about under ``rule``."""
    if rule.derive in ("difference", "sum"):
        return ""
    if rule.kind == "silent" or (rule.kind == "fault" and rule.mode == "quality"):
        return point.partition("/")[0]
    return point


def _num(r: Reading) -> float | None:
    v = r.value
    try:
        return float(v) if math.isfinite(v) and v is not True and v is not False else None
    except TypeError:
        return None


def feed(rule: AlarmRule, t: Track, r: Reading, now: float) -> Track:
    """Fold one reading into the subject's track. Garbage (NaN, a wrong type) teaches nothing."""
    k = rule.kind
    fresh = r.quality in _FRESH
    v = _num(r)
    # The simple kinds use two or three fields: built directly (this runs for every reading).
    if k == "silent":
        return Track(heard=True, last_s=now)  # any answer, even an error value, is a sign of life
    if k == "fault" and rule.mode == "quality":
        if r.quality is Quality.ERROR:
            return Track(heard=True, flag=True)
        return Track(heard=True, flag=False) if fresh else t
    if not fresh or v is None:
        return t
    if k == "stale":
        return Track(heard=True, last_s=now)
    if k in ("threshold", "battery"):
        if rule.derive == "value":
            return Track(heard=True, value=v, unit=r.unit)
        if rule.derive == "rate":
            return _rate(t, v, r, now)
        parts = list(t.parts or (None,) * len(rule.points))
        parts[rule.points.index(r.point)] = v
        value = None
        if all(p is not None for p in parts):
            vals = [p for p in parts if p is not None]
            value = vals[0] - vals[1] if rule.derive == "difference" else sum(vals)
        return _evolve(t, heard=True, parts=tuple(parts), value=value, unit=r.unit)
    if k == "leak":
        if rule.mode == "detector":
            return _evolve(t, heard=True, value=v, unit=r.unit)
        first = t.first_s if t.first_s is not None else now
        t = _evolve(t, first_s=first, last_zero_s=t.last_zero_s if t.last_zero_s is not None else now)
        if rule.flow_point:
            t = _evolve(t, heard=True, value=v, unit=r.unit)
        else:
            t = _rate(t, v, r, now, min_dt=rule.sample_s)
            if t.value is None or t.ref_wall != r.wall_ns / 1e9:
                return t  # no new flow figure from this reading
        return _evolve(t, last_zero_s=now) if t.value is not None and t.value <= rule.min_flow else t
    if k == "consumption":
        if not r.synced:
            return t  # an hour needs a wall clock
        t = roll(rule, t, int(r.wall_ns // 1_000_000_000 // 3600))
        if int(r.wall_ns // 1_000_000_000 // 3600) < (t.hour or 0):
            return _evolve(t, value=v) if t.value is None else t  # late reading of a closed hour
        start = t.hour_start if t.hour_start is not None and t.hour_start <= v else v  # a reset index starts over
        return _evolve(t, heard=True, value=v, unit=r.unit, hour_start=start, used=v - start)
    if k == "fault":  # flag
        return _evolve(t, heard=True, value=v, unit=r.unit, flag=v != 0)
    return t


def _rate(t: Track, v: float, r: Reading, now: float, min_dt: float = 0.0) -> Track:
    """Per hour, from the reference reading to this one, once at least ``min_dt`` apart."""
    wall = r.wall_ns / 1e9
    if t.ref_value is None or t.ref_wall is None or wall < t.ref_wall:
        return _evolve(t, heard=True, ref_value=v, ref_wall=wall, unit=r.unit)
    dt = wall - t.ref_wall
    if dt <= 0 or dt < min_dt:
        return t
    delta = v - t.ref_value
    if delta < 0 and min_dt > 0:
        return _evolve(t, ref_value=v, ref_wall=wall)  # the index was reset or replaced: start over
    return _evolve(t, heard=True, value=delta / dt * 3600.0, ref_value=v, ref_wall=wall, unit=r.unit)


def _span(seconds: float) -> str:
    """A run of time as an incident says it: hours once there are some, minutes before."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def roll(rule: AlarmRule, t: Track, hour: int) -> Track:
    """Move a consumption track to ``hour``, closing the hour it measured."""
    if t.hour is None:
        return _evolve(t, hour=hour, hour_start=t.value, used=0.0)
    if hour <= t.hour:
        return t
    ok = t.hour_thr is None or t.used <= t.hour_thr - rule.hysteresis
    return _evolve(t, hour=hour, hour_start=t.value, used=0.0, closed_ok=ok, hour_thr=None, hour_base=None)


def hour_threshold(rule: AlarmRule, point: str, inputs: AlarmInputs) -> tuple[float | None, float | None]:
    """The current hour's threshold for a consumption rule and the baseline it comes from."""
    thr: float | None = None
    base = inputs.baselines.get(point) if rule.baseline_ratio is not None else None
    if base is not None and math.isfinite(base) and rule.baseline_ratio is not None:
        thr = max(0.0, base) * rule.baseline_ratio + rule.min_excess
    loc = inputs.local
    if rule.idle_max is not None and loc is not None and any(w.covers(loc.weekday, loc.minute) for w in rule.idle):
        thr = rule.idle_max if thr is None else min(thr, rule.idle_max)
    return thr, base


def judge(rule: AlarmRule, subject: str, t: Track, now: float, inputs: AlarmInputs) -> tuple[Verdict, Track]:
    """Whether the subject is in alarm at ``now``, and its track brought up to ``now`` (consumption hours)."""
    k = rule.kind
    if k in ("threshold", "battery"):
        v = t.value
        if v is None:
            return QUIET, t
        hi, lo, h = rule.above, rule.below, rule.hysteresis
        trips = (hi is not None and v > hi) or (lo is not None and v < lo)
        clears = (hi is None or v <= hi - h) and (lo is None or v >= lo + h)
        thr = hi if hi is not None and (lo is None or v > (hi + lo) / 2) else lo
        return Verdict(trips, clears, v, thr), t
    if k in ("stale", "silent"):
        if t.last_s is None:
            return QUIET, t
        limit = rule.after_s if k == "stale" else rule.interval_s * rule.missed
        age = now - t.last_s
        return Verdict(age > limit, t.heard and age <= limit, round(age, 3), limit, since_s=t.last_s), t
    if k == "leak":
        if rule.mode == "detector":
            if t.value is None:
                return QUIET, t
            return Verdict(t.value != 0, t.value == 0, t.value, 0.0), t
        if t.last_zero_s is None or t.first_s is None:
            return QUIET, t
        run = now - t.last_zero_s
        return Verdict(run >= rule.window_s, run < rule.window_s, t.value, rule.min_flow,
                       f"{_span(run)} without the flow dropping to {rule.min_flow:g} or less",
                       since_s=t.last_zero_s), t
    if k == "consumption":
        if inputs.wall_s is not None:
            t = roll(rule, t, int(inputs.wall_s // 3600))
        if t.hour is None or t.hour_start is None:
            return QUIET, t
        thr, base = hour_threshold(rule, subject, inputs)
        if thr != t.hour_thr or base != t.hour_base:
            t = _evolve(t, hour_thr=thr, hour_base=base)
        trips = thr is not None and t.used > thr
        detail = "" if base is None else f"usual {base:g}"
        return Verdict(trips, (t.closed_ok or thr is None) and not trips, t.used, thr, detail), t
    if k == "fault":
        if not t.heard:
            return QUIET, t
        return Verdict(t.flag, not t.flag, t.value, None), t
    return QUIET, t
