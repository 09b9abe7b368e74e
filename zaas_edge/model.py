"""Frozen value types shared by drivers, store, rules, MQTT and sync.

Time is carried as four fields because the box has no real-time clock:
``wall_ns`` may be wrong until NTP has synchronised, so every value also
carries ``mono_ns`` and ``boot_id``, which let sync correct the wall time of
readings taken before synchronisation once it is seen.
"""

from __future__ import annotations

__all__ = [
    "Quality",
    "Severity",
    "Lane",
    "Stamp",
    "Point",
    "Reading",
    "Event",
    "Alarm",
    "UploadRecord",
    "point_key",
]

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class Quality(StrEnum):
    OK = "ok"
    STALE = "stale"  # last known value, repeated because a fresh one is missing
    ERROR = "error"  # the device reported an error or a sentinel value
    ESTIMATED = "estimated"  # computed or corrected, not measured


class Severity(StrEnum):
    """Syslog-aligned so an event maps onto a journald priority one to one (``zaas_edge.logsetup.SEVERITY_LEVELS``)."""

    DEBUG = "debug"
    INFO = "info"
    NOTICE = "notice"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Lane(StrEnum):
    """Store lanes, drained by sync in the order alarm, event, reading.

    ``reading`` holds raw readings (kept locally); ``upload`` the records the
    upload policies make of them, which sync sends as its ``reading`` lane.
    """

    ALARM = "alarm"
    EVENT = "event"
    READING = "reading"
    UPLOAD = "upload"


@dataclass(frozen=True, slots=True)
class Stamp:
    """When something happened, in every clock the box has."""

    wall_ns: int
    mono_ns: int
    boot_id: str
    synced: bool


def point_key(device_id: str, quantity: str) -> str:
    """The stable key of a point: ``"<device_id>/<quantity>"``."""
    return f"{device_id}/{quantity}"


@dataclass(frozen=True, slots=True)
class Point:
    """A measurable or actuable quantity of one device, declared by its driver or profile.

    ``resolution`` is the smallest step worth keeping (0.1 V, 1 W, 0.01 kWh);
    sync encodes values as integers at this resolution. ``states`` makes an
    *enumerated* point (a tariff period, a Tempo colour): its value is the
    index of its state in ``states``, so it travels, is stored and is synced
    as a number like any other, and Home Assistant shows it as an ``enum``
    sensor with these options.
    """

    device_id: str
    quantity: str
    unit: str
    resolution: float = 0.0
    description: str = ""
    writable: bool = False
    states: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return point_key(self.device_id, self.quantity)


class Reading(NamedTuple):
    """One value of one point at one moment. The store assigns ``seq``.

    A named tuple, not a dataclass, for the reason ``UploadRecord`` is one: every value a
    driver reads is one of these (1,400 a second in a building of 100 meters), and a tuple
    costs a quarter of a frozen dataclass to build. Immutable and compared by value all the same.
    """

    point: str
    value: float
    unit: str
    wall_ns: int
    mono_ns: int
    boot_id: str
    synced: bool
    quality: Quality = Quality.OK

    @classmethod
    def at(
        cls,
        stamp: Stamp,
        point: str,
        value: float,
        unit: str,
        quality: Quality = Quality.OK,
    ) -> Reading:
        return cls(point, value, unit, stamp.wall_ns, stamp.mono_ns, stamp.boot_id, stamp.synced, quality)

    @property
    def stamp(self) -> Stamp:
        return Stamp(self.wall_ns, self.mono_ns, self.boot_id, self.synced)


@dataclass(frozen=True, slots=True)
class Event:
    """Something an operator may want to know: a restart, a gap, a shed action.

    ``kind`` is a stable dotted name (``store.gap``, ``task.crashed``) that
    dashboards and tests key on; ``text`` is for people.
    """

    kind: str
    text: str
    source: str
    stamp: Stamp
    severity: Severity = Severity.INFO
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alarm:
    """A condition that is active until it clears: each transition is stored once.

    ``alarm_id`` is stable (``store.degraded``, ``device.meter-3.offline``) so
    MQTT can retain one topic per alarm and the platform can pair raise and clear.
    """

    alarm_id: str
    active: bool
    text: str
    source: str
    stamp: Stamp
    severity: Severity = Severity.WARNING
    data: Mapping[str, Any] = field(default_factory=dict)


class UploadRecord(NamedTuple):
    """What the platform receives for a point: one raw sample or one window aggregate.

    Built from raw readings by the upload policies (``zaas_edge.sync.policy``)
    with the wall clock already fixed up (``zaas_edge.sync.clockfix``).
    ``window_s == 0`` marks a raw sample taken at ``wall_ns``; otherwise the
    record aggregates the readings of ``[wall_ns, wall_ns + window_s)``:
    ``value`` is their average, ``last`` the latest value (taken at
    ``last_ns``). Aggregates merge (see docs/sync-encoding.md), so a reading
    arriving after its window was closed travels as a further partial one.
    ``mono_ns`` and ``boot_id`` are kept only while ``synced`` is false, for
    the platform to place the record itself. ``resolution`` is the point's
    declared step, the precision the wire encoding keeps (0: lossless).

    A named tuple, not a dataclass: draining a backlog builds one per record
    from a decoded upload block, and a tuple costs a fifth of a frozen
    dataclass to build. It is the one row type of the upload lane: the
    aggregator makes them, the store keeps them, the wire codec reads them.
    """

    point: str
    unit: str
    wall_ns: int
    value: float
    quality: Quality = Quality.OK
    synced: bool = True
    corrected: bool = False
    mono_ns: int | None = None
    boot_id: str = ""
    resolution: float = 0.0
    window_s: int = 0
    count: int = 1
    min: float | None = None
    max: float | None = None
    last: float | None = None
    last_ns: int | None = None

    @property
    def kind(self) -> str:
        return "agg" if self.window_s else "raw"
