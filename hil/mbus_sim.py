"""A simulated wired M-Bus segment on a pseudo-terminal.

The bus side of a pty pair is served by simulated meters (heat, water, gas,
electricity) that answer like real ones: SND_NKE, REQ_UD2 with the frame
count bit (a repeated FCB repeats the last telegram, a toggled one moves on),
multi-telegram readouts ending with DIF 0x1F, application reset, primary
addresses and selection by secondary address with wildcards.

Collisions are physical: every slave answering the same request drives the
line at once. M-Bus slaves signal a 0 by drawing more current, so the master
sees the wired AND of their UART bit streams; each meter starts after its
own reply delay (a few bit times), so two answers garble each other, which is
what a master's wildcard search relies on.

Faults are injected per meter, on its next data answers: ``no_answer``,
``bad_checksum``, ``truncated``.

Run ``python -m hil.mbus_sim`` to serve the default building on a pty whose
path is printed; point ``zaas-edge scan mbus --port`` at it.
"""

from __future__ import annotations

__all__ = [
    "SimMeter",
    "MBusBus",
    "MBusSimulator",
    "FAULTS",
    "default_meters",
    "wired_and",
    "main",
]

import argparse
import math
import os
import select
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from zaas_edge.drivers.mbus import (
    Ack,
    ControlFrame,
    Frame,
    FrameParser,
    LongFrame,
    LongHeader,
    RecordSpec,
    SecondarySelection,
    ShortFrame,
    decode_frame,
    rsp_ud,
)
from zaas_edge.drivers.mbus.errors import MBusError
from zaas_edge.drivers.mbus.frames import ADDRESS_BROADCAST, ADDRESS_BROADCAST_REPLY, ADDRESS_NETWORK_LAYER
from zaas_edge.drivers.mbus.records import Coding, Function

FAULTS = ("no_answer", "bad_checksum", "truncated")

Telegrams = Callable[[float], list[list[RecordSpec]]]


@dataclass
class SimMeter:
    """One simulated slave. ``telegrams(t)`` gives the records of each telegram
    of a readout at ``t`` seconds since the bus started (values move in time)."""

    name: str
    identification: str
    manufacturer: str
    version: int
    medium: int
    address: int | None
    telegrams: Telegrams
    reply_delay_bits: int = 0
    answer_delay_s: float = 0.0  # a slow meter
    status: int = 0
    # link and application state
    access_no: int = 0
    last_fcb: bool | None = None
    index: int = 0
    selected: bool = False
    faults: deque[str] = field(default_factory=deque)
    answers: int = 0

    def header(self) -> LongHeader:
        return LongHeader(access_no=self.access_no, status=self.status, signature=0,
                          identification=self.identification, manufacturer=self.manufacturer,
                          version=self.version, medium=self.medium)

    @property
    def secondary(self) -> str:
        return self.header().secondary_address

    def reset_link(self) -> None:
        self.last_fcb = None
        self.index = 0

    def rsp_ud(self, fcb: bool, t: float) -> bytes:
        """The answer to REQ_UD2: next telegram when the FCB toggled, the same again when not."""
        parts = self.telegrams(t)
        if self.last_fcb is None:
            self.index = 0
        elif fcb != self.last_fcb:
            self.index = (self.index + 1) % len(parts)
        self.index %= len(parts)
        self.last_fcb = fcb
        self.access_no = (self.access_no + 1) & 0xFF
        more = self.index < len(parts) - 1
        return rsp_ud(self.address if self.address is not None else 0, self.header(), parts[self.index],
                      more_records_follow=more)


def _uart_bits(data: bytes, delay_bits: int) -> list[int]:
    bits = [1] * delay_bits
    for b in data:
        payload = [(b >> k) & 1 for k in range(8)]
        bits += [0, *payload, sum(payload) & 1, 1]  # start, data LSB first, even parity, stop
    return bits


def _uart_decode(bits: list[int]) -> bytes:
    out = bytearray()
    i = 0
    while i < len(bits):
        if bits[i]:
            i += 1
            continue
        payload = bits[i + 1 : i + 9] + [1] * max(0, 9 - len(bits[i:]))
        out.append(sum(bit << k for k, bit in enumerate(payload[:8])))
        i += 11
    return bytes(out)


def wired_and(answers: list[tuple[bytes, int]]) -> bytes:
    """What the master receives when several slaves answer at once: the AND
    of their UART bit streams, each shifted by its reply delay in bit times."""
    if len(answers) == 1:
        return answers[0][0]
    streams = [_uart_bits(data, delay) for data, delay in answers]
    n = max(len(s) for s in streams)
    line = [1] * n
    for s in streams:
        for k, bit in enumerate(s):
            line[k] &= bit
    return _uart_decode(line)


def _corrupt(frame: bytes, fault: str) -> bytes | None:
    if fault == "no_answer":
        return None
    if fault == "bad_checksum":
        return frame[:-2] + bytes(((frame[-2] + 1) & 0xFF,)) + frame[-1:]
    if fault == "truncated":
        return frame[: max(1, len(frame) // 2)]
    raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")


class MBusBus:
    """The meters and the rules of the bus: a master frame in, the line's bytes out."""

    def __init__(self, meters: list[SimMeter], clock: Callable[[], float] = time.monotonic,
                 speed: float = 1.0) -> None:
        self.meters = meters
        self._clock = clock
        self._t0 = clock()
        self.speed = speed
        self.lock = threading.Lock()
        self.requests = 0
        self.collisions = 0

    def meter(self, name: str) -> SimMeter:
        for m in self.meters:
            if m.name == name:
                return m
        raise KeyError(name)

    def inject(self, name: str, fault: str, times: int = 1) -> None:
        """Make meter ``name`` fail its next ``times`` data answers with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        with self.lock:
            self.meter(name).faults.extend([fault] * times)

    def elapsed(self) -> float:
        return (self._clock() - self._t0) * self.speed

    def _addressed(self, address: int) -> list[SimMeter]:
        if address == ADDRESS_NETWORK_LAYER:
            return [m for m in self.meters if m.selected]
        if address in (ADDRESS_BROADCAST, ADDRESS_BROADCAST_REPLY):
            return list(self.meters)
        return [m for m in self.meters if m.address == address]

    def handle(self, frame: Frame) -> tuple[bytes, float]:
        """The bytes the master reads back after ``frame`` and the slowest answer delay."""
        with self.lock:
            self.requests += 1
            answers = self._answers(frame)
        if not answers:
            return b"", 0.0
        if len(answers) > 1:
            self.collisions += 1
        delay = max(m.answer_delay_s for m, _ in answers)
        return wired_and([(data, m.reply_delay_bits) for m, data in answers]), delay

    def _answers(self, frame: Frame) -> list[tuple[SimMeter, bytes]]:
        ack = Ack().to_bytes()
        if isinstance(frame, ShortFrame):
            function = frame.control & 0x4F
            targets = self._addressed(frame.address)
            if function == 0x40:  # SND_NKE
                for m in targets:
                    m.reset_link()
                    if frame.address == ADDRESS_NETWORK_LAYER:
                        m.selected = False
                return [] if frame.address == ADDRESS_BROADCAST else [(m, ack) for m in targets]
            if function == 0x4B:  # REQ_UD2
                out = []
                t = self.elapsed()
                for m in targets:
                    data: bytes | None = m.rsp_ud(bool(frame.control & 0x20), t)
                    if m.faults:
                        data = _corrupt(data, m.faults.popleft())
                    if data is not None:
                        m.answers += 1
                        out.append((m, data))
                return [] if frame.address == ADDRESS_BROADCAST else out
            if function == 0x4A:  # REQ_UD1: no alarm to report
                return [(m, ack) for m in targets]
            return []
        if isinstance(frame, (LongFrame, ControlFrame)) and frame.control & 0x4F == 0x43:  # SND_UD
            try:
                telegram = decode_frame(frame)
            except MBusError:
                telegram = None
            if frame.ci == 0x52 and frame.address == ADDRESS_NETWORK_LAYER:
                if not isinstance(telegram, SecondarySelection):
                    return []
                for m in self.meters:
                    m.selected = telegram.matches(m.header())
                return [(m, ack) for m in self.meters if m.selected]
            targets = self._addressed(frame.address)
            if frame.ci == 0x50:  # application reset
                for m in targets:
                    m.reset_link()
                return [(m, ack) for m in targets]
            if frame.ci == 0x51 and frame.data[:2] == b"\x01\x7a" and len(frame.data) == 3:
                for m in targets:
                    m.address = frame.data[2]
                return [(m, ack) for m in targets]
            return [(m, ack) for m in targets]
        return []


# -- the meters of the default building -----------------------------------------------


def _now_iso(t: float) -> str:
    return datetime.fromtimestamp(time.time(), UTC).replace(second=0, microsecond=0,
                                                                     tzinfo=None).isoformat()


def heat_telegrams(t: float) -> list[list[RecordSpec]]:
    """A heat meter in two telegrams: current values, then billing-date values."""
    power = 15000.0 + 3000.0 * math.sin(t / 60.0)  # W
    energy = 8_512_340.0 + 15000.0 * t / 3600.0 * 100  # Wh, sped up so it moves within a test
    volume = 1234.56 + 0.4 * t / 3600.0 * 100
    flow_t = 70.0 + 2.0 * math.sin(t / 90.0)
    return_t = 45.0 + math.sin(t / 70.0)
    first = [
        RecordSpec(b"\x04", int(energy // 10) * 10, Coding.INT32),
        RecordSpec(b"\x14", round(volume, 2), Coding.INT32),
        RecordSpec(b"\x2b", round(power), Coding.INT24),
        RecordSpec(b"\x3b", round(power / (4186 * (flow_t - return_t)) * 3.6, 3), Coding.INT24),
        RecordSpec(b"\x5a", round(flow_t, 1), Coding.INT16),
        RecordSpec(b"\x5e", round(return_t, 1), Coding.INT16),
        RecordSpec(b"\x61", round(flow_t - return_t, 2), Coding.INT16),
        RecordSpec(b"\x6d", _now_iso(t), Coding.INT32),
    ]
    second = [
        RecordSpec(b"\x04", 8_000_000, Coding.INT32, storage=1),
        RecordSpec(b"\x14", 1100.0, Coding.INT32, storage=1),
        RecordSpec(b"\x6c", "2024-12-31", Coding.INT16, storage=1),
        RecordSpec(b"\x2b", 21000, Coding.INT24, function=Function.MAXIMUM),
    ]
    return [first, second]


def water_telegrams(t: float) -> list[list[RecordSpec]]:
    flow = 0.35 + 0.2 * math.sin(t / 45.0)  # m3/h
    volume = 456.789 + flow * t / 3600.0 * 100
    return [[
        RecordSpec(b"\x13", round(volume, 3), Coding.INT32),
        RecordSpec(b"\x3b", round(flow, 3), Coding.INT24),
        RecordSpec(b"\x13", 400.0, Coding.INT32, storage=1),
        RecordSpec(b"\x6d", _now_iso(t), Coding.INT32),
    ]]


def gas_telegrams(t: float) -> list[list[RecordSpec]]:
    volume = 9876.543 + 2.5 * t / 3600.0 * 100
    return [[
        RecordSpec(b"\x13", round(volume, 3), Coding.BCD8),
        RecordSpec(b"\x3b", 2.5, Coding.INT24),
        RecordSpec(b"\x6d", _now_iso(t), Coding.INT32),
    ]]


def electricity_telegrams(t: float) -> list[list[RecordSpec]]:
    power = 42000.0 + 5000.0 * math.sin(t / 30.0)
    energy = 123_456_000.0 + power * t / 3600.0 * 100
    return [[
        RecordSpec(b"\x04", int(energy // 10) * 10, Coding.INT32),
        RecordSpec(b"\x04", int(energy * 0.6 // 10) * 10, Coding.INT32, tariff=1),
        RecordSpec(b"\x04", int(energy * 0.4 // 10) * 10, Coding.INT32, tariff=2),
        RecordSpec(b"\x2b", round(power), Coding.INT32),
        RecordSpec(b"\xfd\x48", round(230.0 + 2 * math.sin(t / 20.0), 1), Coding.INT16),
        RecordSpec(b"\xfd\x59", round(power / 3 / 230.0, 3), Coding.INT24),
    ]]


def default_meters() -> list[SimMeter]:
    """Four meters; the heat and water meters' ids share the prefix 123456, so
    a wildcard search has to resolve their collisions digit by digit."""
    return [
        SimMeter("heat", "12345678", "KAM", 0x1B, 0x04, 5, heat_telegrams, reply_delay_bits=0),
        SimMeter("water", "12345699", "SEN", 0x68, 0x07, 6, water_telegrams, reply_delay_bits=3),
        SimMeter("gas", "30112233", "ELS", 0x0A, 0x03, 7, gas_telegrams, reply_delay_bits=5),
        SimMeter("electricity", "40556677", "ABB", 0x20, 0x02, 9, electricity_telegrams, reply_delay_bits=7),
    ]


# -- the pty server ------------------------------------------------------------------------


class MBusSimulator:
    """Serves an :class:`MBusBus` on the bus end of a pty pair, in a thread.

    ``path`` is the device a master opens (``/dev/pts/N``).
    """

    def __init__(self, meters: list[SimMeter] | None = None, *, speed: float = 1.0) -> None:
        self.bus = MBusBus(meters if meters is not None else default_meters(), speed=speed)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes through as they are
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._stop = False
        self.noise = 0  # bytes received that started no master frame

    def __enter__(self) -> MBusSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def inject(self, name: str, fault: str, times: int = 1) -> None:
        self.bus.inject(name, fault, times)

    def start(self) -> MBusSimulator:
        self._thread = threading.Thread(target=self._serve, name="mbus-sim", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        parser = FrameParser()
        while not self._stop:
            ready, _, _ = select.select([self._master, self._wake_r], [], [], 1.0)
            if self._wake_r in ready or self._stop:
                break
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:  # the master side has no reader yet
                time.sleep(0.01)
                continue
            for frame in parser.feed(data):
                if isinstance(frame, Ack) or not frame.control & 0x40:
                    continue  # not from a master
                try:
                    out, delay = self.bus.handle(frame)
                except MBusError as exc:  # a meter model that cannot encode its values: stay up, say so
                    print(f"mbus_sim: cannot answer {frame}: {exc}", file=sys.stderr, flush=True)
                    continue
                if out:
                    if delay:
                        time.sleep(delay)
                    os.write(self._master, out)
            self.noise = parser.dropped_bytes

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.mbus_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=1.0, help="time factor for the meters' values")
    args = parser.parse_args(argv)
    sim = MBusSimulator(speed=args.speed).start()
    print(sim.path, flush=True)
    for m in sim.bus.meters:
        print(f"  {m.name:12s} primary {m.address}  secondary {m.secondary}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
