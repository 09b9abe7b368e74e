"""One M-Bus meter read once for ``zaas-edge read``: inside the running driver, or on a port of its own.

Inside the daemon the read takes the driver's bus lock, so it falls between
two readouts and never interleaves with one. The points are what the driver
would emit: the meter's ``points`` filter and ``energy_unit`` applied.
Nothing is emitted or stored.
"""

from __future__ import annotations

__all__ = ["device_ids", "read_alone", "read_in_driver", "readout_of"]

from typing import TYPE_CHECKING

from zaas_edge.drivers.mbus.header import LongHeader
from zaas_edge.drivers.mbus.identity import manufacturer_name
from zaas_edge.drivers.mbus.link import MBusLink, Readout
from zaas_edge.drivers.mbus.options import MBusOptions, MeterOptions
from zaas_edge.drivers.mbus.units import UNIT_FACTORS, convert

from zaas_edge.errors import PermanentError, TransientError
from zaas_edge.readout import DeviceReadout, PointReading
from zaas_edge.serialport import PortError

if TYPE_CHECKING:
    from zaas_edge.drivers.mbus.driver import MBusDriver


def device_ids(options: MBusOptions) -> list[str]:
    return [m.id for m in options.meters]


def _bus(options: MBusOptions) -> str:
    return f"{options.port} at {options.baudrate} baud"


def _about(meter: MeterOptions) -> dict[str, str]:
    return {"address": str(meter.target)}


def readout_of(driver_id: str, options: MBusOptions, meter: MeterOptions, readout: Readout) -> DeviceReadout:
    header = readout.telegram.header
    about = _about(meter)
    quality = "ok"
    if header is not None:
        quality = "error" if header.has_error else "ok"
        if header.flags:
            about["status"] = ", ".join(header.flags)
    if isinstance(header, LongHeader):
        about.update(identification=header.identification, manufacturer=header.manufacturer,
                     maker=manufacturer_name(header.manufacturer),
                     medium=header.medium_name, version=str(header.version))
    if not readout.complete:
        about["telegrams"] = f"{len(readout.telegrams)} (stopped: more records announced)"
    wanted = set(meter.points) if meter.points is not None else None
    points = []
    for key, record in readout.telegram.by_key().items():
        if wanted is not None and key not in wanted:
            continue
        if not record.is_numeric:
            if record.error is not None:
                points.append(PointReading(key, None, record.unit, "error"))
            continue
        value, unit = float(record.value), record.unit  # type: ignore[arg-type]
        if meter.energy_unit and UNIT_FACTORS.get(unit, ("",))[0] == "energy":
            value, unit = convert(value, unit, meter.energy_unit), meter.energy_unit
        points.append(PointReading(key, value, unit, quality))
    return DeviceReadout(driver_id, meter.id, _bus(options), tuple(points), about)


async def read_in_driver(driver: MBusDriver, device_id: str) -> DeviceReadout:
    """Read one meter now on the driver's open link, between two of its readouts."""
    m = driver._meters.get(device_id)  # noqa: SLF001 (the driver's own package)
    link = driver._link  # noqa: SLF001
    if m is None:
        raise PermanentError(f"driver {driver.id!r} has no meter {device_id!r}")
    if link is None:
        raise TransientError(f"driver {driver.id!r} has not opened {driver.options.port} yet (or lost it)")
    async with driver._lock:  # noqa: SLF001 (the bus lock every readout takes)
        driver._current = m  # noqa: SLF001 (its link counters go to this meter, as for a readout)
        try:
            readout = await link.read(m.options.target)
        except PortError:
            raise
        except TransientError as exc:
            return DeviceReadout(driver.id, device_id, _bus(driver.options), (), _about(m.options), str(exc))
        finally:
            driver._current = None  # noqa: SLF001
    return readout_of(driver.id, driver.options, m.options, readout)


async def read_alone(options: MBusOptions, device_id: str) -> DeviceReadout:
    """Open the configured port, read the meter once (after SND_NKE when the driver would send it), close."""
    [meter] = [m for m in options.meters if m.id == device_id]
    link = await MBusLink.open_serial(options.port, options.baudrate, retries=options.retries,
                                      extra_timeout_s=options.extra_timeout_s, max_telegrams=options.max_telegrams)
    try:
        try:
            readout = await link.read(meter.target, reset=options.reset_at_start)
        except PortError:
            raise
        except TransientError as exc:
            return DeviceReadout(options.id, device_id, _bus(options), (), _about(meter), str(exc))
    finally:
        await link.close()
    return readout_of(options.id, options, meter, readout)
