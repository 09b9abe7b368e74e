"""A closed-loop simulation: the engine (or any controller) against a plant, one second at a time.

The plant is a scenario's (:mod:`zaas_edge.rules.scenario`): the meter model
(:mod:`zaas_edge.rules.plant`), the base load, each load's true power and
when it wants to run, its actuator's latency and whether it obeys. Each
second the meter reads what flows, the controller gets one :class:`Inputs`
(the sample unless the meter is out, the wall and local time, the tariff
state, the over-power flag, the read-back failures) and its commands land
after the load's latency. Deterministic: the same scenario gives the same
figures, which is what lets the scenario suite hold the engine to its targets.

The figures (:class:`Figures`) are what the issue asks the engine to meet:
trips, over-run blocks, switchings per load per hour, the spread of shed time
among equal priorities, how long a load waits once its power fits again, the
energy shed and the comfort guard broken.
"""

from __future__ import annotations

__all__ = ["Controller", "EngineController", "TimedAction", "Figures", "Series", "SimResult", "simulate",
           "check_targets", "action_dict", "percentile"]

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from zaas_edge.rules import limits as lim
from zaas_edge.rules import loads as ld
from zaas_edge.rules import plant
from zaas_edge.rules.config import LoadConfig, SheddingConfig
from zaas_edge.rules.engine import EngineState, initial_state, step
from zaas_edge.rules.model import Action, Alarm, Inputs, LocalTime, Modulate, Restore, Sample, Shed, TariffState
from zaas_edge.rules.scenario import PlantLoad, Scenario, Targets

_HOUR_S = 3600.0


class Controller(Protocol):
    """Anything that decides once a second from the inputs: the engine, or a baseline to compare it with."""

    def __call__(self, inputs: Inputs, now: float) -> tuple[Action, ...]: ...


class EngineController:
    """The zaas-edge engine as a :class:`Controller`; it runs whatever ``enabled`` says (a simulation asks)."""

    def __init__(self, config: SheddingConfig) -> None:
        self.state: EngineState = initial_state(config.model_copy(update={"enabled": True}))

    def __call__(self, inputs: Inputs, now: float) -> tuple[Action, ...]:
        self.state, actions = step(self.state, inputs, now)
        return actions


@dataclass(frozen=True, slots=True)
class TimedAction:
    t: float
    action: Action


@dataclass(frozen=True, slots=True)
class Figures:
    """What a run is judged on (see the module doc); ``restore_p95_s`` is 0 when nothing waited.

    ``outage_wh`` is what the building wanted while a trip had cut its supply: not shed, lost all the same.
    """

    trips: int
    overrun_blocks: int
    max_switchings_per_load_hour: int
    shed_spread: float
    restore_p95_s: float
    shed_energy_wh: float
    comfort_violations: int
    outage_wh: float
    sheds: int
    restores: int
    alarms: tuple[str, ...]
    shed_s: Mapping[str, float]
    switchings: Mapping[str, int]

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["alarms"] = list(self.alarms)
        d["shed_s"] = dict(self.shed_s)
        d["switchings"] = dict(self.switchings)
        return d


@dataclass(slots=True)
class Series:
    """One value a second, for ``--plot``: the metered power, the limit in force, the meter's filter or block."""

    t: list[float] = field(default_factory=list)
    metered_w: list[float] = field(default_factory=list)
    limit_w: list[float] = field(default_factory=list)
    filter: list[float] = field(default_factory=list)
    filter_name: str = ""


@dataclass(frozen=True, slots=True)
class SimResult:
    figures: Figures
    actions: tuple[TimedAction, ...]
    series: Series


def _local(start: datetime, t: float) -> tuple[float, LocalTime]:
    wall = start.replace(tzinfo=UTC).timestamp() + t if start.tzinfo is None else start.timestamp() + t
    dt = datetime.fromtimestamp(wall, UTC) if start.tzinfo is None else datetime.fromtimestamp(wall, start.tzinfo)
    return wall, LocalTime(dt.weekday(), dt.hour * 60 + dt.minute)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _max_per_hour(times: list[float]) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= _HOUR_S:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class _Run:
    """The mutable working state of one run (private)."""

    def __init__(self, sc: Scenario, base: Callable[[float], float], controller: Controller) -> None:
        self.sc, self.base, self.controller = sc, base, controller
        self.cfg = sc.shedding
        self.meter = sc.plant.meter
        self.truth: dict[str, PlantLoad] = {pl.id: pl for pl in sc.plant.loads}
        self.lcfg: dict[str, LoadConfig] = {c.id: c for c in self.cfg.loads}
        self.full = {c.id: ld.full_level(c) for c in self.cfg.loads}
        self.physical = dict(self.full)
        self.commanded = dict(self.full)
        self.pending: list[tuple[float, str, float]] = []
        self.fault_due: dict[str, float] = {}
        self.faults: set[str] = set()
        self.points = self.meter.points
        self.node = next((n for n in self.cfg.limits if self.points[0] in n.points), None)
        # three phases: where each load draws (None: balanced), and each phase's share of the limit
        self.phase = {c.id: c.phase for c in self.cfg.loads} if len(self.points) == 3 else {}
        self.switch_times: dict[str, list[float]] = {c: [] for c in self.full}
        self.shed_s = dict.fromkeys(self.full, 0.0)
        self.off_since: dict[str, float | None] = dict.fromkeys(self.full)
        self.zero_since: dict[str, float | None] = dict.fromkeys(self.full)
        self.comfort_broken: set[str] = set()
        self.comfort_violations = 0
        self.room_since: dict[str, float | None] = dict.fromkeys(self.full)
        self.waits: list[float] = []
        self.energy_j = 0.0
        self.outage_j = 0.0
        self.supplied = True
        self.sheds = self.restores = 0
        self.alarms: list[str] = []
        self.actions: list[TimedAction] = []
        self.series = Series(filter_name={"linky": "Y (trips at 1.69)", "block": "block average W"}.get(
            self.meter.model, ""))

    def power(self, lid: str, level: float, t: float) -> float:
        pl = self.truth[lid]
        if not pl.wants_at(t):
            return 0.0
        return ld.power_at(self.lcfg[lid], pl.power_w, level)

    def per_phase(self, base_w: float, loads_w: Mapping[str, float]) -> tuple[float, ...]:
        """Three phases: the base spread evenly, each load on its phase; ``()`` on a single-phase meter."""
        if not self.phase:
            return ()
        ph = [base_w / 3] * 3
        for lid, w in loads_w.items():
            on = self.phase[lid]
            if on is None:
                for i in range(3):
                    ph[i] += w / 3
            else:
                ph[on - 1] += w
        return tuple(max(0.0, x) for x in ph)

    def tariff(self, t: float) -> TariffState:
        for w in self.sc.plant.tariff:
            if w.start <= t < w.end:
                return TariffState(period=w.period, tempo=w.tempo, peak=w.peak)
        return TariffState()

    def run(self) -> SimResult:
        ms = plant.initial_meter()
        m = self.meter
        n = int(self.sc.duration_s)
        for i in range(n):
            t = float(i)
            for p in [p for p in self.pending if p[0] <= t]:
                self.pending.remove(p)
                self.physical[p[1]] = p[2]
            for lid, due in list(self.fault_due.items()):
                if t >= due:
                    self.faults.add(lid)
                    del self.fault_due[lid]
                    self.not_done(lid, t)
            loads_w = {lid: self.power(lid, lv, t) for lid, lv in self.physical.items()}
            base_w = self.base(t)
            drawn = max(0.0, base_w + sum(loads_w.values()))
            phases = self.per_phase(base_w, loads_w)
            wall, local = _local(self.sc.start, t)
            ms = plant.meter_step(ms, m.model, t, wall, drawn, m.limit_w, m.block_s, m.rearm_s, phases)
            supplied = self.supplied = ms.open_until is None
            if not supplied:
                self.outage_j += drawn
            metered = drawn if supplied else 0.0
            out = any(a <= t < b for a, b in m.outages)
            tariff = self.tariff(t)
            if phases:
                seen = phases if supplied else (0.0, 0.0, 0.0)
                samples = tuple(Sample(p, w, t) for p, w in zip(self.points, seen, strict=True))
                over = max(seen) > m.limit_w / 3
            else:
                samples = (Sample(self.points[0], metered, t),)
                over = metered > m.limit_w
            inputs = Inputs(
                samples=() if out else samples,
                wall_s=wall, local=local, tariff=tariff,
                overpower=frozenset({self.node.id}) if (self.node is not None and m.model == "linky"
                                                        and over and not out) else frozenset(),
                actuator_faults=frozenset(self.faults))
            limit_now = (lim.effective_limit(self.node, inputs)[0] if self.node is not None else m.limit_w)
            self.account(t, loads_w, drawn, supplied and not out, limit_now, phases)
            self.series.t.append(t)
            self.series.metered_w.append(metered)
            self.series.limit_w.append(limit_now)
            self.series.filter.append(plant.filter_y(ms, m.limit_w) if m.model == "linky"
                                      else (ms.block_j / max(1.0, (wall % m.block_s) + 1.0)
                                            if m.model == "block" else 0.0))
            for a in self.controller(inputs, t):
                self.carry_out(t, a)
        ms = plant.close_meter(ms, m.model, m.limit_w, m.block_s)
        end = float(n)
        for lid, since in self.room_since.items():
            if since is not None and self.commanded[lid] < self.full[lid]:
                self.waits.append(end - since)
        for lid, since in self.off_since.items():
            if since is not None:
                self.shed_s[lid] += end - since
        return SimResult(self.figures(ms), tuple(self.actions), self.series)

    def account(self, t: float, loads_w: Mapping[str, float], drawn: float, seen: bool, limit_w: float,
                phases: tuple[float, ...] = ()) -> None:
        """Per second: energy shed, comfort guard, and since when each shed load's power would fit.

        ``seen``: the supply is on and the meter read; headroom only counts while the engine can see it.
        """
        for lid, full in self.full.items():
            if self.supplied:
                self.energy_j += max(0.0, self.power(lid, full, t) - loads_w[lid])
            since = self.zero_since[lid]
            c = self.lcfg[lid]
            if since is not None and t - since > c.max_off_s and lid not in self.comfort_broken:
                self.comfort_broken.add(lid)
                self.comfort_violations += 1
            if self.commanded[lid] < full:
                if not seen:
                    self.room_since[lid] = None
                    continue
                if phases:  # each phase against its third of the limit
                    own = self.per_phase(0.0, {k: (loads_w[lid] if k == lid else 0.0) for k in loads_w})
                    full_w = self.per_phase(0.0, {k: (self.truth[lid].power_w if k == lid else 0.0)
                                                  for k in loads_w})
                    fits = all(p - o + f <= limit_w / 3 for p, o, f in zip(phases, own, full_w, strict=True))
                else:
                    fits = drawn - loads_w[lid] + self.truth[lid].power_w <= limit_w
                if not fits:
                    self.room_since[lid] = None
                elif self.room_since[lid] is None:
                    self.room_since[lid] = t

    def not_done(self, lid: str, t: float) -> None:
        """A command the actuator did not carry out: the load is where it physically is, as the engine takes it."""
        level = self.physical[lid]
        self.commanded[lid] = level
        if level > 0:
            self.zero_since[lid] = None
            self.comfort_broken.discard(lid)
        since = self.off_since[lid]
        if level >= self.full[lid] and since is not None:
            self.shed_s[lid] += t - since
            self.off_since[lid] = None
            self.room_since[lid] = None

    def carry_out(self, t: float, a: Action) -> None:
        self.actions.append(TimedAction(t, a))
        if isinstance(a, Alarm):
            if a.active:
                self.alarms.append(a.code)
            return
        if a.dry_run or a.load not in self.full:
            return
        lid, full = a.load, self.full[a.load]
        before = self.commanded[lid]
        self.commanded[lid] = a.level
        if not isinstance(a, Modulate):
            self.switch_times[lid].append(t)
        if isinstance(a, Shed):
            self.sheds += 1
        elif isinstance(a, Restore | Modulate) and a.level > before:
            self.restores += 1
        if a.level <= 0 and self.zero_since[lid] is None:
            self.zero_since[lid] = t
        elif a.level > 0:
            self.zero_since[lid] = None
            self.comfort_broken.discard(lid)
        if a.level < full and self.off_since[lid] is None:
            self.off_since[lid] = t
        elif a.level >= full:
            since = self.off_since[lid]
            if since is not None:
                self.shed_s[lid] += t - since
                self.off_since[lid] = None
            room = self.room_since[lid]
            if room is not None and not a.reason.rule.startswith("override"):
                self.waits.append(t - room)
            self.room_since[lid] = None
        pl = self.truth[lid]
        if pl.obeys:
            self.pending.append((t + pl.latency_s, lid, a.level))
        elif lid not in self.faults:
            self.fault_due.setdefault(lid, t + pl.readback_s)

    def figures(self, ms: plant.MeterState) -> Figures:
        # equals are loads that can stand in for each other: same priority, same circuit, same phase
        by_prio: dict[tuple[int, str, int | None], list[float]] = {}
        for c in self.cfg.loads:
            by_prio.setdefault((c.priority, c.circuit, c.phase), []).append(self.shed_s[c.id])
        spread = 0.0
        for times in by_prio.values():
            mean = sum(times) / len(times)
            if len(times) >= 2 and mean > 0:
                spread = max(spread, (max(times) - min(times)) / mean)
        return Figures(
            trips=ms.trips, overrun_blocks=ms.overrun_blocks,
            max_switchings_per_load_hour=max((_max_per_hour(v) for v in self.switch_times.values()), default=0),
            shed_spread=round(spread, 4), restore_p95_s=percentile(self.waits, 0.95),
            shed_energy_wh=round(self.energy_j / 3600.0, 3), comfort_violations=self.comfort_violations,
            outage_wh=round(self.outage_j / 3600.0, 3), sheds=self.sheds, restores=self.restores,
            alarms=tuple(sorted(set(self.alarms))),
            shed_s=dict(self.shed_s), switchings={k: len(v) for k, v in self.switch_times.items()})


def simulate(scenario: Scenario, base: Callable[[float], float], controller: Controller | None = None) -> SimResult:
    """Run ``scenario`` for its duration with ``controller`` (the engine on the scenario's ``[shedding]``)."""
    return _Run(scenario, base, controller or EngineController(scenario.shedding)).run()


def check_targets(figures: Figures, targets: Targets) -> list[str]:
    """Each target the figures miss, as one line (empty: all met)."""
    out: list[str] = []

    def at_most(name: str, got: float, bound: float) -> None:
        if got > bound:
            out.append(f"{name} {got:g} > {bound:g}")

    at_most("trips", figures.trips, targets.trips)
    at_most("overrun_blocks", figures.overrun_blocks, targets.overrun_blocks)
    at_most("max_switchings_per_load_hour", figures.max_switchings_per_load_hour,
            targets.max_switchings_per_load_hour)
    at_most("shed_spread", figures.shed_spread, targets.shed_spread)
    at_most("restore_p95_s", figures.restore_p95_s, targets.restore_p95_s)
    at_most("comfort_violations", figures.comfort_violations, targets.comfort_violations)
    if figures.sheds < targets.min_sheds:
        out.append(f"sheds {figures.sheds} < {targets.min_sheds}")
    if targets.max_sheds is not None:
        at_most("sheds", figures.sheds, targets.max_sheds)
    missing = [a for a in targets.alarms if a not in figures.alarms]
    if missing:
        out.append(f"alarms not raised: {', '.join(missing)}")
    return out


def action_dict(ta: TimedAction) -> dict[str, object]:
    """One action as plain JSON values: when, what, on which load, why."""
    a = ta.action
    r = a.reason
    d: dict[str, object] = {"t": ta.t, "kind": a.kind, "rule": r.rule, "limit": r.limit,
                            "values": {k: round(v, 3) for k, v in r.values.items()}, "forecast": r.forecast}
    if isinstance(a, Alarm):
        d.update(code=a.code, subject=a.subject, active=a.active, text=a.text)
    else:
        d.update(load=a.load, level=a.level, dry_run=a.dry_run)
        if isinstance(a, Modulate):
            d["setpoint"] = a.setpoint
    return d
