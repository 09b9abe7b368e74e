"""One load's state machine: its levels and power, its guards, and what the meter taught us of it.

A load moves between levels (0 = off … ``full``): a relay's 0/1, a heater's
stages, a charger's amps (0 = paused, else ``min_a``..``max_a``), an HVAC
offset (``full`` = no offset, 0 = the largest). The guards are per load:
``min_on`` after going up, ``min_off`` after going down, ``max_off`` (comfort)
on the time spent below full, ``restore_delay`` on how long headroom must last,
``dwell`` on how long an over-limit must last before it is shed. Its power at
full is learned from the meter's step each time it switches alone.
"""

from __future__ import annotations

__all__ = [
    "LoadState", "Learning", "initial", "full_level", "levels", "power_at", "modulating_floor",
    "shed_time", "in_flight", "guard_allows_down", "guard_allows_up", "moved", "reverted",
    "cut_level", "setpoint", "learn_from",
]

from dataclasses import dataclass, replace

from zaas_edge.rules.config import LoadConfig
from zaas_edge.rules.model import OverrideMode

_HVAC_STEP_K = 0.5
_LEARN_BOUNDS = (0.25, 4.0)
_LEARN_WEIGHT = 0.5


@dataclass(frozen=True, slots=True)
class Learning:
    """A switch waiting to be measured: the meter total before it and the command it belongs to."""

    before_w: float
    from_level: float
    to_level: float
    due_s: float
    command: int


@dataclass(frozen=True, slots=True)
class LoadState:
    """Where a load is and how it got there.

    ``level`` is what was last commanded; ``from_level`` and ``changed_s`` the
    command's start, so its effect counts as in flight until the actuator's
    latency has passed. ``off_since`` starts when it first drops below full,
    ``zero_since`` when it goes off altogether (the comfort guard's clock);
    ``shed_s`` sums the periods already closed, for rotation.
    """

    id: str
    level: float
    learned_w: float
    from_level: float
    changed_s: float | None = None
    last_up_s: float | None = None
    last_down_s: float | None = None
    off_since: float | None = None
    zero_since: float | None = None
    shed_s: float = 0.0
    fits_since: float | None = None
    fault: bool = False
    safe: bool = False
    forced: OverrideMode = "auto"
    learning: Learning | None = None


def full_level(cfg: LoadConfig) -> float:
    kind = cfg.kind
    if kind == "onoff":
        return 1.0
    if kind == "stages":
        return float(cfg.stages)
    return float(cfg.max_a) if kind == "ev" else cfg.max_offset_k


def levels(cfg: LoadConfig) -> tuple[float, ...]:
    """Every level the load can be set to, ascending."""
    if cfg.kind == "onoff":
        return (0.0, 1.0)
    if cfg.kind == "stages":
        return tuple(float(i) for i in range(cfg.stages + 1))
    if cfg.kind == "ev":
        return (0.0, *(float(a) for a in range(cfg.min_a, cfg.max_a + 1)))
    n = int(round(cfg.max_offset_k / _HVAC_STEP_K))
    return tuple(min(cfg.max_offset_k, i * _HVAC_STEP_K) for i in range(n + 1))


def power_at(cfg: LoadConfig, learned_w: float, level: float) -> float:
    """The load's power at ``level`` given its learned power at full."""
    if cfg.kind == "hvac":
        return max(0.0, learned_w - (cfg.max_offset_k - level) * cfg.w_per_k)
    return learned_w * level / full_level(cfg)


def modulating_floor(cfg: LoadConfig) -> float:
    """The lowest level reached by modulating; below it the load is switched (the shed list's last class)."""
    if cfg.kind == "onoff":
        return full_level(cfg)
    if cfg.kind == "ev":
        return float(cfg.min_a)
    return 0.0


def setpoint(cfg: LoadConfig, level: float) -> float:
    """What a Modulate action carries: a charger's amps or an HVAC offset in K (positive saves)."""
    return cfg.max_offset_k - level if cfg.kind == "hvac" else level


def initial(cfg: LoadConfig) -> LoadState:
    full = full_level(cfg)
    return LoadState(id=cfg.id, level=full, learned_w=cfg.power_w, from_level=full)


def shed_time(st: LoadState, now: float) -> float:
    """Total time spent below full, the current period included."""
    return st.shed_s + (now - st.off_since if st.off_since is not None else 0.0)


def in_flight(st: LoadState, now: float, latency_s: float) -> bool:
    """Whether the last command may not have reached the meter yet."""
    return st.changed_s is not None and now - st.changed_s < latency_s


def guard_allows_down(cfg: LoadConfig, st: LoadState, now: float) -> bool:
    return st.last_up_s is None or now - st.last_up_s >= cfg.min_on_s


def guard_allows_up(cfg: LoadConfig, st: LoadState, now: float) -> bool:
    return st.last_down_s is None or now - st.last_down_s >= cfg.min_off_s


def moved(cfg: LoadConfig, st: LoadState, level: float, now: float) -> LoadState:
    """The state after commanding ``level`` at ``now``."""
    full = full_level(cfg)
    up = level > st.level
    off_since, shed_s = st.off_since, st.shed_s
    if level < full and off_since is None:
        off_since = now
    elif level >= full and off_since is not None:
        shed_s, off_since = shed_s + now - off_since, None
    zero_since = (st.zero_since if st.zero_since is not None else now) if level <= 0 else None
    return replace(st, level=level, from_level=st.level, changed_s=now,
                   last_up_s=now if up else st.last_up_s, last_down_s=st.last_down_s if up else now,
                   off_since=off_since, zero_since=zero_since, shed_s=shed_s, fits_since=None, learning=None)


def reverted(cfg: LoadConfig, st: LoadState, now: float) -> LoadState:
    """The state when the actuator did not carry out the last command: back where it was, nothing in flight."""
    full = full_level(cfg)
    off_since, shed_s = st.off_since, st.shed_s
    if st.from_level >= full and off_since is not None:
        shed_s, off_since = shed_s + now - off_since, None
    elif st.from_level < full and off_since is None:
        off_since = now
    zero_since = st.zero_since if st.from_level <= 0 else None
    return replace(st, level=st.from_level, changed_s=None, off_since=off_since, zero_since=zero_since,
                   shed_s=shed_s, fits_since=None, learning=None)


def cut_level(cfg: LoadConfig, st: LoadState, floor: float, need_w: float) -> float:
    """The highest level between ``floor`` and the present one whose cut covers ``need_w``; else ``floor``."""
    now_w = power_at(cfg, st.learned_w, st.level)
    for lv in sorted((lv for lv in levels(cfg) if floor <= lv < st.level), reverse=True):
        if now_w - power_at(cfg, st.learned_w, lv) >= need_w:
            return lv
    return floor


def learn_from(cfg: LoadConfig, st: LoadState, after_w: float) -> float:
    """The learned power at full after seeing the meter at ``after_w`` once a switch settled.

    Only steps that point the expected way and are within a factor of four of
    the current figure count (the rest of the building moved too), and each
    counts for half, so one noisy step cannot undo what was learned.
    """
    lg = st.learning
    if lg is None or cfg.kind == "hvac":
        return st.learned_w
    share = (lg.to_level - lg.from_level) / full_level(cfg)
    if share == 0:
        return st.learned_w
    estimate = (after_w - lg.before_w) / share
    lo, hi = _LEARN_BOUNDS
    if not lo * st.learned_w <= estimate <= hi * st.learned_w:
        return st.learned_w
    return (1 - _LEARN_WEIGHT) * st.learned_w + _LEARN_WEIGHT * estimate
