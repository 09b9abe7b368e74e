"""The ``[shedding]`` section: the limits tree, the loads and their actuators.

Validated once, frozen, then handed to the engine inside its state, so a
decision never depends on anything but the configuration, the state and the
inputs. The daemon reads it from ``config.toml``; ``shed simulate`` from a
scenario file, in the same keys.

Conventions: powers in W (a Linky limit in VA, which the meter filters);
times in seconds; a load's ``priority`` is how much it matters: a lower
priority is shed first, equal priorities share the shedding in turn.
"""

from __future__ import annotations

__all__ = [
    "SheddingConfig", "LimitConfig", "LoadConfig", "ActuatorConfig", "ScheduleRule", "TariffRule", "DailyWindow",
    "minute_of_day",
    "LimitKind", "LoadKind", "SafeState",
]

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from zaas_edge.config_types import Section

LimitKind = Literal["instant", "sliding", "block", "linky"]
LoadKind = Literal["onoff", "stages", "ev", "hvac"]
SafeState = Literal["on", "off", "keep"]

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_ID = r"^[A-Za-z0-9_.-]{1,64}$"


def minute_of_day(text: str) -> int:
    m = _HHMM.match(text)
    if m is None:
        raise ValueError(f"expected a time of day HH:MM, got {text!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


class DailyWindow(Section):
    """A window of local time on some days of the week: a peak-hours contract, a building's idle nights."""

    start: str = Field(description="HH:MM local time; a window whose end is before its start spans midnight; "
                                   "start = end is the whole day")
    end: str
    days: list[int] = Field(default=[0, 1, 2, 3, 4, 5, 6], description="0 = Monday")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        minute_of_day(v)
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if not v or any(d < 0 or d > 6 for d in v):
            raise ValueError("days are 0 (Monday) to 6 (Sunday), at least one")
        return v

    def covers(self, weekday: int, minute: int) -> bool:
        a, b = minute_of_day(self.start), minute_of_day(self.end)
        if a == b:
            return weekday in self.days
        if a < b:
            return weekday in self.days and a <= minute < b
        # spans midnight: the part after midnight belongs to the day the window started
        return (weekday in self.days and minute >= a) or ((weekday - 1) % 7 in self.days and minute < b)


class ScheduleRule(DailyWindow):
    """A lower (or higher) limit during a window of local time, e.g. a peak-hours contract."""

    limit_w: float = Field(gt=0, allow_inf_nan=False)


class TariffRule(Section):
    """A limit while the meter's tariff state matches every field given (Tempo red HP, EJP, mobile peak)."""

    tempo: Literal["blue", "white", "red"] | None = None
    period: str | None = Field(default=None, description="the tariff period as the meter names it: HP, HC, PM…")
    peak: bool | None = Field(default=None, description="an EJP day or mobile peak in progress")
    limit_w: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _something(self) -> TariffRule:
        if self.tempo is None and self.period is None and self.peak is None:
            raise ValueError("a tariff rule needs at least one of tempo, period, peak")
        return self


class LimitConfig(Section):
    """One node of the circuits tree (main meter, sub-board, feeder) and its own limit.

    A node with ``points`` measures their sum (or, with ``per_phase``, each
    point as one phase); a node without measures the sum of its children.
    ``limit_w`` is the node's total: with ``per_phase`` each of the n phases
    is held to ``limit_w / n`` (a three-phase Linky trips phase by phase
    against PCOUP/3).
    """

    id: str = Field(pattern=_ID)
    parent: str | None = None
    points: list[str] = []
    per_phase: bool = False
    kind: LimitKind = "instant"
    limit_w: float = Field(gt=0, allow_inf_nan=False, description="W, or PCOUP in VA for kind linky")
    window_s: float = Field(default=60.0, gt=0, description="sliding: averaging window")
    block_s: float = Field(default=600.0, gt=0, description="block: the meter's averaging block, aligned to its clock")
    block_act_fraction: float = Field(
        default=0.5, gt=0, le=1,
        description="block: shed once the cut needed would exceed this share of the sheddable power",
    )
    warn_ratio: float = Field(default=0.9, gt=0, le=1)
    emergency_ratio: float = Field(default=1.25, ge=1)
    hold_ratio: float = Field(
        default=1.2, gt=0, lt=1.3,
        description="linky: the sustained S/PCOUP a restore may reach (the meter never trips below 1.3)",
    )
    schedule: list[ScheduleRule] = []
    tariff: list[TariffRule] = []

    @model_validator(mode="after")
    def _shape(self) -> LimitConfig:
        if self.per_phase and not 1 <= len(self.points) <= 3:
            raise ValueError(f"limit {self.id}: per_phase takes one point per phase (1 to 3), got {len(self.points)}")
        if self.kind == "linky" and not self.points:
            raise ValueError(f"limit {self.id}: a linky limit reads the meter's own points")
        return self


class ActuatorConfig(Section):
    """How a load is switched: a Modbus coil or register through a driver, an MQTT publish, or a sequence."""

    id: str = Field(pattern=_ID)
    kind: Literal["modbus_coil", "modbus_register", "mqtt", "sequence"]
    driver: str | None = None
    point: str | None = None
    topic: str | None = None
    payload_on: str = "ON"
    payload_off: str = "OFF"
    steps: list[str] = Field(default=[], description="sequence: the actuators to run, in order")
    latency_s: float = Field(default=2.0, ge=0, description="from the command to the load's power leaving the meter")
    readback: bool = True

    @model_validator(mode="after")
    def _fields(self) -> ActuatorConfig:
        need = {"modbus_coil": ("driver", "point"), "modbus_register": ("driver", "point"),
                "mqtt": ("topic",), "sequence": ()}[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"actuator {self.id} ({self.kind}) needs {', '.join(missing)}")
        if self.kind == "sequence" and not self.steps:
            raise ValueError(f"actuator {self.id}: a sequence needs steps")
        return self


class LoadConfig(Section):
    """A sheddable load: what it is, where it hangs in the tree and how gently it must be treated.

    Kinds: ``onoff`` (a relay), ``stages`` (a heater with ``stages`` equal
    stages), ``ev`` (a charger's current between ``min_a`` and ``max_a``,
    paused below), ``hvac`` (a setpoint offset up to ``max_offset_k``, each
    kelvin saving ``w_per_k``). ``power_w`` is the power at full setting: the
    engine starts from it and learns the real figure from the meter.
    """

    id: str = Field(pattern=_ID)
    circuit: str
    kind: LoadKind = "onoff"
    priority: int = Field(default=0, description="lower is shed first; equal priorities take turns")
    power_w: float = Field(gt=0, allow_inf_nan=False)
    phase: int | None = Field(default=None, ge=1, le=3, description="the phase it draws on; none: balanced")
    stages: int = Field(default=1, ge=1, le=8)
    min_a: int = Field(default=6, ge=1)
    max_a: int = Field(default=16, ge=1)
    max_offset_k: float = Field(default=2.0, gt=0, le=10)
    w_per_k: float = Field(default=0.0, ge=0)
    min_on_s: float = Field(default=60.0, ge=0)
    min_off_s: float = Field(default=60.0, ge=0)
    max_off_s: float = Field(default=3600.0, gt=0,
                             description="comfort guard: restored after this long unless in emergency")
    restore_delay_s: float = Field(default=60.0, ge=0, description="headroom must last this long before a restore")
    dwell_s: float = Field(default=10.0, ge=0, description="an over-limit must last this long before this load is shed")
    safe_state: SafeState = Field(default="off", description="where the load goes when its meter is stale or missing")
    actuator: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> LoadConfig:
        if self.kind == "ev" and self.min_a > self.max_a:
            raise ValueError(f"load {self.id}: min_a {self.min_a} is above max_a {self.max_a}")
        if self.kind == "hvac" and self.w_per_k <= 0:
            raise ValueError(f"load {self.id}: an hvac load needs w_per_k, the power one kelvin of offset saves")
        return self


class SheddingConfig(Section):
    """The whole load-shedding configuration (the ``[shedding]`` section)."""

    enabled: bool = Field(default=False, description="run the engine in the daemon (shed simulate runs it regardless)")
    dry_run: bool = Field(default=False, description="decide and report, switch nothing")
    reaction_s: float = Field(default=3.0, gt=0,
                              description="worst case from a decision to the load's power leaving the meter")
    linky_slack_s: float = Field(default=10.0, ge=0, description="linky: shed this long before the latest safe moment")
    stale_after_s: float = Field(default=10.0, gt=0)
    restore_margin_w: float = Field(default=200.0, ge=0)
    restore_spacing_s: float = Field(default=15.0, ge=0, description="one restore at a time: this long between two")
    rotation_s: float = Field(default=600.0, gt=0,
                              description="equal priorities swap once one has been shed this much longer")
    learn: bool = Field(default=True, description="learn each load's power from the meter's step when it switches")
    limits: list[LimitConfig] = []
    loads: list[LoadConfig] = []
    actuators: list[ActuatorConfig] = []

    @model_validator(mode="after")
    def _references(self) -> SheddingConfig:
        problems: list[str] = []
        for what, items in (("limit", self.limits), ("load", self.loads), ("actuator", self.actuators)):
            seen: set[str] = set()
            for it in items:
                if it.id in seen:
                    problems.append(f"{what} id {it.id!r} is used twice")
                seen.add(it.id)
        limits = {lim.id: lim for lim in self.limits}
        for lim in self.limits:
            if lim.parent is not None and lim.parent not in limits:
                problems.append(f"limit {lim.id}: parent {lim.parent!r} is not a limit")
            node, hops = lim, 0
            while node.parent in limits and hops <= len(limits):
                node, hops = limits[node.parent], hops + 1
            if hops > len(limits):
                problems.append(f"limit {lim.id}: its parents form a loop")
            if not lim.points and not any(c.parent == lim.id for c in self.limits):
                problems.append(f"limit {lim.id}: no points and no children, nothing measures it")
        actuators = {a.id for a in self.actuators}
        for a in self.actuators:
            problems += [f"actuator {a.id}: step {s!r} is not an actuator" for s in a.steps if s not in actuators]
        for load in self.loads:
            if load.circuit not in limits:
                problems.append(f"load {load.id}: circuit {load.circuit!r} is not a limit")
            if load.actuator is not None and load.actuator not in actuators:
                problems.append(f"load {load.id}: actuator {load.actuator!r} is not an actuator")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def limit(self, limit_id: str) -> LimitConfig:
        return next(lim for lim in self.limits if lim.id == limit_id)

    def load(self, load_id: str) -> LoadConfig:
        return next(ld for ld in self.loads if ld.id == load_id)

    def ancestors(self, limit_id: str) -> list[str]:
        """The node and every node above it, the node first."""
        limits = {lim.id: lim for lim in self.limits}
        out = [limit_id]
        while (p := limits[out[-1]].parent) is not None and p not in out:
            out.append(p)
        return out

    def actuator_latency_s(self, load: LoadConfig) -> float:
        """The load's actuation latency: its actuator's (a sequence's steps add up), else ``reaction_s``."""
        acts = {a.id: a for a in self.actuators}

        def lat(aid: str, depth: int = 0) -> float:
            a = acts[aid]
            if a.kind != "sequence" or depth > len(acts):
                return a.latency_s
            return a.latency_s + sum(lat(s, depth + 1) for s in a.steps)

        return self.reaction_s if load.actuator is None else lat(load.actuator)
