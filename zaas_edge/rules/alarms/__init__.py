"""Alarm rules: a pure evaluator that turns readings into incidents, raised once and cleared once.

``evaluate(state, inputs, now) -> (state, transitions)``, in the same style as
the load-shedding engine (:mod:`zaas_edge.rules.engine`): no I/O, no clock of
its own, so the same code runs in the daemon (:mod:`zaas_edge.alarms`), in the
tests and over recorded history. The configuration is the ``[alarms]``
section (:mod:`zaas_edge.rules.alarms.config`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zaas_edge.lazy import lazy_getattr

if TYPE_CHECKING:  # the names, for type checkers and readers
    from zaas_edge.rules.alarms.config import AlarmRule, AlarmsSection, IdleWindow  # noqa: F401
    from zaas_edge.rules.alarms.engine import (  # noqa: F401
        AlarmState,
        active_ids,
        alarm_id,
        evaluate,
        initial_state,
        restore,
        snapshot,
        summary_id,
    )
    from zaas_edge.rules.alarms.model import AlarmInputs, AlarmTransition  # noqa: F401

__all__ = [
    "evaluate", "initial_state", "restore", "snapshot", "active_ids", "alarm_id", "summary_id", "AlarmState",
    "AlarmsSection", "AlarmRule", "IdleWindow", "AlarmInputs", "AlarmTransition",
]

# Imported on first use: the daemon reads the configuration models (``.config``) on every start,
# the engine only where it runs.
_LAZY = {
    "AlarmRule": "zaas_edge.rules.alarms.config",
    "AlarmsSection": "zaas_edge.rules.alarms.config",
    "IdleWindow": "zaas_edge.rules.alarms.config",
    "AlarmState": "zaas_edge.rules.alarms.engine",
    "active_ids": "zaas_edge.rules.alarms.engine",
    "alarm_id": "zaas_edge.rules.alarms.engine",
    "evaluate": "zaas_edge.rules.alarms.engine",
    "initial_state": "zaas_edge.rules.alarms.engine",
    "restore": "zaas_edge.rules.alarms.engine",
    "snapshot": "zaas_edge.rules.alarms.engine",
    "summary_id": "zaas_edge.rules.alarms.engine",
    "AlarmInputs": "zaas_edge.rules.alarms.model",
    "AlarmTransition": "zaas_edge.rules.alarms.model",
}


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)
