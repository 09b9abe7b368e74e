"""The alarm evaluator's inputs and outputs: plain frozen values, so a run can be recorded and replayed.

The evaluator reads nothing itself: the daemon's alarm service (or a
simulation) gathers the readings that arrived, the drivers' own active
alarms, the consumption baselines it computed from the store's history and
the local time into one :class:`AlarmInputs` per call, and turns the
:class:`AlarmTransition` values it gets back into alarms.
"""

from __future__ import annotations

__all__ = ["AlarmInputs", "AlarmTransition", "LocalTime"]

from collections.abc import Mapping
from dataclasses import dataclass, field

from zaas_edge.model import Reading
from zaas_edge.rules.model import LocalTime


@dataclass(frozen=True, slots=True)
class AlarmInputs:
    """Everything one evaluation may use besides its state and ``now`` (monotonic seconds).

    ``readings`` arrived since the last call, in any order. ``device_alarms``
    are the drivers' own alarm transitions since the last call, by id
    (``device.linky-1.over_power``: True raised, False cleared); at start,
    the ones active then.
    ``baselines`` give, per index point, its usual use in the current hour
    (the same hour of the previous weeks), in the point's unit; a point
    without one has no baseline yet. ``wall_s`` (Unix seconds) and
    ``local`` are given only while the clock is synchronised: hourly
    consumption and idle windows need them.
    """

    readings: tuple[Reading, ...] = ()
    device_alarms: Mapping[str, bool] = field(default_factory=dict)
    baselines: Mapping[str, float] = field(default_factory=dict)
    wall_s: float | None = None
    local: LocalTime | None = None


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """An alarm raised (``active``) or cleared, with what an incident needs.

    ``alarm_id`` is stable, made from the rule and its subject (a point, a
    device, a driver alarm): ``rule.<rule>.<subject>``, or
    ``rule.<rule>.summary`` for the summary that stands for many subjects at
    once (``members``). ``value`` and ``threshold`` are the figures that
    decided it (``None`` where a rule has none: a stale point);
    ``since_s`` is when the condition started holding (monotonic seconds).
    """

    alarm_id: str
    rule: str
    kind: str
    subject: str
    active: bool
    severity: str
    text: str
    action: str
    since_s: float
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    device: str | None = None
    point: str | None = None
    members: tuple[str, ...] = ()
