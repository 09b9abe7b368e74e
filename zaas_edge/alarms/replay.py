"""The alarm rules over recorded readings: what they would have raised and cleared, to tune a rule first.

:func:`replay` runs the same evaluator as the daemon over readings in time
order (the store's history, a scenario's trace), with the readings' wall
clock as its clock: an evaluation every ``tick_s`` of recorded time, and at
each reading. Consumption baselines are learned from the replayed history
itself, as the live service learns them (the same hour of the previous
weeks), so a month of history tunes a consumption rule on its last weeks.
Pure: no I/O, no clock; ``zaas-edge shed simulate`` (or a rules simulate)
can report its transitions beside the load-shedding actions.
"""

from __future__ import annotations

__all__ = ["replay"]

import math
import time
from collections.abc import Iterable, Iterator

from zaas_edge.alarms.baseline import HOUR_S, baseline, hourly_use
from zaas_edge.model import Reading
from zaas_edge.rules.alarms import AlarmInputs, AlarmsSection, AlarmTransition, evaluate, initial_state
from zaas_edge.rules.model import LocalTime

_NS = 1_000_000_000


def _local(wall_s: float) -> LocalTime:
    tm = time.localtime(wall_s)
    return LocalTime(tm.tm_wday, tm.tm_hour * 60 + tm.tm_min)


def replay(section: AlarmsSection, readings: Iterable[Reading], *, tick_s: float = 60.0,
           until_s: float | None = None) -> Iterator[tuple[float, AlarmTransition]]:
    """``(wall seconds, transition)`` for every alarm the rules raise or clear over ``readings``.

    ``readings`` must come in wall-clock order (the store's seq order is,
    short of clock steps; out-of-order ones are evaluated when they come).
    ``until_s`` evaluates on past the last reading (a meter that went silent
    at the end of the history still goes stale).
    """
    state = initial_state(section)
    points = {p for r in section.rules if r.kind == "consumption" and r.baseline_ratio is not None
              for p in r.points}
    learned: dict[str, dict[int, tuple[int, float]]] = {p: {} for p in points}
    bases: dict[str, float] = {}
    base_hour: int | None = None
    batch: list[Reading] = []
    clock: float | None = None

    def step(now: float) -> list[AlarmTransition]:
        nonlocal state, base_hour, bases
        hour = int(now // HOUR_S)
        if hour != base_hour:
            base_hour = hour
            bases = {}
            for p, hours in learned.items():
                b = baseline(hourly_use(hours.values()), hour, section.baseline_weeks)
                if b is not None and math.isfinite(b):
                    bases[p] = b
        state, out = evaluate(state, AlarmInputs(tuple(batch), {}, dict(bases), now, _local(now)), now)
        batch.clear()
        return out

    for r in readings:
        wall = r.wall_ns / _NS
        if clock is None:
            clock = wall
        while wall >= clock + tick_s:  # the ticks of recorded time before this reading
            clock += tick_s
            yield from ((clock, t) for t in step(clock))
        if r.point in learned and math.isfinite(r.value):
            hours = learned[r.point]
            h = r.wall_ns // _NS // HOUR_S
            if h not in hours or r.wall_ns >= hours[h][0]:
                hours[h] = (r.wall_ns, float(r.value))
        batch.append(r)
        clock = max(clock, wall)
        yield from ((clock, t) for t in step(clock))
    if clock is not None and until_s is not None:
        while clock + tick_s <= until_s:
            clock += tick_s
            yield from ((clock, t) for t in step(clock))
