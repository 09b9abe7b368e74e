"""The M-Bus link protocol over a serial line: the I/O shell around the codec.

EN 13757-2 is master/slave and half duplex: the master sends one frame and
waits for at most one answer. This module owns the exchange rules:

* every request is answered within a window derived from the baud rate
  (:func:`response_timeout`), or it is retried (``retries`` times);
* REQ_UD2 carries the frame count bit (FCB), toggled after each successful
  exchange and kept on a retry, so a meter repeats a telegram whose answer was
  lost and moves on to the next one of a multi-telegram readout otherwise;
* a readout follows "more records follow" (DIF 0x1F) with toggled FCBs, up to
  a bound, so a meter stuck on 0x1F cannot hold the bus forever;
* a *probe* (used by the scans) listens a little after a valid answer: bytes
  that do not make one clean answer mean two meters answered at once.

The port is a :class:`zaas_edge.serialport.SerialLine` in 8E1 (reads
without a thread, cancellable; writes on one executor thread per port); the
same code serves a pty (the simulated bus) and a real adapter.
"""

from __future__ import annotations

__all__ = [
    "BAUD_RATES",
    "MAX_FRAME_BYTES",
    "response_timeout",
    "Transport",
    "PortError",
    "Target",
    "parse_secondary",
    "ProbeResult",
    "Readout",
    "MBusLink",
]

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from zaas_edge.drivers.mbus.errors import MBusError
from zaas_edge.drivers.mbus.frames import (
    ADDRESS_NETWORK_LAYER,
    Ack,
    Frame,
    FrameParser,
    LongFrame,
    application_reset,
    req_ud2,
    select_secondary,
    snd_nke,
)
from zaas_edge.drivers.mbus.header import LongHeader
from zaas_edge.drivers.mbus.telegram import ApplicationError, VariableDataTelegram, decode_frame

from zaas_edge.errors import PermanentError, TransientError
from zaas_edge.serialport import PortError, SerialLine

log = logging.getLogger("zaas_edge.drivers.mbus.link")

BAUD_RATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)
BITS_PER_CHAR = 11  # start, 8 data, even parity, stop (8E1)
ANSWER_DELAY_BITS = 330  # a slave starts its answer within 11..330 bit times (+50 ms)
SLACK_S = 0.05
MAX_FRAME_BYTES = 261  # 68 L L 68 + 255 + CS 16
ACK_BYTES = 1


def response_timeout(baudrate: int, frame_bytes: int = MAX_FRAME_BYTES, extra_s: float = 0.0) -> float:
    """Seconds to wait for an answer of up to ``frame_bytes`` bytes.

    The slave must start within 330 bit times plus 50 ms; the answer then
    takes 11 bit times per byte. So: ``(330 + 11 * frame_bytes) / baud + 0.05``
    plus ``extra_s`` for slow meters. At 2400 baud: 0.19 s for an E5, 1.38 s
    for the largest long frame; at 300 baud 10.7 s.
    """
    return (ANSWER_DELAY_BITS + BITS_PER_CHAR * frame_bytes) / baudrate + SLACK_S + extra_s


def _tx_time(baudrate: int, n: int) -> float:
    return BITS_PER_CHAR * n / baudrate


class Transport(Protocol):
    """A byte pipe to the bus: the seam between the link rules and the port
    (:class:`zaas_edge.serialport.SerialLine` in 8E1, or a script in the tests)."""

    async def write(self, data: bytes) -> None: ...

    async def read(self, timeout: float) -> bytes:
        """Bytes received so far, waiting up to ``timeout`` for the first; ``b""`` when none came."""
        ...

    def discard_input(self) -> None: ...

    async def close(self) -> None: ...


class ProbeResult(enum.Enum):
    NONE = "none"  # silence: nobody there
    SINGLE = "single"  # one clean answer
    COLLISION = "collision"  # garbled bytes: several slaves answered at once


@dataclass
class _Answer:
    frames: list[Frame] = field(default_factory=list)
    received: int = 0
    bad_frames: int = 0
    dropped: int = 0
    pending: int = 0
    last_error: str | None = None

    @property
    def garbled(self) -> bool:
        return bool(self.bad_frames or self.dropped or self.pending)


@dataclass(frozen=True)
class Readout:
    """The telegrams of one readout, merged into one when it spanned several."""

    telegram: VariableDataTelegram
    telegrams: tuple[VariableDataTelegram, ...]
    frames: tuple[bytes, ...]
    complete: bool  # False when the readout stopped at the telegram bound with more announced

    @property
    def header(self) -> LongHeader | None:
        h = self.telegram.header
        return h if isinstance(h, LongHeader) else None


Target = int | str  # a primary address, or a 16-hex-digit secondary address


def _merge(telegrams: list[VariableDataTelegram]) -> VariableDataTelegram:
    first = telegrams[0]
    if len(telegrams) == 1:
        return first
    # The empty DIF 0x1F marker that announced each following telegram is not data.
    records = tuple(r for k, t in enumerate(telegrams) for r in t.records
                    if not (k < len(telegrams) - 1 and r.dif == 0x1F and not r.data))
    return VariableDataTelegram(first.ci, first.header, records,
                                b"".join(t.manufacturer_data for t in telegrams), telegrams[-1].more_records_follow)


def parse_secondary(text: str) -> tuple[str, str | None, int | None, int | None]:
    """Split a secondary address (8 or 16 hex digits, F/FF as wildcards) for
    :func:`select_secondary`: identification, manufacturer, version, medium."""
    s = text.strip().upper()
    if len(s) not in (8, 16) or any(ch not in "0123456789ABCDEF" for ch in s):
        raise MBusError(f"secondary address must be 8 or 16 hex digits, got {text!r}")
    ident = s[:8]
    if len(s) == 8:
        return ident, None, None, None
    man_raw, ver, med = int(s[8:12], 16), int(s[12:14], 16), int(s[14:16], 16)
    from zaas_edge.drivers.mbus.header import decode_manufacturer

    manufacturer = None if man_raw == 0xFFFF else decode_manufacturer(man_raw)
    return ident, manufacturer, None if ver == 0xFF else ver, None if med == 0xFF else med


class MBusLink:
    """Master side of one M-Bus segment. One exchange at a time: callers
    serialise (the driver holds a lock; the CLI is a single task)."""

    def __init__(
        self,
        transport: Transport,
        baudrate: int,
        *,
        retries: int = 2,
        extra_timeout_s: float = 0.0,
        max_telegrams: int = 8,
        count: Callable[[str, int], None] | None = None,
    ) -> None:
        if baudrate not in BAUD_RATES:
            raise PermanentError(f"baud rate {baudrate} is not an M-Bus rate ({', '.join(map(str, BAUD_RATES))})")
        self.transport = transport
        self.baudrate = baudrate
        self.retries = retries
        self.extra_timeout_s = extra_timeout_s
        self.max_telegrams = max_telegrams
        self.counters: dict[str, int] = {}
        self._count_cb = count
        self._fcb: dict[Target, bool] = {}
        # Quiet time that ends an answer early: about two characters plus scheduling slack.
        self.quiet_s = 2 * BITS_PER_CHAR / baudrate + 0.02

    @classmethod
    async def open_serial(cls, port: str, baudrate: int, **kwargs: Any) -> MBusLink:
        transport = await SerialLine(port, baudrate, parity="E", what="M-Bus").open()
        try:
            return cls(transport, baudrate, **kwargs)
        except BaseException:
            await transport.close()
            raise

    async def close(self) -> None:
        await self.transport.close()

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        if self._count_cb is not None:
            self._count_cb(name, n)

    # -- one exchange ------------------------------------------------------------

    async def _transact(self, request: bytes, answer_bytes: int, *, settle: bool = False,
                        want: type = LongFrame) -> _Answer:
        """Send ``request`` and collect what comes back within the window.

        Returns as soon as a wanted frame is complete (after a quiet period
        when ``settle``), or when garbage is followed by silence.
        """
        t = self.transport
        t.discard_input()
        parser = FrameParser()
        self.count("requests")
        await t.write(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _tx_time(self.baudrate, len(request)) + response_timeout(
            self.baudrate, answer_bytes, self.extra_timeout_s)
        ans = _Answer()
        got_wanted = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            garbage = bool(parser.bad_frames or parser.dropped_bytes) and not parser.pending
            # After the answer (when settling) or after garbage, a short silence ends the wait.
            quiet = got_wanted or garbage
            chunk = await t.read(min(remaining, self.quiet_s) if quiet else remaining)
            if not chunk:
                if quiet:
                    break
                continue
            ans.received += len(chunk)
            for frame in parser.feed(chunk):
                if _is_master_frame(frame):
                    continue  # an adapter that echoes what the master sent
                ans.frames.append(frame)
                if isinstance(frame, want):
                    got_wanted = True
            if got_wanted and not settle:
                break
        ans.bad_frames, ans.dropped, ans.pending = parser.bad_frames, parser.dropped_bytes, parser.pending
        ans.last_error = parser.last_error
        return ans

    def _account(self, ans: _Answer) -> str:
        """Count what went wrong with an answer; return a reason for messages."""
        if not ans.received:
            self.count("timeouts")
            return "no answer"
        if ans.pending and not ans.frames:
            self.count("truncated")
            return f"truncated frame ({ans.received} bytes)"
        if ans.bad_frames:
            self.count("checksum_errors")
            return f"corrupted frame: {ans.last_error}"
        self.count("bad_frames")
        return f"unexpected answer ({ans.received} bytes)"

    async def _request(self, request: bytes, want: type, answer_bytes: int, what: str) -> Frame:
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.count("retries")
            ans = await self._transact(request, answer_bytes, want=want)
            for frame in ans.frames:
                if isinstance(frame, want):
                    if ans.bad_frames:
                        self.count("checksum_errors")
                    return frame
            reason = self._account(ans)
            log.debug("%s: %s (attempt %d)", what, reason, attempt + 1)
        raise TransientError(f"{what}: {reason} after {self.retries + 1} attempt(s) at {self.baudrate} baud")

    # -- link services -------------------------------------------------------------

    async def reset(self, target: Target) -> None:
        """SND_NKE: reset the slave's link layer (its FCB); the next REQ_UD2 gets the first telegram.

        A secondary target is selected first and reset at address 253 (which
        also deselects it on most meters: :meth:`read` selects again).
        """
        if isinstance(target, str):
            await self.select(target)
            await self._request(snd_nke(ADDRESS_NETWORK_LAYER), Ack, ACK_BYTES, f"SND_NKE to {_name(target)}")
        else:
            await self._request(snd_nke(target), Ack, ACK_BYTES, f"SND_NKE to {_name(target)}")
        self._fcb[target] = True

    async def application_reset(self, address: int, subcode: int | None = None) -> None:
        """SND_UD CI 0x50: restart the meter's readout sequence (optionally of a given telegram type)."""
        await self._request(application_reset(address, subcode), Ack, ACK_BYTES,
                            f"application reset of address {address}")

    async def select(self, secondary: str) -> None:
        """Select one slave by secondary address; it then answers at address 253."""
        ident, man, ver, med = parse_secondary(secondary)
        await self._request(select_secondary(ident, man, ver, med), Ack, ACK_BYTES, f"selection of {secondary}")

    async def req_ud2(self, target: Target) -> tuple[VariableDataTelegram, bytes]:
        """One REQ_UD2 with this target's FCB; toggles the FCB on success."""
        address = ADDRESS_NETWORK_LAYER if isinstance(target, str) else target
        fcb = self._fcb.get(target, True)
        frame = await self._request(req_ud2(address, fcb), LongFrame, MAX_FRAME_BYTES,
                                    f"REQ_UD2 to {_name(target)}")
        self._fcb[target] = not fcb
        assert isinstance(frame, LongFrame)
        if not frame.is_response:
            self.count("bad_frames")
            raise TransientError(f"REQ_UD2 to {_name(target)}: answer is not a RSP_UD (C=0x{frame.control:02X})")
        try:
            telegram = decode_frame(frame)
        except MBusError as exc:
            self.count("decode_errors")
            raise TransientError(f"{_name(target)} sent a telegram that cannot be decoded: {exc}") from None
        if isinstance(telegram, ApplicationError):
            self.count("application_errors")
            raise TransientError(f"{_name(target)} reports an application error: {telegram.message}")
        if not isinstance(telegram, VariableDataTelegram):
            raise TransientError(f"{_name(target)} answered with a {type(telegram).__name__}, "
                                 "not a variable data structure")
        return telegram, frame.to_bytes()

    async def read(self, target: Target, *, reset: bool = False) -> Readout:
        """Read every telegram of a meter (selecting it first when ``target`` is a secondary address)."""
        if reset:
            await self.reset(target)
        if isinstance(target, str):
            await self.select(target)
        telegrams: list[VariableDataTelegram] = []
        frames: list[bytes] = []
        while True:
            telegram, raw = await self.req_ud2(target)
            telegrams.append(telegram)
            frames.append(raw)
            if not telegram.more_records_follow:
                return Readout(_merge(telegrams), tuple(telegrams), tuple(frames), True)
            if len(telegrams) >= self.max_telegrams:
                self.count("readouts_cut")
                return Readout(_merge(telegrams), tuple(telegrams), tuple(frames), False)
            self.count("multi_telegram_requests")

    # -- probes (scans) -------------------------------------------------------------

    async def probe(self, request: bytes, want: type, answer_bytes: int) -> tuple[ProbeResult, Frame | None]:
        """One exchange without retries that tells silence, one answer and a collision apart."""
        ans = await self._transact(request, answer_bytes, settle=True, want=want)
        if not ans.received:
            return ProbeResult.NONE, None
        wanted = [f for f in ans.frames if isinstance(f, want)]
        if len(wanted) == 1 and len(ans.frames) == 1 and not ans.garbled:
            return ProbeResult.SINGLE, wanted[0]
        self.count("collisions")
        return ProbeResult.COLLISION, None

    async def probe_primary(self, address: int) -> ProbeResult:
        result, _ = await self.probe(snd_nke(address), Ack, ACK_BYTES)
        if result is ProbeResult.SINGLE:
            self._fcb[address] = True
        return result

    async def probe_secondary(self, mask: str) -> ProbeResult:
        ident, man, ver, med = parse_secondary(mask)
        result, _ = await self.probe(select_secondary(ident, man, ver, med), Ack, ACK_BYTES)
        return result

    async def identify(self, target: Target) -> tuple[ProbeResult, VariableDataTelegram | None]:
        """REQ_UD2 as a probe: who answers at ``target`` (253 after a selection)?"""
        address = ADDRESS_NETWORK_LAYER if isinstance(target, str) else target
        for attempt in range(self.retries + 1):
            fcb = self._fcb.get(target, True)
            result, frame = await self.probe(req_ud2(address, fcb), LongFrame, MAX_FRAME_BYTES)
            if result is ProbeResult.SINGLE:
                self._fcb[target] = not fcb
                assert isinstance(frame, LongFrame)
                try:
                    telegram = decode_frame(frame)
                except MBusError:
                    self.count("decode_errors")
                    return ProbeResult.COLLISION, None
                return result, telegram if isinstance(telegram, VariableDataTelegram) else None
            if result is ProbeResult.COLLISION:
                return result, None
            if attempt < self.retries:
                self.count("retries")
        self.count("timeouts")
        return ProbeResult.NONE, None


def _is_master_frame(frame: Frame) -> bool:
    if isinstance(frame, Ack):
        return False
    return bool(frame.control & 0x40)


def _name(target: Target) -> str:
    return f"secondary {target}" if isinstance(target, str) else f"address {target}"
