"""A ``shed simulate`` scenario file: the plant around the gateway and the gateway's own ``[shedding]`` section.

The plant is what the engine cannot see directly: the meter model and its
limit, the base load (a constant, a few points or a CSV trace of
``time,watts``, linear between points), each load's true power, when it wants
to run, how long its actuator takes and whether it obeys. The ``[shedding]``
table uses the same keys as the configuration file.
"""

from __future__ import annotations

__all__ = ["Scenario", "PlantConfig", "MeterModel", "BaseLoad", "PlantLoad", "TariffWindow", "Targets",
           "Trace", "load_scenario", "parse_scenario"]

import bisect
import csv
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from zaas_edge.config_types import Section
from zaas_edge.errors import ConfigError, ConfigIssue
from zaas_edge.rules.alarms.config import AlarmsSection
from zaas_edge.rules.config import SheddingConfig


class MeterModel(Section):
    """``linky`` trips on its breaking filter; ``block`` bills over-run blocks; ``instant`` only measures.

    One ``point`` for a single-phase meter (or a total), or three ``phase_points``: the base load is then
    spread evenly over the phases and each load draws on its ``[shedding]`` phase (none: balanced).
    """

    model: Literal["linky", "block", "instant"] = "instant"
    point: str | None = None
    phase_points: list[str] = Field(default=[], description="three-phase: the point of each phase, L1 to L3")
    limit_w: float = Field(gt=0, description="PCOUP (VA) for linky, the subscribed power for block")
    block_s: float = Field(default=600.0, gt=0)
    rearm_s: float = Field(default=60.0, gt=0, description="linky: how long until someone re-arms it after a trip")
    outages: list[tuple[float, float]] = Field(default=[], description="[start, end) windows with no readings")

    @model_validator(mode="after")
    def _points(self) -> MeterModel:
        if (self.point is None) == (not self.phase_points):
            raise ValueError("the meter takes one of point (single phase) or phase_points (three phases)")
        if self.phase_points and len(self.phase_points) != 3:
            raise ValueError(f"phase_points takes the three phases' points, got {len(self.phase_points)}")
        return self

    @property
    def points(self) -> list[str]:
        return self.phase_points or [self.point or ""]


class BaseLoad(Section):
    """The building's own load: ``watts``, or ``points`` [[t, W], …], or ``csv`` (time,watts); linear between."""

    watts: float | None = Field(default=None, ge=0)
    points: list[tuple[float, float]] = []
    csv: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BaseLoad:
        if sum(x is not None and x != [] for x in (self.watts, self.points or None, self.csv)) != 1:
            raise ValueError("the base load takes exactly one of watts, points, csv")
        return self


class PlantLoad(Section):
    """One load's truth: its power at full, when it wants to run, its actuator's latency and obedience."""

    id: str
    power_w: float = Field(gt=0)
    wants: list[tuple[float, float]] = Field(default=[], description="[start, end) windows; none: always")
    latency_s: float = Field(default=2.0, ge=0)
    obeys: bool = True
    readback_s: float = Field(default=2.0, ge=0, description="when a disobeyed command is reported as failed")

    def wants_at(self, t: float) -> bool:
        if not self.wants:
            return True
        for a, b in self.wants:
            if a <= t < b:
                return True
        return False


class TariffWindow(Section):
    start: float
    end: float
    period: str | None = None
    tempo: Literal["blue", "white", "red"] | None = None
    peak: bool = False


class PlantConfig(Section):
    meter: MeterModel
    base: BaseLoad
    loads: list[PlantLoad] = []
    tariff: list[TariffWindow] = []


class Targets(Section):
    """What the scenario must meet (the issue's targets by default)."""

    trips: int = 0
    overrun_blocks: int = 0
    max_switchings_per_load_hour: float = 6
    shed_spread: float = 0.2
    restore_p95_s: float = 300
    comfort_violations: int = 0
    min_sheds: int = Field(default=0, description="at least this many sheds (the scenario is meant to shed)")
    max_sheds: int | None = None
    alarms: list[str] = Field(default=[], description="alarm codes that must be raised")


class Scenario(Section):
    name: str
    duration_s: float = Field(gt=0, le=7 * 86400)
    start: datetime = Field(default=datetime(2026, 1, 15, 6, 0, 0), description="local wall time at t = 0")
    plant: PlantConfig
    shedding: SheddingConfig
    targets: Targets = Targets()
    alarms: AlarmsSection | None = Field(default=None, description="alarm rules judged over the simulated meter")

    @model_validator(mode="after")
    def _loads_match(self) -> Scenario:
        plant = {pl.id for pl in self.plant.loads}
        missing = [ld.id for ld in self.shedding.loads if ld.id not in plant]
        if missing:
            raise ValueError(f"plant.loads has no truth for {', '.join(missing)}")
        return self


def parse_scenario(text: str, where: str = "<scenario>", base_dir: Path | None = None) -> tuple[Scenario, Trace]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(where, "", f"not valid TOML: {exc}")]) from None
    try:
        sc = Scenario.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError([ConfigIssue(where, ".".join(str(p) for p in e["loc"]), e["msg"])
                           for e in exc.errors()]) from None
    return sc, _trace(sc.plant.base, where, base_dir or Path("."))


def load_scenario(path: str | Path) -> tuple[Scenario, Trace]:
    """Read and validate a scenario file; every problem is reported as a :class:`ConfigError` issue."""
    p = Path(path)
    return parse_scenario(p.read_text(), str(p), p.parent)


class Trace:
    """The base load as a function of time: linear between points (or, with ``hold``, each value held to the
    next point, as a store that keeps a value until it moves), held before the first and after the last."""

    def __init__(self, points: list[tuple[float, float]], hold: bool = False) -> None:
        pts = sorted(points)
        self.t = [p[0] for p in pts]
        self.w = [p[1] for p in pts]
        self.hold = hold

    def __call__(self, t: float) -> float:
        i = bisect.bisect_right(self.t, t)
        if i == 0:
            return self.w[0]
        if i == len(self.t):
            return self.w[-1]
        t0, t1, w0, w1 = self.t[i - 1], self.t[i], self.w[i - 1], self.w[i]
        if self.hold:
            return w0
        return w0 + (w1 - w0) * (t - t0) / (t1 - t0)


def _trace(base: BaseLoad, where: str, base_dir: Path) -> Trace:
    if base.watts is not None:
        return Trace([(0.0, base.watts)])
    if base.points:
        return Trace(list(base.points))
    assert base.csv is not None
    path = base_dir / base.csv
    pts: list[tuple[float, float]] = []
    try:
        with path.open(newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0].strip().lower() in ("time", "t", "") or row[0].startswith("#"):
                    continue
                try:
                    pts.append((float(row[0]), float(row[1])))
                except (ValueError, IndexError):
                    raise ConfigError([ConfigIssue(str(path), f"line {n}", "expected time,watts")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(where, "plant.base.csv", f"cannot read {path}: {exc.strerror}")]) from None
    if not pts:
        raise ConfigError([ConfigIssue(str(path), "", "no time,watts rows")])
    return Trace(pts)
