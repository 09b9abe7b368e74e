"""Local load shedding: a pure engine that keeps each building under its limits.

``step(state, inputs, now) -> (state, actions)`` runs the same live, in the
tests and in ``zaas-edge shed simulate``: no I/O, no clock of its own. The
configuration is the ``[shedding]`` section (:mod:`zaas_edge.rules.config`);
the inputs and actions are frozen values (:mod:`zaas_edge.rules.model`).
"""

from __future__ import annotations

from zaas_edge.rules.config import (
    ActuatorConfig,
    LimitConfig,
    LoadConfig,
    ScheduleRule,
    SheddingConfig,
    TariffRule,
)
from zaas_edge.rules.engine import EngineState, initial_state, step
from zaas_edge.rules.model import (
    Action,
    Alarm,
    Inputs,
    LocalTime,
    Modulate,
    Override,
    Reason,
    Restore,
    Sample,
    Shed,
    Stage,
    TariffState,
)

__all__ = [
    "step", "initial_state", "EngineState",
    "SheddingConfig", "LimitConfig", "LoadConfig", "ActuatorConfig", "ScheduleRule", "TariffRule",
    "Inputs", "Sample", "TariffState", "LocalTime", "Override", "Stage",
    "Action", "Shed", "Restore", "Modulate", "Alarm", "Reason",
]
