"""The ``mbus`` driver: reads the meters of one wired M-Bus segment on a schedule.

Each meter has its own interval; deadlines advance from the previous
deadline on the monotonic clock, so readouts do not drift, and a missed one
is skipped rather than caught up. One readout at a time holds the bus (a
lock), shared with :meth:`MBusDriver.poll_now`.

Each meter's readouts feed its ``zaas_edge.health.DeviceHealth``: a meter
that fails ``offline_after`` readouts in a row goes offline (the alarm
``device.<meter id>.offline`` and a ``device.availability`` event, through
``ctx.availability``); the next good readout clears it. Counters:
``requests``, ``timeouts``, ``checksum_errors``, ``truncated``, ``retries``,
``collisions``, ``polls``, ``failed_polls``; the same link counters are kept
per meter as well, with its readout latency, for ``health()`` (shown by
``zaas-edge status``).
Each meter's identity (maker, serial, version, medium: ``identity.py``) comes
from the long header of its latest readout the layout guard accepted, for
``device_identities()``; nothing of it is saved, the first readout after a
start tells it again.
Readings are keyed ``<meter id>/<record key>`` in the codec's units (Wh,
m3, W, degC, ...) unless the meter asks for another ``energy_unit``.
"""

from __future__ import annotations

__all__ = ["MBusDriver"]

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue
from zaas_edge.drivers.mbus.header import LongHeader
from zaas_edge.drivers.mbus.identity import meter_identity
from zaas_edge.drivers.mbus.layout import CONFIRM, LayoutGuard, Verdict
from zaas_edge.drivers.mbus.link import MBusLink, PortError, Readout
from zaas_edge.drivers.mbus.options import MBusOptions, MeterOptions
from zaas_edge.drivers.mbus.units import UNIT_FACTORS, convert

from zaas_edge.driver import DeviceIdentity, Driver, DriverContext
from zaas_edge.errors import TransientError
from zaas_edge.health import Counter, DeviceHealth, DeviceStatus, Transition
from zaas_edge.model import Point, Quality, Reading, Severity
from zaas_edge.readout import PendingReads

HEARTBEAT_EVERY_S = 5.0
# Link counters kept per meter too (the link counts under the same names).
_PER_METER = {str(c): c for c in (Counter.REQUESTS, Counter.TIMEOUTS, Counter.CHECKSUM_ERRORS, Counter.TRUNCATED,
                                  Counter.RETRIES, Counter.COLLISIONS)}


@dataclass
class _Meter:
    options: MeterOptions
    health: DeviceHealth
    due: float = 0.0  # monotonic deadline of the next readout
    secondary: str | None = None  # last identity seen, to notice a swapped meter
    status: int | None = None
    units: dict[str, str] = field(default_factory=dict)  # record key -> unit: the meter's layout
    layout: LayoutGuard = field(init=False)

    def __post_init__(self) -> None:
        self.layout = LayoutGuard(self.units)  # the same dict: what is loaded at start is the known layout

    def report(self, now: float) -> DeviceStatus:
        return self.health.status(now, {"address": str(self.options.target)})


class MBusDriver(Driver):
    Options = MBusOptions
    options: MBusOptions

    def __init__(self, options: MBusOptions) -> None:  # type: ignore[override]
        super().__init__(options)
        now = time.monotonic()
        self._meters = {m.id: _Meter(m, DeviceHealth(m.id, offline_after=options.offline_after, now=now,
                                                     counted=_PER_METER.values()))
                        for m in options.meters}
        self._lock = asyncio.Lock()
        self._link: MBusLink | None = None
        self._ctx: DriverContext | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._current: _Meter | None = None  # the meter whose readout holds the bus
        self._reads = PendingReads()  # zaas-edge read METER, between two readouts
        self._identities: dict[str, DeviceIdentity] = {}  # by meter id, from accepted readouts' headers

    # -- declared points --------------------------------------------------------------

    def points(self) -> list[Point]:
        """Points seen in readouts (and remembered across restarts), plus the configured filters."""
        out: dict[str, Point] = {}
        for m in self._meters.values():
            for key, unit in m.units.items():
                out[f"{m.options.id}/{key}"] = Point(m.options.id, key, unit)
            for key in m.options.points or ():
                out.setdefault(f"{m.options.id}/{key}", Point(m.options.id, key, ""))
        return list(out.values())

    def device_identities(self) -> dict[str, DeviceIdentity]:
        """Maker, serial, version and medium of each meter, from its latest accepted readout."""
        return self._identities

    # -- running ------------------------------------------------------------------------

    async def run(self, ctx: DriverContext) -> None:
        self._ctx = ctx
        await self._load_points(ctx)
        o = self.options
        link = await MBusLink.open_serial(o.port, o.baudrate, retries=o.retries, extra_timeout_s=o.extra_timeout_s,
                                          max_telegrams=o.max_telegrams, count=self._counter(ctx))
        self._link = link
        ctx.log.info("M-Bus segment %s open at %d baud, %d meter(s)", o.port, o.baudrate, len(self._meters),
                     extra={"fields": {"driver": self.id, "port": o.port}})
        try:
            if o.reset_at_start:
                await self._reset_all(link, ctx)
            now = time.monotonic()
            for m in self._meters.values():
                m.due = now
            while True:
                meter = min(self._meters.values(), key=lambda m: m.due)
                wait = meter.due - time.monotonic()
                if wait > 0:
                    ctx.heartbeat()
                    await asyncio.sleep(min(wait, HEARTBEAT_EVERY_S))
                    continue
                await self._poll(meter)
                meter.due += meter.options.interval_s
                now = time.monotonic()
                if meter.due <= now:
                    ctx.count("overruns")
                    meter.due = now + meter.options.interval_s
        finally:
            self._link = None
            await link.close()

    def _counter(self, ctx: DriverContext) -> Callable[[str, int], None]:
        """Link counters go to the context, and to the meter being read (one readout holds the
        bus at a time); every exchange is also a sign of life (a readout with retries at
        300 baud can outlast the heartbeat timeout)."""

        def count(name: str, n: int = 1) -> None:
            ctx.count(name, n)
            meter = self._current
            if meter is not None and name in _PER_METER:
                meter.health.count(_PER_METER[name], n)
            if name == "requests":
                ctx.heartbeat()

        return count

    async def _reset_all(self, link: MBusLink, ctx: DriverContext) -> None:
        """SND_NKE to each meter: some answer REQ_UD2 only after it, others start mid-readout without it."""
        for m in self._meters.values():
            async with self._lock:
                self._current = m
                try:
                    await link.reset(m.options.target)
                except PortError:
                    raise
                except TransientError as exc:
                    ctx.count("reset_failures")
                    ctx.log.warning("meter %s: %s", m.options.id, exc,
                                    extra={"fields": {"driver": self.id, "meter": m.options.id}})
                finally:
                    self._current = None

    async def poll_now(self) -> None:
        if self._link is None:
            raise TransientError(f"driver {self.id!r} is not running: its M-Bus port is not open")
        for m in list(self._meters.values()):
            await self._poll(m)

    async def control(self, command: str, args: Mapping[str, JsonValue]) -> JsonValue:
        """``read``: one meter read now on the open link, between two readouts, for ``zaas-edge read``."""
        if command != "read":
            return await super().control(command, args)
        from zaas_edge.drivers.mbus.readout import read_in_driver

        return await self._reads.answer(args, self._meters, lambda meter: read_in_driver(self, meter))

    async def _poll(self, meter: _Meter) -> None:
        link, ctx = self._link, self._ctx
        if link is None or ctx is None:
            raise TransientError(f"driver {self.id!r} is not running")
        async with self._lock:
            ctx.count("polls")
            self._current = meter
            t0 = time.monotonic()
            try:
                readout = await link.read(meter.options.target)
            except PortError:
                raise
            except TransientError as exc:
                self._failed(ctx, meter, str(exc))
                return
            finally:
                self._current = None
        self._succeeded(ctx, meter, readout, time.monotonic() - t0)

    def health(self) -> dict[str, DeviceStatus]:
        """Per-meter counters, latency and availability, for ``zaas-edge status``."""
        now = time.monotonic()
        return {mid: m.report(now) for mid, m in self._meters.items()}

    # -- availability -----------------------------------------------------------------

    def _failed(self, ctx: DriverContext, meter: _Meter, reason: str) -> None:
        ctx.count("failed_polls")
        mid = meter.options.id
        ctx.log.warning("meter %s: %s", mid, reason, extra={"fields": {"driver": self.id, "meter": mid}})
        self._announce(ctx, meter, meter.health.failure(time.monotonic(), reason))

    def _announce(self, ctx: DriverContext, meter: _Meter, change: Transition | None) -> None:
        if change is not None:
            ctx.availability(change, f"M-Bus meter {meter.options.id}", {"target": str(meter.options.target)})

    def _succeeded(self, ctx: DriverContext, meter: _Meter, readout: Readout, latency_s: float) -> None:
        mid = meter.options.id
        self._announce(ctx, meter, meter.health.success(time.monotonic(), latency_s))
        if not readout.complete:
            ctx.event("mbus.readout_cut", f"meter {mid} still announced more records after "
                      f"{len(readout.telegrams)} telegrams; the rest was not read", Severity.WARNING,
                      {"meter": mid, "telegrams": len(readout.telegrams)})
        header = readout.telegram.header
        quality = Quality.OK
        if header is not None:
            if header.has_error:
                quality = Quality.ERROR
            if meter.status is not None and header.status != meter.status:
                ctx.event("mbus.meter_status", f"meter {mid} status is now {', '.join(header.flags) or 'ok'}",
                          Severity.WARNING if header.has_error else Severity.INFO,
                          {"meter": mid, "status": header.status, "flags": list(header.flags)})
            meter.status = header.status
        replaced = False
        if isinstance(header, LongHeader):
            if meter.secondary is not None and header.secondary_address != meter.secondary:
                replaced = True
                ctx.event("mbus.meter_changed", f"meter {mid} now answers as {header.secondary_address} "
                          f"(was {meter.secondary}): replaced or readdressed?", Severity.WARNING,
                          {"meter": mid, "secondary": header.secondary_address, "previous": meter.secondary})
            meter.secondary = header.secondary_address
        readings, layout = self._readings(ctx, meter, readout, quality)
        unknown = meter.layout.unknown(layout)
        verdict = meter.layout.check(layout, replaced=replaced)
        if verdict is Verdict.REFUSED:
            # Checksum-valid records the meter never had: believe none of this readout.
            ctx.count("layout_mismatches")
            meter.health.count(Counter.BAD_RESPONSES)
            if meter.layout.pending == 1:
                ctx.log.warning("meter %s sent records it does not have (%s): readout refused; a layout "
                                "seen %d times in a row is adopted", mid, ", ".join(unknown[:5]), CONFIRM,
                                extra={"fields": {"driver": self.id, "meter": mid}})
            return
        if verdict is Verdict.CHANGED:
            ctx.event("mbus.layout_changed", f"meter {mid} now sends {', '.join(unknown[:5])}"
                      f"{' …' if len(unknown) > 5 else ''}: its records changed (reconfigured?)", Severity.WARNING,
                      {"meter": mid, "new": unknown, "records": len(layout)})
        if isinstance(header, LongHeader):
            identity = meter_identity(header)
            if self._identities.get(mid) != identity:
                self._identities[mid] = identity  # replaced, never changed in place: services hold the dict
        ctx.emit(readings)
        if verdict is not Verdict.OK:
            task = asyncio.get_running_loop().create_task(self._save_points(ctx))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _readings(self, ctx: DriverContext, meter: _Meter, readout: Readout,
                  quality: Quality) -> tuple[list[Reading], dict[str, str]]:
        """The readout's readings and its layout (record key to unit, after the point filter)."""
        opts = meter.options
        wanted = set(opts.points) if opts.points is not None else None
        stamp = ctx.now()
        out: list[Reading] = []
        layout: dict[str, str] = {}
        for key, record in readout.telegram.by_key().items():
            if wanted is not None and key not in wanted:
                continue
            if not record.is_numeric:
                if record.error is not None:
                    ctx.count("invalid_values")
                continue
            value, unit = float(record.value), record.unit  # type: ignore[arg-type]
            if opts.energy_unit and UNIT_FACTORS.get(unit, ("",))[0] == "energy":
                value, unit = convert(value, unit, opts.energy_unit), opts.energy_unit
            out.append(ctx.reading(key, value, unit, quality, stamp=stamp, device_id=opts.id))
            layout[key] = unit
        return out, layout

    # -- remembered points -----------------------------------------------------------

    async def _load_points(self, ctx: DriverContext) -> None:
        try:
            doc = await ctx.load_state("points")
        except TransientError:
            return
        for mid, units in (doc or {}).items():
            if mid in self._meters and isinstance(units, dict):
                self._meters[mid].units.update({str(k): str(v) for k, v in units.items()})

    async def _save_points(self, ctx: DriverContext) -> None:
        doc: dict[str, Any] = {mid: dict(m.units) for mid, m in self._meters.items()}
        try:
            await ctx.save_state("points", doc)
        except TransientError as exc:
            ctx.log.debug("points not saved: %s", exc)
