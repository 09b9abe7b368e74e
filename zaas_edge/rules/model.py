"""The engine's inputs and actions: plain frozen values, so a step can be recorded, replayed and compared.

The engine reads nothing itself: the daemon (or ``shed simulate``) gathers the
meter's samples, the tariff state, the overrides and the actuators' read-back
failures into one :class:`Inputs` per step and carries out the actions it gets
back. Every action carries a :class:`Reason`: the rule that fired, the figures
it used and the forecast, which is what the audit trail records.
"""

from __future__ import annotations

__all__ = [
    "Sample", "TariffState", "LocalTime", "Override", "OverrideMode", "Inputs",
    "Reason", "Shed", "Restore", "Modulate", "Alarm", "Action", "Stage",
]

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

OverrideMode = Literal["auto", "shed", "restore"]


class Stage(StrEnum):
    """How close a limit is: ``warn`` tells, ``shed`` acts within each load's guards,
    ``emergency`` acts past ``min_on``, dwell and ``max_off``; ``blind`` has no fresh meter."""

    OK = "ok"
    WARN = "warn"
    SHED = "shed"
    EMERGENCY = "emergency"
    BLIND = "blind"


@dataclass(frozen=True, slots=True)
class Sample:
    """One meter reading: W (or VA for a Linky), taken at ``mono_s`` on the monotonic clock."""

    point: str
    watts: float
    mono_s: float


@dataclass(frozen=True, slots=True)
class TariffState:
    """The meter's tariff state as plain values (the TIC driver decodes them)."""

    period: str | None = None
    tempo: Literal["blue", "white", "red"] | None = None
    peak: bool = False


@dataclass(frozen=True, slots=True)
class LocalTime:
    """Local wall time for schedules: ``weekday`` 0 = Monday, ``minute`` of the day."""

    weekday: int
    minute: int


@dataclass(frozen=True, slots=True)
class Override:
    """A person's decision for one load until ``until_s`` (monotonic); ``auto`` hands it back.

    The modes are the MQTT command's (``cmd/loadshed/<load>/set``): ``shed`` forces
    the load off, ``restore`` forces it on.
    """

    mode: OverrideMode
    until_s: float


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything one step may use besides its state and ``now``.

    ``samples`` are the readings that arrived since the last step, in any
    order. ``wall_s`` is the meter's clock (Unix seconds) that 10-minute blocks
    align to; ``None`` when unknown (blocks then align to the monotonic clock).
    ``overpower`` names the limits whose meter raises its over-power flag.
    ``actuator_faults`` names the loads whose last command failed its read-back.
    ``limit_overrides`` sets a limit's value from outside (an MQTT command).
    """

    samples: tuple[Sample, ...] = ()
    wall_s: float | None = None
    local: LocalTime | None = None
    tariff: TariffState = TariffState()
    overpower: frozenset[str] = frozenset()
    actuator_faults: frozenset[str] = frozenset()
    overrides: Mapping[str, Override] = field(default_factory=dict)
    limit_overrides: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an action was taken: the rule, the limit it protects, the figures it used, the forecast."""

    rule: str
    limit: str | None = None
    values: Mapping[str, float] = field(default_factory=dict)
    forecast: float | None = None


@dataclass(frozen=True, slots=True)
class Shed:
    """Take a load down to ``level`` (0 = off; a heater's stages; a charger's amps)."""

    load: str
    level: float
    reason: Reason
    dry_run: bool = False
    kind: Literal["shed"] = "shed"


@dataclass(frozen=True, slots=True)
class Restore:
    """Bring a load back up to ``level``."""

    load: str
    level: float
    reason: Reason
    dry_run: bool = False
    kind: Literal["restore"] = "restore"


@dataclass(frozen=True, slots=True)
class Modulate:
    """Move a modulating load's setpoint: a charger's current (A) or an HVAC offset (K, positive saves)."""

    load: str
    setpoint: float
    level: float
    reason: Reason
    dry_run: bool = False
    kind: Literal["modulate"] = "modulate"


@dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm raised (``active``) or cleared: a stale meter, a disobedient actuator, a stage change."""

    code: str
    subject: str
    active: bool
    text: str
    reason: Reason
    kind: Literal["alarm"] = "alarm"


Action = Shed | Restore | Modulate | Alarm
