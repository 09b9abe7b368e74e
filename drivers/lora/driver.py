"""The ``lora`` driver: LoRaWAN uplinks from Semtech UDP packet forwarders, decoded on the box.

Path of one uplink: the forwarder's PUSH_DATA reaches the GWMP server
(``server.py``); each ``rxpk`` is parsed as a LoRaWAN frame; the DevAddr
names a device of the keys file; the 16-bit counter is rebuilt to 32 bits
and the MIC checked with the device's NwkSKey (a frame that fails either is
counted, and past a threshold an operator is told, once per device and
window); good copies heard by several forwarders are merged, keeping the
best RSSI; the surviving frame is
decrypted with the AppSKey and decoded by the device's payload profile into
readings, together with the RSSI, SNR and frame counter of the best copy.

Frame counters survive restarts through ``ctx.save_state`` (the store), so
a frame recorded and replayed after a reboot is still refused. The counters
of a batch of released frames are saved before the batch's readings are
emitted (one store transaction per batch, earlier than the readings' own):
a ``kill -9`` at any moment cannot leave a stored reading whose frame would
be accepted again after the restart. When the store cannot save them, the
readings still go out (losing them would be worse), the fault is counted
(``state_save_errors``) and logged once, and the save is retried.

Security events (``lora.security``) are raised at most once per device and
reason per ``bad_mic_window_s``, with the count of frames since the last
one; the counters count every frame.

OTAA devices join through ``otaa.py``: a join request heard by the
forwarders opens a session, written to the keys file, after which the
device's data frames take the path above like an ABP device's.

Every frame heard is also recorded with its verdict (accepted, duplicate,
replay, bad MIC, unknown device, ...) in a small ring in memory
(``framelog.py``), which ``zaas-edge lora frames`` reads through the control
socket (``control("frames", {"after": seq})``) while the daemon holds the port.

Per-device error counters are kept in the driver's counters as
``<device id>.<counter>`` (shown by ``zaas-edge status`` and used by
``zaas-edge lora devices``). Each device's availability is a
``zaas_edge.health.DeviceHealth`` fed by its valid uplinks: a device heard
from nothing valid for ``offline_after_s`` (since its last uplink, or since
the driver started) goes offline, and its next valid uplink brings it back.

Each device's identity (``device_identities()``) is its payload profile's
vendor and model with its DevEUI as the serial (when the keys file has it); a
forwarder's is its gateway EUI.
"""

from __future__ import annotations

__all__ = ["LoraDriver", "STATE_KEY", "gateway_device_id"]

import asyncio
import collections
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from zaas_edge.aio import wait_for
from zaas_edge.driver import DeviceIdentity, Driver, DriverContext
from zaas_edge.errors import ConfigError, PermanentError, ProtocolError, TransientError
from zaas_edge.health import Counter, DeviceHealth, DeviceStatus, Transition
from zaas_edge.model import Point, Reading, Severity
from zaas_edge.ratelimit import RateLimitedLog

from . import gwmp, lorawan
from .dedup import Deduplicated, Deduplicator, frame_key
from .fcnt import FcntStatus, FrameCounter
from .framelog import FrameLog, Verdict
from .keys import DeviceKeys, fingerprint, load_keys
from .options import LoraOptions
from .otaa import JoinHandler
from .payloads import PayloadProfile, load_profile
from .server import Forwarder, GwmpServer, warn_beyond_loopback

STATE_KEY = "fcnt"
STATE_RETRY_S = 30.0
KEYS_CHECK_EVERY_S = 5.0
# First contact: how many 16-bit rollovers to try when the counter's high bits are unknown.
FIRST_CONTACT_ROLLOVERS = 16
_DEDUP_MEMORY_S = 30.0


def gateway_device_id(driver_id: str, eui: bytes) -> str:
    """The device id under which a forwarder's own statistics are reported."""
    return f"{driver_id}-gw-{eui.hex()}"


@dataclass
class _Device:
    keys: DeviceKeys
    profile: PayloadProfile
    counter: FrameCounter
    bad_mics: collections.deque[float] = field(default_factory=collections.deque)
    bad_mics_unreported: int = 0  # bad MICs since the last lora.security event about them
    security_raised_at: dict[str, float] = field(default_factory=dict)

    @property
    def session(self) -> str:
        return fingerprint(self.keys.nwk_skey or b"")


@dataclass(frozen=True, slots=True)
class _Copy:
    frame: lorawan.DataFrame
    fcnt32: int
    rx: gwmp.RxPacket
    gateway: bytes


class LoraDriver(Driver):
    """Runs the GWMP server, answers OTAA joins and turns devices' uplinks into readings."""

    Options = LoraOptions
    options: LoraOptions

    def __init__(self, options: LoraOptions, *, clock: Any = time.monotonic) -> None:
        super().__init__(options)
        self._clock = clock
        self._devices: dict[int, _Device] = {}  # devices with a session, by DevAddr
        self._profiles: dict[str, PayloadProfile] = {}  # by device id, joined or not
        self._health: dict[str, DeviceHealth] = {}  # by device id, joined or not
        self._identities: dict[str, DeviceIdentity] = {}  # by device id: profile, DevEUI; forwarders too
        self._joins = JoinHandler(options.id, options, clock=clock)
        self._dedup: Deduplicator[_Copy] = Deduplicator(options.dedup_window_s,
                                                        max(_DEDUP_MEMORY_S, options.dedup_window_s))
        self.server: GwmpServer | None = None
        self.address: tuple[str, int] | None = None  # where the server listens, once bound
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._keys_mtime: float | None = None
        self._dirty = False
        self._save_retry_at = 0.0
        self._offline: set[bytes] = set()
        self._ctx: DriverContext | None = None
        self._faults: RateLimitedLog | None = None
        self._state_error_logged = False
        self._refused: dict[tuple[int, int, bytes], float] = {}  # frames refused lately, by frame key
        self.frames = FrameLog()  # the recent verdicts, for `zaas-edge lora frames`
        self._copies: dict[tuple[int, int, bytes], list[_Copy]] = {}  # copies of frames in their dedup window

    # -- points --------------------------------------------------------------

    def points(self) -> list[Point]:
        out = []
        for device_id, profile in self._profiles.items():
            for quantity, unit, resolution, description in profile.points:
                out.append(Point(device_id, quantity, unit, resolution, description))
            out += [Point(device_id, "rssi", "dBm", 1, "Signal strength of the best copy"),
                    Point(device_id, "snr", "dB", 0.1, "Signal to noise ratio of the best copy"),
                    Point(device_id, "fcnt", "count", 1, "Uplink frame counter (32 bits)")]
        return out

    def device_identities(self) -> dict[str, DeviceIdentity]:
        """Vendor and model of each device's profile, its DevEUI as serial; each forwarder heard, its EUI."""
        return self._identities

    # -- run -------------------------------------------------------------------

    async def run(self, ctx: DriverContext) -> None:
        self._ctx = ctx
        self._faults = RateLimitedLog(ctx.log, clock=self._clock)
        await self._load_devices(ctx, initial=True)
        await self._joins.load(ctx)
        self.server = GwmpServer(self._on_push, count=ctx.count, log=ctx.log,
                                 max_datagram=self.options.max_datagram_bytes, clock=self._clock,
                                 allowed=frozenset(bytes.fromhex(e) for e in self.options.forwarders),
                                 max_forwarders=self.options.max_forwarders,
                                 stale_after_s=self.options.forwarder_timeout_s)
        self.address = await self.server.start(self.options.bind, self.options.port)
        ctx.log.info("GWMP server listening on %s:%d for %d LoRaWAN devices", self.address[0], self.address[1],
                     len(self._profiles), extra={"fields": {"driver": self.id, "port": self.address[1]}})
        warn_beyond_loopback(self.address, ctx.log, self.id)
        if not self.options.forwarders:
            ctx.log.info("GWMP server accepts any forwarder EUI (up to %d): list yours in forwarders = [...]",
                         self.options.max_forwarders, extra={"fields": {"driver": self.id}})
        self.ready.set()
        try:
            await self._loop(ctx)
        finally:
            self.server.close()
            self.ready.clear()
            if self._dirty:
                try:
                    await asyncio.shield(self._save(ctx))
                except (asyncio.CancelledError, Exception):  # stopping: a best effort
                    pass

    async def _loop(self, ctx: DriverContext) -> None:
        next_keys_check = self._clock() + KEYS_CHECK_EVERY_S
        while True:
            deadlines = [d for d in (self._dedup.next_deadline(), self._joins.dedup.next_deadline()) if d is not None]
            deadline = min(deadlines) if deadlines else None
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - self._clock()))
            try:
                await wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            now = self._clock()
            await self._release_all(ctx, self._dedup.pop_due(now))
            for join_item in self._joins.dedup.pop_due(now):
                await self._accept_join(ctx, join_item)
            ctx.heartbeat()
            if self._dirty and self._clock() >= self._save_retry_at:
                await self._save(ctx)
            if now >= next_keys_check:
                next_keys_check = now + KEYS_CHECK_EVERY_S
                await self._load_devices(ctx, initial=False)
                self._check_forwarders(ctx, now)
                self._check_devices(ctx, now)

    # -- devices and counters --------------------------------------------------

    async def _load_devices(self, ctx: DriverContext, *, initial: bool) -> None:
        path = self.options.keys_file
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if not initial and mtime == self._keys_mtime:
            return
        try:
            keys = load_keys(path, missing_ok=True)
            profiles = {d.profile: load_profile(d.profile) for d in keys.devices}
        except ConfigError as exc:
            if initial:
                raise
            ctx.log.error("LoRaWAN keys file not reloaded, the previous devices stay in force: %s", exc,
                          extra={"fields": {"driver": self.id}})
            self._keys_mtime = mtime
            return
        if not keys.devices:
            ctx.log.warning("no LoRaWAN device in %s yet: add one with `zaas-edge lora add-device`", path,
                            extra={"fields": {"driver": self.id}})
        saved = (await ctx.load_state(STATE_KEY) or {}) if initial else {}
        devices: dict[int, _Device] = {}
        self._profiles = {k.id: profiles[k.profile] for k in keys.devices}
        forwarders = {d: i for d, i in self._identities.items() if d.startswith(f"{self.id}-gw-")}
        self._identities = forwarders | {k.id: _identity(k, profiles[k.profile]) for k in keys.devices}
        now = self._clock()
        self._health = {k.id: self._health.get(k.id) or DeviceHealth(
            k.id, silent_after_s=self.options.offline_after_s, now=now,
            counted=(Counter.UPLINKS, Counter.DECODE_ERRORS)) for k in keys.devices}
        self._joins.devices = keys.by_eui()
        for k in keys.devices:
            if k.dev_addr is None:
                continue  # an OTAA device that has not joined yet
            old = self._devices.get(k.dev_addr)
            if old is not None and old.session == fingerprint(k.nwk_skey):
                old.keys, old.profile = k, profiles[k.profile]
                devices[k.dev_addr] = old
                continue
            counter = FrameCounter(None, self.options.max_fcnt_gap)
            doc = saved.get(k.dev_addr_hex)
            if isinstance(doc, dict) and doc.get("session") == fingerprint(k.nwk_skey) \
                    and isinstance(doc.get("last"), int):
                counter = FrameCounter(doc["last"], self.options.max_fcnt_gap)
            devices[k.dev_addr] = _Device(k, profiles[k.profile], counter)
        if not initial:
            ctx.log.info("LoRaWAN keys file reloaded: %d devices", len(devices),
                         extra={"fields": {"driver": self.id}})
        self._devices = devices
        self._keys_mtime = mtime

    async def _save(self, ctx: DriverContext) -> bool:
        """Save every device's frame counter (one document, one store transaction); whether it was saved."""
        doc = {d.keys.dev_addr_hex: {"last": d.counter.last, "session": d.session, "id": d.keys.id}
               for d in self._devices.values() if d.counter.last is not None}
        try:
            await ctx.save_state(STATE_KEY, doc)
        except TransientError as exc:
            ctx.count("state_save_errors")
            if not self._state_error_logged:
                ctx.log.error("frame counters cannot be saved, replay protection will not survive a restart: %s",
                              exc, extra={"fields": {"driver": self.id}})
                self._state_error_logged = True
            # Retry later, not on every tick: the store may come back, a missing one will not.
            self._save_retry_at = self._clock() + STATE_RETRY_S
            return False
        if self._state_error_logged:
            ctx.log.info("frame counters saved again", extra={"fields": {"driver": self.id}})
            self._state_error_logged = False
        self._dirty = False
        return True

    # -- uplinks ---------------------------------------------------------------

    def _on_push(self, push: gwmp.PushData, fwd: Forwarder) -> None:
        ctx = self._ctx
        assert ctx is not None
        if fwd.eui in self._offline:
            self._offline.discard(fwd.eui)
            ctx.log.info("packet forwarder %s is back", fwd.eui_hex, extra={"fields": {"gateway": fwd.eui_hex}})
        if push.stat is not None:
            gw = gateway_device_id(self.id, fwd.eui)
            if gw not in self._identities:
                self._identities[gw] = DeviceIdentity(model="LoRaWAN packet forwarder", serial=fwd.eui_hex)
            stamp = ctx.now()
            ctx.emit([ctx.reading(q, v, u, stamp=stamp, device_id=gw) for q, v, u in push.stat.readings()]
                     + [ctx.reading("online", 1.0, "bool", stamp=stamp, device_id=gw)])
        for rx in push.rxpk:
            self._on_packet(ctx, rx, fwd)

    def _heard(self, verdict: Verdict, rx: gwmp.RxPacket, gateway: bytes, frame: lorawan.Frame | None = None,
               dev: _Device | None = None, fcnt: int | None = None, detail: str | None = None,
               copies: int | None = None) -> None:
        """One line of the frame log."""
        dev_addr = device = None
        fport = None
        if isinstance(frame, lorawan.DataFrame):
            dev_addr, fport = frame.dev_addr_hex, frame.fport
            fcnt = frame.fcnt16 if fcnt is None else fcnt
        elif isinstance(frame, lorawan.JoinRequest):
            dev_addr = frame.dev_eui.hex().upper()
            known = self._joins.devices.get(frame.dev_eui)
            device = known.id if known is not None else None
        if dev is not None:
            device = dev.keys.id
        self.frames.record(time.time(), verdict, gateway=gateway.hex().upper(), rssi=rx.rssi_dbm, snr=rx.snr_db,
                           dev_addr=dev_addr, device=device, fcnt=fcnt, fport=fport, freq_mhz=rx.freq_mhz,
                           datr=str(rx.datr), detail=detail, copies=copies)

    async def control(self, command: str, args: Mapping[str, JsonValue]) -> JsonValue:
        """``frames``: the frame log after ``after`` (a sequence number; 0 for all it holds), ``limit`` newest."""
        if command != "frames":
            raise PermanentError(f"the lora driver has no command {command!r} (it has: frames)")
        after, limit = args.get("after", 0), args.get("limit")
        if not isinstance(after, int) or after < 0 or not (limit is None or isinstance(limit, int) and limit > 0):
            raise PermanentError("frames takes 'after', a sequence number >= 0, and 'limit', a count > 0")
        return {"driver": self.id, **self.frames.answer(after, limit)}

    def _on_packet(self, ctx: DriverContext, rx: gwmp.RxPacket, fwd: Forwarder) -> None:
        assert self._faults is not None
        ctx.count("rx_packets")
        if rx.crc is gwmp.CrcStatus.BAD:
            ctx.count("rx_crc_bad")
            self._heard(Verdict.INVALID, rx, fwd.eui, detail="bad radio CRC")
            return
        try:
            frame = lorawan.parse_phy_payload(rx.payload)
        except ProtocolError as exc:
            ctx.count("frames_invalid")
            self._heard(Verdict.INVALID, rx, fwd.eui, detail=str(exc))
            self._faults.warning("frame_invalid", f"LoRaWAN frame via {fwd.eui_hex} dropped: {exc}",
                                 gateway=fwd.eui_hex)
            return
        if isinstance(frame, lorawan.JoinRequest):
            known = frame.dev_eui in self._joins.devices
            self._heard(Verdict.JOIN_REQUEST if known else Verdict.UNKNOWN_DEVICE, rx, fwd.eui, frame,
                        detail=None if known else "join request from a DevEUI not in the keys file")
            if self._joins.on_request(ctx, frame, rx, fwd.eui, self._faults):
                self._wake.set()
            return
        if not isinstance(frame, lorawan.DataFrame) or not frame.uplink:
            ctx.count("frames_ignored")
            self._heard(Verdict.IGNORED, rx, fwd.eui, frame, detail=f"{frame.mtype.name.lower()} frame")
            return
        dev = self._devices.get(frame.dev_addr)
        if dev is None:
            ctx.count("unknown_devaddr")
            self._heard(Verdict.UNKNOWN_DEVICE, rx, fwd.eui, frame)
            self._faults.warning("unknown_devaddr", (
                f"uplink from unknown DevAddr {frame.dev_addr_hex} dropped (another network's device, "
                "or one to add with `zaas-edge lora add-device`)"), dev_addr=frame.dev_addr_hex)
            return
        check = dev.counter.check(frame.fcnt16)
        if check.status is FcntStatus.DUPLICATE:
            ctx.count("duplicates")  # a late copy or a retransmission of the last accepted frame
            self._heard(Verdict.DUPLICATE, rx, fwd.eui, frame, dev, check.fcnt32, "the last accepted frame again")
            return
        key = frame_key(frame)
        if key in self._refused:
            ctx.count("duplicates")  # another gateway's copy of a frame already refused and reported
            self._heard(Verdict.DUPLICATE, rx, fwd.eui, frame, dev, detail="a copy of a frame already refused")
            return
        fcnt32 = self._verified_fcnt(dev, frame, check.fcnt32)
        if fcnt32 is None or check.status is FcntStatus.REJECTED:
            self._refuse(key)
        if fcnt32 is None:
            self._heard(Verdict.BAD_MIC, rx, fwd.eui, frame, dev)
            self._bad_mic(ctx, dev, frame)
            return
        check = dataclasses.replace(check, fcnt32=fcnt32)
        if check.status is FcntStatus.REJECTED:
            self._heard(Verdict.REPLAY, rx, fwd.eui, frame, dev, fcnt32, check.reason)
            self._replay(ctx, dev, check.fcnt32, check.reason)
            return
        if self.server is not None:  # a verified, fresh uplink: evidence for this forwarder's source
            self.server.confirm_path(fwd.eui, fwd.addr)
        heard = _Copy(frame, check.fcnt32, rx, fwd.eui)
        first = self._dedup.offer(key, heard, rx.rssi_dbm, self._clock())
        if first:
            self._copies[key] = [heard]
            self._wake.set()
        else:
            ctx.count("duplicates")
            if key in self._copies:  # logged when the window closes, once the best copy is known
                self._copies[key].append(heard)
            else:
                self._heard(Verdict.DUPLICATE, rx, fwd.eui, frame, dev, fcnt32, "a late copy")

    def _refuse(self, key: tuple[int, int, bytes]) -> None:
        now = self._clock()
        self._refused[key] = now
        if len(self._refused) > 1000:  # forgeries at a high rate: remember the recent ones only
            for old in [k for k, t in self._refused.items() if now - t > _DEDUP_MEMORY_S]:
                del self._refused[old]

    @staticmethod
    def _verified_fcnt(dev: _Device, frame: lorawan.DataFrame, fcnt32: int) -> int | None:
        """The 32-bit counter the MIC confirms, or None.

        With no counter known yet (a new device, or state lost) the high 16 bits
        are unknown: a device that has sent more than 65535 frames is found by
        trying the next rollovers, each a 2**-32 chance of a false match.
        """
        if lorawan.verify_mic(dev.keys.nwk_skey, frame, fcnt32):
            return fcnt32
        if dev.counter.last is None:
            for epoch in range(1, FIRST_CONTACT_ROLLOVERS + 1):
                guess = (epoch << 16) | frame.fcnt16
                if lorawan.verify_mic(dev.keys.nwk_skey, frame, guess):
                    return guess
        return None

    def _bad_mic(self, ctx: DriverContext, dev: _Device, frame: lorawan.DataFrame) -> None:
        ctx.count("bad_mic")
        ctx.count(f"{dev.keys.id}.bad_mic")
        now = self._clock()
        window = self.options.bad_mic_window_s
        dev.bad_mics.append(now)
        dev.bad_mics_unreported += 1
        while dev.bad_mics and dev.bad_mics[0] <= now - window:
            dev.bad_mics.popleft()
        assert self._faults is not None
        self._faults.warning(f"bad_mic.{dev.keys.id}", (
            f"uplink for {dev.keys.id} (DevAddr {frame.dev_addr_hex}) failed its MIC check: wrong keys in the "
            "keys file, a device with new session keys, or forged frames"), device=dev.keys.id)
        if len(dev.bad_mics) < self.options.bad_mic_threshold:
            return
        last = dev.security_raised_at.get("bad_mic")
        if last is not None and now - last < window:
            return  # one event per device per window (a flood of forgeries): the counters keep the total
        dev.security_raised_at["bad_mic"] = now
        count, dev.bad_mics_unreported = dev.bad_mics_unreported, 0
        dev.bad_mics.clear()
        since = f"within {window:g} s" if last is None else f"since the last report {now - last:.0f} s ago"
        ctx.event("lora.security", (
            f"{count} LoRaWAN frames with a bad MIC for {dev.keys.id} (DevAddr {frame.dev_addr_hex}) {since}: "
            "forged frames or wrong session keys"),
            Severity.WARNING, {"reason": "bad_mic", "device": dev.keys.id, "dev_addr": frame.dev_addr_hex,
                               "count": count, "window_s": window})

    def _replay(self, ctx: DriverContext, dev: _Device, fcnt32: int, reason: str) -> None:
        ctx.count("replayed")
        ctx.count(f"{dev.keys.id}.replayed")
        now = self._clock()
        last = dev.security_raised_at.get("replay")
        if last is not None and now - last < self.options.bad_mic_window_s:
            return  # one event per device per window; the counter keeps the total
        dev.security_raised_at["replay"] = now
        ctx.event("lora.security", f"LoRaWAN frame from {dev.keys.id} refused: {reason}", Severity.WARNING,
                  {"reason": "replay", "device": dev.keys.id, "dev_addr": dev.keys.dev_addr_hex,
                   "fcnt": fcnt32, "last_fcnt": dev.counter.last})

    async def _release_all(self, ctx: DriverContext, items: list[Deduplicated[_Copy]]) -> None:
        """Accept the frames whose dedup window closed; save their counters, then emit their readings."""
        batches = [b for b in (self._release(ctx, item) for item in items) if b is not None]
        if not batches:
            return
        # The counters go to the store before the readings they guard leave the driver: one write per batch.
        await self._save(ctx)
        for readings in batches:
            ctx.emit(readings)

    def _release(self, ctx: DriverContext, item: Deduplicated[_Copy]) -> list[Reading] | None:
        """Accept one frame (its counter moves on): the readings it carries, or None if refused."""
        copy = item.item
        dev = self._devices.get(copy.frame.dev_addr)
        for other in self._copies.pop(frame_key(copy.frame), []):
            if other is not copy:
                self._heard(Verdict.DUPLICATE, other.rx, other.gateway, other.frame, dev, other.fcnt32,
                            f"another gateway's copy ({copy.gateway.hex().upper()} heard it best)")
        if dev is None:
            return None
        if dev.counter.last is not None and copy.fcnt32 <= dev.counter.last:
            ctx.count("duplicates")  # a frame accepted meanwhile moved the counter past this one
            self._heard(Verdict.DUPLICATE, copy.rx, copy.gateway, copy.frame, dev, copy.fcnt32,
                        "a frame accepted meanwhile moved the counter past it")
            return None
        try:
            plain = lorawan.open_frame(copy.frame, copy.fcnt32, dev.keys.nwk_skey, dev.keys.app_skey)
        except ProtocolError:  # verified on arrival: only a keys reload in between gets here
            self._bad_mic(ctx, dev, copy.frame)
            return None
        dev.counter = dev.counter.accept(copy.fcnt32)
        self._dirty = True
        self._heard(Verdict.ACCEPTED, copy.rx, copy.gateway, copy.frame, dev, copy.fcnt32, copies=item.copies)
        ctx.count("uplinks")
        ctx.count(f"{dev.keys.id}.uplinks")
        health = self._health.get(dev.keys.id)
        if health is not None:  # a valid frame is a sign of life, whether its payload decodes or not
            health.count(Counter.UPLINKS)
            self._announce(ctx, health.success(self._clock()))
        stamp = ctx.now()
        readings: list[Reading] = []
        if copy.frame.fport not in (None, 0):
            try:
                decoded = dev.profile.decode(copy.frame.fport, plain)
            except ProtocolError as exc:
                ctx.count("payload_errors")
                ctx.count(f"{dev.keys.id}.payload_errors")
                if health is not None:
                    health.count(Counter.DECODE_ERRORS)
                assert self._faults is not None
                self._faults.warning(f"payload.{dev.keys.id}", (
                    f"payload of {dev.keys.id} (profile {dev.profile.name}) could not be decoded: {exc}"),
                    device=dev.keys.id)
            else:
                if decoded.partial:
                    ctx.count("payload_partial")
                readings += [ctx.reading(q, v, u, stamp=stamp, device_id=dev.keys.id) for q, v, u in decoded.readings]
        meta = [("fcnt", float(copy.fcnt32), "count"), ("gateways", float(item.copies), "count")]
        if copy.rx.rssi_dbm is not None:
            meta.append(("rssi", copy.rx.rssi_dbm, "dBm"))
        if copy.rx.snr_db is not None:
            meta.append(("snr", copy.rx.snr_db, "dB"))
        readings += [ctx.reading(q, v, u, stamp=stamp, device_id=dev.keys.id) for q, v, u in meta]
        return readings

    async def _accept_join(self, ctx: DriverContext, item: Any) -> None:
        assert self._faults is not None and self.server is not None
        in_use = set(self._devices) | {d.dev_addr for d in load_keys(self.options.keys_file, missing_ok=True).devices
                                       if d.dev_addr is not None}
        session = await self._joins.accept(ctx, item, self.server, in_use, self._faults)
        if session is None or session.dev_addr is None:
            return
        # The new session replaces the device's previous one (a rejoin): its counter starts again at 0.
        for addr in [a for a, d in self._devices.items() if d.keys.id == session.id]:
            del self._devices[addr]
        self._devices[session.dev_addr] = _Device(session, self._profiles[session.id],
                                                  FrameCounter(None, self.options.max_fcnt_gap))
        self._dirty = True

    def _check_forwarders(self, ctx: DriverContext, now: float) -> None:
        if self.server is None:
            return
        self._offline &= set(self.server.forwarders)  # forwarders forgotten to make room are not tracked
        for eui, fwd in self.server.forwarders.items():
            if eui not in self._offline and now - fwd.last_seen > self.options.forwarder_timeout_s:
                self._offline.add(eui)
                ctx.log.warning("packet forwarder %s silent for %.0f s", fwd.eui_hex, now - fwd.last_seen,
                                extra={"fields": {"gateway": fwd.eui_hex}})
                ctx.emit([ctx.reading("online", 0.0, "bool", device_id=gateway_device_id(self.id, eui))])

    # -- device availability -----------------------------------------------------

    def _check_devices(self, ctx: DriverContext, now: float) -> None:
        for health in self._health.values():
            self._announce(ctx, health.silence(now))

    def _announce(self, ctx: DriverContext, change: Transition | None) -> None:
        if change is not None:
            ctx.availability(change, f"LoRaWAN device {change.device_id}")

    def health(self) -> dict[str, DeviceStatus]:
        """Each provisioned device's availability, last uplink and uplink counters."""
        now = self._clock()
        addrs = {d.keys.id: d.keys.dev_addr_hex for d in self._devices.values()}
        return {i: h.status(now, {"dev_addr": addrs.get(i)}) for i, h in self._health.items()}


def _identity(keys: DeviceKeys, profile: PayloadProfile) -> DeviceIdentity:
    return DeviceIdentity(manufacturer=profile.vendor, model=profile.model, serial=keys.dev_eui_hex)
