"""The ``DriverContext`` a running driver sees: its only way out to the gateway."""

from __future__ import annotations

__all__ = ["GatewayDriverContext", "StateBackend", "MemoryState", "DriverField"]

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from zaas_edge.clock import Clock
from zaas_edge.errors import TransientError
from zaas_edge.health import DEVICE_AVAILABILITY, Detail, Transition, offline_alarm_id
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Quality, Reading, Severity, Stamp, point_key


class GatewayDriverContext:
    """Implements ``zaas_edge.driver.DriverContext`` for one driver instance."""

    def __init__(
        self,
        driver_id: str,
        *,
        hub: Hub,
        clock: Clock,
        heartbeat: Callable[[], None],
        counters: dict[str, int],
        backlog: Callable[[], Mapping[str, int]],
        state_dir: Path,
        state: StateBackend | None = None,
    ) -> None:
        self.driver_id = driver_id
        self.state_dir = state_dir
        self._state = state
        self.log = logging.getLogger(f"zaas_edge.driver.{driver_id}")
        if not any(isinstance(f, DriverField) for f in self.log.filters):
            self.log.addFilter(DriverField(driver_id))
        self._hub = hub
        self._clock = clock
        self._heartbeat = heartbeat
        self.counters = counters
        self._backlog = backlog
        self.last_emit_mono: float | None = None
        # device -> quantity -> point key: a driver names its points again at every poll, and
        # formatting each key anew costs more than the rest of a reading.
        self._keys: dict[str, dict[str, str]] = {}

    def now(self) -> Stamp:
        return self._clock.now()

    def reading(self, quantity: str, value: float, unit: str, quality: Quality = Quality.OK,
                stamp: Stamp | None = None, device_id: str | None = None) -> Reading:
        device = device_id or self.driver_id
        keys = self._keys.get(device)
        if keys is None:
            keys = self._keys[device] = {}
        key = keys.get(quantity)
        if key is None:
            key = keys[quantity] = point_key(device, quantity)
        s = stamp or self._clock.now()
        return Reading(key, float(value), unit, s.wall_ns, s.mono_ns, s.boot_id, s.synced, quality)

    def emit(self, readings: Iterable[Reading], *, live: Iterable[Reading] = ()) -> None:
        batch = readings if isinstance(readings, list) else list(readings)
        extra = live if isinstance(live, list) else list(live)
        if not batch and not extra:
            return
        self.counters["readings"] = self.counters.get("readings", 0) + len(batch)
        if extra:
            self.counters["readings_live"] = self.counters.get("readings_live", 0) + len(extra)
        self.last_emit_mono = time.monotonic()
        self._hub.readings(batch, live=extra)
        self._heartbeat()

    def event(self, kind: str, text: str, severity: Severity = Severity.INFO,
              data: Mapping[str, Any] | None = None) -> None:
        self._hub.notice(Event(kind, text, self.driver_id, self._clock.now(), severity, dict(data or {})))

    def alarm(self, alarm_id: str, active: bool, text: str, severity: Severity = Severity.WARNING,
              data: Mapping[str, Any] | None = None) -> None:
        self._hub.notice(Alarm(alarm_id, active, text, self.driver_id, self._clock.now(), severity, dict(data or {})))

    def availability(self, change: Transition, what: str | None = None,
                     data: Mapping[str, Detail] | None = None) -> None:
        """Announce a device going online or offline: the one ``device.availability`` event and the
        alarm ``device.<id>.offline`` raised or cleared, which the journal shows as one line.

        Transitions of a ``DeviceHealth`` alternate, so the alarm is raised once and cleared
        once; a first answer after the start clears nothing (no alarm was raised).
        """
        device = change.device_id
        name = what or device
        if change.online:
            text = f"{name} back online ({change.reason})" if change.previous is False else f"{name} online"
        else:
            text = f"{name} offline: {change.reason}"
        payload: dict[str, Detail] = {**(data or {}), "device": device, "state": change.state,
                                      "reason": change.reason, "failures": change.failures}
        severity = Severity.WARNING if not change.online else (
            Severity.NOTICE if change.previous is False else Severity.INFO)
        with_alarm = not change.online or change.previous is False
        if with_alarm:
            payload["alarm"] = offline_alarm_id(device)  # one incident: the journal shows the alarm line only
        self.event(DEVICE_AVAILABILITY, text, severity, payload)
        if with_alarm:
            self.alarm(offline_alarm_id(device), not change.online, text, Severity.WARNING, payload)

    def heartbeat(self) -> None:
        self._heartbeat()

    def count(self, counter: str, n: int = 1) -> None:
        self.counters[counter] = self.counters.get(counter, 0) + n

    def backlog(self) -> Mapping[str, int]:
        return self._backlog()

    async def load_state(self, key: str) -> dict[str, Any] | None:
        if self._state is None:
            return None
        return await self._state.load(self.driver_id, key)

    async def save_state(self, key: str, value: Mapping[str, Any]) -> None:
        if self._state is None:
            raise TransientError("no store to save driver state in")
        await self._state.save(self.driver_id, key, dict(value))


class DriverField(logging.Filter):
    """Every line a driver logs carries ``driver=<id>``, so the journal can be filtered by driver."""

    def __init__(self, driver_id: str) -> None:
        super().__init__()
        self.driver_id = driver_id

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict):
            record.fields = {"driver": self.driver_id}
        elif "driver" not in fields:
            record.fields = {**fields, "driver": self.driver_id}
        return True


class StateBackend(Protocol):
    """Where drivers' small persistent documents live (the store's driver_state table)."""

    async def load(self, driver_id: str, key: str) -> dict[str, Any] | None: ...

    async def save(self, driver_id: str, key: str, value: dict[str, Any]) -> None: ...


class MemoryState:
    """A StateBackend for tests and tools that run drivers without a store."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}

    async def load(self, driver_id: str, key: str) -> dict[str, Any] | None:
        doc = self.docs.get((driver_id, key))
        return None if doc is None else dict(doc)

    async def save(self, driver_id: str, key: str, value: dict[str, Any]) -> None:
        self.docs[(driver_id, key)] = dict(value)
