"""Which TIC readings are stored: one frame a second is heard, far less is worth keeping.

A Linky sends a frame every 1 to 2 seconds; storing each would be 80,000
rows a day per point on an SD card, for values that mostly do not move. The
rules engine and MQTT still get every frame (the hub's live path); this
module only decides what the *store* keeps, point by point:

- the first value of a point, and any change of quality, is stored;
- an *exact* point (an energy index, a tariff state) is stored whenever it
  changes: an index that moved by 1 Wh is a fact the bill depends on;
- a measurement is stored when it moved beyond its deadband since the value
  last stored: more than ``deadband_abs`` *and* more than ``deadband_pct``
  of it (the MQTT publisher's rule);
- every point is stored at least every ``store_interval_s`` (0: every frame),
  so a flat value still shows up in the history.

Pure: time comes in as monotonic seconds; one :class:`StoreThrottle` per driver.
"""

from __future__ import annotations

__all__ = ["Policy", "StoreThrottle", "policy_table"]

import fnmatch
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from zaas_edge.drivers.tic.options import StorePolicy


@dataclass(frozen=True, slots=True)
class Policy:
    interval_s: float = 60.0
    deadband_pct: float = 5.0
    deadband_abs: float = 0.0


def policy_table(default: Policy, overrides: Mapping[str, StorePolicy]) -> Callable[[str], Policy]:
    """The policy of a quantity: the first glob of ``overrides`` (in the order written) that matches
    it, its unset keys taken from ``default``."""
    cache: dict[str, Policy] = {}

    def lookup(quantity: str) -> Policy:
        p = cache.get(quantity)
        if p is None:
            p = default
            for glob, o in overrides.items():
                if fnmatch.fnmatchcase(quantity, glob):
                    p = Policy(
                        default.interval_s if o.store_interval_s is None else o.store_interval_s,
                        default.deadband_pct if o.deadband_pct is None else o.deadband_pct,
                        default.deadband_abs if o.deadband_abs is None else o.deadband_abs,
                    )
                    break
            cache[quantity] = p
        return p

    return lookup


class StoreThrottle:
    """Remembers the last stored value of each point; :meth:`keep` says whether to store a new one."""

    def __init__(self, policies: Callable[[str], Policy]) -> None:
        self.policies = policies
        self._last: dict[str, tuple[float, str, float]] = {}  # point -> (value, quality, mono_s)
        self.kept = 0
        self.skipped = 0

    def keep(self, point: str, quantity: str, value: float, quality: str, now: float, *, exact: bool) -> bool:
        """Store this value of ``point``? ``exact`` points store on any change (indexes, states)."""
        last = self._last.get(point)
        decided = last is None or self._worth(last, quantity, value, quality, now, exact)
        if decided:
            self._last[point] = (value, quality, now)
            self.kept += 1
        else:
            self.skipped += 1
        return decided

    def _worth(self, last: tuple[float, str, float], quantity: str, value: float, quality: str, now: float,
               exact: bool) -> bool:
        old, old_quality, at = last
        p = self.policies(quantity)
        if old_quality != quality or now - at >= p.interval_s:
            return True
        if math.isnan(old) or math.isnan(value):
            return math.isnan(old) != math.isnan(value)
        diff = abs(value - old)
        if exact:
            return diff != 0.0
        return diff > p.deadband_abs and diff > abs(old) * p.deadband_pct / 100.0

    def forget(self) -> None:
        """Start afresh (the meter changed): the next value of every point is stored."""
        self._last.clear()
