"""Which device states to publish, and when: deadbands, intervals, coalescing.

The pure part is the ``Gate`` (one point: publish now, later or not at
all) and ``PolicyTable`` (per-point settings by glob). ``StatePublisher``
keeps the latest reading of every point (a dict: while the broker is away,
the latest state is all that is kept, the store being the real buffer) and
the time each device's next message is due.

Coalescing: a device that gets a point due waits ``coalesce_ms`` for the rest
of its poll, so 30 registers read one after the other make one message, not
30; when every known point of the device has a fresh value (the whole poll
arrived in one batch) there is nothing to wait for and it goes at once.
"""

from __future__ import annotations

__all__ = ["Policy", "PolicyTable", "Gate", "StatePublisher", "Outgoing"]

import asyncio
import fnmatch
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from zaas_edge.aio import wait_for
from zaas_edge.model import Reading
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.mqtt.payloads import state_payload
from zaas_edge.mqtt.topics import Topics


@dataclass(frozen=True, slots=True)
class Policy:
    deadband_pct: float = 0.5
    deadband_abs: float = 0.0
    min_interval_s: float = 1.0
    max_interval_s: float = 300.0


class PolicyTable:
    """Per-point policies: the ``[mqtt]`` defaults, overridden by the first glob in
    ``[mqtt] points`` (in the order written) that matches the point key."""

    def __init__(self, default: Policy, overrides: Sequence[tuple[str, Mapping[str, float | None]]] = ()) -> None:
        self.default = default
        self.overrides = list(overrides)
        self._cache: dict[str, Policy] = {}

    @classmethod
    def from_section(cls, s: MqttSection) -> PolicyTable:
        default = Policy(s.deadband_pct, s.deadband_abs, s.min_interval_s, s.max_interval_s)
        return cls(default, [(glob, p.model_dump()) for glob, p in s.points.items()])

    def __call__(self, key: str) -> Policy:
        if not self.overrides:
            return self.default  # nothing to match: no entry per point to keep
        p = self._cache.get(key)
        if p is None:
            p = self.default
            for glob, values in self.overrides:
                if fnmatch.fnmatchcase(key, glob):
                    changes = {k: v for k, v in values.items() if v is not None}
                    p = Policy(**{**{f: getattr(p, f) for f in Policy.__slots__}, **changes})
                    break
            self._cache[key] = p
        return p

    def max_interval(self, key: str) -> float:
        return self(key).max_interval_s


class Gate:
    """Deadband and intervals of every point, from what was last published."""

    def __init__(self, policies: Callable[[str], Policy]) -> None:
        self.policies = policies
        self._last: dict[str, tuple[float, str, float]] = {}  # key -> (value, quality, mono_s)

    def due(self, r: Reading, now: float) -> float | None:
        """When ``r`` should be published: ``now``, later (minimum interval) or None (not worth it)."""
        last = self._last.get(r.point)
        if last is None:
            return now
        value, quality, at = last
        p = self.policies(r.point)
        new = r.value
        # An equal value is within any deadband (NaN is never equal: _beyond decides it).
        if quality != r.quality or (new != value and _beyond(value, new, p)):
            return max(now, at + p.min_interval_s)
        if now - at >= p.max_interval_s:
            return now
        return None

    def published(self, r: Reading, now: float) -> None:
        # Quality is compared as text: a Quality (a StrEnum) equals its value, so either form may come.
        self._last[r.point] = (r.value, r.quality, now)

    def published_all(self, readings: Iterable[Reading], now: float) -> None:
        """``published`` for every reading of one message."""
        last = self._last
        for r in readings:
            last[r.point] = (r.value, r.quality, now)

    def forget(self, key: str) -> None:
        self._last.pop(key, None)


def _beyond(old: float, new: float, p: Policy) -> bool:
    if old != old or new != new:  # NaN, without two calls per reading
        return (old != old) != (new != new)
    diff = abs(new - old)
    if diff == 0.0:
        return False
    if diff > p.deadband_abs and diff > abs(old) * p.deadband_pct / 100.0:
        return True
    return False


Outgoing = tuple[str, bytes]  # (topic, payload): device state messages are always retained


class StatePublisher:
    """Latest values per device and the schedule of their state messages."""

    def __init__(self, topics: Topics, policies: Callable[[str], Policy], *, coalesce_s: float = 0.1,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.topics = topics
        self.gate = Gate(policies)
        self.coalesce_s = coalesce_s
        self.mono = mono
        self.latest: dict[str, dict[str, Reading]] = {}
        self.last_reading: dict[str, float] = {}  # device -> monotonic s of its last reading
        self._due: dict[str, float] = {}  # device -> when its message goes (coalescing included)
        self._raw: dict[str, float] = {}  # device -> when its earliest due point may go
        # device -> when the readings that made it due arrived. Intervals count from there, not
        # from the publication, so a 1 s poll with a 1 s minimum interval is not held back by
        # the few milliseconds the previous message took.
        self._trigger: dict[str, float] = {}
        self._fresh: dict[str, set[str]] = {}  # device -> keys of the points read since its last message
        self._wake = asyncio.Event()
        self.new_points: set[str] = set()  # devices with a quantity never seen before (for discovery)
        self.offered = 0  # state messages handed out for publication

    # -- input (a hub sink: synchronous and cheap) -----------------------------------

    def on_readings(self, batch: Sequence[Reading]) -> None:
        now = self.mono()
        latest, due, raw, fresh, gate_due = self.latest, self._due, self._raw, self._fresh, self.gate.due
        touched: set[str] = set()
        for r in batch:
            key = r.point
            device, _, quantity = key.partition("/")
            if not quantity:
                continue  # not a point key; nothing to address it by
            points = latest.get(device)
            if points is None:
                points = latest[device] = {}
                fresh[device] = set()
            if quantity not in points:
                # Interned: the devices of one profile share their quantities' names instead of
                # keeping a copy each.
                quantity = sys.intern(quantity)
                self.new_points.add(device)
            points[quantity] = r
            if device not in touched:
                touched.add(device)
                if device not in raw:  # counting what arrived since the device became due
                    fresh[device].clear()
            fresh[device].add(key)  # the reading's own key: no string of its own kept per point
            pending = raw.get(device, math.inf)
            if pending > now:  # a point is never due before now: a device due now cannot be due sooner
                t = gate_due(r, now)
                if t is not None and t < pending:
                    raw[device] = t
                    self._trigger.setdefault(device, now)
        for device in touched:
            self.last_reading[device] = now
            t = raw.get(device)
            if t is None:
                continue
            if len(fresh[device]) < len(latest[device]):
                t = max(t, now + self.coalesce_s)
            # else: a complete poll in hand, nothing to wait for beyond the minimum interval.
            if t < due.get(device, math.inf):
                due[device] = t
                self._wake.set()

    # -- output ----------------------------------------------------------------------

    def take_due(self) -> tuple[list[Outgoing], float | None]:
        """Messages due now, and when the next one will be (monotonic s), if any."""
        now = self.mono()
        ready = [d for d, t in self._due.items() if t <= now]
        out = [self._message(d, now) for d in ready]
        for d in ready:
            del self._due[d]
            self._raw.pop(d, None)
        nxt = min(self._due.values(), default=None)
        return out, nxt

    def everything(self) -> list[Outgoing]:
        """The state of every device, for a fresh connection (retained state must be complete)."""
        now = self.mono()
        self._due.clear()
        self._raw.clear()
        return [self._message(d, now) for d in sorted(self.latest) if self.latest[d]]

    def _message(self, device: str, now: float) -> Outgoing:
        points = self.latest[device]
        at = min(now, self._trigger.pop(device, now))
        self.gate.published_all(points.values(), at)
        self._fresh[device].clear()
        self.offered += 1
        return self.topics.device_state(device), state_payload(points)

    async def wait(self, until: float | None) -> None:
        """Sleep until ``until`` (monotonic s) or until new readings make something due."""
        self._wake.clear()
        timeout = None if until is None else max(0.0, until - self.mono())
        if timeout == 0.0:
            return
        try:
            await wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
