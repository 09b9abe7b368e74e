"""One Modbus device read once for ``zaas-edge read``: inside the running driver, or on a bus of its own.

Both ways read every enabled point of the device through ``Device.read``
(the driver's own plan, decoding and scale factors) and give a
:class:`~zaas_edge.readout.DeviceReadout`. Nothing is emitted or stored: the
read is the technician's, not a poll (the device's request counters still
count it, as they count every request on the bus).
"""

from __future__ import annotations

__all__ = ["device_ids", "read_alone", "read_in_driver", "readout_of"]

import math
from typing import TYPE_CHECKING

from zaas_edge.errors import PermanentError
from zaas_edge.readout import DeviceReadout, PointReading

from .decode import Decoded
from .options import ModbusOptions

if TYPE_CHECKING:
    from .device import Device, PollResult
    from .driver import ModbusDriver


def device_ids(options: ModbusOptions) -> list[str]:
    """The devices ``read`` knows on this bus (disabled ones too: a technician may read them)."""
    return [d.id for d in options.devices]


def readout_of(driver_id: str, dev: Device, res: PollResult) -> DeviceReadout:
    """Every point of the device, read or not, from one ``Device.read``."""
    points = []
    for q, e in dev.entries.items():
        v = res.values.get(q)
        if isinstance(v, str):
            points.append(PointReading(q, v, "", "ok"))
        elif isinstance(v, Decoded):
            missing = v.value is None or not math.isfinite(v.value)
            points.append(PointReading(q, None if missing else v.value, e.unit,
                                       "missing" if missing else v.quality.value))
        else:
            points.append(PointReading(q, None, e.unit, "unread"))
    error = None if res.answered else (res.error or "no answer")
    return DeviceReadout(driver_id, dev.id, dev.bus_opts.describe(), tuple(points) if res.answered else (),
                         {"unit": str(dev.unit), "profile": dev.profile.name}, error)


async def read_in_driver(driver: ModbusDriver, device_id: str) -> DeviceReadout:
    """Read one of the running driver's devices now, between its polls (never during one)."""
    dev = driver.devices.get(device_id)
    if dev is None:
        raise PermanentError(f"driver {driver.id!r} has no running device {device_id!r}")
    async with dev._poll_lock:  # noqa: SLF001 (the device's own lock: a scheduled poll waits for this read)
        res = await dev.read(set(dev.entries))
    return readout_of(driver.id, dev, res)


async def read_alone(options: ModbusOptions, device_id: str) -> DeviceReadout:
    """Open the bus of the configuration, read the device once, close the bus."""
    from .bus import make_bus
    from .device import Device

    [dev_opts] = [d for d in options.devices if d.id == device_id]
    bus = make_bus(options)
    try:
        dev = Device(dev_opts, options, bus, None)
        return readout_of(options.id, dev, await dev.read(set(dev.entries)))
    finally:
        bus.close()
