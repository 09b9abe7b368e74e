"""The token bucket behind the MQTT command limit and the sync upload cap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.ratelimit import TokenBucket


def test_try_take_refuses_beyond_the_burst_and_refills_at_the_rate() -> None:
    b = TokenBucket(rate=0.5, burst=2, now=0.0)
    assert [b.try_take(0.0), b.try_take(0.0), b.try_take(0.0)] == [True, True, False]
    assert b.try_take(1.0) is False and b.try_take(2.0) is True  # one token every two seconds
    assert b.try_take(100.0) and b.try_take(100.0) and not b.try_take(100.0)  # never more than the burst


def test_debit_paces_an_upload_to_the_cap() -> None:
    b = TokenBucket(rate=1000, burst=1000, now=0.0)
    assert b.debit(800, 0.0) == 0.0  # within the one-second burst
    assert b.debit(700, 0.0) == pytest.approx(0.5)  # 500 bytes of debt at 1000 B/s
    # After waiting what it said, the debt is paid and the next send waits for its own bytes only.
    assert b.debit(1000, 0.5) == pytest.approx(1.0)


def test_a_clock_going_backwards_never_mints_tokens() -> None:
    b = TokenBucket(rate=10, burst=1, now=5.0)
    assert b.try_take(5.0)
    assert not b.try_take(4.0)
    assert not b.try_take(5.0)


@given(st.lists(st.tuples(st.floats(0, 10), st.integers(1, 5000)), max_size=50))
def test_sustained_rate_never_exceeds_the_cap(sends: list[tuple[float, int]]) -> None:
    """Whatever the send pattern, following the waits keeps bytes <= rate * time + burst."""
    rate, burst = 1000.0, 1000.0
    b = TokenBucket(rate, burst, now=0.0)
    now = total = 0.0
    for gap, n in sends:
        now += gap
        now += b.debit(n, now)  # the sender sleeps as told before sending
        total += n
        assert total <= rate * now + burst + 1e-6
