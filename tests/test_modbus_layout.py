"""Devices of one profile and one configuration share one compiled layout (entries, decoders, plan,
intervals, decoding plans); what a device learns about itself stays its own; and what each further
meter costs in memory stays small (measured with tracemalloc, which is deterministic)."""

from __future__ import annotations

import gc
import random
import tracemalloc
import weakref
from typing import Any

from zaas_edge.drivers.modbus.device import Device
from zaas_edge.drivers.modbus.options import ModbusOptions
from zaas_edge.drivers.modbus.plan import Scheduler, Table
from zaas_edge.drivers.modbus.transport import ExceptionResponse

S = 1_000_000_000
SDM630 = "eastron-sdm630"


class Memory:
    """A bus whose registers hold fixed random words, refusing (exception 02) ``refused`` units'
    requests that cover ``refused_range``."""

    def __init__(self, refused: frozenset[int] = frozenset(), refused_range: tuple[int, int] = (0, 0)) -> None:
        self.rng = random.Random(7)
        self.words: dict[tuple[Table, int], int] = {}
        self.refused, self.refused_range = refused, refused_range
        self.requests: list[tuple[int, int, int]] = []

    async def read(self, unit: int, table: Table, start: int, count: int, *, timeout: float,
                   gap_s: float) -> list[int]:
        if self.refused:
            self.requests.append((unit, start, count))
            lo, hi = self.refused_range
            if unit in self.refused and start < hi and lo < start + count:
                raise ExceptionResponse(2, int(table), unit)
        return [self.words.setdefault((table, a), self.rng.getrandbits(1 if table.is_bits else 16))
                for a in range(start, start + count)]


def bus_options(devices: list[dict[str, Any]], **extra: Any) -> ModbusOptions:
    section = {"id": "bus", "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "port": 1502,
               "devices": devices, **extra}
    return ModbusOptions.model_validate(section)


def devices(opts: ModbusOptions, bus: Memory, ctx: Any = None) -> dict[str, Device]:
    return {d.id: Device(d, opts, bus, ctx) for d in opts.devices}  # type: ignore[arg-type]


def test_devices_with_the_same_inputs_share_one_layout() -> None:
    opts = bus_options([{"id": "a", "unit": 1, "profile": SDM630},
                        {"id": "b", "unit": 2, "profile": SDM630},
                        {"id": "c", "unit": 3, "profile": SDM630, "points": {"power": {"scale": 2.0}}},
                        {"id": "d", "unit": 4, "profile": SDM630, "interval_fast_s": 5}])
    a, b, c, d = devices(opts, Memory()).values()
    assert a.layout is b.layout and a.entries is b.entries and a.plan is b.plan and a.intervals is b.intervals
    assert a.scheduler is not b.scheduler  # deadlines are each device's own
    assert c.layout is not a.layout and c.entries["power"].spec.scale == 2.0 and a.entries["power"].spec.scale == 1.0
    assert d.layout is not a.layout and d.intervals["power"] == 5 * S and a.intervals["power"] == 1 * S
    # Another bus (another request cost) plans for itself.
    rtu = bus_options([{"id": "a", "unit": 1, "profile": SDM630}], transport="rtu", port="/dev/ttyUSB0", host=None)
    (on_rtu,) = devices(rtu, Memory()).values()
    assert on_rtu.layout is not a.layout and on_rtu.plan.cost != a.plan.cost


def test_a_layout_goes_with_its_last_device() -> None:
    # A reload that edits a profile file (another Profile) leaves no layout of the old one behind.
    opts = bus_options([{"id": "a", "unit": 1, "profile": SDM630, "interval_fast_s": 7}])
    first = devices(opts, Memory())["a"]
    layout = weakref.ref(first.layout)
    again = devices(opts, Memory())["a"]
    assert again.layout is layout()
    del first, again
    gc.collect()
    assert layout() is None


async def test_a_device_that_learns_gets_a_plan_of_its_own() -> None:
    opts = bus_options([{"id": "a", "unit": 1, "profile": SDM630}, {"id": "b", "unit": 2, "profile": SDM630}])
    bus = Memory(refused=frozenset({1}), refused_range=(0x24, 0x34))  # unit 1 refuses the gap before the totals
    a, b = devices(opts, bus).values()
    shared = a.layout.plan
    everything = frozenset(a.entries)
    got_a, got_b = await a.read(everything), await b.read(everything)
    assert a.plan is not shared and (Table.INPUT, 0x34) in a.plan.barriers
    assert b.plan is shared and not shared.barriers and not shared.unreadable  # the others keep the shared one
    assert got_a.values.keys() == got_b.values.keys() == everything
    assert {q: v for q, v in got_a.values.items()} == {q: v for q, v in got_b.values.items()}  # same registers
    # Later polls of the learning device cross the refused range no more; the other's still do.
    bus.requests.clear()
    await a.read(everything)
    await b.read(everything)
    crosses = {u for u, start, count in bus.requests if start < 0x34 and 0x24 < start + count}
    assert crosses == {2}


class StateOnly:
    """A driver context that only keeps state (all ``load_state`` needs)."""

    def __init__(self, docs: dict[str, Any]) -> None:
        self.docs = docs

    async def load_state(self, key: str) -> Any:
        return self.docs.get(key)


async def test_saved_state_with_nothing_learnt_keeps_the_shared_plan() -> None:
    opts = bus_options([{"id": "a", "unit": 1, "profile": SDM630}, {"id": "b", "unit": 2, "profile": SDM630}])
    ctx = StateOnly({"plan.a": {"fingerprint": f"{SDM630}:1:0", "barriers": [], "unreadable": []},
                     "plan.b": {"fingerprint": f"{SDM630}:2:0", "barriers": [[int(Table.INPUT), 0x34]],
                                "unreadable": []}})
    a, b = devices(opts, Memory(), ctx).values()
    await a.load_state()
    await b.load_state()
    assert a.plan is a.layout.plan
    assert b.plan is not b.layout.plan and b.plan.barriers == {(Table.INPUT, 0x34)}
    assert not a.layout.plan.barriers


def test_a_due_set_is_the_same_object_every_tick() -> None:
    # Caches keyed on due sets (blocks per set, scale factors per set) find them without hashing anew.
    sched = Scheduler({"power": S, "voltage": S, "energy": 60 * S}, start_ns=0)
    both = sched.due(0)
    assert both == {"power", "voltage", "energy"}
    fast = [sched.due(n * S) for n in range(1, 5)]
    assert all(f is fast[0] for f in fast) and fast[0] == {"power", "voltage"}
    assert sched.due(4 * S + 1) == frozenset()
    sched.due(8 * S)  # 5, 6 and 7 skipped
    assert sched.overruns == 3 and sched.overruns_by_period == {S: 3, 60 * S: 0}


async def _traced_cost(n: int, first_id: int) -> int:
    """Bytes traced for ``n`` meters polled once in full and once for their fast points (the
    configuration is built before: it is the daemon's, not the driver's)."""
    lines = [bus_options([{"id": f"m{first_id + line + u}", "unit": u, "profile": SDM630}
                          for u in range(1, min(100, n - line) + 1)]) for line in range(0, n, 100)]
    bus = Memory()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    devs = [dev for opts in lines for dev in devices(opts, bus).values()]
    for dev in devs:
        await dev.read(frozenset(dev.entries))
        await dev.read(dev.scheduler.due(10**30))
        dev.model_points()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before


async def test_a_further_meter_costs_little_memory() -> None:
    """Per additional meter (100 to 300 SDM630s of one configuration, all 34 points, polled): the
    device's own state only. While each device built its own layout it was about 58 kB; now about
    5.3 kB, 3 kB of which are its points as the services see them (``model_points``)."""
    tracemalloc.start()
    try:
        await _traced_cost(20, 10_000)  # warm: the layout, the plan's and the decoding plans' caches
        at_100 = await _traced_cost(100, 0)
        at_300 = await _traced_cost(300, 0)
    finally:
        tracemalloc.stop()
    per_meter = (at_300 - at_100) / 200
    assert per_meter < 8_000, per_meter
