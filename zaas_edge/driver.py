"""The driver contract and the entry-point registry.

A driver owns one bus or one source (a serial line, a TCP endpoint, a UDP
port, a radio) and turns what it hears into ``Reading`` values. It never
touches SQLite, MQTT or the uplink: everything leaves through its
``DriverContext``. Drivers are found by name in the ``zaas_edge.drivers``
entry-point group, built-in and third-party alike.

A driver package exposes a ``Driver`` subclass with:

* ``Options``: a pydantic model of its configuration section (unknown keys
  rejected), subclassing ``DriverOptions``;
* ``run(ctx)``: loops until cancelled, calling ``ctx.emit``, ``ctx.event``,
  ``ctx.alarm`` and ``ctx.heartbeat``;
* optionally ``write(point, value)`` for actuators (with read-back),
  ``points()`` to declare what it measures, ``device_identities()`` for who
  made each device and which one it is, ``health()`` for per-device
  counters shown by ``zaas-edge status`` and ``control(command, args)`` for
  its own CLI commands to reach it inside the running daemon (the control
  socket's ``driver.control``: ``zaas-edge lora frames`` reads the LoRa
  driver's recent frames while the daemon holds the UDP port).

A driver that knows its devices keeps one ``zaas_edge.health.DeviceHealth``
per device and hands its transitions to ``ctx.availability``, so every bus
reports a device going offline the same way.
"""

from __future__ import annotations

__all__ = [
    "Driver",
    "DriverOptions",
    "DriverContext",
    "DriverNotFound",
    "DeviceIdentity",
    "available_drivers",
    "driver_class",
    "ENTRY_POINT_GROUP",
]

import abc
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from zaas_edge.errors import PermanentError
from zaas_edge.health import Detail, DeviceStatus, Transition
from zaas_edge.model import Point, Quality, Reading, Severity, Stamp

ENTRY_POINT_GROUP = "zaas_edge.drivers"

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who made a device and which one it is, as the device itself (an M-Bus header) or its
    profile (a LoRaWAN codec's) says: Home Assistant's device block shows it, so an integrator
    sees "Kamstrup, serial 12345678" rather than the bus it hangs on.

    Empty fields are unknown. ``medium`` is what the device measures in the
    driver's own words ("water", "gas", "heat_outlet", "electricity"): it tells a
    water meter's m³ from a gas meter's, whatever the device's id says.
    """

    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    sw_version: str = ""
    medium: str = ""


class DriverOptions(BaseModel):
    """Keys every driver section has; drivers subclass it with their own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="Stable id: the device part of point keys and MQTT topics")
    type: str = Field(description="Driver name in the zaas_edge.drivers entry-point group")
    enabled: bool = True
    critical: bool = Field(
        default=False,
        description="A critical driver that stops heartbeating stops the systemd watchdog",
    )


class DriverContext(Protocol):
    """What a running driver may do with the rest of the gateway."""

    driver_id: str
    log: logging.Logger
    state_dir: Path  # the gateway's state directory (for drivers that watch it, not to write SQLite)

    def now(self) -> Stamp: ...

    def reading(self, quantity: str, value: float, unit: str, quality: Quality = Quality.OK,
                stamp: Stamp | None = None, device_id: str | None = None) -> Reading: ...

    def emit(self, readings: Iterable[Reading], *, live: Iterable[Reading] = ()) -> None:
        """``readings`` go to every consumer, the store included; ``live`` to every consumer but
        the store (the rules engine, MQTT and the latest values see them, nothing is kept): for a
        driver that hears more often than it stores."""
        ...

    def event(self, kind: str, text: str, severity: Severity = Severity.INFO,
              data: Mapping[str, Any] | None = None) -> None: ...

    def alarm(self, alarm_id: str, active: bool, text: str, severity: Severity = Severity.WARNING,
              data: Mapping[str, Any] | None = None) -> None: ...

    def availability(self, change: Transition, what: str | None = None,
                     data: Mapping[str, Detail] | None = None) -> None:
        """A device went online or offline (a ``DeviceHealth`` transition): event, alarm, log line."""
        ...

    def heartbeat(self) -> None: ...

    def count(self, counter: str, n: int = 1) -> None: ...

    def backlog(self) -> Mapping[str, int]: ...

    async def load_state(self, key: str) -> dict[str, Any] | None:
        """A small JSON document this driver saved earlier (frame counters, learnt plans)."""
        ...

    async def save_state(self, key: str, value: Mapping[str, Any]) -> None:
        """Persist a small JSON document in the store, durable like a committed reading."""
        ...


class Driver(abc.ABC):
    """Base class of every driver. One instance per configuration section."""

    Options: ClassVar[type[DriverOptions]] = DriverOptions

    def __init__(self, options: DriverOptions) -> None:
        self.options = options

    @property
    def id(self) -> str:
        return self.options.id

    def points(self) -> list[Point]:
        """The points this driver will emit, when known ahead (for discovery and docs)."""
        return []

    def device_identities(self) -> Mapping[str, DeviceIdentity]:
        """Each device's identity, by device id, as far as the driver knows it (empty: none known).

        The daemon hands this mapping to the services as it is (``DriverInfo.identities``),
        so return the driver's own dict, kept up to date (replace an entry, never
        rebuild it per call): it is read every second. An entry appears once the
        device has said who it is in a reading the driver believed.
        """
        return {}

    @abc.abstractmethod
    async def run(self, ctx: DriverContext) -> None:
        """Loop until cancelled. Raising restarts the driver with backoff."""

    def health(self) -> Mapping[str, DeviceStatus]:
        """Per-device health, by device id, for ``zaas-edge status``; empty when the driver keeps none.

        ``DeviceHealth.status()`` makes each value; the status table shows its availability,
        latency, failures in a row, last error and the ``requests``, ``timeouts``,
        ``checksum_errors`` and ``exceptions`` counters; ``--json`` carries all of it.
        Called on the event loop: it must be cheap and must not block.
        """
        return {}

    async def poll_now(self) -> None:
        """Read every point at once, outside the schedule (a technician's or integrator's request)."""
        raise PermanentError(f"driver {self.id!r} ({self.options.type}) cannot poll on demand")

    async def write(self, point: str, value: float) -> float:
        """Write an actuator point and return the value read back."""
        raise PermanentError(f"driver {self.id!r} ({self.options.type}) has no writable points")

    async def control(self, command: str, args: Mapping[str, JsonValue]) -> JsonValue:
        """Answer one of this driver's own CLI commands, sent through the control socket (``driver.control``).

        So a technician's command sees what the running driver sees without a
        second listener on its port. Called on the event loop: answer from
        memory, cheaply; refuse bad arguments with ``PermanentError`` (one line
        for the CLI).
        """
        raise PermanentError(f"driver {self.id!r} ({self.options.type}) has no command {command!r}")


class DriverNotFound(PermanentError):
    pass


def available_drivers() -> dict[str, str]:
    """Driver names to the module path that provides them, from installed entry points."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def driver_class(name: str) -> type[Driver]:
    """Load the driver class registered under ``name``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Driver)):
            raise DriverNotFound(f"entry point {name!r} ({ep.value}) is not a zaas_edge Driver")
        return cls
    known = ", ".join(sorted(available_drivers())) or "none installed"
    raise DriverNotFound(f"no driver named {name!r} (available: {known})")
