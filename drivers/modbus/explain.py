"""What a device's read plan sends and what it costs, for ``zaas-edge modbus plan``.

Pure: a ``Plan`` (with its bus's ``RequestCost``) and the device's poll
intervals in, a ``PlanReport`` out, which the command prints as a table or
as JSON. The report answers the technician's questions about a bus that is
too slow: which requests go out, how many unused registers each bridges,
how long each keeps the line busy, and how far the plan is from the least
any plan could take (``Plan.lower_bound_s``), both when every point is due
and at the fastest poll.
"""

from __future__ import annotations

__all__ = ["RequestLine", "PollCost", "PlanReport", "explain_plan"]

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .plan import Plan

_TABLE_NAMES = {1: "coils", 2: "discrete", 3: "holding", 4: "input"}


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One request of the plan."""

    table: str
    start: int
    count: int
    bridged: int  # registers (or bits) read for no point
    points: tuple[str, ...]
    bus_time_s: float

    def to_json(self) -> dict[str, object]:
        return {"table": self.table, "start": self.start, "count": self.count, "bridged": self.bridged,
                "points": list(self.points), "bus_time_s": round(self.bus_time_s, 6)}


@dataclass(frozen=True, slots=True)
class PollCost:
    """What one poll of a set of points costs: requests, bus time, the lower bound."""

    interval_s: float | None  # None: every point at once
    points: int
    requests: int
    bus_time_s: float
    lower_bound_s: float

    @property
    def over_bound(self) -> float:
        """How much more than the lower bound the plan takes (0.26 for 26 %)."""
        return self.bus_time_s / self.lower_bound_s - 1 if self.lower_bound_s else 0.0

    def to_json(self) -> dict[str, object]:
        return {"interval_s": self.interval_s, "points": self.points, "requests": self.requests,
                "bus_time_s": round(self.bus_time_s, 6), "lower_bound_s": round(self.lower_bound_s, 6)}


@dataclass(frozen=True, slots=True)
class PlanReport:
    """A device's plan: its requests when every point is due, and what its polls cost."""

    cost_label: str
    fixed_s: float
    per_register_s: float
    max_gap: int | None
    requests: tuple[RequestLine, ...]
    every_point: PollCost
    fastest: PollCost | None  # the points of the shortest interval (with what they depend on)
    unreadable: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"cost": {"model": self.cost_label, "fixed_s": round(self.fixed_s, 6),
                         "per_register_s": round(self.per_register_s, 9)},
                "max_gap": self.max_gap,
                "requests": [r.to_json() for r in self.requests],
                "every_point": self.every_point.to_json(),
                "fastest": None if self.fastest is None else self.fastest.to_json(),
                "unreadable": list(self.unreadable)}


def _poll(plan: Plan, keys: Iterable[str], interval_s: float | None) -> PollCost:
    wanted = frozenset(keys) - plan.unreadable
    return PollCost(interval_s, len(wanted), len(plan.blocks_for(wanted)), plan.bus_time_s(wanted),
                    plan.lower_bound_s(wanted))


def explain_plan(plan: Plan, intervals_ns: Mapping[str, int],
                 with_dependencies: Callable[[Iterable[str]], Iterable[str]] = lambda keys: keys) -> PlanReport:
    """The report of ``plan``; ``intervals_ns`` are the device's poll intervals per point,
    ``with_dependencies`` adds what a point needs read with it (SunSpec scale factors)."""
    lines = tuple(RequestLine(_TABLE_NAMES[int(b.table)], b.start, b.count, b.bridged, b.keys, plan.request_s(b))
                  for b in plan.blocks)
    every = _poll(plan, (p.key for p in plan.points), None)
    fastest = None
    if intervals_ns:
        shortest = min(intervals_ns.values())
        keys = [k for k, v in intervals_ns.items() if v == shortest]
        fastest = _poll(plan, with_dependencies(keys), shortest / 1e9)
    return PlanReport(plan.cost.label, plan.cost.fixed_s, plan.cost.per_register_s, plan.max_gap, lines, every,
                      fastest, tuple(sorted(plan.unreadable)))
