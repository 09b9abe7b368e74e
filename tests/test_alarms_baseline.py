"""Consumption baselines from an index's history: hourly use, the same hour of previous weeks, garbage."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.alarms.baseline import WEEK_H, baseline, hourly_use

H = 3600 * 10**9


def test_hourly_use_is_the_index_at_the_end_of_each_hour_minus_the_one_before() -> None:
    samples = [(10 * H + 5, 100.0), (10 * H + H // 2, 104.0), (11 * H + 1, 106.0), (11 * H + H - 1, 110.0),
               (13 * H, 120.0), (14 * H, 2.0)]  # a gap at 12, a reset at 14
    assert hourly_use(reversed(samples)) == {11: 6.0}


def test_baseline_is_the_median_of_the_same_hour_of_previous_weeks() -> None:
    h = 10 * WEEK_H + 5
    use = {h - WEEK_H: 10.0, h - 2 * WEEK_H: 30.0, h - 3 * WEEK_H: 12.0, h - 1: 99.0, h - 5 * WEEK_H: 500.0}
    assert baseline(use, h, 4) == 12.0
    assert baseline(use, h, 1) == 10.0
    assert baseline({}, h, 4) is None


@given(st.lists(st.tuples(st.integers(0, 10**15), st.one_of(st.floats(allow_nan=True), st.integers()))))
def test_garbage_never_raises_and_every_figure_is_a_finite_use(samples: list[tuple[int, float]]) -> None:
    out = hourly_use(samples + [(H, 1e308), (2 * H, -1e308), (3 * H, 1e308)])
    assert all(math.isfinite(v) and v >= 0 for v in out.values())
