"""The ``ble`` driver: RuuviTag and BTHome v2 sensors heard in BLE adverts.

Adverts come from an ``AdvertSource`` (bleak in production, a replay in
tests). Each advert from a configured device (by MAC) is decoded: RuuviTag
data format 5 from manufacturer data 0x0499, BTHome v2 from service data
0xFCD2, decrypted with the device's bindkey when it has one. A device
repeats each measurement in many adverts; a repeat (same Ruuvi measurement
sequence, same BTHome packet id, a replayed encrypted counter) is dropped,
and a device yields at most one set of readings per ``min_interval_s``.

Adverts from devices not configured are counted and ignored, unless
``accept_unknown`` is set. When the adapter is missing or disappears the
driver logs it once, raises the alarm ``ble.<driver id>.adapter`` and keeps
retrying on the gateway's backoff; the rest of the daemon carries on.

Each device's availability is a ``zaas_edge.health.DeviceHealth`` fed by its
valid adverts (throttled ones included: the device is there). A
device with no valid advert for ``offline_after_s`` (its own, or the
driver's) goes offline, through ``ctx.availability``; the next valid advert
brings it back. An advert that does not decode is counted, not a sign of life.

With ``ZAAS_EDGE_BLE_REPLAY=FILE`` in the daemon's environment the driver
plays recorded adverts from FILE instead of scanning (``replay.py``): a seam
for tests and demos on machines with no radio, announced by a warning at
every start so it cannot pass for a real scan.
"""

from __future__ import annotations

__all__ = ["BleDriver", "decode_advert"]

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from zaas_edge.backoff import Backoff
from zaas_edge.driver import Driver, DriverContext
from zaas_edge.errors import ProtocolError, TransientError
from zaas_edge.health import Counter, DeviceHealth, DeviceStatus, Transition
from zaas_edge.model import Severity
from zaas_edge.ratelimit import RateLimitedLog
from zaas_edge.secrets import read_secret

from .bthome import BTHOME_UUID, BTHomeDevice
from .options import BleDevice, BleOptions
from .replay import REPLAY_ENV, ReplaySource, replay_path
from .ruuvi import RUUVI_COMPANY_ID, decode_df5
from .scanner import Advert, AdvertSource, BleakSource


@dataclass
class _Known:
    id: str
    mac: str
    bthome: BTHomeDevice
    health: DeviceHealth
    last_ruuvi_seq: int | None = None
    last_emit: float | None = None
    adverts: int = 0


@dataclass(frozen=True, slots=True)
class _Decoded:
    kind: str  # "ruuvi" or "bthome"
    readings: tuple[tuple[str, float, str], ...]
    events: tuple[Any, ...] = ()
    sequence: int | None = None
    repeat: bool = False


def decode_advert(advert: Advert, bthome: BTHomeDevice | None = None) -> _Decoded | None:
    """Readings of one advert (None: not a RuuviTag or BTHome advert). ``ProtocolError`` when broken."""
    ruuvi = advert.manufacturer_data.get(RUUVI_COMPANY_ID)
    if ruuvi is not None:
        df5 = decode_df5(ruuvi)
        return _Decoded("ruuvi", tuple(df5.readings()), sequence=df5.measurement_sequence)
    data = advert.service_data.get(BTHOME_UUID)
    if data is not None:
        device = bthome or BTHomeDevice(advert.mac)
        result = device.decode(data, advert.at)
        if result is None:
            return _Decoded("bthome", (), repeat=True)
        return _Decoded("bthome", result.readings, result.events, result.packet_id)
    return None


@dataclass
class _Stats:
    unknown: set[str] = field(default_factory=set)


class BleDriver(Driver):
    """Scans, decodes, throttles and emits."""

    Options = BleOptions
    options: BleOptions
    SILENCE_CHECK_S = 5.0  # how often devices are checked for silence (tests shorten it)

    def __init__(self, options: BleOptions, *, source: AdvertSource | None = None,
                 clock: Any = time.monotonic) -> None:
        super().__init__(options)
        # The replay seam is chosen here, read when run() starts (a bad file is a start-up error).
        self.replay_file = replay_path() if source is None else None
        self.source: AdvertSource | None = source
        if source is None and self.replay_file is None:
            self.source = BleakSource(options.adapter, options.scanning_mode)
        self._clock = clock
        self._known: dict[str, _Known] = {}
        self._stats = _Stats()
        self.state = "starting"  # "scanning" or "unavailable": logged once per change
        self.scanning = asyncio.Event()

    async def run(self, ctx: DriverContext) -> None:
        faults = RateLimitedLog(ctx.log, clock=self._clock)
        self._known = {d.mac: self._device(d) for d in self.options.devices}
        if self.replay_file is not None:
            ctx.log.warning("replaying recorded BLE adverts from %s instead of scanning %s (%s is set: "
                            "a test and demo seam, unset it on a real gateway)", self.replay_file,
                            self.options.adapter, REPLAY_ENV,
                            extra={"fields": {"driver": self.id, "replay": str(self.replay_file)}})
            if self.source is None:
                self.source = ReplaySource(self.replay_file, then="hold")
        source = self.source
        assert source is not None
        watch = asyncio.get_running_loop().create_task(self._watch_silence(ctx), name=f"ble.{self.id}.silence")
        try:
            await self._scan(ctx, source, faults)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _scan(self, ctx: DriverContext, source: AdvertSource, faults: RateLimitedLog) -> None:
        backoff = Backoff(self.options.retry_initial_s, self.options.retry_max_s)
        alarm = f"ble.{self.id}.adapter"
        while True:
            try:
                async for advert in source.stream():
                    if self.state != "scanning":
                        if self.state == "unavailable":
                            ctx.alarm(alarm, False, f"Bluetooth adapter {self.options.adapter} is back")
                        ctx.log.info("scanning for BLE adverts on %s (%d devices configured)", self.options.adapter,
                                     len(self.options.devices), extra={"fields": {"driver": self.id}})
                        self.state = "scanning"
                        self.scanning.set()
                        backoff.reset()
                    self._on_advert(ctx, advert, faults)
                raise TransientError(f"BLE advert source on {self.options.adapter} ended")
            except TransientError as exc:
                ctx.count("adapter_errors")
                self.scanning.clear()
                if self.state != "unavailable":
                    ctx.alarm(alarm, True, f"{exc}; retrying until it is back", Severity.WARNING,
                              {"adapter": self.options.adapter})  # the journal's one line about it
                    self.state = "unavailable"
            ctx.heartbeat()
            await asyncio.sleep(backoff.next())

    async def _watch_silence(self, ctx: DriverContext) -> None:
        """Adverts drive everything else; silence needs a clock of its own."""
        while True:
            await asyncio.sleep(self.SILENCE_CHECK_S)
            now = self._clock()
            for dev in list(self._known.values()):
                self._announce(ctx, dev.health.silence(now))

    def _announce(self, ctx: DriverContext, change: Transition | None) -> None:
        if change is not None:
            ctx.availability(change, f"BLE sensor {change.device_id}")

    def _health(self, device_id: str, offline_after_s: float | None = None) -> DeviceHealth:
        return DeviceHealth(device_id, silent_after_s=offline_after_s or self.options.offline_after_s,
                            now=self._clock(), counted=(Counter.DECODE_ERRORS,))

    def _device(self, d: BleDevice) -> _Known:
        bindkey = read_secret(d.bindkey_file) if d.bindkey_file else None
        return _Known(d.id, d.mac, BTHomeDevice(d.mac, bindkey), self._health(d.id, d.offline_after_s))

    def health(self) -> dict[str, DeviceStatus]:
        """Each device's availability, time since its last valid advert and decode errors."""
        now = self._clock()
        return {dev.id: dev.health.status(now, {"mac": dev.mac}) for dev in self._known.values()}

    def _on_advert(self, ctx: DriverContext, advert: Advert, faults: RateLimitedLog) -> None:
        ctx.count("adverts")
        mac = advert.mac.upper()
        dev = self._known.get(mac)
        if dev is None:
            relevant = RUUVI_COMPANY_ID in advert.manufacturer_data or BTHOME_UUID in advert.service_data
            if not (self.options.accept_unknown and relevant):
                ctx.count("adverts_unknown")
                if mac not in self._stats.unknown and len(self._stats.unknown) < 10000:
                    self._stats.unknown.add(mac)
                    ctx.count("devices_unknown")
                return
            device_id = "ble-" + mac.replace(":", "").lower()
            dev = _Known(device_id, mac, BTHomeDevice(mac), self._health(device_id))
            self._known[mac] = dev
            ctx.log.info("new BLE sensor %s reported as %s (accept_unknown)", mac, dev.id,
                         extra={"fields": {"driver": self.id, "device": dev.id}})
        try:
            decoded = decode_advert(advert, dev.bthome)
        except ProtocolError as exc:
            ctx.count("decode_errors")
            ctx.count(f"{dev.id}.decode_errors")
            dev.health.count(Counter.DECODE_ERRORS)
            faults.warning(f"decode.{dev.id}", f"advert of {dev.id} ({mac}) dropped: {exc}", device=dev.id)
            return
        if decoded is None:
            ctx.count("adverts_other")  # the device's other adverts (names, iBeacon, ...)
            return
        dev.adverts += 1
        if not decoded.repeat:  # a BTHome repeat may be a replay: only new packets vouch for the device
            self._announce(ctx, dev.health.success(self._clock()))
        if decoded.repeat or (decoded.kind == "ruuvi" and decoded.sequence is not None
                              and decoded.sequence == dev.last_ruuvi_seq):
            ctx.count("duplicates")
            return
        if decoded.kind == "ruuvi":
            dev.last_ruuvi_seq = decoded.sequence
        for event in decoded.events:
            ctx.event("ble.button", f"{dev.id}: {event.key} {event.event_type}", Severity.INFO,
                      {"device": dev.id, "key": event.key, "type": event.event_type})
        now = self._clock()
        if dev.last_emit is not None and now - dev.last_emit < self.options.min_interval_s:
            ctx.count("throttled")
            return
        if not decoded.readings:
            return
        dev.last_emit = now
        stamp = ctx.now()
        readings = [ctx.reading(q, v, u, stamp=stamp, device_id=dev.id) for q, v, u in decoded.readings]
        if advert.rssi is not None:
            readings.append(ctx.reading("rssi", float(advert.rssi), "dBm", stamp=stamp, device_id=dev.id))
        ctx.count(f"{dev.id}.adverts_used")
        ctx.emit(readings)
