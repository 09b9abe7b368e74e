"""``ModbusDriver``: one bus, its devices, polled on their schedules.

The driver builds the bus (``bus.py``) and one ``Device`` per configured unit,
runs one polling task per device (the bus serialises them where the medium
requires it) and offers ``poll_now``, ``write`` and ``points`` to the rest of
the gateway. Bus-level trouble (the port vanished, the endpoint refuses) is
logged and evented once per change, counted in ``link_down``; the devices go
offline through their own health and come back by themselves.
"""

from __future__ import annotations

__all__ = ["ModbusDriver"]

import asyncio
import logging
from collections.abc import Mapping

from pydantic import JsonValue

from zaas_edge.aio import wait_for
from zaas_edge.driver import Driver, DriverContext
from zaas_edge.errors import PermanentError
from zaas_edge.health import DeviceStatus
from zaas_edge.model import Point, Severity
from zaas_edge.readout import PendingReads

from .bus import Bus, make_bus
from .device import Device
from .options import ModbusOptions

log = logging.getLogger("zaas_edge.drivers.modbus")


class ModbusDriver(Driver):
    """A Modbus TCP endpoint, an RTU serial line, or RTU over TCP, and its devices."""

    Options = ModbusOptions
    READY_TIMEOUT_S = 5.0  # how long poll_now/write wait for a driver that is starting

    def __init__(self, options: ModbusOptions) -> None:  # type: ignore[override]
        super().__init__(options)
        self.options: ModbusOptions = options
        self.bus: Bus | None = None
        self.devices: dict[str, Device] = {}
        self._ctx: DriverContext | None = None
        self._ready = asyncio.Event()
        self._reads = PendingReads()  # zaas-edge read DEVICE, answered between the polls

    # -- declared points -------------------------------------------------------------

    def points(self) -> list[Point]:
        if self.devices:
            return [p for d in self.devices.values() for p in d.model_points()]
        from .layout import build_entries  # before run(): from the configuration alone

        out: list[Point] = []
        for d in self.options.devices:
            if not d.enabled:
                continue
            prof = d.resolved_profile
            for e in build_entries(prof, d).values():
                if not e.is_string:
                    out.append(Point(d.id, e.quantity, e.unit, e.resolution,
                                     prof.point(e.quantity).description, e.writable))
        return out

    # -- running ---------------------------------------------------------------------

    def _bus_state(self, up: bool, reason: str) -> None:
        ctx = self._ctx
        where = self.options.describe()
        if up:
            (ctx.log if ctx else log).info("bus %s is reachable again", where,
                                           extra={"fields": {"driver": self.id}})
            if ctx:
                ctx.event("modbus.bus_up", f"{where} reachable again", Severity.INFO, {"bus": where})
            return
        (ctx.log if ctx else log).warning("bus %s unavailable: %s", where, reason,
                                          extra={"fields": {"driver": self.id}})
        if ctx:
            ctx.count("link_down")
            ctx.event("modbus.bus_down", f"{where} unavailable: {reason}", Severity.WARNING,
                      {"bus": where, "reason": reason})

    def build(self, ctx: DriverContext | None) -> None:
        """Make the bus and the devices (``run`` does it; tools and tests may call it)."""
        self._ctx = ctx
        self.bus = make_bus(self.options, self._bus_state, ctx.count if ctx is not None else None)
        self.devices = {d.id: Device(d, self.options, self.bus, ctx) for d in self.options.devices if d.enabled}
        self._ready.set()

    async def run(self, ctx: DriverContext) -> None:
        self.build(ctx)
        assert self.bus is not None
        ctx.log.info("modbus bus %s: %d device(s)", self.options.describe(), len(self.devices),
                     extra={"fields": {"driver": self.id}})
        try:
            async with asyncio.TaskGroup() as tg:
                for dev in self.devices.values():
                    tg.create_task(dev.run(), name=f"modbus.{self.id}.{dev.id}")
                if not self.devices:
                    tg.create_task(asyncio.Event().wait())
        finally:
            self.bus.close()

    async def poll_now(self) -> None:
        """Read every point of every device now and emit the readings."""
        await self._wait_ready()
        devices = list(self.devices.values())
        batches = await asyncio.gather(*(d.poll(set(d.entries)) for d in devices))
        if self._ctx is not None:
            for batch in batches:
                if batch:
                    self._ctx.emit(batch)

    async def write(self, point: str, value: float) -> float:
        """Write ``<device>/<quantity>`` and return the value read back."""
        await self._wait_ready()
        device_id, _, quantity = point.partition("/")
        dev = self.devices.get(device_id)
        if dev is None or not quantity:
            raise PermanentError(f"driver {self.id!r} has no device for point {point!r} "
                                 f"(devices: {', '.join(sorted(self.devices)) or 'none'})")
        return await dev.write(quantity, value)

    async def control(self, command: str, args: Mapping[str, JsonValue]) -> JsonValue:
        """``read``: one device read now, between its polls, for ``zaas-edge read`` (nothing emitted)."""
        if command != "read":
            return await super().control(command, args)
        from .readout import read_in_driver

        await self._wait_ready()
        return await self._reads.answer(args, self.devices, lambda device: read_in_driver(self, device))

    async def _wait_ready(self) -> None:
        if not self._ready.is_set():
            try:
                await wait_for(self._ready.wait(), self.READY_TIMEOUT_S)
            except TimeoutError:
                raise PermanentError(f"driver {self.id!r} is not running") from None

    def health(self) -> dict[str, DeviceStatus]:
        """Per-device counters and state, for ``zaas-edge status`` and diagnostics.

        Each device also names its bus and, while the bus itself is unreachable, why:
        a technician reading one line sees whether the meter or the cable is at fault.
        """
        bus = self.bus
        where = self.options.describe()
        down = bus.down_reason if bus else None
        return {i: d.status(where, down) for i, d in self.devices.items()}
