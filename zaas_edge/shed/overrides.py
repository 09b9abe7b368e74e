"""Manual overrides of load shedding, by load and by limit: one table each for the CLI, MQTT and the engine.

A person forces a load ``shed`` (off) or ``restore`` (on) until an expiry, or
hands it back with ``auto``. The daemon keeps one table; the MQTT command
``cmd/loadshed/<load>/set`` and ``zaas-edge shed override`` write it, the
load-shedding service reads it on every step. Times are monotonic seconds.
"""

from __future__ import annotations

__all__ = ["LoadOverrides", "LimitOverrides", "OverrideState", "LimitOverrideState"]

from collections.abc import Callable, Collection
from typing import TypedDict

from zaas_edge.rules.model import Override, OverrideMode


class OverrideState(TypedDict):
    mode: str
    remaining_s: float | None


class LoadOverrides:
    """The overrides in force. ``loads`` returns the loads the configuration knows; with none,
    load shedding is not configured and every override is refused by the callers."""

    def __init__(self, loads: Callable[[], Collection[str]]) -> None:
        self._loads = loads
        self._table: dict[str, tuple[OverrideMode, float]] = {}  # load -> (mode, until monotonic s)

    def loads(self) -> Collection[str]:
        return self._loads()

    def set(self, load: str, mode: OverrideMode, ttl_s: float, now: float) -> None:
        if mode == "auto":
            self._table.pop(load, None)
        else:
            self._table[load] = (mode, now + ttl_s)

    def effective(self, load: str, now: float) -> OverrideMode:
        entry = self._table.get(load)
        if entry is None or entry[1] <= now:
            self._table.pop(load, None)
            return "auto"
        return entry[0]

    def state(self, load: str, now: float) -> OverrideState:
        mode = self.effective(load, now)
        entry = self._table.get(load)
        return {"mode": mode, "remaining_s": round(entry[1] - now, 1) if entry else None}

    def snapshot(self, now: float) -> dict[str, OverrideState]:
        return {load: self.state(load, now) for load in list(self._table)}

    def in_force(self, now: float) -> dict[str, Override]:
        """The engine's view: every unexpired override, as :class:`~zaas_edge.rules.model.Override`."""
        out: dict[str, Override] = {}
        for load in list(self._table):
            if self.effective(load, now) != "auto":
                mode, until = self._table[load]
                out[load] = Override(mode, until)
        return out


class LimitOverrideState(TypedDict):
    limit_w: float | None
    remaining_s: float | None


class LimitOverrides:
    """Limits set from outside until an expiry (the MQTT command ``cmd/limit/<id>/set``): a demand
    response from the platform, a contract changed for the day. ``None`` hands the limit back to the
    configuration (its schedule and tariff rules). ``limits`` returns the limit ids configured."""

    def __init__(self, limits: Callable[[], Collection[str]]) -> None:
        self._limits = limits
        self._table: dict[str, tuple[float, float]] = {}  # limit -> (watts, until monotonic s)

    def limits(self) -> Collection[str]:
        return self._limits()

    def set(self, limit: str, watts: float | None, ttl_s: float, now: float) -> None:
        if watts is None:
            self._table.pop(limit, None)
        else:
            self._table[limit] = (watts, now + ttl_s)

    def state(self, limit: str, now: float) -> LimitOverrideState:
        entry = self._table.get(limit)
        if entry is None or entry[1] <= now:
            self._table.pop(limit, None)
            return {"limit_w": None, "remaining_s": None}
        return {"limit_w": entry[0], "remaining_s": round(entry[1] - now, 1)}

    def in_force(self, now: float) -> dict[str, float]:
        """The engine's ``Inputs.limit_overrides``: every unexpired one."""
        return {lim: w for lim in list(self._table) if (w := self.state(lim, now)["limit_w"]) is not None}
