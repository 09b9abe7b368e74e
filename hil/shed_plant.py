"""A small simulated building for load shedding: a meter that sees the loads the relays and the charger feed.

One ``SimBus`` holds a three-phase meter (the ``eastron-sdm630`` register
map, unit 1 by default), a relay module (``hil.relay_sim``, unit 2) and an EV
charger (``hil.evcharger_sim``, unit 3). The meter's power is computed on
every request: the base load, plus each load whose relay is closed, plus what
the charger draws, so a shed write through the real driver shows in the very
next reading and the loop is closed for real. A load's power may follow its
relay after ``latency_s`` (a contactor, a heater's thermal inertia).

``meter_reads`` keeps, for each request that covered the meter's total power,
when its answer left (``time.monotonic()``) and the power it carried; with the
relay module's ``commands`` that gives the delay from the reading that crossed
a limit to the shed write landing (``bench/shed_latency.py``).

The Linky at the head of the building (``hil.linky_sim.LinkyMeter``) measures
the same plant once :meth:`Plant.feed_linky` is called: each phase's apparent
power (``SINSTS1..3``, ``PAPP``) is base load + closed relays + charger, so a
shed shows in the TIC frames too; when its breaking filter trips, the
building's supply is cut and the plant's meter reads 0 until the breaker is
re-armed. On a time scale (``hil.timescale``) the base load follows an office
day in scenario time (:func:`office_day_load`).

From a shell (the demo runs it so)::

    python -m hil.shed_plant --port 0 --base 6000   # prints port=<n>
"""

from __future__ import annotations

__all__ = ["Plant", "PlantLoad", "PlantMeter", "MeterRead", "DEFAULT_LOADS", "office_base_load", "office_day_load"]

import argparse
import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from zaas_edge.drivers.modbus.decode import encode_value
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.profile import get_profile

from hil.evcharger_sim import VOLTAGE, EvCharger
from hil.modbus_sim import SimBus, SimMeter, SimServer, realistic_value, serve_rtu_pty, serve_tcp
from hil.relay_sim import RelayCommand, RelayModule
from hil.timescale import TimeScale

if TYPE_CHECKING:
    from hil.linky_sim import LinkyMeter

METER_PROFILE = "eastron-sdm630"


@dataclass
class PlantLoad:
    """A load behind one relay channel: its power when on, and the phase it draws on (None: balanced)."""

    id: str
    channel: int
    power_w: float
    phase: int | None = None
    latency_s: float = 0.0
    history: list[tuple[float, bool]] = field(default_factory=list)  # (monotonic, on) as the relay moved

    def on_at(self, now: float) -> bool:
        """Whether the load draws at ``now``: the relay's state ``latency_s`` ago."""
        state = False
        for t, on in self.history:
            if t + self.latency_s <= now:
                state = on
            else:
                break
        return state


DEFAULT_LOADS = (
    PlantLoad("water-heater", 1, 3000.0, phase=1),
    PlantLoad("heater-office", 2, 2000.0, phase=2),
    PlantLoad("heater-hall", 3, 2000.0, phase=3),
    PlantLoad("dryer", 4, 2500.0),
)


def office_base_load(t0: float, *, low_w: float = 3000.0, high_w: float = 7000.0,
                     period_s: float = 240.0) -> Callable[[float], float]:
    """A base load that rises for half of each ``period_s`` (the lunch peak, compressed) and wobbles a little,
    so the demo's limit is crossed and cleared again while someone watches ``shed status``."""
    def base(now: float) -> float:
        phase = ((now - t0) % period_s) / period_s
        level = high_w if phase >= 0.5 else low_w
        return level + 150.0 * math.sin(2 * math.pi * (now - t0) / 17.0)
    return base


def office_day_load(scale: TimeScale, *, night_w: float = 2500.0, day_w: float = 6500.0,
                    lunch_w: float = 8500.0) -> Callable[[float], float]:
    """An office's base load over its scenario day: ``night_w`` outside 07:00-19:00 local time, ``day_w``
    during office hours and ``lunch_w`` from 11:30 to 13:30 (the kitchen), on weekdays; nights all weekend.

    ``scale`` maps the plant's clock to scenario time (its origin on the plant's clock, see
    :meth:`TimeScale.on_clock`), so the day lasts 24 h / factor of real time.
    """
    def base(now: float) -> float:
        tm = time.localtime(scale.scenario_at(now))
        hour = tm.tm_hour + tm.tm_min / 60.0
        if tm.tm_wday >= 5 or not 7.0 <= hour < 19.0:
            return night_w
        return lunch_w if 11.5 <= hour < 13.5 else day_w
    return base


@dataclass(frozen=True, slots=True)
class MeterRead:
    t: float  # time.monotonic() when the answer left
    power_w: float


class PlantMeter(SimMeter):
    """The SDM630 register map with values computed from the plant on every request."""

    def __init__(self, unit: int, plant: Plant) -> None:
        self.plant = plant
        self._energy_kwh = 0.0
        self._t: float | None = None
        super().__init__(get_profile(METER_PROFILE), unit)
        self._power = self.profile.point("power")

    def update(self, t: float) -> None:
        if hasattr(self, "plant"):
            self._publish(self.plant.clock())

    def read(self, table: Table, address: int, count: int) -> list[int]:
        now = self.plant.clock()
        total = self._publish(now)
        if table is Table.INPUT and address <= self._power.address < address + count:
            read = MeterRead(now, total)
            self.plant.meter_reads.append(read)
            for listener in self.plant.read_listeners:
                listener(read)
        return super().read(table, address, count)

    def write(self, table: Table, address: int, values: Sequence[int]) -> None:
        return  # a meter's measurements are not writable

    def _publish(self, now: float) -> float:
        phases = self.plant.phase_powers(now) if self.plant.supply_on() else (0.0, 0.0, 0.0)
        total = sum(phases)
        if self._t is not None and now > self._t:
            self._energy_kwh += total * (now - self._t) / 3.6e6
        self._t = now
        values: dict[str, float] = {"power": total, "apparent_power": total, "reactive_power": 0.0, "pf": 1.0,
                                    "frequency": 50.0, "energy_import": 1000.0 + self._energy_kwh,
                                    "energy_total": 1000.0 + self._energy_kwh}
        for i, p in enumerate(phases, start=1):
            values |= {f"power_l{i}": p, f"apparent_power_l{i}": p, f"reactive_power_l{i}": 0.0, f"pf_l{i}": 1.0,
                       f"voltage_l{i}": VOLTAGE, f"current_l{i}": p / VOLTAGE}
        for pt in self.profile.points:
            value = values.get(pt.quantity)
            if value is None:
                value = realistic_value(pt, self.unit, now)
            self._put(Table.INPUT, pt.address, encode_value(value, self.profile.register_spec(pt), 0))
        self._refresh_served()
        return total


class Plant:
    """The building: base load, the loads on the relay module, the charger, and the meter over them all."""

    def __init__(self, *, base_w: float = 5000.0, loads: Sequence[PlantLoad] = DEFAULT_LOADS, on: Sequence[str] = (),
                 meter_unit: int = 1, relay_unit: int = 2, charger_unit: int | None = 3,
                 clock: Callable[[], float] = time.monotonic, reads_kept: int = 100_000) -> None:
        self.clock = clock
        self.base_w = base_w  # balanced over the three phases
        self.base_fn: Callable[[float], float] | None = None  # when set: the base load at a monotonic time
        self.read_listeners: list[Callable[[MeterRead], None]] = []
        self.loads = {ld.id: replace(ld, history=[]) for ld in loads}  # each plant its own loads' histories
        self.meter_reads: deque[MeterRead] = deque(maxlen=reads_kept)
        now = clock()
        self.relays = RelayModule(relay_unit, on=[ld.channel for ld in loads if ld.id in on], clock=clock)
        for ld in self.loads.values():
            ld.history = [(now - ld.latency_s, ld.id in on)]
        self.relays.listeners.append(self._relay_moved)
        self.charger = EvCharger(charger_unit, clock=clock) if charger_unit is not None else None
        self.linky: LinkyMeter | None = None  # the meter at the head of the building, once fed
        self.meter = PlantMeter(meter_unit, self)
        devices: list[SimMeter] = [self.meter, self.relays]
        if self.charger is not None:
            devices.append(self.charger)
        self.bus = SimBus(devices)

    def _relay_moved(self, cmd: RelayCommand) -> None:
        if not cmd.obeyed:
            return
        for ld in self.loads.values():
            if ld.channel == cmd.channel and ld.history[-1][1] != cmd.on:
                ld.history.append((cmd.t, cmd.on))
                del ld.history[:-16]

    def phase_powers(self, now: float | None = None) -> tuple[float, float, float]:
        """L1, L2, L3 in W at ``now``."""
        now = self.clock() if now is None else now
        base = self.base_fn(now) if self.base_fn is not None else self.base_w
        ph = [base / 3.0] * 3
        for ld in self.loads.values():
            if ld.on_at(now):
                if ld.phase is None:
                    ph = [p + ld.power_w / 3.0 for p in ph]
                else:
                    ph[ld.phase - 1] += ld.power_w
        if self.charger is not None:
            ev = self.charger.power_w
            n = self.charger.model.car_phases
            ph = [p + (ev / n if i < n else 0.0) for i, p in enumerate(ph)]
        return ph[0], ph[1], ph[2]

    def power_w(self, now: float | None = None) -> float:
        return sum(self.phase_powers(now))

    def feed_linky(self, meter: LinkyMeter, scale: TimeScale | None = None,
                   wall: Callable[[], float] = time.time) -> None:
        """Make ``meter`` measure this plant: each phase's demand (VA, power factor 1) is the plant's.

        The Linky's clock is Unix time on ``scale`` (scenario time; real time
        without one), the plant's is ``self.clock``: a meter second ``t`` is
        the plant at ``scale.real_at(t)`` on the plant's clock, never later
        than now. ``wall`` is the clock the scale's origin is on.
        """
        on_plant = (scale or TimeScale()).on_clock(wall(), self.clock())

        def demand(t: int) -> tuple[float, float, float]:
            return self.phase_powers(min(on_plant.real_at(t), self.clock()))

        meter.set_demand(demand)
        self.linky = meter

    def supply_on(self) -> bool:
        """Whether the building has power: no Linky, or its breaker closed."""
        return self.linky is None or not self.linky.state.breaker.open

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> SimServer:
        return await serve_tcp(self.bus, host, port)

    async def serve_rtu_pty(self) -> SimServer:
        return await serve_rtu_pty(self.bus)


async def _main(args: argparse.Namespace) -> None:
    plant = Plant(base_w=args.base, on=[ld.id for ld in DEFAULT_LOADS])
    if plant.charger is not None and args.car:
        plant.charger.plug(phases=3)
    srv = await plant.serve_tcp(args.host, args.port)
    srv.start_moving(1.0)  # the charger's watchdog and energy, the meter's counters
    print(f"port={srv.port} host={srv.host} meter=1 relays=2 charger=3", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await srv.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m hil.shed_plant",
                                 description="Serve a simulated building: meter (unit 1), relays (2), EV charger (3).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: any free port, printed)")
    ap.add_argument("--base", type=float, default=5000.0, help="base load in W, balanced over three phases")
    ap.add_argument("--car", action="store_true", help="a car is plugged in and charging")
    args = ap.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
