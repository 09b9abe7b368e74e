"""The Linky's breaking filter (Enedis-NOI-CPT_54E §7) as pure functions, and what it lets us predict.

Every second the meter filters its apparent power relative to the breaking
threshold (shared/ENERGY.md §3.1)::

    Y[n] = 0.008·X[n]² + 0.992·Y[n−1],   X = S / PCOUP,   trip when Y ≥ 1.3² = 1.69

For a power held at X for t seconds this has a closed form,
``Y(t) = X² + (Y₀ − X²)·0.992^t``, so the engine can tell, from the filter's
value now, whether the meter would trip before its next action could take
effect, and shed only then: a step the meter tolerates (X ≤ 1.3, or a short
burst) sheds nothing.

Floats here, not the simulated meter's fixed point (hil/linky_breaker.py): the
engine predicts, it does not have to reproduce the firmware's rounding, and it
sheds with slack before the cut-off anyway.
"""

from __future__ import annotations

__all__ = [
    "GAIN", "KEEP", "TRIP_LEVEL", "CUTOFF", "FilterState", "advance", "hold", "predict_path",
    "time_to_trip", "trips_within",
]

import math
from dataclasses import dataclass

GAIN = 0.008
KEEP = 0.992
#: ``Y`` at which the breaker opens: (1.3)².
TRIP_LEVEL = 1.69
_EPS = 1e-9
#: What a float filter compares against: 1.3² is a hair over 1.69 in binary floating point, and a load of
#: exactly 1.3 × PCOUP only approaches the cut-off, so the comparison leaves that hair out.
CUTOFF = TRIP_LEVEL * (1 + _EPS)


@dataclass(frozen=True, slots=True)
class FilterState:
    """The filter's value and the monotonic time it was last advanced to (``None``: never)."""

    y: float = 0.0
    t: float | None = None


def hold(y: float, x: float, seconds: float) -> float:
    """``Y`` after ``x`` held for ``seconds`` from ``y`` (exact at whole seconds, smooth between)."""
    if seconds <= 0:
        return y
    x2 = x * x
    return x2 + (y - x2) * KEEP ** seconds


def advance(state: FilterState, x: float, t: float) -> FilterState:
    """The filter at time ``t`` given the ratio ``x`` seen since its last update.

    The first sample starts the clock. A sample older than the last one
    changes nothing: samples may arrive out of order across points.
    """
    if state.t is None:
        return FilterState(y=hold(state.y, x, 1.0), t=t)
    if t <= state.t:
        return state
    return FilterState(y=hold(state.y, x, t - state.t), t=t)


def predict_path(y: float, legs: tuple[tuple[float, float], ...]) -> float:
    """The highest ``Y`` along successive legs of (``x``, seconds).

    A held ``x`` moves ``Y`` monotonically towards ``x²``, so the highest value
    is at a leg's end (or the start).
    """
    peak = y
    for x, seconds in legs:
        y = hold(y, x, seconds)
        peak = max(peak, y)
    return peak


def time_to_trip(y: float, x: float, trip: float = TRIP_LEVEL) -> float:
    """Seconds until a held ``x`` trips the meter from ``y``: 0 if already, ``inf`` if never."""
    if y >= trip:
        return 0.0
    x2 = x * x
    if x2 <= trip * (1 + _EPS):  # see CUTOFF
        return math.inf
    return math.log((x2 - trip) / (x2 - y)) / math.log(KEEP)


def trips_within(y: float, x: float, seconds: float, trip: float = TRIP_LEVEL) -> bool:
    """Whether a held ``x`` would trip the meter within ``seconds``."""
    return time_to_trip(y, x, trip) <= seconds
