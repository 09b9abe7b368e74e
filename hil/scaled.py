"""The daemon's configuration on a scenario's time scale: durations divided, daily windows moved.

:func:`scale_config` takes the configuration document ``hil.scenario``
generates (plain TOML-ready dicts) and a :class:`~hil.timescale.TimeScale`,
and returns the document the daemon must run for scenario time to pass
``factor`` times faster than its real clock, with no test hook in the daemon:

- poll intervals (Modbus devices, M-Bus meters), the sync's aggregation
  windows, alarm rule delays, windows, samples, stale and silent timers and
  the flood interval are divided by the factor, each kept at or above the
  daemon's minimum (``FLOORS``): an M-Bus readout cannot come more often than
  once a second, an aggregation window is a whole second at least;
- rates per hour the daemon derives from an index (a ``rate`` threshold, a
  leak's ``min_flow`` from a volume index) are per *real* hour, which holds
  ``factor`` scenario hours: their thresholds are multiplied by the factor.
  A consumption rule's hour is a wall-clock hour too, but what it compares is
  the use so far in that hour, so ``idle_max`` keeps its scenario figure: it
  is crossed at the right scenario moment when the idle window starts the
  real hour, and earlier when daytime use of the same real hour counts
  (baselines, the same hour of previous weeks, cannot be compressed);
- time-of-day windows (an alarm rule's ``idle`` nights, a limit's
  ``schedule``) become the real wall-clock minutes at which scenario night
  occurs between now and ``until`` (:meth:`TimeScale.real_windows`);
- what keeps real time is left alone: the load-shedding loop (dwell, min
  on/off, stale_after_s: the physical loop and the Linky's breaking filter run
  in real seconds), device offline timers and timeouts (they are about the
  link, not the building), retries and backoffs.

At factor 1 the document is returned unchanged (a copy).
"""

from __future__ import annotations

__all__ = ["scale_config", "FLOORS"]

import json
import time
from typing import Any

from hil.timescale import TimeScale, hhmm

#: The smallest real value each scaled key may take (seconds).
FLOORS: dict[str, float] = {
    "interval_fast_s": 1.0,  # a Modbus device: one request burst a second is plenty on a pty or loopback
    "interval_slow_s": 1.0,
    "interval_s": 1.0,  # M-Bus meters: the option's own minimum
    "window_s": 1.0,  # sync windows are whole seconds, at least one
    "delay_s": 0.0,
    "sample_s": 1.0,
    "after_s": 5.0,  # a stale rule: a few polls at the floor interval
    "silent_interval_s": 1.0,
    "flap_interval_s": 0.0,
    "summary_hold_s": 1.0,
}

# Defaults of the alarm rule fields that are scaled (zaas_edge.rules.alarms.config.AlarmRule):
# a rule that leaves one unset must get the default's scaled value, not the real default.
_RULE_KEYS = ("delay_s", "window_s", "sample_s", "after_s", "interval_s")


def _rule_defaults() -> dict[str, float]:
    from zaas_edge.rules.alarms.config import AlarmRule, AlarmsSection

    out = {k: float(AlarmRule.model_fields[k].default) for k in _RULE_KEYS}
    out["flap_interval_s"] = float(AlarmsSection.model_fields["flap_interval_s"].default)
    out["summary_hold_s"] = float(AlarmsSection.model_fields["summary_hold_s"].default)
    return out


def _seconds(value: float) -> float:
    """Round a scaled duration for people reading the generated file (ms precision)."""
    return round(value, 3)


def scale_config(doc: dict[str, Any], scale: TimeScale, until: float) -> dict[str, Any]:
    """``doc`` with its durations on ``scale`` and its daily windows moved, up to real time ``until``."""
    out: dict[str, Any] = json.loads(json.dumps(doc))  # a deep copy
    if scale.real_time:
        return out

    def dur(value: float, key: str) -> float:
        return _seconds(scale.real_duration(float(value), FLOORS[key]))

    def windows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        moved: list[dict[str, Any]] = []
        for w in items:
            days = tuple(w.get("days", range(7)))
            extra = {k: v for k, v in w.items() if k not in ("start", "end", "days")}
            moved += [{**r, **extra} for r in scale.real_windows(w["start"], w["end"], until, days=days)]
        if items and not moved:
            # None occurs during the run, but a section may need one (idle_max needs idle windows):
            # the real minute just before the run, which does not come back for a day.
            before = time.localtime(scale.origin - 60)
            minute = before.tm_hour * 60 + before.tm_min
            moved = [{"start": hhmm(minute), "end": hhmm(minute + 1), "days": [before.tm_wday]}
                     | {k: v for k, v in items[0].items() if k not in ("start", "end", "days")}]
        return moved

    for d in out.get("drivers", []):
        if d.get("type") == "modbus":
            for dev in d.get("devices", []):
                for key in ("interval_fast_s", "interval_slow_s"):
                    if dev.get(key) is not None:
                        dev[key] = dur(dev[key], key)
        elif d.get("type") == "mbus":
            for meter in d.get("meters", []):
                meter["interval_s"] = dur(meter.get("interval_s", 900.0), "interval_s")

    alarms = out.get("alarms")
    if isinstance(alarms, dict):
        defaults = _rule_defaults()
        for key in ("flap_interval_s", "summary_hold_s"):
            alarms[key] = dur(alarms.get(key, defaults[key]), key)
        for rule in alarms.get("rules", []):
            for key in _RULE_KEYS:
                floor_key = "silent_interval_s" if key == "interval_s" else key
                rule[key] = dur(rule.get(key, defaults[key]), floor_key)
            if rule.get("idle"):
                rule["idle"] = windows(rule["idle"])
            # A rate the daemon computes is per real hour, which holds `factor` scenario hours.
            if rule.get("kind") == "threshold" and rule.get("derive") == "rate":
                for key in ("above", "below", "hysteresis"):
                    if rule.get(key) is not None:
                        rule[key] = rule[key] * scale.factor
            if rule.get("kind") == "leak" and rule.get("mode") == "flow" and not rule.get("flow_point"):
                if rule.get("min_flow"):
                    rule["min_flow"] = rule["min_flow"] * scale.factor

    sync = out.get("sync")
    if isinstance(sync, dict):
        sync["window_s"] = max(1, round(scale.real_s(sync.get("window_s", 60))))
        for policy in sync.get("policies", []):
            if policy.get("window_s") is not None:
                policy["window_s"] = max(1, round(scale.real_s(policy["window_s"])))

    shedding = out.get("shedding")
    if isinstance(shedding, dict):
        for limit in shedding.get("limits", []):
            if limit.get("schedule"):
                limit["schedule"] = windows(limit["schedule"])
    return out
