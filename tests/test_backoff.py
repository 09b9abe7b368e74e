"""The one backoff: exponential, capped, equal jitter; reset after a success."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.backoff import Backoff, step


def test_steps_double_up_to_the_cap_with_the_jitter_at_its_ends() -> None:
    low = [step(1.0, 10.0, n, rng=lambda: 0.0) for n in range(6)]
    high = [step(1.0, 10.0, n, rng=lambda: 1.0) for n in range(6)]
    assert low == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert high == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@given(st.floats(0.001, 60), st.floats(0.001, 3600), st.integers(0, 10_000), st.floats(0, 1))
def test_a_wait_is_never_below_half_the_step_nor_above_the_cap(initial: float, cap: float, n: int, r: float) -> None:
    wait = step(initial, cap, n, rng=lambda: r)
    base = min(cap, initial * 2 ** min(n, 32))
    assert base / 2 <= wait <= base <= cap


def test_a_loop_counts_its_failures_and_starts_over_after_reset() -> None:
    b = Backoff(0.1, 1.0, rng=lambda: 1.0)
    assert [b.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert b.failures == 5
    b.reset()
    assert b.failures == 0 and b.next() == 0.1
