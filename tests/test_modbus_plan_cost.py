"""The read planner's cost model: bus time per transport, the exact plan, the lower bound."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.modbus.cost import DEFAULT_RTT_S, DEFAULT_TURNAROUND_S, RequestCost, char_time_s
from zaas_edge.drivers.modbus.options import ModbusOptions
from zaas_edge.drivers.modbus.plan import (
    DEFAULT_COST,
    MAX_BITS,
    MAX_REGISTERS,
    Block,
    Plan,
    ReadPoint,
    Table,
    cheapest,
    coalesce,
    min_requests,
)
from zaas_edge.drivers.modbus.profile import load_profiles

H, IN, C = Table.HOLDING, Table.INPUT, Table.COILS
RTU_9600_8E1 = RequestCost.for_rtu(9600, "E")
RTU_19200 = RequestCost.for_rtu(19200)
TCP = RequestCost.for_tcp()
COSTS = [RTU_9600_8E1, RTU_19200, TCP, RequestCost.for_rtu(1200, "N", 2), RequestCost.for_rtu(115200)]


def rp(key: str, address: int, count: int = 2, table: Table = H) -> ReadPoint:
    return ReadPoint(key, table, address, count)


def cost_of(blocks: Sequence[Block], cost: RequestCost) -> float:
    return sum(cost.request_s(b.table.is_bits, b.count) for b in blocks)


# --- the figures ------------------------------------------------------------------------------

def test_rtu_figures_at_9600_8n1() -> None:
    c = RequestCost.for_rtu(9600, "N", 1, 8, turnaround_s=0.02)
    char = 10 / 9600
    # 8 request + 5 response characters, two 3.5-character gaps, the turnaround
    assert c.fixed_s == pytest.approx(13 * char + 7 * char + 0.02)
    assert c.per_register_s == pytest.approx(2 * char)
    assert c.per_bit_s == pytest.approx(char / 8)
    assert c.request_s(False, 10) == pytest.approx(c.fixed_s + 20 * char)
    # about 19 unused registers are worth one request on this line
    assert 19 < c.break_even_registers() < 20
    assert c.label == "rtu 9600 8N1"


def test_parity_and_speed_change_the_character() -> None:
    assert RTU_9600_8E1.per_register_s == pytest.approx(2 * 11 / 9600)
    assert RequestCost.for_rtu(9600, "O", 2).per_register_s == pytest.approx(2 * 12 / 9600)
    assert char_time_s(19200) == pytest.approx(10 / 19200)
    # above 19,200 baud the inter-frame gap is a fixed 1.75 ms each way
    fast = RequestCost.for_rtu(38400, turnaround_s=0)
    assert fast.fixed_s == pytest.approx(13 * 10 / 38400 + 2 * 0.00175)


def test_bits_travel_as_whole_bytes() -> None:
    c = RequestCost.for_rtu(9600)
    char = 10 / 9600
    assert c.request_s(True, 1) == pytest.approx(c.fixed_s + char)
    assert c.request_s(True, 8) == pytest.approx(c.fixed_s + char)
    assert c.request_s(True, 9) == pytest.approx(c.fixed_s + 2 * char)


def test_tcp_is_a_round_trip_and_registers_cost_next_to_nothing() -> None:
    assert TCP.fixed_s == pytest.approx(DEFAULT_RTT_S + (7 + 5 + 7 + 2) * 8 / 100e6)  # MBAP and PDU headers both ways
    assert TCP.per_register_s == pytest.approx(16 / 100e6)
    assert TCP.break_even_registers() > 10_000  # a wider request always beats a second one
    assert RequestCost.for_tcp(0.002).fixed_s < TCP.fixed_s


def _bus(**kw: object) -> ModbusOptions:
    base: dict[str, object] = {"id": "b", "type": "modbus", "devices": [{"id": "m", "unit": 1, "profile": "abb-b23"}]}
    return ModbusOptions.model_validate({**base, **kw})


def test_the_cost_of_a_configured_bus() -> None:
    rtu = RequestCost.for_bus(_bus(transport="rtu", port="/dev/ttyUSB0", baudrate=19200, parity="E"))
    assert rtu == RequestCost.for_rtu(19200, "E", 1, 8, DEFAULT_TURNAROUND_S)
    tuned = RequestCost.for_bus(_bus(transport="rtu", port="/dev/ttyUSB0", turnaround_ms=50, inter_frame_delay_ms=10))
    assert tuned.fixed_s == pytest.approx(13 * 10 / 9600 + 2 * 0.010 + 0.050)
    # a device's own inter-frame delay replaces the bus's
    assert RequestCost.for_bus(_bus(transport="rtu", port="/dev/ttyUSB0"), 0.0).fixed_s == pytest.approx(
        13 * 10 / 9600 + DEFAULT_TURNAROUND_S)
    tcp = RequestCost.for_bus(_bus(transport="tcp", host="127.0.0.1"))
    assert tcp == TCP
    assert RequestCost.for_bus(_bus(transport="tcp", host="127.0.0.1", turnaround_ms=2)) == RequestCost.for_tcp(0.002)
    # RTU behind a serial server: the line's figures plus the network round trip
    over = RequestCost.for_bus(_bus(transport="rtu-over-tcp", host="127.0.0.1", port=4001))
    assert over.fixed_s == pytest.approx(RequestCost.for_rtu(9600).fixed_s + DEFAULT_RTT_S)
    assert over.per_register_s == RequestCost.for_rtu(9600).per_register_s
    assert over.label == "rtu-over-tcp 9600 8N1"


@pytest.mark.parametrize("fields", [(-1.0, 0.0, 0.0), (0.0, math.nan, 0.0), (0.0, 0.0, math.inf)])
def test_nonsense_figures_are_refused(fields: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="finite"):
        RequestCost(*fields)
    with pytest.raises(ValueError):
        RequestCost.for_rtu(0)
    with pytest.raises(ValueError):
        RequestCost.for_tcp(link_bps=0)


# --- the plan ---------------------------------------------------------------------------------

def test_a_hole_is_bridged_when_cheaper_than_a_request() -> None:
    # at 9600 8E1 a request is worth about 18 registers
    worth = RTU_9600_8E1.break_even_registers()
    near = [rp("a", 0), rp("b", 2 + math.floor(worth))]
    far = [rp("a", 0), rp("b", 2 + math.ceil(worth))]
    assert len(cheapest(near, RTU_9600_8E1)) == 1
    assert len(cheapest(far, RTU_9600_8E1)) == 2
    # on TCP anything within the limit is one request
    assert len(cheapest([rp("a", 0), rp("b", 120)], TCP)) == 1
    assert len(cheapest([rp("a", 0), rp("b", 124)], TCP)) == 2  # 126 registers: over the limit


def test_a_device_bound_caps_the_bridged_hole() -> None:
    pts = [rp("a", 0), rp("b", 12)]  # a hole of 10
    assert len(cheapest(pts, TCP)) == 1
    assert len(cheapest(pts, TCP, max_gap=10)) == 1
    assert len(cheapest(pts, TCP, max_gap=9)) == 2
    assert len(Plan.build(pts, 0, cost=TCP).blocks) == 2


def test_the_exact_plan_beats_the_greedy_one() -> None:
    # a cluster, a hole just below the break-even, a cluster: greedy with a bigger fixed gap bridges
    # everything, the cost model cuts where it pays and bridges where it pays
    pts = [rp("a", 0), rp("b", 30), rp("c", 32), rp("d", 34)]
    greedy = coalesce(pts, 40)
    best = cheapest(pts, RTU_9600_8E1)
    assert len(greedy) == 1 and len(best) == 2
    assert cost_of(best, RTU_9600_8E1) < cost_of(greedy, RTU_9600_8E1)


def test_bridged_registers_of_a_block() -> None:
    (b,) = cheapest([rp("a", 0), rp("b", 6), rp("w", 8, 4), rp("lo", 10, 2)], TCP)
    assert (b.start, b.count, b.bridged) == (0, 12, 4)


def test_bus_time_and_lower_bound() -> None:
    contiguous = Plan.build([rp(f"p{i}", 2 * i) for i in range(10)], cost=RTU_19200)
    assert contiguous.bus_time_s() == pytest.approx(contiguous.lower_bound_s())
    holes = Plan.build([rp("a", 0), rp("b", 10), rp("c", 200)], cost=RTU_19200)
    assert holes.bus_time_s() > holes.lower_bound_s()
    # the lower bound pays the requests the limit forces: 200 registers apart need two
    assert min_requests(holes.points) == 2
    assert holes.lower_bound_s() == pytest.approx(2 * RTU_19200.fixed_s + 6 * RTU_19200.per_register_s)
    # per key set, and unreadable points left out
    assert holes.bus_time_s({"a"}) == pytest.approx(RTU_19200.request_s(False, 2))
    learnt = holes.with_learnt(frozenset(), frozenset({"c"}))
    assert learnt.bus_time_s() == pytest.approx(holes.bus_time_s({"a", "b"}))
    assert learnt.cost == RTU_19200 and holes.split(holes.blocks[-1]).cost == RTU_19200
    assert holes.reset().cost == RTU_19200
    assert Plan.build([]).bus_time_s() == 0 == Plan.build([]).lower_bound_s()
    assert Plan.build([rp("a", 0)]).cost == DEFAULT_COST


# The fixed gap each built-in profile carried before the cost model (as bench/modbus_plan.py).
OLD_MAX_GAP = {
    "abb-b23": 16, "carlo-gavazzi-em24": 20, "eastron-sdm120": 40, "eastron-sdm630": 24, "eastron-sdm72d": 24,
    "finder-7m38": 24, "heidelberg-energy-control": 1, "janitza-umg96rm-e": 20, "lovato-dmg610": 24,
    "schneider-iem3155": 16, "siemens-pac2200": 20, "socomec-countis-e4x": 16, "sunspec-inverter": 40,
    "waveshare-relay-8ch": 0,
}


def test_every_builtin_profile_plans_no_worse_than_its_old_fixed_gap() -> None:
    for profile in load_profiles().values():
        pts = profile.read_points()
        for cost in COSTS:
            plan = Plan.build(pts, profile.defaults.max_gap, cost=cost)
            old = coalesce(pts, OLD_MAX_GAP.get(profile.name, 24))
            assert plan.bus_time_s() <= cost_of(old, cost) + 1e-12, (profile.name, cost.label)
            assert plan.bus_time_s() >= plan.lower_bound_s() - 1e-12


# --- properties -------------------------------------------------------------------------------

def _partitions(items: list[ReadPoint]) -> Iterator[list[list[ReadPoint]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1:]]


def _holes(pts: list[ReadPoint]) -> int:
    widest, reach = 0, None
    for p in sorted(pts, key=lambda p: (p.address, p.end)):
        if reach is not None:
            widest = max(widest, p.address - reach)
        reach = p.end if reach is None else max(reach, p.end)
    return widest


def _feasible(group: list[ReadPoint], max_gap: int | None, cuts: list[int]) -> bool:
    table = group[0].table
    first = min(p.address for p in group)
    last_start = max(p.address for p in group)
    if max(p.end for p in group) - first > table.limit:
        return False
    if any(first < c <= last_start for c in cuts):
        return False
    return max_gap is None or _holes(group) <= max_gap


def _brute_force(pts: list[ReadPoint], cost: RequestCost, max_gap: int | None, cuts: list[int]) -> float:
    best = math.inf
    for part in _partitions(pts):
        if all(_feasible(g, max_gap, cuts) for g in part):
            t = sum(cost.request_s(g[0].table.is_bits, max(p.end for p in g) - min(p.address for p in g))
                    for g in part)
            best = min(best, t)
    return best


def _points(table: Table, spec: list[tuple[int, int]]) -> list[ReadPoint]:
    return [ReadPoint(f"p{i}", table, a, n) for i, (a, n) in enumerate(spec)]


costs = st.sampled_from(COSTS) | st.builds(
    RequestCost, st.floats(0, 0.1), st.floats(0, 0.01), st.floats(0, 0.001))
gaps = st.none() | st.integers(0, 40)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 6)), min_size=1, max_size=6),
       costs, gaps, st.lists(st.integers(1, 300), max_size=2), st.sampled_from([H, C]))
def test_equals_brute_force_on_small_inputs(spec: list[tuple[int, int]], cost: RequestCost, max_gap: int | None,
                                            cuts: list[int], table: Table) -> None:
    pts = _points(table, spec)
    barriers = frozenset((table, c) for c in cuts)
    got = cost_of(cheapest(pts, cost, max_gap, barriers), cost)
    assert got == pytest.approx(_brute_force(pts, cost, max_gap, sorted(cuts)), rel=1e-9, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 8)), min_size=1, max_size=60),
       costs, st.integers(0, 130), st.lists(st.integers(1, 3000), max_size=4), st.sampled_from([H, IN, C]))
def test_never_worse_than_greedy_and_well_formed(spec: list[tuple[int, int]], cost: RequestCost, old_gap: int,
                                                 cuts: list[int], table: Table) -> None:
    pts = _points(table, spec)
    barriers = frozenset((table, c) for c in cuts)
    greedy = coalesce(pts, old_gap, barriers)
    for bound in (None, old_gap):
        blocks = cheapest(pts, cost, bound, barriers)
        assert cost_of(blocks, cost) <= cost_of(greedy, cost) + 1e-12
        # every point read exactly once, inside its block
        assert sorted(k for b in blocks for k in b.keys) == sorted(p.key for p in pts)
        for b in blocks:
            assert b.count <= (MAX_BITS if table.is_bits else MAX_REGISTERS)
            assert all(b.start <= p.address and p.end <= b.end for p in b.points)
            assert b.start == min(p.address for p in b.points) and b.end == max(p.end for p in b.points)
            assert not any(b.start < c <= max(p.address for p in b.points) for c in cuts)
            if bound is not None:
                assert _holes(list(b.points)) <= bound
            assert 0 <= b.bridged < b.count
    plan = Plan(tuple(pts), None, barriers, cost=cost)
    assert plan.lower_bound_s() <= plan.bus_time_s() + 1e-12
