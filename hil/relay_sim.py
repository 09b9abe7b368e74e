"""A simulated Modbus relay module (Waveshare Modbus RTU Relay 8CH): coils that switch and tell.

``RelayModule`` is one module on a ``SimBus`` (``hil.modbus_sim``), so it
speaks Modbus TCP, RTU on a pty and RTU over TCP with the same framing and
fault machinery as the simulated meters. Its coils hold their state (nothing
moves them but a write or ``set``); coil 0x00FF switches all eight at once, as
the real board's does. Faults a real module shows:

- ``disobey``: channels whose writes are acknowledged but do nothing (a welded
  contact, a dead coil driver): the read-back shows the old state, which is
  how the gateway finds out;
- latency: ``bus.faults.unit_delay_s[unit]`` (or ``delay_s``) holds each answer.

Every write is kept in ``commands`` with the moment it reached the module
(``time.monotonic()``), what was asked and whether the relay moved, so a test
or a benchmark can tell when a shed command landed; ``listeners`` are told
at once (the simulated plant uses them to switch its loads).

From a shell::

    python -m hil.relay_sim --units 2 --port 0            # prints port=<n>
    python -m hil.relay_sim --transport rtu --disobey 3   # prints pty=<path>
"""

from __future__ import annotations

__all__ = ["RelayModule", "RelayCommand", "CHANNELS", "ALL_COILS"]

import argparse
import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.profile import Profile, get_profile

from hil.modbus_sim import SimBus, SimMeter, parse_units, serve_rtu_over_tcp, serve_rtu_pty, serve_tcp

PROFILE = "waveshare-relay-8ch"
CHANNELS = 8
ALL_COILS = 0x00FF  # writing this coil switches every relay (Development Protocol V2)
_ADDRESS_REGISTER = 0x4000
_VERSION_REGISTER = 0x8000
_SOFTWARE_VERSION = 200  # reads as 2.00: the V2 protocol


@dataclass(frozen=True, slots=True)
class RelayCommand:
    """One coil write as the module received it."""

    t: float  # time.monotonic() when the write reached the module
    unit: int
    channel: int  # 1-based relay number
    on: bool  # what was asked
    obeyed: bool  # whether the relay moved to it (False: a disobedient channel)


class RelayModule(SimMeter):
    """Eight relays on coils 0..7, the device address at holding 0x4000, the version at 0x8000."""

    def __init__(self, unit: int, *, on: Sequence[int] = (), profile: Profile | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.disobey: set[int] = set()
        self.commands: list[RelayCommand] = []
        self.listeners: list[Callable[[RelayCommand], None]] = []
        super().__init__(profile or get_profile(PROFILE), unit)
        coils = self.tables[Table.COILS]
        for ch in range(1, CHANNELS + 1):
            coils[ch - 1] = 1 if ch in on else 0
        holding = self.tables[Table.HOLDING]
        holding[_ADDRESS_REGISTER] = unit
        holding[_VERSION_REGISTER] = _SOFTWARE_VERSION
        self._refresh_served()

    def update(self, t: float) -> None:
        """Relays hold their state: time moves nothing."""

    # -- what tests look at and do ----------------------------------------------------------

    def is_on(self, channel: int) -> bool:
        return bool(self.tables[Table.COILS].get(channel - 1, 0))

    @property
    def states(self) -> dict[int, bool]:
        """Each relay's state by its 1-based number."""
        return {ch: self.is_on(ch) for ch in range(1, CHANNELS + 1)}

    def set(self, channel: int, on: bool) -> None:
        """Switch a relay by hand (the board's own button, an installer), not through Modbus."""
        self.tables[Table.COILS][channel - 1] = int(on)
        self._refresh_served()

    def landed(self, channel: int, on: bool, after: float = 0.0) -> RelayCommand | None:
        """The first obeyed write of ``on`` to ``channel`` at or after ``after`` (monotonic), if any."""
        for c in self.commands:
            if c.t >= after and c.channel == channel and c.on == on and c.obeyed:
                return c
        return None

    # -- the datastore side -----------------------------------------------------------------

    def write(self, table: Table, address: int, values: Sequence[int]) -> None:
        if table is not Table.COILS:
            if table is Table.HOLDING and address == _ADDRESS_REGISTER and values:
                self.tables[Table.HOLDING][_ADDRESS_REGISTER] = int(values[0]) & 0xFF
            return  # the version register is read-only; other registers do not exist
        now = self.clock()
        if address == ALL_COILS and values:
            targets = [(ch, bool(values[0])) for ch in range(1, CHANNELS + 1)]
        else:
            targets = [(address + i + 1, bool(v)) for i, v in enumerate(values) if address + i < CHANNELS]
        for ch, on in targets:
            obeyed = ch not in self.disobey
            if obeyed:
                self.tables[Table.COILS][ch - 1] = int(on)
            cmd = RelayCommand(now, self.unit, ch, on, obeyed)
            self.commands.append(cmd)
            for listener in self.listeners:
                listener(cmd)
        self._refresh_served()


async def _main(args: argparse.Namespace) -> None:
    modules = [RelayModule(u) for u in parse_units(args.units)]
    for m in modules:
        m.disobey.update(parse_units(args.disobey) if args.disobey else ())
    bus = SimBus(modules, log_size=10_000)
    if args.transport == "rtu":
        srv = await serve_rtu_pty(bus)
        print(f"pty={srv.pty_path}", flush=True)
    else:
        serve = serve_tcp if args.transport == "tcp" else serve_rtu_over_tcp
        srv = await serve(bus, args.host, args.port)
        print(f"port={srv.port} host={srv.host} transport={args.transport} units={args.units}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await srv.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m hil.relay_sim", description="Serve simulated 8-channel relay modules.")
    ap.add_argument("--units", default="1", help="unit ids, e.g. 1-3")
    ap.add_argument("--transport", choices=["tcp", "rtu-over-tcp", "rtu"], default="tcp")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: any free port, printed)")
    ap.add_argument("--disobey", default="", help="relay channels (1-8) that acknowledge writes and do not move")
    args = ap.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
