"""Alarm rules: a pure evaluator that turns readings into incidents, raised once and cleared once.

``evaluate(state, inputs, now) -> (state, transitions)``, in the same style as
the load-shedding engine (:mod:`zaas_edge.rules.engine`): no I/O, no clock of
its own, so the same code runs in the daemon (:mod:`zaas_edge.alarms`), in the
tests and over recorded history. The configuration is the ``[alarms]``
section (:mod:`zaas_edge.rules.alarms.config`).
"""

from __future__ import annotations

from zaas_edge.rules.alarms.config import AlarmRule, AlarmsSection, IdleWindow
from zaas_edge.rules.alarms.engine import (
    AlarmState,
    active_ids,
    alarm_id,
    evaluate,
    initial_state,
    restore,
    snapshot,
    summary_id,
)
from zaas_edge.rules.alarms.model import AlarmInputs, AlarmTransition

__all__ = [
    "evaluate", "initial_state", "restore", "snapshot", "active_ids", "alarm_id", "summary_id", "AlarmState",
    "AlarmsSection", "AlarmRule", "IdleWindow", "AlarmInputs", "AlarmTransition",
]
