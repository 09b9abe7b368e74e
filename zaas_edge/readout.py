"""One device read once, on a technician's request: the value every bus's ``read`` gives back.

``zaas-edge read DEVICE`` reads a Modbus device, an M-Bus meter or a Linky
either through the running daemon (the driver holds the port; it reads
between its own polls, ``Driver.control("read", ...)``) or by opening the
port itself when no daemon runs. Both ways end in a :class:`DeviceReadout`,
so the command prints one shape whatever the bus and whichever way it went.

A read can outlast one control request (an M-Bus readout at 300 baud, a
Linky's next frame), and the daemon must not hold a request open that long:
:class:`PendingReads` starts the read in the background and answers
``{"pending": true}`` until it is done; the CLI asks again with ``again``.
"""

from __future__ import annotations

__all__ = ["PointReading", "DeviceReadout", "PendingReads", "READ_WAIT_S"]

import asyncio
import math
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from zaas_edge.errors import PermanentError, ProtocolError

READ_WAIT_S = 3.0  # longest a control request waits for a read (the control socket allows 5 s)


@dataclass(frozen=True, slots=True)
class PointReading:
    """One point of a readout: a number, a text (a serial number) or nothing (``quality`` says why)."""

    quantity: str
    value: float | str | None
    unit: str = ""
    quality: str = "ok"  # ok, stale, error, estimated; missing (a sentinel), unread (no answer for it)

    def to_json(self) -> dict[str, JsonValue]:
        value: JsonValue = self.value
        if isinstance(self.value, float) and not math.isfinite(self.value):
            value = None  # JSON has no NaN: a non-finite number is no value
        return {"quantity": self.quantity, "value": value, "unit": self.unit, "quality": self.quality}


@dataclass(frozen=True, slots=True)
class DeviceReadout:
    """What one read of one device gave: its points, or why there are none (``error``)."""

    driver: str
    device: str
    bus: str  # where it was read: "tcp 127.0.0.1:502", "/dev/ttyUSB0 at 2400 baud"
    points: tuple[PointReading, ...] = ()
    about: Mapping[str, str] = field(default_factory=dict)  # profile, unit, manufacturer, identification...
    error: str | None = None
    via: str = "port"  # "daemon" when the running daemon's driver read it

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, JsonValue]:
        return {"driver": self.driver, "device": self.device, "bus": self.bus, "via": self.via,
                "about": dict(self.about), "error": self.error, "points": [p.to_json() for p in self.points]}

    @classmethod
    def from_json(cls, doc: JsonValue) -> DeviceReadout:
        """The readout a daemon sent; ``ProtocolError`` for anything else."""
        try:
            assert isinstance(doc, dict)
            points = []
            for p in doc.get("points") or []:
                assert isinstance(p, dict)
                value = p.get("value")
                assert value is None or isinstance(value, (int, float, str)) and not isinstance(value, bool)
                points.append(PointReading(str(p["quantity"]), float(value) if isinstance(value, int) else value,
                                           str(p.get("unit") or ""), str(p.get("quality") or "ok")))
            about = doc.get("about") or {}
            assert isinstance(about, dict)
            error = doc.get("error")
            return cls(str(doc["driver"]), str(doc["device"]), str(doc["bus"]), tuple(points),
                       {str(k): str(v) for k, v in about.items()}, None if error is None else str(error),
                       str(doc.get("via") or "daemon"))
        except (AssertionError, KeyError, TypeError, ValueError):
            raise ProtocolError("the daemon sent a readout this command cannot read (a different version?)") from None


ReadDevice = Callable[[str], Awaitable[DeviceReadout]]


class PendingReads:
    """The reads a running driver does for the CLI, one per device at a time, longer than a request.

    ``answer`` is the driver's ``control("read", args)``: ``args`` has ``device``
    and, when asking after a pending read, ``again: true``. A read already
    running for the device is joined rather than doubled.
    """

    def __init__(self, wait_s: float = READ_WAIT_S) -> None:
        self.wait_s = wait_s
        self._tasks: dict[str, asyncio.Task[DeviceReadout]] = {}

    async def answer(self, args: Mapping[str, JsonValue], known: Collection[str], read: ReadDevice) -> JsonValue:
        device = args.get("device")
        if not isinstance(device, str) or not device:
            raise PermanentError("read needs a 'device' id")
        if device not in known:
            raise PermanentError(f"no device {device!r} here (devices: {', '.join(sorted(known)) or 'none'})")
        task = self._tasks.get(device)
        if task is not None and task.done() and args.get("again") is not True:
            task = None  # a result nobody collected: read afresh
        if task is None:
            task = asyncio.get_running_loop().create_task(read(device), name=f"read.{device}")
            # A technician gone (Ctrl-C) leaves a failed read nobody collects: no "never retrieved" log for it.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._tasks[device] = task
        done, _ = await asyncio.wait({task}, timeout=self.wait_s)
        if not done:
            return {"pending": True}
        del self._tasks[device]
        readout = task.result()  # a read's error is the command's error, one line
        return {"pending": False, "readout": {**readout.to_json(), "via": "daemon"}}

    def cancel(self) -> None:
        """The driver stops: its reads stop with it."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
