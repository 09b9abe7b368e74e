"""Upload policies: which records go up for a point (pure).

- ``raw``: every reading, as it is;
- ``deadband``: a reading when it moved more than ``deadband`` (in the
  point's unit) from the last one sent, when its quality changed, or when
  ``heartbeat_s`` passed since the last one sent;
- ``aggregate``: one record per ``window_s`` window (avg, min, max, last with
  its time, count); a window that saw one reading goes up as that raw reading;
- ``last``: the last reading of each ``window_s`` window, as a raw sample
  (counters: the platform differentiates).

Defaults suit a dashboard: counters (energy, volume: kWh, Wh, m3...) send the
last value of each minute, everything else 1-minute aggregates (a point read
once a minute or less often so goes up as its raw readings).
Rules in ``[[sync.policies]]`` pick a policy per point or per group of points
(a glob on the point key ``<device>/<quantity>``, optionally restricted to
units); the first rule that matches wins.
"""

from __future__ import annotations

__all__ = ["UploadPolicy", "PolicySet", "COUNTER_UNITS", "KINDS", "window_start"]

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

KINDS = ("raw", "deadband", "aggregate", "last")

# Units of cumulative counters: their last value per window says everything.
COUNTER_UNITS = frozenset({
    "Wh", "kWh", "MWh", "GWh", "varh", "kvarh", "Mvarh", "VAh", "kVAh",
    "J", "kJ", "MJ", "GJ", "m3", "m³", "l", "L", "ft3", "gal", "count", "pulses", "imp",
})


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    kind: str = "aggregate"
    window_s: int = 60
    deadband: float = 0.0
    heartbeat_s: int = 900

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"upload policy {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.window_s < 1:
            raise ValueError("window_s must be at least 1")

    @property
    def windowed(self) -> bool:
        return self.kind in ("aggregate", "last")


class _Rule(Protocol):
    match: str
    units: list[str]
    policy: str
    window_s: int | None
    deadband: float
    heartbeat_s: int


def window_start(wall_ns: int, window_s: int) -> int:
    """Start of the window holding ``wall_ns``: windows are aligned on the epoch, so they line up across points."""
    w = window_s * 1_000_000_000
    return wall_ns - wall_ns % w


class PolicySet:
    """The policy in force for each point: the first matching rule, else the defaults."""

    def __init__(self, rules: Iterable[_Rule] = (), *, window_s: int = 60, counter_policy: str = "last",
                 default_policy: str = "aggregate") -> None:
        self._rules = [
            (r.match, frozenset(r.units), UploadPolicy(r.policy, r.window_s or window_s, r.deadband, r.heartbeat_s))
            for r in rules
        ]
        self._counter = UploadPolicy(counter_policy, window_s)
        self._default = UploadPolicy(default_policy, window_s)
        # unit -> point key -> policy: a building has a handful of units, so this costs a dict entry
        # per point and no (key, unit) tuple, neither kept nor built at every reading.
        self._cache: dict[str, dict[str, UploadPolicy]] = {}

    def for_point(self, key: str, unit: str) -> UploadPolicy:
        by_key = self._cache.get(unit)
        if by_key is None:
            by_key = self._cache[unit] = {}
        got = by_key.get(key)
        if got is None:
            got = by_key[key] = self._find(key, unit)
        return got

    def _find(self, key: str, unit: str) -> UploadPolicy:
        for pattern, units, pol in self._rules:
            if (not units or unit in units) and fnmatch.fnmatchcase(key, pattern):
                return pol
        return self._counter if unit in COUNTER_UNITS else self._default
