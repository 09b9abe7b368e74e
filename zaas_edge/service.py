"""The contract of the daemon's services (MQTT, sync, rules) and what they may use.

A service is a long-running part of the daemon that is not a driver: it
consumes the hub, the store or both, and may act on drivers. It is built
from its configuration section when that section says ``enabled = true``,
runs as a supervised task (restarted with backoff when it crashes) and is
restarted when its section changes on reload.
"""

from __future__ import annotations

__all__ = ["Service", "ServiceContext", "ServiceSpec", "DriverControl", "DriverInfo", "MessagePort", "SERVICES"]

import abc
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from zaas_edge.clock import Clock
from zaas_edge.config_model import Config
from zaas_edge.driver import DeviceIdentity
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Point
from zaas_edge.shed.overrides import LimitOverrides, LoadOverrides
from zaas_edge.store.outbox import Outbox


class ServiceSpec(NamedTuple):
    """Where a service's class lives and which configuration section runs it.

    A service runs while its section says ``enabled = true`` and is restarted
    when that section changes on reload. Several services may share one
    section: the aggregator feeds the upload lane that sync drains, so both
    follow ``[sync]``.
    """

    target: str  # "module:Class"
    section: str


# Service name (its task is ``service.<name>``, its status block ``services.<name>``) -> spec.
SERVICES: dict[str, ServiceSpec] = {
    "mqtt": ServiceSpec("zaas_edge.mqtt.service:MqttService", "mqtt"),
    "aggregate": ServiceSpec("zaas_edge.sync.aggregate:AggregatorService", "sync"),
    "sync": ServiceSpec("zaas_edge.sync.service:SyncService", "sync"),
    "shed": ServiceSpec("zaas_edge.shed.service:ShedService", "shedding"),
    "alarms": ServiceSpec("zaas_edge.alarms.service:AlarmService", "alarms"),
}


@dataclass(frozen=True)
class DriverInfo:
    """A driver as services see it. ``identities`` is the driver's own ``device_identities()``
    (by device id: manufacturer, model, serial, medium), read, never changed."""

    id: str
    type: str
    enabled: bool
    state: str
    points: tuple[Point, ...] = ()
    identities: Mapping[str, DeviceIdentity] = field(default_factory=dict, compare=False)


class DriverControl(Protocol):
    """What services may ask of the drivers (commands from MQTT, load shedding)."""

    def drivers_info(self) -> dict[str, DriverInfo]: ...

    async def poll_now(self, driver_id: str) -> None: ...

    async def set_enabled(self, driver_id: str, enabled: bool) -> None: ...

    async def write(self, point: str, value: float) -> float: ...


@runtime_checkable
class MessagePort(Protocol):
    """What services may ask of the building's MQTT broker beyond the gateway's own topics.

    Load shedding switches smart relays that listen on their own topics
    (Shelly ``shellies/<id>/relay/0/command``, Tasmota ``cmnd/<topic>/POWER``)
    and reads their state back from theirs. The MQTT service implements it
    while it runs; ``ServiceContext.messages()`` is ``None`` otherwise.
    """

    @property
    def connected(self) -> bool: ...

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1; raises ``TransientError`` while the broker is unreachable."""
        ...

    def watch(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Subscribe to ``topic`` (a filter, wildcards allowed) for as long as the service runs,
        across reconnects; ``callback(topic, payload)`` gets each message. Returns the unsubscribe."""
        ...


@dataclass
class ServiceContext:
    name: str
    config: Callable[[], Config]  # the configuration in force (it changes on reload)
    hub: Hub
    clock: Clock
    outbox: Outbox  # the store as a consumer sees it: read lanes after a cursor, acknowledge
    drivers: DriverControl
    notice: Callable[[Event | Alarm], None]
    heartbeat: Callable[[], None]
    add_command: Callable[[str, Callable[[dict[str, Any]], Awaitable[Any]]], None]
    # The manual load-shedding overrides: the daemon's one table for MQTT, the CLI and the engine.
    overrides: LoadOverrides = field(default_factory=lambda: LoadOverrides(tuple))
    limit_overrides: LimitOverrides = field(default_factory=lambda: LimitOverrides(tuple))  # set over MQTT
    messages: Callable[[], MessagePort | None] = lambda: None  # the MQTT service while it runs
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("zaas_edge.service"))
    # Maintained by the service; `zaas-edge status` shows it under the service's name.
    status: dict[str, Any] = field(default_factory=dict)


class Service(abc.ABC):
    name: ClassVar[str]
    critical: ClassVar[bool] = False  # a critical service gates the systemd watchdog

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    async def run(self) -> None:
        """Run until cancelled; raising gets the service restarted with backoff."""
