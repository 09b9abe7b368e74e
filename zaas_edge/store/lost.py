"""What a stop could not write: a small side file, read back at the next start.

When the daemon stops while the store is degraded (a full disk, a read-only
file system), the rows still in the memory ring cannot be committed. They are
not kept (readings by the thousand do not fit a side file, and writing them
would fail like the store did), but the fact of their loss is: per lane, how
many and over which time range, plus every alarm transition in full, since
alarms are never to be dropped. The next start writes the alarms as they were
and one ``store.gap`` event per lane, then removes the file.

The record is pure data with a JSON form, so it is tested without a disk.
"""

from __future__ import annotations

__all__ = ["LostRows", "LOST_SUFFIX", "decode", "encode"]

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Alarm, Lane, Severity, Stamp

LOST_SUFFIX = ".lost.json"
FORMAT = 1


@dataclass(frozen=True)
class LostRows:
    """Rows a stop left unwritten: ``lanes`` maps a lane to (count, first wall_ns, last wall_ns)."""

    stopped_ns: int
    reason: str
    lanes: Mapping[Lane, tuple[int, int, int]] = field(default_factory=dict)
    alarms: tuple[Alarm, ...] = ()

    @property
    def count(self) -> int:
        return sum(n for n, _a, _b in self.lanes.values()) + len(self.alarms)


def tally(rows: Iterable[tuple[Lane, int]]) -> dict[Lane, tuple[int, int, int]]:
    """(lane, wall_ns) pairs counted per lane with their time range."""
    out: dict[Lane, list[int]] = {}
    for lane, wall in rows:
        slot = out.get(lane)
        if slot is None:
            out[lane] = [1, wall, wall]
        else:
            slot[0] += 1
            slot[1], slot[2] = min(slot[1], wall), max(slot[2], wall)
    return {lane: (n, a, b) for lane, (n, a, b) in out.items()}


def _stamp(s: Stamp) -> list[Any]:
    return [s.wall_ns, s.mono_ns, s.boot_id, s.synced]


def encode(lost: LostRows) -> bytes:
    doc = {
        "format": FORMAT,
        "stopped_ns": lost.stopped_ns,
        "reason": lost.reason,
        "lanes": {str(lane): list(v) for lane, v in lost.lanes.items()},
        "alarms": [{"id": a.alarm_id, "active": a.active, "text": a.text, "source": a.source,
                    "stamp": _stamp(a.stamp), "severity": str(a.severity), "data": dict(a.data)}
                   for a in lost.alarms],
    }
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


def decode(data: bytes) -> LostRows:
    """The record back; :class:`ProtocolError` on anything else (a torn or foreign file)."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise ProtocolError(f"unknown lost-rows format {doc.get('format')!r}")
        lanes = {Lane(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in doc["lanes"].items()}
        alarms = tuple(
            Alarm(str(a["id"]), bool(a["active"]), str(a["text"]), str(a["source"]),
                  Stamp(int(a["stamp"][0]), int(a["stamp"][1]), str(a["stamp"][2]), bool(a["stamp"][3])),
                  Severity(a["severity"]), dict(a["data"]))
            for a in doc["alarms"])
        return LostRows(int(doc["stopped_ns"]), str(doc["reason"]), lanes, alarms)
    except ProtocolError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ProtocolError(f"unreadable lost-rows record: {type(exc).__name__}: {exc}") from None
