"""The ``tic`` driver: a Linky (or "bleu") meter's customer port, read over a serial dongle.

The I/O shell around the pure codec: the port (:mod:`.port`) gives bytes,
:class:`~zaas_edge.drivers.tic.codec.TicDecoder` frames, :func:`interpret`
their meaning, :func:`tariff_state` the tariff in force and
:class:`AlarmTracker` the meter's two alarms. Per frame the driver:

- turns every measurement into a reading of the meter's device
  ``<driver id>-<meter id>`` (the meter id is ``ADSC``/``ADCO``), stamped with
  the meter's horodate when the value carries one (daily maxima, load-curve
  points) and its clock is not degraded, else with the frame's time;
- publishes the tariff state as enumerated points (:mod:`.state_points`) and
  each change as an event ``tariff.<field>``;
- raises and clears ``device.<device>.over_power`` and
  ``device.<device>.breaker_open`` once each (alarms, synced first);
- hands the readings to the hub in one batch: those the store keeps
  (:mod:`.throttle`: on change for indexes and states, beyond a deadband
  or at ``store_interval_s`` for the rest) and the others as *live*
  readings, which the rules engine, MQTT and the latest values still see.

**Mode.** ``historic`` (1200 Bd) or ``standard`` (9600 Bd), both 7E1, or
``auto``: listen ``detect_s`` at 9600 Bd, then at 1200 Bd, and keep the speed
at which the groups' checksums pass (:func:`detect_mode`).

**Availability.** One :class:`~zaas_edge.health.DeviceHealth` per meter,
fed by every frame that holds a valid group: a meter with no valid frame for
``offline_after_s`` goes offline (``device.availability``, the alarm
``device.<device>.offline``), its next frame brings it back. A meter known
from ``meter_id`` can go offline before its first frame; without it the
device exists from its first frame.

**A dongle unplugged.** A port that fails or disappears is closed and
reopened on the gateway's backoff (``retry_initial_s`` to ``retry_max_s``),
logged once per outage; the meter goes offline meanwhile by silence, and
comes back with its first frame once the path is back.
"""

from __future__ import annotations

__all__ = ["TicDriver"]

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import JsonValue
from zaas_edge.drivers.tic.alarms import AlarmKind, AlarmTracker, AlarmTransition
from zaas_edge.drivers.tic.codec import Frame, Horodate, Mode, TicDecoder
from zaas_edge.drivers.tic.labels import points as measure_points
from zaas_edge.drivers.tic.meaning import Interpretation, interpret
from zaas_edge.drivers.tic.options import TicOptions
from zaas_edge.drivers.tic.port import detect_speed, open_tic_port
from zaas_edge.drivers.tic.readout import FrameWaiters
from zaas_edge.drivers.tic.state_points import is_exact, state_points, state_values
from zaas_edge.drivers.tic.tariff import TariffState, changes, tariff_state
from zaas_edge.drivers.tic.throttle import Policy, StoreThrottle, policy_table

from zaas_edge.backoff import Backoff
from zaas_edge.driver import Driver, DriverContext
from zaas_edge.errors import TransientError
from zaas_edge.health import Counter, DeviceHealth, DeviceStatus, Transition
from zaas_edge.model import Point, Reading, Severity, Stamp
from zaas_edge.readout import PendingReads
from zaas_edge.serialport import SerialLine

PARIS = ZoneInfo("Europe/Paris")
READ_WAIT_S = 1.0  # longest wait for bytes before the loop heartbeats again
_NOT_ID = re.compile(r"[^a-z0-9]")
_SEVERITY = {AlarmKind.OVER_POWER: Severity.WARNING, AlarmKind.BREAKER_OPEN: Severity.ERROR}
_NOTABLE = {"peak_notice", "peak_active", "tempo_tomorrow", "tempo_today"}


def meter_device_id(driver_id: str, meter_id: str) -> str | None:
    """``<driver id>-<meter id>``: lower case, letters and digits only, within the id length."""
    clean = _NOT_ID.sub("", meter_id.lower())
    return f"{driver_id}-{clean}"[:63] if clean else None


def horodate_stamp(stamp: Stamp, horodate: Horodate | None) -> Stamp:
    """The time a dated value belongs to: the meter's horodate, unless its clock is degraded or the
    season is not given. The meter's clock is a real clock, so the stamp is marked synchronised;
    ``mono_ns`` stays the frame's (when the value was heard)."""
    if horodate is None or horodate.degraded or horodate.time.tzinfo is None:
        return stamp
    return Stamp(int(horodate.time.timestamp()) * 1_000_000_000, stamp.mono_ns, stamp.boot_id, True)


@dataclass
class _Meter:
    meter_id: str
    device_id: str
    health: DeviceHealth
    tracker: AlarmTracker = field(default_factory=AlarmTracker)
    tariff: TariffState | None = None
    labels: set[str] = field(default_factory=set)
    dated: dict[str, tuple[str, float]] = field(default_factory=dict)  # quantity -> (horodate, value) stored
    restored: set[str] = field(default_factory=set)  # alarms active before a restart, not yet confirmed


class TicDriver(Driver):
    """Listens to one TIC line; one meter on it (a dongle moved to another meter makes a new device)."""

    Options = TicOptions
    options: TicOptions
    SILENCE_CHECK_S = 1.0  # how often meters are checked for silence

    def __init__(self, options: TicOptions, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(options)
        self._clock = clock
        self._started = clock()
        self.mode: Mode | None = None if options.mode == "auto" else (
            Mode.HISTORIC if options.mode == "historic" else Mode.STANDARD)
        self.port_state = "starting"  # "open" or "unavailable": logged once per change
        self._meters: dict[str, _Meter] = {}
        self._current: _Meter | None = None
        self._warned_unheard = False
        self._background: set[asyncio.Task[None]] = set()
        self._reads = PendingReads()  # zaas-edge read: the next complete frame
        self._frames = FrameWaiters()
        default = Policy(options.store_interval_s, options.deadband_pct, options.deadband_abs)
        self.throttle = StoreThrottle(policy_table(default, options.points))
        if options.meter_id:
            self._current = self._meter(options.meter_id)

    # -- declared points and health ----------------------------------------------------

    def points(self) -> list[Point]:
        """Each meter's tariff-state points and the measurements its frames carried."""
        out: list[Point] = []
        for m in self._meters.values():
            out += state_points(m.device_id)
            if m.labels:
                out += measure_points(m.device_id, m.labels)
        return out

    def health(self) -> dict[str, DeviceStatus]:
        now = self._clock()
        details = {"port": self.options.port, "mode": self.mode.name.lower() if self.mode else "detecting"}
        return {m.device_id: m.health.status(now, {**details, "meter_id": m.meter_id}) for m in self._meters.values()}

    def _meter(self, meter_id: str) -> _Meter:
        device = meter_device_id(self.id, meter_id) or self.id
        known = self._meters.get(device)
        if known is None:
            health = DeviceHealth(device, silent_after_s=self.options.offline_after_s, now=self._started,
                                  counted=(Counter.UPLINKS, Counter.CHECKSUM_ERRORS, Counter.DECODE_ERRORS,
                                           Counter.TRUNCATED))
            known = self._meters[device] = _Meter(meter_id, device, health)
        return known

    async def control(self, command: str, args: Mapping[str, JsonValue]) -> JsonValue:
        """``read``: the meter's next complete frame, for ``zaas-edge read`` (the driver id names its meter)."""
        if command != "read":
            return await super().control(command, args)
        known = {self.id, *self._meters}
        return await self._reads.answer(args, known, lambda _: self._frames.next(self.id, self.options.port))

    # -- running -------------------------------------------------------------------------

    async def run(self, ctx: DriverContext) -> None:
        await self._load_alarms(ctx)
        watch = asyncio.get_running_loop().create_task(self._watch_silence(ctx), name=f"tic.{self.id}.silence")
        backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)
        try:
            while True:
                try:
                    await self._session(ctx, backoff)
                except TransientError as exc:
                    ctx.count("link_errors")
                    if self.port_state != "unavailable":
                        ctx.log.warning("%s; retrying until it is back", exc,
                                        extra={"fields": {"driver": self.id, "port": self.options.port}})
                        self.port_state = "unavailable"
                ctx.heartbeat()
                await asyncio.sleep(backoff.next())
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _session(self, ctx: DriverContext, backoff: Backoff) -> None:
        """Open the port (detecting the mode), then decode frames until it fails."""
        port = await open_tic_port(self.options.port, (self.mode or Mode.STANDARD).value)
        try:
            mode, heard = await self._detect(ctx, port) if self.options.mode == "auto" else (self.mode, b"")
            assert mode is not None
            self.mode = mode
            if self.port_state != "open":
                ctx.log.info("TIC port %s open: %s mode, %d Bd 7E1", self.options.port, mode.name.lower(),
                             mode.value, extra={"fields": {"driver": self.id, "port": self.options.port}})
                self.port_state = "open"
            decoder = TicDecoder(mode)
            # NULs heard at a wrong speed while detecting are not line errors: count from what is decoded
            stripped, nul = 0, port.nul_bytes - heard.count(0)
            data = heard
            while True:
                for frame in decoder.feed(data):
                    if self._on_frame(ctx, frame, mode):
                        backoff.reset()
                bad = (decoder.counters.parity_stripped - stripped) + (port.nul_bytes - nul)
                if bad:
                    ctx.count("parity_errors", bad)
                    stripped, nul = decoder.counters.parity_stripped, port.nul_bytes
                ctx.heartbeat()
                data = await port.read(READ_WAIT_S)
        finally:
            await port.close()

    async def _detect(self, ctx: DriverContext, port: SerialLine) -> tuple[Mode, bytes]:
        """9600 Bd first, then 1200: the speed at which groups pass their checksums."""
        found = await detect_speed(port, self.options.detect_s, ctx.heartbeat, self._clock)
        if found is None:
            ctx.count("detect_failures")
            raise TransientError(f"no TIC frames on {self.options.port} at 9600 or 1200 Bd (7E1): "
                                 "check the wiring (I1, I2) and that the meter's TIC output is on")
        return found

    async def _watch_silence(self, ctx: DriverContext) -> None:
        """Frames drive everything else; silence needs a clock of its own."""
        while True:
            await asyncio.sleep(self.SILENCE_CHECK_S)
            now = self._clock()
            for m in list(self._meters.values()):
                self._announce(ctx, m, m.health.silence(now))
            if not self._meters and not self._warned_unheard and now - self._started >= self.options.offline_after_s:
                self._warned_unheard = True
                ctx.log.warning("no valid TIC frame on %s for %.0f s", self.options.port, now - self._started,
                                extra={"fields": {"driver": self.id, "port": self.options.port}})

    def _announce(self, ctx: DriverContext, meter: _Meter, change: Transition | None) -> None:
        if change is not None:
            ctx.availability(change, f"Linky {meter.meter_id}", {"meter_id": meter.meter_id,
                                                                  "port": self.options.port})

    # -- one frame -------------------------------------------------------------------------

    def _count_frame(self, ctx: DriverContext, frame: Frame, meter: _Meter | None) -> None:
        ctx.count("frames")
        checksum = sum(1 for b in frame.bad_groups if b.reason == "checksum")
        shape = len(frame.bad_groups) - checksum
        for name, n in ((Counter.CHECKSUM_ERRORS, checksum), (Counter.DECODE_ERRORS, shape),
                        (Counter.TRUNCATED, 0 if frame.complete else 1)):
            if n:
                ctx.count(str(name), n)
                if meter is not None:
                    meter.health.count(name, n)

    def _on_frame(self, ctx: DriverContext, frame: Frame, mode: Mode) -> bool:
        """Readings, state and alarms of one frame; True when it held a valid group."""
        if not frame.groups:
            self._count_frame(ctx, frame, self._current)
            return False
        interp = interpret(frame, mode)
        meter = self._identify(ctx, interp)
        self._count_frame(ctx, frame, meter)
        if meter is None:
            ctx.count("frames_unidentified")  # no ADSC/ADCO seen yet: nothing to file them under
            return True
        if interp.rejected:
            ctx.count("invalid_values", len(interp.rejected))
        now = self._clock()
        meter.health.count(Counter.UPLINKS)
        self._announce(ctx, meter, meter.health.success(now))
        meter.labels |= interp.labels
        self._frames.frame(meter.device_id, interp)
        stamp = ctx.now()
        stored, live = self._measurements(ctx, meter, interp, stamp, now)
        self._tariff(ctx, meter, interp, stamp, now, stored, live)
        self._alarms(ctx, meter, interp)
        ctx.emit(stored, live=live)
        return True

    def _identify(self, ctx: DriverContext, interp: Interpretation) -> _Meter | None:
        current = self._current
        if interp.meter_id is None or (current is not None and interp.meter_id == current.meter_id):
            return current
        if meter_device_id(self.id, interp.meter_id) is None:
            ctx.count("invalid_values")
            return current
        meter = self._meter(interp.meter_id)
        if current is not None and meter is not current:
            ctx.event("tic.meter_changed", f"TIC port {self.options.port} now hears meter {meter.meter_id} "
                      f"(was {current.meter_id}): dongle moved, or meter replaced?", Severity.WARNING,
                      {"meter_id": meter.meter_id, "previous": current.meter_id, "device": meter.device_id})
            self.throttle.forget()
        self._current = meter
        return meter

    def _split(self, reading: Reading, quantity: str, now: float, stored: list[Reading], live: list[Reading]) -> None:
        keep = self.throttle.keep(reading.point, quantity, reading.value, reading.quality.value, now,
                                  exact=is_exact(quantity))
        (stored if keep else live).append(reading)

    def _measurements(self, ctx: DriverContext, meter: _Meter, interp: Interpretation, stamp: Stamp,
                      now: float) -> tuple[list[Reading], list[Reading]]:
        stored: list[Reading] = []
        live: list[Reading] = []
        for quantity, m in interp.measurements.items():
            if m.horodate is None:
                r = ctx.reading(quantity, m.value, m.unit, stamp=stamp, device_id=meter.device_id)
                self._split(r, quantity, now, stored, live)
                continue
            # A dated value (a daily maximum, a load-curve point) is one fact: stored once per
            # horodate and value, never repeated at an interval under the same time.
            r = ctx.reading(quantity, m.value, m.unit, stamp=horodate_stamp(stamp, m.horodate),
                            device_id=meter.device_id)
            key = (m.horodate.raw, m.value)
            if meter.dated.get(quantity) != key:
                meter.dated[quantity] = key
                stored.append(r)
            else:
                live.append(r)
        return stored, live

    def _tariff(self, ctx: DriverContext, meter: _Meter, interp: Interpretation, stamp: Stamp, now: float,
                stored: list[Reading], live: list[Reading]) -> None:
        local = datetime.fromtimestamp(stamp.wall_ns / 1e9, PARIS)
        state = tariff_state(interp, local, meter.tariff)
        for change in changes(meter.tariff, state):
            severity = Severity.NOTICE if change.field in _NOTABLE else Severity.INFO
            ctx.event(change.kind, f"Linky {meter.meter_id}: {change.field} {change.old or '-'} -> {change.new}",
                      severity, {"device": meter.device_id, "meter_id": meter.meter_id, "field": change.field,
                                 "old": change.old, "new": change.new})
        meter.tariff = state
        for quantity, value, unit in state_values(state, interp):
            r = ctx.reading(quantity, value, unit, stamp=stamp, device_id=meter.device_id)
            self._split(r, quantity, now, stored, live)

    # -- alarms ----------------------------------------------------------------------------

    def _alarms(self, ctx: DriverContext, meter: _Meter, interp: Interpretation) -> None:
        transitions = meter.tracker.update(interp)
        for t in transitions:
            if t.active and t.kind.value in meter.restored:
                meter.restored.discard(t.kind.value)  # raised before the restart, still on: raised once
                continue
            self._alarm(ctx, meter, t)
        if meter.restored and self._can_tell(interp):
            # Raised before the driver restarted and not seen again: it ended meanwhile.
            for kind in sorted(meter.restored - {k.value for k in meter.tracker.active}):
                self._alarm(ctx, meter, AlarmTransition(AlarmKind(kind), False,
                                                        "no longer reported by the meter (since the driver restarted)"))
            meter.restored.clear()
        if transitions:
            self._save_alarms(ctx)

    @staticmethod
    def _can_tell(interp: Interpretation) -> bool:
        return interp.status is not None if interp.mode is Mode.STANDARD else interp.complete and not interp.short

    def _alarm(self, ctx: DriverContext, meter: _Meter, t: AlarmTransition) -> None:
        data: dict[str, Any] = {"device": meter.device_id, "meter_id": meter.meter_id, **dict(t.values)}
        ctx.alarm(f"device.{meter.device_id}.{t.kind.value}", t.active, f"Linky {meter.meter_id}: {t.reason}",
                  _SEVERITY[t.kind], data)
        ctx.log.log(30 if t.active else 20, "Linky %s: %s %s: %s", meter.meter_id, t.kind.value,
                    "raised" if t.active else "cleared", t.reason,
                    extra={"fields": {"driver": self.id, "device": meter.device_id}})

    async def _load_alarms(self, ctx: DriverContext) -> None:
        try:
            doc = await ctx.load_state("alarms")
        except TransientError:
            return
        for meter_id, kinds in (doc or {}).items():
            if isinstance(kinds, list) and meter_device_id(self.id, str(meter_id)) is not None:
                valid = {str(k) for k in kinds if k in {a.value for a in AlarmKind}}
                if valid:
                    self._meter(str(meter_id)).restored |= valid

    def _save_alarms(self, ctx: DriverContext) -> None:
        doc: dict[str, Any] = {m.meter_id: sorted(k.value for k in m.tracker.active) for m in self._meters.values()}

        async def save() -> None:
            try:
                await ctx.save_state("alarms", doc)
            except TransientError as exc:
                ctx.log.debug("alarm state not saved: %s", exc)

        task = asyncio.get_running_loop().create_task(save())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
