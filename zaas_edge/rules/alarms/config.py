"""The ``[alarms]`` section: the alarm rules and the flood control that applies to all of them.

Validated once, frozen, then handed to the evaluator inside its state, like
``[shedding]`` is to the load-shedding engine, so a decision depends only on
the configuration, the state and the inputs.

Conventions: times in seconds; a threshold in the point's own unit (a rate
in the point's unit per hour); point patterns are point keys
(``<device>/<quantity>``) where ``*`` and ``?`` match any characters.
"""

from __future__ import annotations

__all__ = ["AlarmsSection", "AlarmRule", "IdleWindow", "RuleKind", "DEFAULT_PATTERNS"]

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from zaas_edge.config_types import Section
from zaas_edge.rules.config import DailyWindow

RuleKind = Literal["threshold", "stale", "silent", "leak", "consumption", "fault", "battery"]
Derive = Literal["value", "rate", "difference", "sum"]
Severity = Literal["info", "notice", "warning", "error", "critical"]

_ID = r"^[A-Za-z0-9_-]{1,64}$"
#: The points a rule watches when it names none.
DEFAULT_PATTERNS: Mapping[str, tuple[str, ...]] = {"battery": ("*/battery",)}


def is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


class IdleWindow(DailyWindow):
    """When the building should be idle (nights, weekends): local time, ``days`` 0 = Monday."""


class AlarmRule(Section):
    """One alarm rule: what it watches, when it raises, when it clears, and what to do about it.

    Kinds:

    - ``threshold``: ``above`` and/or ``below`` on each point (``derive =
      "value"``), on its rate per hour (``"rate"``), on ``points[0] -
      points[1]`` (``"difference"``) or on the sum of ``points`` (``"sum"``);
    - ``battery``: a threshold ``below`` (default 20 %) on ``*/battery``;
    - ``stale``: a point not heard (fresh) for ``after_s``;
    - ``silent``: a radio device none of whose points was heard for
      ``interval_s`` × ``missed`` (its expected reporting interval);
    - ``leak``: a detector whose value is not 0 (``mode = "detector"``), or a
      water meter whose flow never drops to ``min_flow`` or less over
      ``window_s`` (``mode = "flow"``: from a volume index, or from a flow
      point with ``flow_point = true``);
    - ``consumption``: an index whose use in the current hour exceeds
      ``baseline_ratio`` × the same hour of the previous weeks (plus
      ``min_excess``), or ``idle_max`` during an ``idle`` window;
    - ``fault``: what a meter reports of itself: readings of quality error
      (``mode = "quality"``, per device: M-Bus status error bits), a flag
      point that is not 0 (``"flag"``: LoRa alarm fields, a Linky's
      ``breaker``), or a driver's own alarm (``"alarm"``, ``alarms`` patterns:
      ``device.*.over_power``).
    """

    id: str = Field(pattern=_ID)
    kind: RuleKind
    points: list[str] = Field(default=[], description="point keys; * and ? match any characters")
    severity: Severity = "warning"
    delay_s: float = Field(default=0.0, ge=0, le=30 * 86400, description="the condition must hold this long")
    hysteresis: float = Field(default=0.0, ge=0, allow_inf_nan=False,
                              description="clears only once this far back past the threshold")
    action: str = Field(default="", max_length=500, description="the suggested action, carried by the incident")
    text: str = Field(default="", max_length=200, description="what the alarm says; default: made from the rule")
    summary_after: int = Field(default=5, ge=0,
                               description="this many points raising at once make one summary alarm; 0: never")
    # threshold, battery
    derive: Derive = "value"
    above: float | None = Field(default=None, allow_inf_nan=False)
    below: float | None = Field(default=None, allow_inf_nan=False)
    # stale, silent
    after_s: float = Field(default=900.0, gt=0)
    interval_s: float = Field(default=600.0, gt=0)
    missed: int = Field(default=3, ge=1)
    # leak
    mode: str = ""
    window_s: float = Field(default=4 * 3600.0, gt=0)
    min_flow: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="per hour")
    sample_s: float = Field(default=300.0, gt=0, description="flow from an index: over at least this long")
    flow_point: bool = False
    # consumption
    baseline_ratio: float | None = Field(default=None, gt=1, allow_inf_nan=False)
    min_excess: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    idle: list[IdleWindow] = []
    idle_max: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="per hour")
    # fault
    alarms: list[str] = Field(default=[], description="fault mode alarm: driver alarm ids, patterns allowed")

    @model_validator(mode="after")
    def _shape(self) -> AlarmRule:
        k = self.kind
        where = f"rule {self.id} ({k})"
        if k == "battery" and self.below is None:
            object.__setattr__(self, "below", 20.0)
            if "hysteresis" not in self.model_fields_set:
                object.__setattr__(self, "hysteresis", 5.0)
        if not self.points and k in DEFAULT_PATTERNS:
            object.__setattr__(self, "points", list(DEFAULT_PATTERNS[k]))
        modes = {"leak": ("detector", "flow"), "fault": ("quality", "flag", "alarm")}
        if k in modes:
            if not self.mode:
                object.__setattr__(self, "mode", modes[k][0])
            elif self.mode not in modes[k]:
                raise ValueError(f"{where}: mode is one of {', '.join(modes[k])}, got {self.mode!r}")
        elif self.mode:
            raise ValueError(f"{where}: mode applies to leak and fault rules only")
        if k == "fault" and self.mode == "alarm":
            if not self.alarms:
                raise ValueError(f"{where}: mode alarm needs alarms, e.g. [\"device.*.over_power\"]")
        elif not self.points:
            raise ValueError(f"{where}: needs points")
        if k in ("threshold", "battery"):
            if self.above is None and self.below is None:
                raise ValueError(f"{where}: needs above, below or both")
            if self.above is not None and self.below is not None and self.below >= self.above:
                raise ValueError(f"{where}: below {self.below} must be under above {self.above}")
            if self.derive in ("difference", "sum"):
                if any(is_pattern(p) for p in self.points):
                    raise ValueError(f"{where}: a {self.derive} takes point keys, not patterns")
                if self.derive == "difference" and len(self.points) != 2:
                    raise ValueError(f"{where}: a difference takes two points (the first minus the second)")
        elif self.derive != "value":
            raise ValueError(f"{where}: derive applies to threshold rules only")
        if k == "consumption" and self.baseline_ratio is None and self.idle_max is None:
            raise ValueError(f"{where}: needs baseline_ratio, idle_max (with idle windows) or both")
        if k == "consumption" and self.idle_max is not None and not self.idle:
            raise ValueError(f"{where}: idle_max needs idle windows")
        return self


class AlarmsSection(Section):
    """The whole alarm configuration (the ``[alarms]`` section)."""

    enabled: bool = Field(default=False, description="run the alarm rules in the daemon")
    flap_interval_s: float = Field(default=600.0, ge=0, le=86400,
                                   description="at most one raise of one alarm per this interval")
    summary_hold_s: float = Field(default=30.0, ge=0, le=3600,
                                  description="a raise waits this long for others of its rule to join a summary")
    baseline_weeks: int = Field(default=4, ge=1, le=52,
                                description="consumption baselines: the same hour of this many previous weeks")
    rules: list[AlarmRule] = []

    @model_validator(mode="after")
    def _unique(self) -> AlarmsSection:
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                raise ValueError(f"rule id {r.id!r} is used twice")
            seen.add(r.id)
        return self

    def rule(self, rule_id: str) -> AlarmRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)
