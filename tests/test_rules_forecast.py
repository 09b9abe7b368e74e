"""The fixed-block forecast: hand-computed blocks, boundaries, and as-late-as-safe timing."""

from __future__ import annotations

import pytest

from zaas_edge.rules import forecast as fc

B = 600.0


def _block(points: list[tuple[float, float]]) -> fc.BlockState:
    s = fc.BlockState()
    for t, w in points:
        s = fc.accumulate(s, t, w, B)
    return s


def test_energy_in_a_block_is_the_held_power() -> None:
    s = _block([(600, 1000), (700, 2000), (900, 500)])
    assert s.index == 1
    assert s.energy_j == pytest.approx(1000 * 100 + 2000 * 200)


def test_a_step_across_the_boundary_is_split() -> None:
    s = _block([(1100, 4000), (1250, 1000)])
    assert s.index == 2
    assert s.energy_j == pytest.approx(4000 * 50)  # 1200..1250 at the power held from 1100


def test_first_reading_assumes_its_power_since_the_block_start() -> None:
    s = _block([(1300, 3000)])
    assert s.energy_j == pytest.approx(3000 * 100)


def test_forecast_average_and_cut() -> None:
    # 200 s at 55 kW in, 55 kW now, limit 50 kW: average 55; excess 3000 kJ over 400 - 3 s
    s = _block([(0, 55_000), (200, 55_000)])
    f = fc.forecast(s, 200, 55_000, 50_000, B, reaction_s=3, sheddable_w=15_000, act_fraction=0.5)
    assert f.average_w == pytest.approx(55_000)
    assert f.remaining_s == pytest.approx(400)
    assert f.cut_w == pytest.approx(5_000 * 600 / 397)
    assert f.act is True


def test_under_the_limit_needs_nothing() -> None:
    s = _block([(0, 40_000), (300, 40_000)])
    f = fc.forecast(s, 300, 40_000, 50_000, B, 3, 15_000, 0.5)
    assert (f.cut_w, f.act) == (0.0, False)


def test_waits_while_a_small_cut_would_do() -> None:
    # the same over-run seen early: the cut needed is small, so wait (as late as is safe)
    s = _block([(0, 55_000), (10, 55_000)])
    f = fc.forecast(s, 10, 55_000, 50_000, B, 3, 15_000, 0.5)
    assert 0 < f.cut_w < 7_500 and f.act is False


def test_acting_at_the_moment_it_says_keeps_the_block_under() -> None:
    # hold 55 kW until the forecast says act, then cut exactly the cut asked for
    s = fc.BlockState()
    t, w, cut_at = 0.0, 55_000.0, None
    while t < B:
        s = fc.accumulate(s, t, w, B)
        if cut_at is None:
            f = fc.forecast(s, t, w, 50_000, B, 3, 15_000, 0.5)
            if f.act:
                cut_at, cut = t, f.cut_w
        elif t >= cut_at + 3 and w == 55_000:
            w = 55_000 - cut
        t += 1
    s = fc.accumulate(s, B - 1e-9, w, B)
    assert cut_at is not None and cut_at > 150
    assert s.energy_j / B <= 50_000 * 1.001


def test_end_of_block_forces_action() -> None:
    s = _block([(0, 50_500), (595, 50_500)])
    f = fc.forecast(s, 595, 50_500, 50_000, B, 3, 100_000, 0.5)
    assert f.act is True
