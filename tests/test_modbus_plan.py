"""Read planning: coalescing, gaps, limits, splitting on exception 02, scheduling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.modbus.cost import RequestCost
from zaas_edge.drivers.modbus.plan import MAX_BITS, MAX_REGISTERS, Plan, ReadPoint, Scheduler, Table, coalesce

from zaas_edge.errors import ProtocolError

H, IN, C, D = Table.HOLDING, Table.INPUT, Table.COILS, Table.DISCRETE_INPUTS
S = 1_000_000_000


def rp(key, address, count=2, table=H):
    return ReadPoint(key, table, address, count)


def shape(blocks):
    return [(b.table, b.start, b.count, b.keys) for b in blocks]


@pytest.mark.parametrize(
    "points, max_gap, expected",
    [
        # contiguous points merge into one request
        ([rp("a", 0), rp("b", 2), rp("c", 4)], 0, [(H, 0, 6, ("a", "b", "c"))]),
        # a gap of 4 is bridged with max_gap 4, not with 3
        ([rp("a", 0), rp("b", 6)], 4, [(H, 0, 8, ("a", "b"))]),
        ([rp("a", 0), rp("b", 6)], 3, [(H, 0, 2, ("a",)), (H, 6, 2, ("b",))]),
        # order of declaration does not matter
        ([rp("b", 10), rp("a", 0)], 10, [(H, 0, 12, ("a", "b"))]),
        # overlapping points share registers
        ([rp("w", 0, 4), rp("lo", 2, 2)], 0, [(H, 0, 4, ("w", "lo"))]),
        # tables never mix, and come in function-code order
        ([rp("h", 0), rp("i", 0, table=IN), rp("c", 0, 1, C), rp("d", 0, 1, D)], 100,
         [(C, 0, 1, ("c",)), (D, 0, 1, ("d",)), (H, 0, 2, ("h",)), (IN, 0, 2, ("i",))]),
    ],
)
def test_coalescing(points, max_gap, expected):
    assert shape(coalesce(points, max_gap)) == expected


def test_register_limit_125():
    pts = [rp(f"p{i}", 2 * i) for i in range(100)]  # 200 registers, contiguous
    blocks = coalesce(pts, 0)
    assert [b.count for b in blocks] == [124, 76]  # 62 points fit in 125; the 63rd would make 126
    assert all(b.count <= MAX_REGISTERS for b in blocks)
    edge = coalesce([rp("a", 0, 1), rp("b", 124, 1)], 200)
    assert shape(edge) == [(H, 0, 125, ("a", "b"))]
    over = coalesce([rp("a", 0, 1), rp("b", 125, 1)], 200)
    assert len(over) == 2


def test_bit_limit_2000():
    pts = [ReadPoint(f"c{i}", C, i, 1) for i in range(2500)]
    blocks = coalesce(pts, 0)
    assert [b.count for b in blocks] == [2000, 500]
    assert MAX_BITS == 2000


def test_point_wider_than_a_request_is_refused():
    with pytest.raises(ValueError, match="limit"):
        ReadPoint("big", H, 0, 126)
    with pytest.raises(ValueError):
        ReadPoint("end", H, 0xFFFF, 2)


def test_extract_slices_a_response():
    blocks = coalesce([rp("a", 10), rp("b", 14)], 2)
    (b,) = blocks
    values = list(range(100, 106))
    assert list(b.extract(values, b.points[0])) == [100, 101]
    assert list(b.extract(values, b.points[1])) == [104, 105]
    with pytest.raises(ProtocolError):
        b.extract(values[:3], b.points[1])


# --- splitting on exception 02 -----------------------------------------------------------

def test_split_at_largest_gap_and_remember_it():
    plan = Plan.build([rp("a", 0), rp("b", 2), rp("c", 10), rp("d", 12)], max_gap=10)
    (block,) = plan.blocks
    plan2 = plan.split(block)
    assert shape(plan2.blocks) == [(H, 0, 4, ("a", "b")), (H, 10, 4, ("c", "d"))]
    # the barrier holds for any subset planned later
    assert shape(plan2.blocks_for({"b", "c"})) == [(H, 2, 2, ("b",)), (H, 10, 2, ("c",))]
    assert plan2.unreadable == frozenset()
    # the original plan is unchanged (plans are values)
    assert len(plan.blocks) == 1


def test_split_contiguous_block_in_the_middle():
    plan = Plan.build([rp(k, 2 * i) for i, k in enumerate("abcd")], max_gap=0)
    plan2 = plan.split(plan.blocks[0])
    assert shape(plan2.blocks) == [(H, 0, 4, ("a", "b")), (H, 4, 4, ("c", "d"))]


def test_split_down_to_a_single_point_then_mark_it_unreadable():
    plan = Plan.build([rp("a", 0), rp("bad", 2), rp("c", 4)], max_gap=0)
    refused = "bad"
    rounds = 0
    while True:
        failing = [b for b in plan.blocks if refused in b.keys]
        if not failing:
            break
        plan = plan.split(failing[0])
        rounds += 1
    assert plan.unreadable == frozenset({"bad"})
    assert sorted(k for b in plan.blocks for k in b.keys) == ["a", "c"]
    assert rounds <= 3
    # unreadable points are skipped even when asked for
    assert all("bad" not in b.keys for b in plan.blocks_for({"a", "bad", "c"}))
    assert plan.reset().unreadable == frozenset()


def test_split_of_points_sharing_an_address_marks_them_unreadable():
    plan = Plan.build([rp("w", 0, 4), rp("w_lo", 0, 2)])
    plan2 = plan.split(plan.blocks[0])
    assert plan2.unreadable == {"w", "w_lo"}
    assert plan2.blocks == ()


@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 4)), min_size=1, max_size=40, unique_by=lambda t: t[0]),
       st.integers(0, 30), st.sampled_from([H, IN]))
def test_coalescing_properties(spec, max_gap, table):
    pts = [ReadPoint(f"p{a}", table, a, n) for a, n in spec]
    blocks = coalesce(pts, max_gap)
    seen = [k for b in blocks for k in b.keys]
    assert sorted(seen) == sorted(p.key for p in pts)  # every point read exactly once
    for b in blocks:
        assert b.count <= MAX_REGISTERS
        for p in b.points:
            assert b.start <= p.address and p.end <= b.end
    # never more requests than points, never fewer than the limit allows
    assert len(blocks) <= len(pts)


# --- scheduling ----------------------------------------------------------------------------

def test_intervals_without_drift():
    sched = Scheduler({"power": 1 * S, "energy": 60 * S}, start_ns=0)
    assert sched.due(0) == {"power", "energy"}
    # the loop wakes up late every time, by 300 ms; deadlines still advance by whole periods
    ticks = []
    for n in range(1, 121):
        ticks.append(sched.due(n * S + 300_000_000))
    assert all("power" in t for t in ticks)
    assert [i + 1 for i, t in enumerate(ticks) if "energy" in t] == [60, 120]
    assert sched.next_deadline() == 121 * S
    assert sched.overruns == 0


def test_nothing_due_before_the_deadline():
    sched = Scheduler({"p": 10 * S}, start_ns=5)
    assert sched.due(5) == {"p"}
    assert sched.due(5 + 10 * S - 1) == frozenset()
    assert sched.due(5 + 10 * S) == {"p"}


@pytest.mark.parametrize(
    "late_by, overruns, next_deadline",
    [
        (0.5, 0, 2),  # late, but within one period: no skip
        (1.0, 1, 3),  # deadline 2 coincides with now: served by this read, counted as skipped
        (3.5, 3, 5),  # three deadlines skipped, next on the original grid
    ],
)
def test_overruns_skip_forward_on_the_grid(late_by, overruns, next_deadline):
    sched = Scheduler({"p": S}, start_ns=0)
    sched.due(0)
    assert sched.due(int((1 + late_by) * S)) == {"p"}
    assert sched.overruns == overruns
    assert sched.overruns_by_period[S] == overruns
    assert sched.next_deadline() == next_deadline * S


def test_due_points_share_requests():
    # on TCP a wider request always beats a second one: the due points share one request
    plan = Plan.build([rp("power", 0x34, table=IN), rp("voltage", 0, table=IN), rp("energy", 0x48, table=IN)],
                      cost=RequestCost.for_tcp())
    sched = Scheduler({"power": S, "voltage": S, "energy": 60 * S}, start_ns=0)
    at_start = plan.blocks_for(sched.due(0))
    assert len(at_start) == 1 and set(at_start[0].keys) == {"power", "voltage", "energy"}
    fast = plan.blocks_for(sched.due(S))
    assert len(fast) == 1 and set(fast[0].keys) == {"power", "voltage"}
    assert fast[0].count == 0x36  # stops at the last due point, not at the energy register


def test_bad_interval_refused():
    with pytest.raises(ValueError, match="positive"):
        Scheduler({"p": 0}, 0)
