"""The Linky's breaking filter ("organe de coupure", Enedis-NOI-CPT_54E §7), as a pure state machine.

Every second the meter squares its apparent power relative to the breaking
threshold and filters it (shared/ENERGY.md §3.1)::

    Y[n] = 0.008·X[n]² + 0.992·Y[n−1],   X = S / PCOUP
    trip when Y ≥ 1.3² = 1.69

phase by phase on a three-phase meter (each phase against PCOUP/3). So a
load of 1.3 × PCOUP or less never trips, 1.4 × trips after 247 s from idle and
2.5 × after 40 s: a shedding controller has that long to act.

The filter is kept in integers, ``Z = 1000·Y·PCOUP²`` (VA²), with the 0.992
decay rounded down as fixed-point meter firmware does: a float ``X²`` of
``(7800/6000)²`` is a hair above 1.69 and would trip a load the spec says never
trips. Rounding down keeps ``Z`` under its exact value, which for 1.3 × is
always under the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["BreakerState", "TRIP_LEVEL", "closed_breaker", "step", "rearm", "filtered"]

#: ``Y`` at which the breaker opens: (1.3)².
TRIP_LEVEL = 1.69

_GAIN = 8  # 0.008 × 1000
_KEEP = 992  # 0.992 × 1000
_SCALE = 1000
_TRIP = 1690  # 1.69 × 1000


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The filter of each phase (``z``, see the module doc) and whether the breaker is open.

    ``open`` stays set until :func:`rearm`: a real Linky closes again only when
    the customer presses its button.
    """

    z: tuple[int, ...]
    open: bool = False
    trips: int = 0


def closed_breaker(phases: int = 1, y: float = 0.0, pcoup_va: int = 1) -> BreakerState:
    """A closed breaker, its filter at ``y`` on every phase (0: idle; 1: long at PCOUP)."""
    return BreakerState(z=(int(y * _SCALE * pcoup_va * pcoup_va),) * phases)


def step(state: BreakerState, s_va: Sequence[int], pcoup_va: int) -> BreakerState:
    """One second: filter the apparent power of each phase (VA, as delivered) and trip if due.

    ``s_va`` has one value per phase. While open the caller delivers 0 VA, so
    the filter decays as the meter's does.
    """
    if len(s_va) != len(state.z):
        raise ValueError(f"{len(s_va)} phase powers for a {len(state.z)}-phase breaker")
    if pcoup_va <= 0:
        raise ValueError(f"PCOUP must be positive, got {pcoup_va} VA")
    # three-phase: X = S_phase / (PCOUP/3) = 3·S_phase / PCOUP, so Z = 1000·Y·PCOUP² on every phase
    factor = 3 if len(state.z) > 1 else 1
    z = tuple(_GAIN * (factor * int(s)) ** 2 + (_KEEP * old) // _SCALE for s, old in zip(s_va, state.z, strict=True))
    trip = not state.open and any(v >= _TRIP * pcoup_va * pcoup_va for v in z)
    return BreakerState(z=z, open=state.open or trip, trips=state.trips + trip)


def rearm(state: BreakerState) -> BreakerState:
    """Close the breaker again (the customer's button); the filter keeps its value.

    Re-arming while the load is still too high trips again within seconds, as a
    real meter does.
    """
    return BreakerState(z=state.z, open=False, trips=state.trips)


def filtered(state: BreakerState, pcoup_va: int) -> tuple[float, ...]:
    """``Y`` of each phase (1.69 trips), for diagnostics and tests."""
    return tuple(v / (_SCALE * pcoup_va * pcoup_va) for v in state.z)
