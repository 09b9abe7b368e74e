"""The GWMP server: the UDP end the Semtech packet forwarders talk to.

It answers PUSH_DATA with PUSH_ACK and PULL_DATA with PULL_ACK (same
version, same token), sends downlinks (OTAA join accepts) as
PULL_RESP to the address a forwarder's PULL_DATA came from, counts its
TX_ACK answers, keeps track of every forwarder (gateway EUI, address,
last seen, datagram counts) and hands each parsed PUSH_DATA to the driver.
Anything that is not a valid datagram is counted and dropped; the log says so
at most once a minute per kind of fault, so a noisy neighbour cannot flood the
journal of an SD card.

GWMP has no authentication: any host that reaches the port can claim any
gateway EUI. So the server trusts a claim no further than it must:

- with an allow-list (``forwarders``), datagrams of any other EUI are
  dropped unanswered (``forwarder_refused``); without one, any EUI is
  accepted, but the table holds at most ``max_forwarders``, a new EUI
  beyond that taking the place of one silent for ``stale_after_s`` or else
  refused (``forwarders_full``), so random EUIs cannot grow state, retained
  MQTT topics or discovery entries without bound;
- the downlink path (where PULL_RESP go) is set by a forwarder's first
  PULL_DATA and moves to another source only on evidence: the path in use
  has been silent for ``stale_after_s``, or the new source's host sent a
  PUSH_DATA carrying an uplink the driver verified (good MIC, fresh
  counter: ``confirm_path``). A PULL_DATA from elsewhere is answered but
  changes nothing (``pull_path_unconfirmed``).

The wire format is ``gwmp.py`` (pure); this module only adds the socket.
"""

from __future__ import annotations

__all__ = ["GwmpServer", "Forwarder", "RateLimitedLog", "warn_beyond_loopback"]

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from zaas_edge.bind import exposure_warning
from zaas_edge.errors import ConfigError, ProtocolError, TransientError
from zaas_edge.ratelimit import RateLimitedLog

from . import gwmp

Addr = tuple[Any, ...]


@dataclass
class Forwarder:
    """One packet forwarder as this server knows it."""

    eui: bytes
    addr: Addr  # where its PUSH_DATA come from
    pull_addr: Addr | None = None  # where its PULL_DATA come from (the downlink path)
    pull_seen: float = 0.0  # last PULL_DATA from pull_addr
    pull_candidate: Addr | None = None  # a newer PULL_DATA source, not yet confirmed
    version: int = gwmp.PROTOCOL_VERSION
    first_seen: float = 0.0
    last_seen: float = 0.0
    push_data: int = 0
    pull_data: int = 0
    rx_packets: int = 0
    last_push: tuple[bytes, bytes] | None = field(default=None, repr=False)  # (token, body digest)

    @property
    def eui_hex(self) -> str:
        return self.eui.hex().upper()

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "eui": self.eui_hex, "addr": f"{self.addr[0]}:{self.addr[1]}", "version": self.version,
            "last_seen_age_s": round(now - self.last_seen, 3), "push_data": self.push_data,
            "pull_data": self.pull_data, "rx_packets": self.rx_packets,
            "downlink": None if self.pull_addr is None else _show(self.pull_addr),
        }


def warn_beyond_loopback(address: tuple[str, int], log: logging.Logger, driver_id: str) -> None:
    """Warn once, at start, when the server is bound beyond loopback, naming the address it is bound to."""
    host, port = address[0], address[1]
    text = exposure_warning("GWMP server", host, port)
    if text is not None:
        log.warning("%s (set forwarders = [...] to accept only your gateways' EUIs)", text,
                    extra={"fields": {"driver": driver_id, "bind": host, "port": port}})


class GwmpServer(asyncio.DatagramProtocol):
    """Answers forwarders and passes each PUSH_DATA to ``on_push(push, forwarder)``."""

    def __init__(
        self,
        on_push: Callable[[gwmp.PushData, Forwarder], None],
        *,
        count: Callable[[str, int], None],
        log: logging.Logger,
        max_datagram: int = 65507,
        clock: Callable[[], float] = time.monotonic,
        allowed: frozenset[bytes] = frozenset(),
        max_forwarders: int = 32,
        stale_after_s: float = 120.0,
    ) -> None:
        self._on_push = on_push
        self._count = count
        self._log = log
        self._faults = RateLimitedLog(log, clock=clock)
        self._max = max_datagram
        self._clock = clock
        self._allowed = allowed  # empty: any EUI
        self._max_forwarders = max_forwarders
        self._stale_after = stale_after_s
        self.forwarders: dict[bytes, Forwarder] = {}
        self.pending_tx: dict[bytes, bytes] = {}  # PULL_RESP token -> forwarder EUI, until its TX_ACK
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        except OSError as exc:
            if exc.errno in (98, 13):  # EADDRINUSE, EACCES: the configuration must change
                raise ConfigError(f"GWMP server cannot listen on {host}:{port}: {exc.strerror} "
                                  "(another network server or packet forwarder bridge holds the port?)") from None
            raise TransientError(f"GWMP server cannot listen on {host}:{port}: {exc.strerror}") from None
        assert self.transport is not None
        sock = self.transport.get_extra_info("sockname")
        return sock[0], sock[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an ACK to a forwarder that went away: not ours to fix.
        self._count("socket_errors", 1)

    # -- datagrams ---------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self._count("datagrams", 1)
        if len(data) > self._max:
            self._drop("datagram_oversize", f"GWMP datagram of {len(data)} bytes from {_show(addr)} "
                       f"exceeds {self._max}: dropped", addr)
            return
        try:
            msg = gwmp.parse_datagram(data)
        except ProtocolError as exc:
            self._drop(_fault_kind(exc), f"GWMP datagram from {_show(addr)} dropped: {exc}", addr)
            return
        try:
            if isinstance(msg, gwmp.PushData):
                self._push(msg, data, addr)
            elif isinstance(msg, gwmp.PullData):
                self._pull(msg, addr)
            elif isinstance(msg, gwmp.TxAck):
                self._tx_ack(msg)
            else:  # an ACK or PULL_RESP sent to a server: a misdirected or looped datagram
                self._drop("datagram_unexpected",
                           f"GWMP {msg.identifier.name} from {_show(addr)} is for a forwarder, not a server: dropped",
                           addr)
        except Exception:  # the driver's callback must never take the socket down
            self._count("internal_errors", 1)
            self._log.exception("GWMP datagram from %s could not be processed", _show(addr))

    def _drop(self, kind: str, text: str, addr: Addr) -> None:
        self._count("datagrams_dropped", 1)
        self._count(kind, 1)
        self._faults.warning(kind, text, source=_show(addr))

    def _admit(self, eui: bytes, addr: Addr) -> bool:
        """Whether datagrams of forwarder ``eui`` are taken at all (the allow-list, the cap on the table)."""
        if self._allowed and eui not in self._allowed:
            self._count("forwarder_refused", 1)
            self._faults.warning("forwarder_refused", (
                f"GWMP datagram from {_show(addr)} claims forwarder {eui.hex().upper()}, which is not in the "
                "driver's forwarders list: dropped unanswered"), source=_show(addr), gateway=eui.hex().upper())
            return False
        if eui in self.forwarders or len(self.forwarders) < self._max_forwarders:
            return True
        now = self._clock()
        oldest = min(self.forwarders.values(), key=lambda f: f.last_seen)
        if now - oldest.last_seen > self._stale_after:
            del self.forwarders[oldest.eui]
            self._count("forwarders_forgotten", 1)
            return True
        self._count("forwarders_full", 1)
        self._faults.warning("forwarders_full", (
            f"GWMP datagram from {_show(addr)} for a new forwarder {eui.hex().upper()} dropped: "
            f"{len(self.forwarders)} forwarders are known and none is silent (max_forwarders; "
            "list yours in forwarders = [...])"), source=_show(addr), gateway=eui.hex().upper())
        return False

    def _seen(self, eui: bytes, addr: Addr, version: int) -> Forwarder:
        now = self._clock()
        fwd = self.forwarders.get(eui)
        if fwd is None:
            fwd = Forwarder(eui, addr, version=version, first_seen=now)
            self.forwarders[eui] = fwd
            self._log.info("packet forwarder %s connected from %s (protocol v%d)", eui.hex().upper(), _show(addr),
                           version, extra={"fields": {"gateway": eui.hex().upper(), "source": _show(addr)}})
        elif fwd.version != version:
            fwd.version = version
        fwd.last_seen = now
        return fwd

    def _send(self, data: bytes, addr: Addr) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _push(self, msg: gwmp.PushData, raw: bytes, addr: Addr) -> None:
        if not self._admit(msg.gateway_eui, addr):
            return
        self._send(gwmp.push_ack(msg.token, msg.version), addr)
        fwd = self._seen(msg.gateway_eui, addr, msg.version)
        if fwd.addr != addr:
            self._count("forwarder_moved", 1)
            # A forwarder behind NAT or restarting changes source port: worth a line, not one per switch.
            self._faults.info(f"moved.{fwd.eui_hex}", (
                f"packet forwarder {fwd.eui_hex} now sends from {_show(addr)} (was {_show(fwd.addr)})"),
                gateway=fwd.eui_hex)
            fwd.addr = addr
        # A forwarder that missed our ACK may send the same datagram again: ack it, use it once.
        digest = hashlib.blake2s(raw[4:], digest_size=8).digest()
        if fwd.last_push == (msg.token, digest):
            self._count("datagram_repeated", 1)
            return
        fwd.last_push = (msg.token, digest)
        fwd.push_data += 1
        fwd.rx_packets += len(msg.rxpk)
        self._count("push_data", 1)
        for rejected in msg.rejected:
            kind = _fault_kind(rejected.error, prefix="rxpk")
            self._count("rxpk_dropped", 1)
            self._count(kind, 1)
            self._faults.warning(kind, f"packet from forwarder {fwd.eui_hex} dropped: {rejected.error}",
                                 gateway=fwd.eui_hex)
        self._on_push(msg, fwd)

    def _pull(self, msg: gwmp.PullData, addr: Addr) -> None:
        if not self._admit(msg.gateway_eui, addr):
            return
        self._send(gwmp.pull_ack(msg.token, msg.version), addr)
        fwd = self._seen(msg.gateway_eui, addr, msg.version)
        fwd.pull_data += 1
        self._count("pull_data", 1)
        now = self._clock()
        if fwd.pull_addr is None or addr == fwd.pull_addr:
            fwd.pull_addr, fwd.pull_seen = addr, now
            if fwd.pull_candidate == addr:
                fwd.pull_candidate = None
        elif now - fwd.pull_seen > self._stale_after:
            self._move_path(fwd, addr, f"the previous one was silent for {now - fwd.pull_seen:.0f} s")
        else:
            fwd.pull_candidate = addr
            self._count("pull_path_unconfirmed", 1)
            self._faults.warning(f"pull_path.{fwd.eui_hex}", (
                f"PULL_DATA for packet forwarder {fwd.eui_hex} from {_show(addr)}, but its downlink path is "
                f"{_show(fwd.pull_addr)} (heard {now - fwd.pull_seen:.0f} s ago): downlinks stay there until "
                "that host sends a verified uplink or the path is silent"), gateway=fwd.eui_hex,
                source=_show(addr))

    def confirm_path(self, eui: bytes, push_addr: Addr) -> None:
        """Evidence for forwarder ``eui``: a PUSH_DATA from ``push_addr`` carried an uplink the driver verified.

        A pending downlink path from the same host then becomes the path (a
        restarted forwarder's new socket); nothing else moves it.
        """
        fwd = self.forwarders.get(eui)
        if fwd is None or fwd.pull_candidate is None or fwd.pull_candidate[0] != push_addr[0]:
            return
        self._move_path(fwd, fwd.pull_candidate, f"an uplink verified from {push_addr[0]}")

    def _move_path(self, fwd: Forwarder, addr: Addr, why: str) -> None:
        self._count("pull_path_moved", 1)
        self._faults.info(f"pull_moved.{fwd.eui_hex}", (
            f"downlinks to packet forwarder {fwd.eui_hex} now go to {_show(addr)} (was "
            f"{_show(fwd.pull_addr) if fwd.pull_addr else 'none'}): {why}"), gateway=fwd.eui_hex)
        fwd.pull_addr, fwd.pull_seen, fwd.pull_candidate = addr, self._clock(), None


    # -- downlinks ----------------------------------------------------------

    def send_downlink(self, eui: bytes, txpk: gwmp.TxPacket) -> bool:
        """Ask forwarder ``eui`` to transmit ``txpk``; False when it has no downlink path (no PULL_DATA yet)."""
        fwd = self.forwarders.get(eui)
        if fwd is None or fwd.pull_addr is None or self.transport is None:
            return False
        token = secrets.token_bytes(2)
        self.pending_tx[token] = eui
        if len(self.pending_tx) > 256:  # forwarders that never answer (protocol v1): forget the oldest
            del self.pending_tx[next(iter(self.pending_tx))]
        self._send(gwmp.pull_resp(token, txpk), fwd.pull_addr)
        self._count("pull_resp", 1)
        return True

    def _tx_ack(self, msg: gwmp.TxAck) -> None:
        self._count("tx_ack", 1)
        self.pending_tx.pop(msg.token, None)
        if not msg.ok:
            eui = msg.gateway_eui.hex().upper()
            self._count("tx_ack_errors", 1)
            self._faults.warning(f"tx_ack.{msg.error}", (
                f"packet forwarder {eui} did not transmit a downlink: {msg.error} (TOO_LATE: the answer came "
                "after its time; TOO_EARLY, COLLISION_PACKET, TX_FREQ, TX_POWER, GPS_UNLOCKED: see the "
                "forwarder's log)"),
                gateway=eui)


def _fault_kind(exc: ProtocolError, prefix: str = "datagram") -> str:
    """A stable counter name for the reason a datagram or packet was refused."""
    text = str(exc)
    if "JSON" in text:
        return f"{prefix}_bad_json"
    if "base64" in text:
        return f"{prefix}_bad_base64"
    if "version" in text:
        return f"{prefix}_bad_version"
    if "too short" in text or "unexpected bytes" in text or "'size'" in text:
        return f"{prefix}_bad_length"
    return f"{prefix}_invalid"


def _show(addr: Addr) -> str:
    return f"{addr[0]}:{addr[1]}" if addr else "?"
