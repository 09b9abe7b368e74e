"""The engine's copy of the Linky breaking filter against the hand-computed table of ENERGY.md §3.1
and against the simulated meter's fixed-point filter (hil/linky_breaker.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil import linky_breaker
from zaas_edge.rules import linky_filter as lf

# (step to x·PCOUP, from Y, seconds to trip) from ENERGY.md §3.1's table
TABLE = [
    (1.4, 0.0, 247), (1.5, 0.0, 174), (2.0, 0.0, 69), (2.5, 0.0, 40), (5.0, 0.0, 9),
    (1.4, 1.0, 158), (1.5, 1.0, 100), (2.0, 1.0, 33), (2.5, 1.0, 18), (5.0, 1.0, 4),
]


def _seconds_by_recurrence(x: float, y: float, limit: int = 10_000) -> int | None:
    for n in range(1, limit):
        y = lf.GAIN * x * x + lf.KEEP * y
        if y >= lf.TRIP_LEVEL:
            return n
    return None


@pytest.mark.parametrize("x,y0,seconds", TABLE)
def test_trip_times_match_the_table(x: float, y0: float, seconds: int) -> None:
    assert _seconds_by_recurrence(x, y0) == seconds
    assert math.ceil(lf.time_to_trip(y0, x)) == seconds
    assert not lf.trips_within(y0, x, seconds - 1)
    assert lf.trips_within(y0, x, seconds)


def test_the_spec_table_points() -> None:
    # Enedis-NOI-CPT_54E §7: 1.4 × PCOUP → 250 s and 2.5 × → 40 s from zero (the spec rounds)
    assert abs(lf.time_to_trip(0.0, 1.4) - 250) < 5
    assert abs(lf.time_to_trip(0.0, 2.5) - 40) < 1


@pytest.mark.parametrize("x", [0.5, 1.0, 1.1, 1.2, 1.3])
def test_up_to_1_3_never_trips(x: float) -> None:
    assert lf.time_to_trip(1.0, x) == math.inf
    assert _seconds_by_recurrence(x, 1.0, limit=5000) is None


def test_closed_form_equals_one_second_steps() -> None:
    y = 0.3
    stepped = y
    for _ in range(37):
        stepped = lf.GAIN * 4.0 + lf.KEEP * stepped
    assert lf.hold(y, 2.0, 37) == pytest.approx(stepped, rel=1e-12)


def test_advance_starts_on_the_first_sample_and_ignores_old_ones() -> None:
    s = lf.advance(lf.FilterState(), 2.0, 10.0)
    assert s.y == pytest.approx(0.032) and s.t == 10.0
    assert lf.advance(s, 5.0, 9.0) == s
    assert lf.advance(s, 2.0, 12.0).y == pytest.approx(lf.hold(0.032, 2.0, 2))


def test_predict_path_is_the_peak_of_its_legs() -> None:
    # 3x for 5 s then down to 1x: the peak is at the end of the first leg
    peak = lf.predict_path(1.0, ((3.0, 5.0), (1.0, 60.0)))
    assert peak == pytest.approx(lf.hold(1.0, 3.0, 5.0))


@given(st.lists(st.integers(min_value=0, max_value=30_000), min_size=1, max_size=300),
       st.sampled_from([3000, 6000, 9000, 12000]))
def test_agrees_with_the_simulated_meter(powers: list[int], pcoup: int) -> None:
    b = linky_breaker.closed_breaker(1, 0.0, pcoup)
    y = 0.0
    for va in powers:
        b = linky_breaker.step(b, [va], pcoup)
        y = lf.hold(y, va / pcoup, 1.0)
    (sim,) = linky_breaker.filtered(b, pcoup)
    assert sim == pytest.approx(y, abs=1e-3 + 1e-4 * y)
    assert (sim >= lf.TRIP_LEVEL + 1e-3) <= b.open
