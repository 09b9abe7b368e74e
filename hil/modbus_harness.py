"""Run a ``ModbusDriver`` in-process with a minimal hub, for tests and benchmarks.

``DriverRun`` is the generic driver harness (``hil.driver_run``: a real hub
and context, everything emitted recorded, conditions awaited instead of
sleeps) built from a Modbus driver section.
"""

from __future__ import annotations

__all__ = ["DriverRun", "bus_options"]

from collections.abc import Mapping
from typing import Any

from zaas_edge.drivers.modbus import ModbusDriver, ModbusOptions

from . import driver_run
from .modbus_sim import SimServer


def bus_options(srv: SimServer, devices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A driver section reaching a simulated bus (``id`` "bus", quick timeouts unless given)."""
    d: dict[str, Any] = {"id": "bus", "type": "modbus", "transport": srv.kind, "timeout_s": 0.3,
                         "devices": devices}
    if srv.kind == "rtu":
        d.update(port=srv.pty_path, baudrate=115200)
    else:
        d.update(host=srv.host, port=srv.port)
    d.update(extra)
    return d


class DriverRun(driver_run.DriverRun):
    """The generic harness (``hil.driver_run``) around a ``ModbusDriver`` built from a driver section."""

    def __init__(self, options: Mapping[str, Any] | ModbusOptions, *, keep_readings: bool = True) -> None:
        self.options = options if isinstance(options, ModbusOptions) else ModbusOptions.model_validate(options)
        super().__init__(ModbusDriver(self.options), self.options.id, keep_readings=keep_readings)

