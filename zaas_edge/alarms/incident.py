"""From an evaluator transition to the gateway's :class:`~zaas_edge.model.Alarm`: one alarm, one incident.

The alarm's ``data`` is what the platform's incident workflow files without
asking anything else: where (site and gateway), what (device, point, rule),
how far off (value, threshold, unit), since when, how bad, and what to do.
It travels in the alarm lane (ahead of readings), retained on MQTT
``alarm/<id>`` and in the journal.
"""

from __future__ import annotations

__all__ = ["to_alarm", "SOURCE", "Where"]

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zaas_edge.model import Alarm, Severity, Stamp
from zaas_edge.rules.alarms import AlarmTransition

SOURCE = "alarms"  # the source of every alarm this service raises


@dataclass(frozen=True, slots=True)
class Where:
    """The gateway's place in the park: the building (site) and the gateway."""

    site: str
    gateway: str


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _finite(v: float | None) -> float | None:
    return round(v, 6) if v is not None and math.isfinite(v) else None


def to_alarm(t: AlarmTransition, stamp: Stamp, now_s: float, where: Where,
             raised: Mapping[str, Any] | None = None) -> Alarm:
    """The alarm for ``t`` at ``stamp`` (``now_s`` is the monotonic second ``t`` was decided at).

    ``raised`` is the data of the raise a clear ends (its ``since``, value and
    threshold stay on the clear, with the cleared value beside them).
    """
    since_s = (stamp.wall_ns / 1e9) - max(0.0, now_s - t.since_s)
    data: dict[str, Any] = {
        "rule": t.rule,
        "kind": t.kind,
        "subject": t.subject,
        "site": where.site,
        "gateway": where.gateway,
        "device": t.device,
        "point": t.point,
        "value": _finite(t.value),
        "threshold": _finite(t.threshold),
        "unit": t.unit,
        "since": round(since_s, 3),
        "since_iso": _iso(since_s),
        "severity": t.severity,
        "action": t.action,
    }
    if t.members:
        data["members"] = list(t.members)
    if not t.active and raised:
        data.update({k: raised[k] for k in ("since", "since_iso", "severity", "threshold", "device", "point")
                     if k in raised})
        data["raised_value"] = raised.get("value")
        data["duration_s"] = round(stamp.wall_ns / 1e9 - float(raised.get("since", since_s)), 3)
    try:
        severity = Severity(data["severity"])
    except ValueError:
        severity = Severity.WARNING
    return Alarm(t.alarm_id, t.active, t.text, SOURCE, stamp, severity, data)
