"""A Linky read once for ``zaas-edge read``: its next complete frame, heard by the driver or on the port.

A Linky is not asked, it talks (a frame every 1 to 2 s): reading it "now"
means the next complete frame. Inside the daemon the driver hands the frame
it decodes anyway to the waiting read (:meth:`FrameWaiters.frame`); with no
daemon the command listens on the port itself. The points are the frame's
measurements and the tariff state, as the driver names them. Nothing is stored.
"""

from __future__ import annotations

__all__ = ["FrameWaiters", "device_ids", "read_alone", "readout_of", "TIC_READ_TIMEOUT_S"]

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from zaas_edge.drivers.tic.meaning import Interpretation, interpret
from zaas_edge.drivers.tic.options import TicOptions
from zaas_edge.drivers.tic.state_points import state_values
from zaas_edge.drivers.tic.tariff import tariff_state

from zaas_edge.aio import wait_for
from zaas_edge.errors import TransientError
from zaas_edge.readout import DeviceReadout, PointReading

TIC_READ_TIMEOUT_S = 10.0  # no complete frame for this long: the meter is not talking
PARIS = ZoneInfo("Europe/Paris")


def device_ids(options: TicOptions) -> list[str]:
    """The driver id stands for its meter; ``<driver id>-<meter id>`` too once the meter id is configured."""
    from zaas_edge.drivers.tic.driver import meter_device_id

    ids = [options.id]
    if options.meter_id:
        ids.append(meter_device_id(options.id, options.meter_id) or options.id)
    return ids


def readout_of(driver_id: str, device_id: str, port: str, interp: Interpretation) -> DeviceReadout:
    points = [PointReading(q, m.value, m.unit) for q, m in interp.measurements.items()]
    state = tariff_state(interp, datetime.now(PARIS), None)
    points += [PointReading(q, v, u) for q, v, u in state_values(state, interp)]
    about = {"mode": interp.mode.name.lower() if interp.mode else "?", "contract": state.contract.value}
    if interp.meter_id:
        about["meter_id"] = interp.meter_id
    return DeviceReadout(driver_id, device_id, port, tuple(points), about)


class FrameWaiters:
    """Reads waiting inside the driver for its next complete frame."""

    def __init__(self) -> None:
        self._waiting: list[asyncio.Future[tuple[str, Interpretation]]] = []

    def frame(self, device_id: str, interp: Interpretation) -> None:
        """The driver decoded a frame of ``device_id``'s meter: a complete one answers every waiting read."""
        if not interp.complete or not self._waiting:
            return
        for fut in self._waiting:
            if not fut.done():
                fut.set_result((device_id, interp))
        self._waiting.clear()

    async def next(self, driver_id: str, port: str, timeout: float = TIC_READ_TIMEOUT_S) -> DeviceReadout:
        fut: asyncio.Future[tuple[str, Interpretation]] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        try:
            device_id, interp = await wait_for(fut, timeout)
        except TimeoutError:
            raise TransientError(f"no complete TIC frame on {port} for {timeout:g} s") from None
        finally:
            if fut in self._waiting:
                self._waiting.remove(fut)
        return readout_of(driver_id, device_id, port, interp)


async def read_alone(options: TicOptions, device_id: str) -> DeviceReadout:
    """Listen on the configured port (detecting the mode when ``auto``) until one complete frame."""
    from zaas_edge.drivers.tic.cli import listen_frames
    from zaas_edge.drivers.tic.driver import meter_device_id

    mode, _, frames, _ = await listen_frames(options.port, options.mode, 1, TIC_READ_TIMEOUT_S, options.detect_s)
    interp = interpret(frames[-1], mode)
    device = meter_device_id(options.id, interp.meter_id) if interp.meter_id else None
    return readout_of(options.id, device or device_id, options.port, interp)
