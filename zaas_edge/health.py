"""Whether a device answers: one state machine for every driver.

Every bus has the same question to answer about each of its devices: does
it still answer? A Modbus meter answers polls, an M-Bus meter readouts; a
LoRaWAN sensor, a BLE tag or a Linky meter is only listened to. So that an
operator, the MQTT availability topics and the alarm list see one fact the
same way whatever the bus, every driver keeps one ``DeviceHealth`` per
device and feeds it what it observes:

* ``success(now, latency_s)``: a valid answer (or a valid frame heard);
* ``failure(now, reason)``: a poll that got no valid answer; after
  ``offline_after`` of them in a row the device is offline;
* ``silence(now)``: called on the driver's tick; a device configured with
  ``silent_after_s`` that has given nothing valid for that long (since its
  last success, or since the driver started) is offline. This is how
  listened-to devices go offline: nothing fails, nothing arrives.

Each call returns a ``Transition`` when the device changes between online
and offline, or None. Transitions alternate (never offline twice in a row);
the first one is either. The driver hands a transition to
``DriverContext.availability``, which makes the one ``device.availability``
event, raises or clears the alarm ``device.<id>.offline`` and logs one line.

The module is pure: time comes in as monotonic seconds, nothing here
awaits, logs or reads a clock, so the whole behaviour is tested with
tables and hypothesis.

**Counters.** One vocabulary for every driver (:class:`Counter`); a driver
counts only those that mean something on its bus. ``DeviceHealth.status()``
gives a frozen ``DeviceStatus`` for ``Driver.health()`` and ``zaas-edge
status``.
"""

from __future__ import annotations

__all__ = [
    "DEVICE_AVAILABILITY",
    "Counter",
    "Detail",
    "DeviceHealth",
    "DeviceStatus",
    "SCHEDULE_FACTOR",
    "Transition",
    "device_online",
    "offline_alarm_id",
    "quiet_limit_s",
]

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum

DEVICE_AVAILABILITY = "device.availability"  # the one event kind, ``state`` "online" or "offline" in its data
EWMA = 0.1  # weight of the newest latency sample in the running average

SCHEDULE_FACTOR = 2.5  # a device quiet for this many of its intervals has missed two readings and more

Detail = str | int | float | bool | None  # a JSON scalar: what a device's status may carry besides counters


def offline_alarm_id(device_id: str) -> str:
    """The alarm raised while a device is offline (MQTT availability reads it too)."""
    return f"device.{device_id}.offline"


def quiet_limit_s(configured_s: float, interval_s: float | None) -> float:
    """How long a device may give nothing and still count as online: the larger of the configured
    timeout and ``SCHEDULE_FACTOR`` times its own interval (an M-Bus meter on its 900 s readout
    is not offline 120 s after each one)."""
    return configured_s if interval_s is None else max(configured_s, SCHEDULE_FACTOR * interval_s)


def device_online(verdict: bool | None, quiet_s: float | None, limit_s: float) -> bool:
    """The one definition of "online" that ``zaas-edge status`` and MQTT availability share.

    ``verdict`` is the device's ``DeviceHealth.online`` (None when its driver keeps
    no health, or before its first verdict), ``quiet_s`` the seconds since its
    last reading (None: none yet), ``limit_s`` its :func:`quiet_limit_s`. Its
    driver's verdict wins when it has one: offline means offline, and online
    holds while the readings keep within the device's schedule.
    """
    if verdict is False or quiet_s is None:
        return False
    return quiet_s <= limit_s


class Counter(StrEnum):
    """The per-device counter names every driver uses (documented in the README, "Device health")."""

    REQUESTS = "requests"  # requests sent to the device (frames, register blocks)
    ANSWERS = "answers"  # requests that got a valid answer
    TIMEOUTS = "timeouts"  # requests that got no answer in time
    CHECKSUM_ERRORS = "checksum_errors"  # answers or frames with a bad CRC or checksum
    BAD_RESPONSES = "bad_responses"  # answers that do not parse or do not match the request
    EXCEPTIONS = "exceptions"  # Modbus exception answers (the device is alive, but refuses)
    LINK_ERRORS = "link_errors"  # the port or the endpoint could not be used
    TRUNCATED = "truncated"  # answers cut short
    RETRIES = "retries"  # requests sent again after a failure
    COLLISIONS = "collisions"  # several devices answered at once
    MISSING_VALUES = "missing_values"  # values the device marked as not available (sentinels)
    OVERRUNS = "overruns"  # deadlines missed because the bus was busy
    UPLINKS = "uplinks"  # valid frames heard from a listened-to device
    DECODE_ERRORS = "decode_errors"  # frames heard that could not be decoded


@dataclass(frozen=True, slots=True)
class Transition:
    """A device went online or offline (``previous`` None: the first verdict since the start)."""

    device_id: str
    online: bool
    previous: bool | None
    reason: str
    failures: int  # failed polls in a row that took it offline, or that its return ended

    @property
    def state(self) -> str:
        return "online" if self.online else "offline"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One device's health as ``Driver.health()`` reports it, for ``zaas-edge status``.

    ``polls`` counts verdicts: readouts on polled buses, valid frames on
    listened-to ones; ``failed_polls`` those that got no valid answer.
    ``details`` says where the device is (unit, address, bus) and anything
    else of the driver's that is not a counter.
    """

    online: bool | None  # None until the first verdict
    polls: int = 0
    failed_polls: int = 0
    consecutive_failures: int = 0
    latency_last_ms: float | None = None
    latency_avg_ms: float | None = None
    last_error: str | None = None
    last_seen_s: float | None = None  # seconds since the last valid answer; None before the first
    counters: Mapping[str, int] = field(default_factory=dict)
    details: Mapping[str, Detail] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Detail]:
        """The JSON the control socket carries: details, counters and fields side by side (fields win)."""
        out: dict[str, Detail] = {**self.details, **{str(k): v for k, v in self.counters.items()}}
        for f in fields(self):
            if f.name not in ("counters", "details"):
                out[f.name] = getattr(self, f.name)
        return out


class DeviceHealth:
    """Availability, failures, latency and counters of one device; pure, time passed in.

    Slotted, with its counters' names interned: a building has one per meter.
    """

    __slots__ = ("device_id", "offline_after", "silent_after_s", "online", "polls", "failed_polls",
                 "consecutive_failures", "latency_last_ms", "latency_avg_ms", "last_error", "last_success",
                 "counters", "_quiet_since")

    def __init__(self, device_id: str, *, offline_after: int = 3, silent_after_s: float | None = None,
                 now: float = 0.0, counted: Iterable[Counter] = ()) -> None:
        if offline_after < 1:
            raise ValueError("offline_after must be at least 1")
        if silent_after_s is not None and silent_after_s <= 0:
            raise ValueError("silent_after_s must be positive")
        self.device_id = device_id
        self.offline_after = offline_after
        self.silent_after_s = silent_after_s
        self.online: bool | None = None
        self.polls = 0
        self.failed_polls = 0
        self.consecutive_failures = 0
        self.latency_last_ms: float | None = None
        self.latency_avg_ms: float | None = None
        self.last_error: str | None = None
        self.last_success: float | None = None
        self.counters: dict[str, int] = {sys.intern(str(name)): 0 for name in counted}  # shown as 0, not absent
        self._quiet_since = now  # silence is measured from here: the last success, or the start

    # -- observations ----------------------------------------------------------------

    def latency(self, seconds: float) -> None:
        """One latency sample (a request's round trip), into the last value and the running average."""
        ms = seconds * 1000.0
        self.latency_last_ms = ms
        avg = self.latency_avg_ms
        self.latency_avg_ms = ms if avg is None else avg + EWMA * (ms - avg)

    def success(self, now: float, latency_s: float | None = None) -> Transition | None:
        """A valid answer or frame: online (a transition if it was not)."""
        self.polls += 1
        if latency_s is not None:
            self.latency(latency_s)
        self.last_success = now
        self._quiet_since = now
        failures, self.consecutive_failures = self.consecutive_failures, 0
        if self.online is True:
            return None
        previous, self.online = self.online, True
        return Transition(self.device_id, True, previous, "answering" if previous is None else "answering again",
                          failures)

    def failure(self, now: float, reason: str) -> Transition | None:
        """A poll with no valid answer; offline once ``offline_after`` failed in a row."""
        self.polls += 1
        self.failed_polls += 1
        self.consecutive_failures += 1
        self.last_error = reason
        if self.online is False or self.consecutive_failures < self.offline_after:
            return None
        return self._offline(f"{self.consecutive_failures} failed in a row: {reason}")

    def silence(self, now: float) -> Transition | None:
        """The tick of a listened-to device: offline once nothing valid came for ``silent_after_s``."""
        if self.silent_after_s is None or self.online is False:
            return None
        quiet = now - self._quiet_since
        if quiet < self.silent_after_s:
            return None
        self.last_error = f"nothing valid heard for {quiet:.0f} s (expected within {self.silent_after_s:g} s)"
        return self._offline(self.last_error)

    def _offline(self, reason: str) -> Transition:
        previous, self.online = self.online, False
        return Transition(self.device_id, False, previous, reason, self.consecutive_failures)

    def count(self, name: Counter, n: int = 1) -> None:
        key = str(name)
        self.counters[key] = self.counters.get(key, 0) + n

    # -- reporting -------------------------------------------------------------------

    def status(self, now: float, details: Mapping[str, Detail] | None = None) -> DeviceStatus:
        """A frozen snapshot (latencies rounded to the microsecond)."""
        return DeviceStatus(
            online=self.online, polls=self.polls, failed_polls=self.failed_polls,
            consecutive_failures=self.consecutive_failures,
            latency_last_ms=None if self.latency_last_ms is None else round(self.latency_last_ms, 3),
            latency_avg_ms=None if self.latency_avg_ms is None else round(self.latency_avg_ms, 3),
            last_error=self.last_error,
            last_seen_s=None if self.last_success is None else round(max(0.0, now - self.last_success), 3),
            counters=dict(self.counters), details=dict(details or {}))
