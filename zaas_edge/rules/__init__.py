"""Local load shedding: a pure engine that keeps each building under its limits.

``step(state, inputs, now) -> (state, actions)`` runs the same live, in the
tests and in ``zaas-edge shed simulate``: no I/O, no clock of its own. The
configuration is the ``[shedding]`` section (:mod:`zaas_edge.rules.config`);
the inputs and actions are frozen values (:mod:`zaas_edge.rules.model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zaas_edge.lazy import lazy_getattr

if TYPE_CHECKING:  # the names, for type checkers and readers
    from zaas_edge.rules.config import ActuatorConfig, LimitConfig, LoadConfig, ScheduleRule, SheddingConfig, TariffRule  # noqa: F401
    from zaas_edge.rules.engine import EngineState, initial_state, step  # noqa: F401
    from zaas_edge.rules.model import (  # noqa: F401
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

# Imported on first use: the daemon reads the configuration models (``.config``) on every start,
# the engine only where it runs.
_LAZY = {
    "ActuatorConfig": "zaas_edge.rules.config",
    "LimitConfig": "zaas_edge.rules.config",
    "LoadConfig": "zaas_edge.rules.config",
    "ScheduleRule": "zaas_edge.rules.config",
    "SheddingConfig": "zaas_edge.rules.config",
    "TariffRule": "zaas_edge.rules.config",
    "EngineState": "zaas_edge.rules.engine",
    "initial_state": "zaas_edge.rules.engine",
    "step": "zaas_edge.rules.engine",
    "Action": "zaas_edge.rules.model",
    "Alarm": "zaas_edge.rules.model",
    "Inputs": "zaas_edge.rules.model",
    "LocalTime": "zaas_edge.rules.model",
    "Modulate": "zaas_edge.rules.model",
    "Override": "zaas_edge.rules.model",
    "Reason": "zaas_edge.rules.model",
    "Restore": "zaas_edge.rules.model",
    "Sample": "zaas_edge.rules.model",
    "Shed": "zaas_edge.rules.model",
    "Stage": "zaas_edge.rules.model",
    "TariffState": "zaas_edge.rules.model",
}


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)
