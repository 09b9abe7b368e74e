"""OTAA joins for the ``lora`` driver: from a join request heard by the forwarders to a stored session.

Path of one join: every forwarder's copy of the join request is checked
(DevEUI provisioned, AppEUI as provisioned, MIC with the AppKey, DevNonce
never used before by this device) and the copies are merged over the dedup
window, keeping the best RSSI. When the window closes the handler picks the
next JoinNonce (a per-device counter), allocates a DevAddr in the NetID,
derives NwkSKey and AppSKey, and persists first the DevNonce and JoinNonce
(``ctx.save_state``: a join request replayed after a restart is still refused)
then the session (the 0600 keys file, atomically, under its lock). Only then
does the join accept go out, as a PULL_RESP to the forwarder that heard the
best copy, for RX1: that copy's ``tmst`` plus JOIN_ACCEPT_DELAY1 (5 s), on
its frequency, at its data rate (EU868, RX1DROffset 0). A join that cannot
be persisted is refused: the device retries with a new DevNonce.

Refused join requests are counted (``unknown_dev_eui``, ``join_eui_mismatch``,
``join_bad_mic``, ``join_replayed`` and ``<id>.join_*``) and raise a
``lora.security`` event, at most one per device (or DevEUI) and reason per
``bad_mic_window_s``.
"""

from __future__ import annotations

__all__ = ["JoinHandler", "JoinCopy", "JOIN_STATE_KEY", "NONCES_KEPT"]

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from zaas_edge.driver import DriverContext
from zaas_edge.errors import ConfigError, ProtocolError, TransientError
from zaas_edge.model import Severity
from zaas_edge.ratelimit import RateLimitedLog

from . import gwmp, join, lorawan, region
from .dedup import Deduplicated, Deduplicator
from .keys import DeviceKeys, fingerprint, update_keys
from .options import LoraOptions
from .server import GwmpServer

JOIN_STATE_KEY = "joins"
NONCES_KEPT = 512  # DevNonces remembered per device (LoRaWAN 1.0.2 nonces are random, 1.0.4 ones a counter)
JOIN_LATE_COPY_S = 1.0  # a copy of a join request later than the window plus this is a replay
# The accept must reach the forwarder before RX1 opens; past this it is not sent.
ACCEPT_DEADLINE_S = region.JOIN_ACCEPT_DELAY1_US / 1e6 - 0.5
_EVENTS_REMEMBERED = 1000


@dataclass(frozen=True, slots=True)
class JoinCopy:
    frame: lorawan.JoinRequest
    device: DeviceKeys
    rx: gwmp.RxPacket
    gateway: bytes
    heard_at: float  # driver clock, first copy


class JoinHandler:
    """Checks join requests, merges their copies and answers the best one."""

    def __init__(self, driver_id: str, options: LoraOptions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.driver_id = driver_id
        self.options = options
        self.net_id = int(options.net_id, 16)
        self._clock = clock
        self.devices: dict[bytes, DeviceKeys] = {}  # OTAA devices by DevEUI
        self.state: dict[str, dict[str, Any]] = {}  # DevEUI hex -> {"nonces": [...], "join_nonce": n, "id": ...}
        self.dedup: Deduplicator[JoinCopy] = Deduplicator(options.dedup_window_s,
                                                          options.dedup_window_s + JOIN_LATE_COPY_S)
        self._events: dict[tuple[str, str], float] = {}

    async def load(self, ctx: DriverContext) -> None:
        doc = await ctx.load_state(JOIN_STATE_KEY) or {}
        self.state = {k: v for k, v in doc.items() if isinstance(v, dict)}

    # -- arrival of one copy -------------------------------------------------

    def on_request(self, ctx: DriverContext, frame: lorawan.JoinRequest, rx: gwmp.RxPacket, gateway: bytes,
                   faults: RateLimitedLog) -> bool:
        """Check one copy; True when it opened a new group (the driver's loop must wake up)."""
        ctx.count("join_requests")
        eui = frame.dev_eui.hex().upper()
        dev = self.devices.get(frame.dev_eui)
        if dev is None:
            ctx.count("unknown_dev_eui")
            faults.warning("unknown_dev_eui", (
                f"join request from unknown DevEUI {eui} refused (another network's device, or one to add with "
                "`zaas-edge lora add-device --otaa`)"), dev_eui=eui)
            self._security(ctx, eui, "unknown_dev_eui", f"join request from unknown DevEUI {eui} refused",
                           Severity.INFO, {"dev_eui": eui})
            return False
        assert dev.app_key is not None and dev.app_eui is not None
        if frame.join_eui != dev.app_eui:
            ctx.count("join_eui_mismatch")
            ctx.count(f"{dev.id}.join_refused")
            got = frame.join_eui.hex().upper()
            faults.warning(f"join_eui.{dev.id}", (
                f"join request of {dev.id} (DevEUI {eui}) names AppEUI {got}, provisioned "
                f"{dev.app_eui.hex().upper()}: refused; fix the device or "
                "`zaas-edge lora add-device --otaa --replace`"),
                device=dev.id)
            self._security(ctx, dev.id, "join_eui_mismatch", f"join request of {dev.id} with AppEUI {got} refused",
                           Severity.WARNING, {"device": dev.id, "dev_eui": eui, "app_eui": got})
            return False
        if not lorawan.verify_join_request_mic(dev.app_key, frame):
            ctx.count("join_bad_mic")
            ctx.count(f"{dev.id}.join_bad_mic")
            faults.warning(f"join_bad_mic.{dev.id}", (
                f"join request of {dev.id} (DevEUI {eui}) failed its MIC check: wrong AppKey in the keys file, "
                "or a forged request"), device=dev.id)
            self._security(ctx, dev.id, "join_bad_mic",
                           f"join request of {dev.id} (DevEUI {eui}) with a bad MIC: wrong AppKey or forged",
                           Severity.WARNING, {"device": dev.id, "dev_eui": eui})
            return False
        key = ("join", frame.dev_eui, frame.dev_nonce, frame.mic)
        now = self._clock()
        if self.dedup.remembers(key, now):  # another forwarder's copy, or a late one
            ctx.count("duplicates")
            self.dedup.offer(key, JoinCopy(frame, dev, rx, gateway, now), rx.rssi_dbm, now)
            return False
        if frame.dev_nonce in self._nonces(eui):
            ctx.count("join_replayed")
            ctx.count(f"{dev.id}.join_replayed")
            self._security(ctx, dev.id, "dev_nonce_replay", (
                f"join request of {dev.id} refused: DevNonce {frame.dev_nonce} was used before (a replayed "
                "join request)"), Severity.WARNING, {"device": dev.id, "dev_eui": eui, "dev_nonce": frame.dev_nonce})
            return False
        return self.dedup.offer(key, JoinCopy(frame, dev, rx, gateway, now), rx.rssi_dbm, now)

    def _nonces(self, eui: str) -> list[int]:
        return list(self.state.get(eui, {}).get("nonces", []))

    def _security(self, ctx: DriverContext, who: str, reason: str, text: str, severity: Severity,
                  data: dict[str, Any]) -> None:
        now = self._clock()
        last = self._events.get((who, reason))
        if last is not None and now - last < self.options.bad_mic_window_s:
            return  # one event per device and reason per window; the counters keep the total
        if len(self._events) >= _EVENTS_REMEMBERED:
            self._events.clear()
        self._events[(who, reason)] = now
        ctx.event("lora.security", text, severity, {"reason": reason, **data})

    # -- answer ------------------------------------------------------------------

    async def accept(self, ctx: DriverContext, item: Deduplicated[JoinCopy], server: GwmpServer,
                     addrs_in_use: Iterable[int], log: RateLimitedLog) -> DeviceKeys | None:
        """Open the session of the best copy, persist it, send the accept; the new keys, or None if refused."""
        copy = item.item
        dev, frame, rx = copy.device, copy.frame, copy.rx
        eui = frame.dev_eui.hex().upper()
        assert dev.app_key is not None
        if self.devices.get(frame.dev_eui) != dev:  # removed or re-keyed while the window was open
            ctx.count("join_refused")
            return None
        if frame.dev_nonce in self._nonces(eui):
            ctx.count("join_replayed")
            return None
        if rx.tmst is None:
            ctx.count("join_no_tmst")
            log.warning("join_no_tmst", f"join request of {dev.id} came without 'tmst': no RX1 time to answer at",
                        device=dev.id)
            return None
        try:
            txpk_datr = region.rx1_datr(rx.datr)
        except ProtocolError as exc:
            ctx.count("join_refused")
            log.warning("join_datr", f"join request of {dev.id} not answered: {exc}", device=dev.id)
            return None
        entry = self.state.get(eui, {})
        join_nonce = int(entry.get("join_nonce", 0)) + 1
        if join_nonce > 0xFFFFFF:
            ctx.count("join_refused")
            log.warning("join_nonce", f"{dev.id} has used every JoinNonce: give it a new AppKey", device=dev.id)
            return None
        used = set(addrs_in_use)
        while True:
            dev_addr = join.dev_addr_in(self.net_id, secrets.randbits(25))
            if dev_addr not in used:
                break
        cflist = join.encode_cflist(region.DEFAULT_EXTRA_CHANNELS_MHZ) if self.options.join_cflist else b""
        fields = join.JoinAcceptFields(join_nonce, self.net_id, dev_addr, rx1_dr_offset=0, rx2_dr=region.RX2_DR,
                                       rx_delay=1, cflist=cflist)
        nwk_skey, app_skey = join.derive_session_keys(dev.app_key, join_nonce, self.net_id, frame.dev_nonce)
        session = dev.with_session(dev_addr, nwk_skey, app_skey)

        nonces = (self._nonces(eui) + [frame.dev_nonce])[-NONCES_KEPT:]
        new_state = {**self.state, eui: {"id": dev.id, "nonces": nonces, "join_nonce": join_nonce}}
        try:
            await ctx.save_state(JOIN_STATE_KEY, new_state)
        except TransientError as exc:
            ctx.count("join_state_errors")
            log.warning("join_state", f"join of {dev.id} refused: its DevNonce cannot be saved ({exc}), so replay "
                        "protection would not survive a restart", device=dev.id)
            return None
        self.state = new_state
        try:
            await asyncio.to_thread(update_keys, self.options.keys_file, _with_session(session))
        except (OSError, ConfigError, LookupError) as exc:
            ctx.count("join_keys_errors")
            log.warning("join_keys", f"join of {dev.id} refused: the session cannot be written to "
                        f"{self.options.keys_file} ({exc})", device=dev.id)
            return None

        late = self._clock() - copy.heard_at
        if late > ACCEPT_DEADLINE_S:
            ctx.count("join_too_late")
            log.warning("join_late", f"join accept for {dev.id} not sent: ready {late:.1f} s after the request, "
                        "past RX1 (the device will try again)", device=dev.id)
            return session
        txpk = gwmp.TxPacket(
            payload=join.build_join_accept(dev.app_key, fields),
            freq_mhz=rx.freq_mhz,  # EU868 RX1: the uplink's channel
            datr=txpk_datr,
            rfch=0,
            power_dbm=region.DOWNLINK_POWER_DBM,
            tmst=(rx.tmst + region.JOIN_ACCEPT_DELAY1_US) & 0xFFFFFFFF,
            codr=rx.codr or "4/5",
            ipol=True,
        )
        gw = copy.gateway.hex().upper()
        if not server.send_downlink(copy.gateway, txpk):
            ctx.count("join_no_downlink")
            log.warning("join_no_downlink", (
                f"join accept for {dev.id} not sent: forwarder {gw} has no downlink path yet (no PULL_DATA "
                "received: check serv_port_down in its configuration)"), gateway=gw)
            return session
        ctx.count("joins_accepted")
        ctx.count(f"{dev.id}.joins")
        ctx.log.info("%s joined (DevEUI %s): DevAddr %08X, NwkSKey sha256:%s, accept via %s", dev.id, eui, dev_addr,
                     fingerprint(nwk_skey), gw, extra={"fields": {"driver": self.driver_id, "device": dev.id}})
        ctx.event("lora.join", f"{dev.id} joined with DevAddr {dev_addr:08X} via forwarder {gw}", Severity.INFO,
                  {"device": dev.id, "dev_eui": eui, "dev_addr": f"{dev_addr:08X}", "gateway": gw,
                   "copies": item.copies})
        return session


def _with_session(session: DeviceKeys) -> Callable[[list[DeviceKeys]], list[DeviceKeys]]:
    def change(devices: list[DeviceKeys]) -> list[DeviceKeys]:
        out, found = [], False
        for d in devices:
            if d.id == session.id and d.dev_eui == session.dev_eui and d.app_key == session.app_key:
                out.append(session)
                found = True
            else:
                out.append(d)
        if not found:
            raise LookupError(f"{session.id} is no longer in the keys file")
        return out

    return change
