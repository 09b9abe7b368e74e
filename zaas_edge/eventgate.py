"""A rate gate for events: past a rate, one kind from one source becomes a counted summary.

Pure (time comes from the events' own monotonic stamps). The hub puts every
event through it, so one noisy source (forged radio frames, a broker flooding
bad commands, a meter spitting garbage) cannot fill the store, the log or the
platform with copies of the same fact: up to ``burst`` events of a kind from a
source pass at once and ``rate`` a second after that; the rest are counted, and
once per ``summary_s`` one event of the same kind says how many there were, over
which time, with the last one's data. Alarms never come here (they are
transitions, bounded by nature) and gap records are never held back.
"""

from __future__ import annotations

__all__ = ["EventGate"]

from dataclasses import dataclass, field
from typing import Any

from zaas_edge.model import Event, Severity
from zaas_edge.ratelimit import TokenBucket

_NS = 1_000_000_000
_ORDER = list(Severity)
NEVER_HELD = frozenset({"store.gap"})


@dataclass(slots=True)
class _Held:
    count: int
    first: Event
    last: Event
    severity: Severity
    due_ns: int


@dataclass
class EventGate:
    rate: float = 1.0
    burst: float = 20.0
    summary_s: float = 60.0
    max_keys: int = 4096
    _buckets: dict[tuple[str, str, str], TokenBucket] = field(default_factory=dict, init=False)
    _held: dict[tuple[str, str, str], _Held] = field(default_factory=dict, init=False)
    suppressed_total: int = field(default=0, init=False)

    def admit(self, event: Event) -> list[Event]:
        """What to pass on for ``event``: itself, nothing (counted), or a due summary first."""
        if event.kind in NEVER_HELD:
            return [event]
        # Per device where the event names one: fifty meters going offline together are fifty facts.
        device = event.data.get("device") if isinstance(event.data, dict) else None
        key = (event.kind, event.source, str(device) if device is not None else "")
        now = event.stamp.mono_ns / _NS
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        out = self.due(event.stamp.mono_ns)
        if bucket.try_take(now):
            return [*out, event]
        held = self._held.get(key)
        self.suppressed_total += 1
        if held is None:
            self._held[key] = _Held(1, event, event, event.severity, event.stamp.mono_ns + int(self.summary_s * _NS))
        else:
            held.count += 1
            held.last = event
            if _ORDER.index(event.severity) > _ORDER.index(held.severity):
                held.severity = event.severity
        return out

    def due(self, mono_ns: int) -> list[Event]:
        """The summaries whose interval has passed at ``mono_ns`` (the daemon also calls this on its tick)."""
        if not self._held:
            return []
        ready = [k for k, h in self._held.items() if mono_ns >= h.due_ns]
        return [_summary(self._held.pop(k)) for k in ready]

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that are full again (their sources went quiet): they hold nothing."""
        for key in [k for k, b in self._buckets.items() if k not in self._held
                    and b.tokens + (now - b.at) * b.rate >= b.burst]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:  # still full: the oldest idle one goes
            key = next((k for k in self._buckets if k not in self._held), None)
            if key is None:
                break
            del self._buckets[key]


def _summary(h: _Held) -> Event:
    span_s = (h.last.stamp.mono_ns - h.first.stamp.mono_ns) / _NS
    data: dict[str, Any] = {"suppressed": h.count, "first_wall_ns": h.first.stamp.wall_ns,
                            "last_wall_ns": h.last.stamp.wall_ns, "last": dict(h.last.data)}
    text = (f"{h.count} more {h.last.kind!r} events from {h.last.source} over {span_s:.0f} s, "
            f"counted and not kept one by one; the last: {h.last.text}")
    return Event(h.last.kind, text[:500], h.last.source, h.last.stamp, h.severity, data)
