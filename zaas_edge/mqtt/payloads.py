"""JSON payloads of the topics the gateway publishes: pure builders, bytes out.

Formats (documented in the README's "MQTT topics" section):

- device state: ``{"ts": 1718000000.512, "q": "ok", "points": {"power": 1234.5},
  "quality": {"voltage": "stale"}}``: every latest value of the device;
  ``ts`` is the wall time (Unix seconds) of its newest reading, ``q`` the
  worst quality among them, ``quality`` lists only points that are not ``ok``,
  and ``synced`` is false when a value was stamped before the clock was set.
- alarm: ``{"active": true, "severity": "warning", "since": 1718000000.5, "text": "..."}``.
- event: ``{"kind": "...", "text": "...", "source": "...", "severity": "...", "ts": ..., "data": {...}}``.
"""

from __future__ import annotations

__all__ = [
    "state_payload",
    "alarm_payload",
    "event_payload",
    "alarm_event_payload",
    "dumps",
    "ONLINE",
    "OFFLINE",
    "QUALITY_RANK",
]

import json
import math
from collections.abc import Mapping
from typing import Any

from zaas_edge.model import Alarm, Event, Quality, Reading

ONLINE = b"online"
OFFLINE = b"offline"

# Worst first wins in "q": a consumer that checks one field sees the weakest value.
QUALITY_RANK = {Quality.OK: 0, Quality.ESTIMATED: 1, Quality.STALE: 2, Quality.ERROR: 3}


def _default(o: Any) -> Any:
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    return str(o)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_default, allow_nan=False)  # one, not one per message


def dumps(obj: Any) -> bytes:
    """Compact JSON; anything JSON cannot hold becomes a string rather than an error."""
    return _ENCODER.encode(obj).encode()


def _seconds(wall_ns: int) -> float:
    return round(wall_ns / 1e9, 3)


def state_payload(readings: Mapping[str, Reading]) -> bytes:
    """The state message of one device from its latest reading per quantity."""
    if not readings:
        raise ValueError("a device state needs at least one reading")
    points: dict[str, Any] = {}
    quality: dict[str, str] = {}
    worst = Quality.OK
    newest = 0
    synced = True
    ok = Quality.OK
    # Hot: one message per device per second, so no call per value. NaN and infinities are not
    # JSON: a meter's sentinel is shown as null; a whole value as an integer.
    for quantity in sorted(readings):
        r = readings[quantity]
        v = r.value
        if not math.isfinite(v):
            points[quantity] = None
        elif v.is_integer() and abs(v) < 2**53:
            points[quantity] = int(v)
        else:
            points[quantity] = v
        if r.quality is not ok:
            quality[quantity] = r.quality.value
            if QUALITY_RANK[r.quality] > QUALITY_RANK[worst]:
                worst = r.quality
        if r.wall_ns > newest:
            newest = r.wall_ns
        if not r.synced:
            synced = False
    doc: dict[str, Any] = {"ts": _seconds(newest), "q": worst.value, "points": points}
    if quality:
        doc["quality"] = quality
    if not synced:
        doc["synced"] = False
    return dumps(doc)


def alarm_payload(alarm: Alarm) -> bytes:
    return dumps({"active": alarm.active, "severity": alarm.severity.value,
                  "since": _seconds(alarm.stamp.wall_ns), "text": alarm.text})


def event_payload(event: Event) -> bytes:
    return dumps({"kind": event.kind, "text": event.text, "source": event.source,
                  "severity": event.severity.value, "ts": _seconds(event.stamp.wall_ns),
                  "data": dict(event.data)})


def alarm_event_payload(alarm: Alarm) -> bytes:
    """An alarm transition on the event topic, next to shed and restore actions."""
    return dumps({"kind": "alarm.raised" if alarm.active else "alarm.cleared", "alarm": alarm.alarm_id,
                  "text": alarm.text, "source": alarm.source, "severity": alarm.severity.value,
                  "ts": _seconds(alarm.stamp.wall_ns), "data": dict(alarm.data)})
