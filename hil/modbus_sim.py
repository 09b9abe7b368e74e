"""Simulated Modbus meters: any profile's registers, served over TCP, RTU on a pty, or RTU over TCP.

A ``SimMeter`` fills a sparse register map from a profile, encoding realistic
values (voltages near 230 V, a few amps, energy counters that only grow) with
``decode.encode_value``, and keeps ``served``: the values as the driver will
decode them, for tests to compare against. A ``SimBus`` holds the meters of
one bus by unit id, the injected faults and a log of every request (unit,
function, address, count, when it arrived, when it was answered), so tests
can check the driver's bus discipline from the device side.

Servers use pymodbus's framers and request PDUs (so the bytes are what a real
meter sends) over asyncio transports of our own, which lets faults be injected
where they happen on a real bus: a unit that never answers, exception 02 on
any request touching an address range, a corrupted CRC, a slow answer. A
*slow* unit (``Faults.slow_units``) answers after its delay without holding
the line: requests to other units meanwhile are answered at once, and the
late answer lands in whatever exchange is on the line by then, as a slow
meter's does on RS-485. (``unit_delay_s`` instead holds the connection while
it waits, as a slow gateway does.)

From a shell, for commissioning practice::

    python -m hil.modbus_sim --profile eastron-sdm630 --units 1-5 --port 0

prints ``port=<n>`` (or ``pty=<path>`` with ``--transport rtu``) and serves
until interrupted.
"""

from __future__ import annotations

__all__ = [
    "SimMeter",
    "SimBus",
    "Faults",
    "RequestRecord",
    "serve_tcp",
    "serve_rtu_over_tcp",
    "serve_rtu_pty",
    "SimServer",
    "SimProcess",
    "parse_units",
]

import argparse
import asyncio
import math
import os
import re
import subprocess
import sys
import time
import tty
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zaas_edge.drivers.modbus.decode import DataType, encode_bits, encode_string, encode_value
from zaas_edge.drivers.modbus.options import parse_units as _parse_units
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.profile import Profile, ProfilePoint, get_profile, load_profile

from hil.procs import stop_process

_FC_TABLE = {1: Table.COILS, 5: Table.COILS, 15: Table.COILS, 2: Table.DISCRETE_INPUTS,
             3: Table.HOLDING, 6: Table.HOLDING, 16: Table.HOLDING, 23: Table.HOLDING, 22: Table.HOLDING,
             4: Table.INPUT}
_ILLEGAL_ADDRESS = 2
_ENERGY = {"Wh", "kWh", "MWh", "varh", "kvarh", "VAh", "kVAh"}
# Scale factors a SunSpec device would choose, by unit.
_SF_BY_UNIT = {"A": -2, "V": -1, "W": 0, "VA": 0, "var": 0, "Hz": -2, "": 0, "kWh": 0, "degC": -1}


def parse_units(text: str) -> list[int]:
    """``"1-5,9"`` as ``[1, 2, 3, 4, 5, 9]``; the simulator also serves 0 and 248..255."""
    return _parse_units(text, 0, 255)


def _phase(name: str) -> float:
    return (zlib.crc32(name.encode()) % 628) / 100.0


def realistic_value(p: ProfilePoint, unit_id: int, t: float) -> float:
    """A plausible value for a point at time ``t`` (seconds): moves smoothly, counters only grow."""
    q, u = p.quantity, p.unit
    w = math.sin(2 * math.pi * t / 30.0 + _phase(q) + unit_id)
    if u in _ENERGY:
        rate = 0.002 if "reactive" not in q else 0.0005
        return 1000.0 * unit_id + 10.0 * (_phase(q) + 1) + rate * t
    if u == "V":
        return 230.0 + 2.0 * w
    if u == "A":
        return 8.0 + 2.0 * w
    if u == "W":
        return 1500.0 + 300.0 * w
    if u == "VA":
        return 1700.0 + 300.0 * w
    if u == "var":
        return 200.0 + 50.0 * w
    if u == "Hz":
        return 50.0 + 0.02 * w
    if u == "degC":
        return 35.0 + w
    if q.startswith("pf"):
        return 0.95 + 0.02 * w
    if p.type in (DataType.UINT16, DataType.INT16, DataType.UINT32, DataType.INT32):
        return 4.0  # an operating state or a code
    return 1.0 + 0.1 * w


@dataclass(frozen=True, slots=True)
class RequestRecord:
    unit: int
    function: int
    address: int
    count: int
    t_rx: float  # time.monotonic() when the whole request had arrived
    t_tx: float | None  # when the answer was sent (None: no answer)
    outcome: str  # "ok", "exception 02", "silent", "crc", "late", ...


@dataclass
class Faults:
    """What the simulated bus does wrong, changeable while it runs."""

    silent_units: set[int] = field(default_factory=set)  # never answer
    crc_units: set[int] = field(default_factory=set)  # answer with a corrupted CRC (RTU)
    # (table or None for any, first, end): a request overlapping [first, end) gets exception 02
    illegal_ranges: list[tuple[Table | None, int, int]] = field(default_factory=list)
    delay_s: float = 0.0  # every answer
    unit_delay_s: dict[int, float] = field(default_factory=dict)  # holding the connection meanwhile
    slow_units: dict[int, float] = field(default_factory=dict)  # answer this late, the line free meanwhile
    ignore_writes: set[int] = field(default_factory=set)  # acknowledge writes but do not store them
    exception_units: dict[int, int] = field(default_factory=dict)  # unit -> exception code for every request

    def clear(self) -> None:
        self.silent_units.clear()
        self.crc_units.clear()
        self.illegal_ranges.clear()
        self.delay_s = 0.0
        self.unit_delay_s.clear()
        self.slow_units.clear()
        self.ignore_writes.clear()
        self.exception_units.clear()


class SimMeter:
    """One device's registers, filled from its profile."""

    def __init__(self, profile: Profile, unit: int, *, shift: int = 0, t: float = 0.0) -> None:
        self.profile = profile
        self.unit = unit
        self.shift = shift
        self.tables: dict[Table, dict[int, int]] = {t_: {} for t_ in Table}
        self.served: dict[str, float | None] = {}
        self.served_text: dict[str, str] = {}
        self.pinned: set[str] = set()  # written by a client: no longer moved by update()
        self._sf: dict[int, int] = {}
        self._sf_table: dict[int, Table] = {}
        for p in profile.points:
            if p.scale_factor is not None:
                self._sf.setdefault(p.scale_factor, _SF_BY_UNIT.get(p.unit, 0))
                self._sf_table[p.scale_factor] = profile.table_of(p)
        self._write_detection()
        self.update(t)

    def _write_detection(self) -> None:
        det = self.profile.detection
        if det is None:
            return
        table = _table(det.table)
        base = det.candidates[0] + self.shift
        for i, r in enumerate(encode_string(det.marker, det.marker_registers)):
            self.tables[table][base + i] = r
        for e in det.expect:
            for i, r in enumerate(encode_value(float(e.values[-1]), _spec_of(e.type))):
                self.tables[table][base + e.offset + i] = r

    def update(self, t: float) -> None:
        """Recompute every value for time ``t`` (points written by a client keep their value)."""
        for addr, sf in self._sf.items():
            self.tables[self._sf_table[addr]][addr + self.shift] = sf & 0xFFFF
        for p in self.profile.points:
            if p.quantity in self.pinned:
                continue
            table = self.profile.table_of(p)
            spec = self.profile.register_spec(p)
            addr = p.address + self.shift
            if p.type is DataType.STRING:
                text = f"{self.profile.manufacturer[:8]} {p.quantity[:6]} {self.unit}"[: 2 * (p.length or 1)]
                regs: Sequence[int] = encode_string(text, p.length or 1, spec.order)
                self.served_text[p.quantity] = text.strip()
            elif p.is_bit_field:
                value = 1.0
                raw = int(round((value - spec.offset) / spec.scale))
                regs = (encode_bits(self.tables[table].get(addr, 0), raw, spec.bit, spec.mask),)
            else:
                value = realistic_value(p, self.unit, t) if not table.is_bits else float(self.unit % 2)
                sf = self._sf.get(p.scale_factor, 0) if p.scale_factor is not None else 0
                regs = encode_value(value, spec, sf)
            self._put(table, addr, regs)
        self._refresh_served()

    def _put(self, table: Table, addr: int, regs: Sequence[int]) -> None:
        store = self.tables[table]
        for i, r in enumerate(regs):
            store[addr + i] = int(r)

    def _refresh_served(self) -> None:
        for p in self.profile.points:
            if p.type is DataType.STRING:
                continue
            table = self.tables[self.profile.table_of(p)]
            addr = p.address + self.shift
            values = {p.quantity: [table.get(addr + i, 0) for i in range(p.count)]}
            if p.scale_factor is not None:
                sf_table = self.tables[self.profile.table_of(p)]
                values[f"sf@{p.scale_factor}"] = [sf_table.get(p.scale_factor + self.shift, 0)]
            self.served[p.quantity] = self.profile.decode(p.quantity, values).value

    def read(self, table: Table, address: int, count: int) -> list[int]:
        store = self.tables[table]
        return [store.get(a, 0) for a in range(address, address + count)]

    def write(self, table: Table, address: int, values: Sequence[int]) -> None:
        self._put(table, address, values)
        end = address + len(values)
        for p in self.profile.points:
            a = p.address + self.shift
            if self.profile.table_of(p) is table and a < end and address < a + p.count:
                self.pinned.add(p.quantity)
        self._refresh_served()


def _table(name: str) -> Table:
    return {"coils": Table.COILS, "discrete_inputs": Table.DISCRETE_INPUTS, "holding": Table.HOLDING,
            "input": Table.INPUT}[name]


def _spec_of(dtype: DataType):  # noqa: ANN202
    from zaas_edge.drivers.modbus.decode import RegisterSpec

    return RegisterSpec(dtype)


class SimBus:
    """The devices of one simulated bus, its faults and its request log."""

    def __init__(self, meters: Sequence[SimMeter] = (), *, log_size: int = 100_000) -> None:
        self.meters: dict[int, SimMeter] = {m.unit: m for m in meters}
        self.faults = Faults()
        self.log: deque[RequestRecord] = deque(maxlen=log_size)
        self.t0 = time.monotonic()

    @classmethod
    def of_profile(cls, profile: Profile | str, units: Sequence[int], *, shift: int = 0) -> SimBus:
        prof = get_profile(profile) if isinstance(profile, str) else profile
        return cls([SimMeter(prof, u, shift=shift) for u in units])

    def add(self, meter: SimMeter) -> SimMeter:
        self.meters[meter.unit] = meter
        return meter

    def update(self) -> None:
        t = time.monotonic() - self.t0
        for m in self.meters.values():
            m.update(t)

    # -- the datastore interface pymodbus request PDUs call -------------------------

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):  # noqa: N802
        m = self.meters[device_id]
        table = _FC_TABLE[func_code]
        if (refused := self._refusal(device_id, table, address, count)) is not None:
            return refused
        values = m.read(table, address, count)
        return [bool(v) for v in values] if table.is_bits else values

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):  # noqa: N802
        m = self.meters[device_id]
        table = _FC_TABLE[func_code]
        if (refused := self._refusal(device_id, table, address, len(values))) is not None:
            return refused
        if device_id not in self.faults.ignore_writes:
            m.write(table, address, [int(v) for v in values])
        return None

    def _refusal(self, unit: int, table: Table, address: int, count: int):  # noqa: ANN202
        """The exception code a request gets, or None (pymodbus turns the code into the answer)."""
        from pymodbus.constants import ExcCodes

        if unit in self.faults.exception_units:
            return ExcCodes(self.faults.exception_units[unit])
        if self._illegal(table, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def _illegal(self, table: Table, address: int, count: int) -> bool:
        for t, first, end in self.faults.illegal_ranges:
            if (t is None or t is table) and address < end and first < address + count:
                return True
        return False

    # -- one request -----------------------------------------------------------------

    async def handle(self, pdu, t_rx: float, rtu: bool):  # noqa: ANN001, ANN201
        """``(answer PDU, outcome)`` for a decoded request, or None for no answer."""
        unit = pdu.dev_id
        fc = pdu.function_code
        addr = getattr(pdu, "address", 0)
        count = getattr(pdu, "count", 1)
        if unit not in self.meters or unit in self.faults.silent_units:
            self.log.append(RequestRecord(unit, fc, addr, count, t_rx, None, "silent"))
            return None
        delay = self.faults.delay_s + self.faults.unit_delay_s.get(unit, 0.0)
        if delay:
            await asyncio.sleep(delay)
        response = await pdu.datastore_update(self, unit)
        response.dev_id = unit
        response.transaction_id = pdu.transaction_id
        outcome = "ok" if not response.isError() else f"exception {response.exception_code:02d}"
        if rtu and unit in self.faults.crc_units:
            outcome = "crc"
        return response, outcome


class _Conn:
    """Frames in, answers out, one request at a time, on one byte stream."""

    def __init__(self, bus: SimBus, rtu: bool, write: Callable[[bytes], None]) -> None:
        from pymodbus.framer import FramerRTU, FramerSocket
        from pymodbus.pdu import DecodePDU

        self.bus = bus
        self.rtu = rtu
        self.framer = (FramerRTU if rtu else FramerSocket)(DecodePDU(True))
        self.write = write
        self.buf = b""
        self._late: set[asyncio.Task] = set()

    async def feed(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 1024:  # line noise that never forms a frame
            self.buf = b""
        while self.buf:
            try:
                used, pdu = self.framer.handleFrame(self.buf, 0, 0)
            except Exception:
                self.buf = b""
                return
            if pdu is None:
                if used:
                    self.buf = self.buf[used:]
                    continue
                return
            self.buf = self.buf[used:]
            t_rx = time.monotonic()
            late = self.bus.faults.slow_units.get(pdu.dev_id)
            if late is not None and pdu.dev_id in self.bus.meters:
                task = asyncio.create_task(self._answer(pdu, t_rx, late), name="modbus-sim.late")
                self._late.add(task)
                task.add_done_callback(self._late.discard)
                continue
            await self._answer(pdu, t_rx)

    async def _answer(self, pdu, t_rx: float, late: float | None = None) -> None:  # noqa: ANN001
        if late is not None:
            await asyncio.sleep(late)
        answer = await self.bus.handle(pdu, t_rx, self.rtu)
        if answer is None:
            return
        response, outcome = answer
        frame = self.framer.buildFrame(response)
        if outcome == "crc":
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        try:
            self.write(frame)
        except OSError:
            return  # the link closed while a late answer was due
        self.bus.log.append(RequestRecord(pdu.dev_id, pdu.function_code, getattr(pdu, "address", 0),
                                          getattr(pdu, "count", 1), t_rx, time.monotonic(),
                                          "late" if late is not None and outcome == "ok" else outcome))

    def close(self) -> None:
        for task in list(self._late):
            task.cancel()


@dataclass
class SimServer:
    """A running simulated bus: where to reach it and how to stop it."""

    bus: SimBus
    kind: str
    host: str = "127.0.0.1"
    port: int = 0
    pty_path: str = ""
    _close: Callable[[], None] | None = None
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        if self._close is not None:
            self._close()
            self._close = None

    def start_moving(self, every_s: float = 1.0) -> None:
        """Let the values move: recompute them every ``every_s`` seconds."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(every_s)
                self.bus.update()

        self._tasks.append(asyncio.create_task(loop(), name="modbus-sim.move"))

    async def __aenter__(self) -> SimServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _serve_stream(bus: SimBus, rtu: bool, kind: str, host: str, port: int) -> SimServer:
    conns: set[asyncio.Task] = set()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(bus, rtu, writer.write)
        task = asyncio.current_task()
        assert task is not None
        conns.add(task)
        try:
            while data := await reader.read(4096):
                await conn.feed(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            conns.discard(task)
            conn.close()
            writer.close()

    server = await asyncio.start_server(client, host, port)
    real_port = server.sockets[0].getsockname()[1]

    def close() -> None:
        server.close()
        for t in list(conns):
            t.cancel()

    return SimServer(bus, kind, host, real_port, _close=close)


async def serve_tcp(bus: SimBus, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """Modbus TCP (MBAP framing) on ``host:port`` (0: a free port, see ``.port``)."""
    return await _serve_stream(bus, False, "tcp", host, port)


async def serve_rtu_over_tcp(bus: SimBus, host: str = "127.0.0.1", port: int = 0) -> SimServer:
    """RTU frames over a TCP stream, as a serial device server passes them through."""
    return await _serve_stream(bus, True, "rtu-over-tcp", host, port)


async def serve_rtu_pty(bus: SimBus) -> SimServer:
    """RTU on a pseudo-terminal pair: the driver opens ``.pty_path`` (the slave) with pyserial."""
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    path = os.ttyname(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no one has the slave open
        if data:
            queue.put_nowait(data)

    def write(frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            try:
                n = os.write(master, view)
            except BlockingIOError:
                time.sleep(0.0005)
                continue
            view = view[n:]

    conn = _Conn(bus, True, write)

    async def pump() -> None:
        while True:
            data = await queue.get()
            await conn.feed(data)

    loop.add_reader(master, readable)

    def close() -> None:
        conn.close()
        loop.remove_reader(master)
        os.close(master)
        os.close(slave)

    srv = SimServer(bus, "rtu", pty_path=path, _close=close)
    srv._tasks.append(asyncio.create_task(pump(), name="modbus-sim.pty"))
    return srv


# --- a simulator in its own process (benchmarks, daemon tests) --------------------------


class SimProcess:
    """``python -m hil.modbus_sim`` as a subprocess; ``.port`` once it listens."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen([sys.executable, "-m", "hil.modbus_sim", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=cwd or root)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        m = re.search(r"port=(\d+)", line)
        if not m:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise RuntimeError(f"modbus simulator did not start: {line!r} {err}")
        self.port = int(m.group(1))

    def close(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load(name: str) -> Profile:
    return load_profile(name) if name.endswith(".toml") else get_profile(name)


async def _main(args: argparse.Namespace) -> None:
    bus = SimBus([SimMeter(_load(args.profile), u, shift=args.shift) for u in parse_units(args.units)],
                 log_size=10_000)
    for spec in args.silent or ():
        bus.faults.silent_units.update(parse_units(spec))
    for spec in args.slow or ():
        units, _, ms = spec.partition(":")
        for u in parse_units(units):
            bus.faults.slow_units[u] = float(ms or 0) / 1000
    if args.transport == "rtu":
        srv = await serve_rtu_pty(bus)
        print(f"pty={srv.pty_path}", flush=True)
    else:
        serve = serve_tcp if args.transport == "tcp" else serve_rtu_over_tcp
        srv = await serve(bus, args.host, args.port)
        print(f"port={srv.port} host={srv.host} transport={args.transport} units={args.units}", flush=True)
    if not args.still:
        srv.start_moving(1.0)
    try:
        await asyncio.Event().wait()
    finally:
        await srv.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m hil.modbus_sim", description="Serve simulated Modbus meters.")
    ap.add_argument("--profile", default="eastron-sdm630", help="built-in profile name or a profile .toml")
    ap.add_argument("--units", default="1", help="unit ids, e.g. 1-5,9")
    ap.add_argument("--transport", choices=["tcp", "rtu-over-tcp", "rtu"], default="tcp")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: any free port, printed)")
    ap.add_argument("--shift", type=int, default=0, help="move every register by this many addresses")
    ap.add_argument("--silent", action="append", help="unit ids that never answer")
    ap.add_argument("--slow", action="append", metavar="UNITS:MS",
                    help="unit ids that answer this many ms late, the line free meanwhile (e.g. 2:300)")
    ap.add_argument("--still", action="store_true", help="keep values constant")
    args = ap.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
