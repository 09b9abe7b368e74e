"""The audit trail of load shedding: each action one event, each engine alarm one alarm.

Pure: the engine's actions in, the gateway's :class:`~zaas_edge.model.Event`
and :class:`~zaas_edge.model.Alarm` out, so they are stored, synced and
published on MQTT like every other event. Kinds:

============================ ============================================================
``shed.shed``                a load taken down (off, or a lower stage), with its reason
``shed.restore``             a load brought back up
``shed.modulate``            a modulating load's setpoint moved (a charger's A, an HVAC offset)
``shed.actuator_failed``     a command the actuator did not carry out or confirm
``shed.override``            a person forced a load on or off, or handed it back (CLI)
============================ ============================================================

Each action event's ``data`` holds ``load``, ``level``, ``setpoint``,
``dry_run`` and the reason: ``rule``, ``limit``, ``values`` (the figures the
rule used), ``forecast``. Engine alarms are ``shed.<code>.<subject>``:
``shed.meter_stale.<limit>``, ``shed.limit_warn.<limit>``,
``shed.limit_emergency.<limit>``, ``shed.actuator_failed.<load>``.
"""

from __future__ import annotations

__all__ = ["action_event", "engine_alarm", "failure_event", "override_event", "describe", "SOURCE", "ALARM_SEVERITY"]

import math
from collections.abc import Mapping
from typing import Any

from zaas_edge.model import Alarm, Event, Severity, Stamp
from zaas_edge.rules.model import Alarm as EngineAlarm
from zaas_edge.rules.model import Modulate, Reason, Restore, Shed

SOURCE = "shed"
ALARM_SEVERITY: Mapping[str, Severity] = {
    "limit_warn": Severity.NOTICE,
    "limit_emergency": Severity.ERROR,
    "meter_stale": Severity.WARNING,
    "actuator_failed": Severity.WARNING,
}


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(v, 3)


def reason_data(reason: Reason) -> dict[str, Any]:
    return {"rule": reason.rule, "limit": reason.limit,
            "values": {k: _num(v) for k, v in sorted(reason.values.items())}, "forecast": _num(reason.forecast)}


def describe(action: Shed | Restore | Modulate) -> str:
    """One line for people: what, to which level, why."""
    r = action.reason
    where = f" on {r.limit}" if r.limit else ""
    figures = ", ".join(f"{k} {v:.0f}" if abs(v) >= 10 else f"{k} {v:.3g}"
                        for k, v in sorted(r.values.items()) if math.isfinite(v))
    dry = "[dry run] " if action.dry_run else ""
    if isinstance(action, Modulate):
        what = f"{dry}modulate {action.load} to setpoint {action.setpoint:g}"
    else:
        what = f"{dry}{action.kind} {action.load} to level {action.level:g}"
    fc = f", forecast {r.forecast:.3g}" if r.forecast is not None and math.isfinite(r.forecast) else ""
    return f"{what}: {r.rule}{where}" + (f" ({figures}{fc})" if figures or fc else "")


def action_event(action: Shed | Restore | Modulate, setpoint: float, stamp: Stamp) -> Event:
    # "device" keys the hub's event gate per load: two loads shed together are two facts
    data: dict[str, Any] = {"load": action.load, "device": action.load, "level": action.level,
                            "setpoint": setpoint, "dry_run": action.dry_run, **reason_data(action.reason)}
    return Event(kind=f"shed.{action.kind}", text=describe(action), source=SOURCE, stamp=stamp,
                 severity=Severity.NOTICE, data=data)


def engine_alarm(alarm: EngineAlarm, stamp: Stamp) -> Alarm:
    return Alarm(alarm_id=f"shed.{alarm.code}.{alarm.subject}", active=alarm.active, text=alarm.text,
                 source=SOURCE, stamp=stamp, severity=ALARM_SEVERITY.get(alarm.code, Severity.WARNING),
                 data={"code": alarm.code, "subject": alarm.subject, **reason_data(alarm.reason)})


def failure_event(load: str, actuator: str | None, level: float, error: str, stamp: Stamp) -> Event:
    return Event(kind="shed.actuator_failed", text=f"load {load}: {error}", source=SOURCE, stamp=stamp,
                 severity=Severity.WARNING,
                 data={"load": load, "device": load, "actuator": actuator, "level": level, "error": error})


def override_event(load: str, mode: str, for_s: float | None, who: str, stamp: Stamp) -> Event:
    until = f" for {for_s:g}s" if for_s is not None and mode != "auto" else ""
    return Event(kind="shed.override", text=f"load {load}: override {mode}{until} ({who})", source=SOURCE,
                 stamp=stamp, severity=Severity.NOTICE,
                 data={"load": load, "device": load, "mode": mode, "for_s": for_s, "by": who})
