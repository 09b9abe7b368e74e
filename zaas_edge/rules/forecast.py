"""The fixed-block average a meter above 36 kVA bills on (10-minute blocks aligned to its clock).

The block's final average is forecast from the energy so far and the power
now held to the block's end. Shedding later needs a bigger cut for a shorter
time (the energy to take off is the same), so the engine waits, as late as is
safe: it acts once the cut needed would exceed a share of what it can shed,
or when the block is about to end, and asks only for the cut that brings the
forecast back to the limit.
"""

from __future__ import annotations

__all__ = ["BlockState", "block_index", "accumulate", "BlockForecast", "forecast"]

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockState:
    """The current block: its index, the energy counted in it (J) and the last point integrated."""

    index: int | None = None
    energy_j: float = 0.0
    last_t: float | None = None
    last_w: float = 0.0


def block_index(clock_s: float, block_s: float) -> int:
    return math.floor(clock_s / block_s)


def accumulate(state: BlockState, clock_s: float, watts: float, block_s: float) -> BlockState:
    """Integrate the power held since the last point up to ``clock_s`` and start a new block on its boundary.

    The power of the previous point is held until this one (what the meter
    counts between two readings is unknown; holding is the usual estimate),
    split at the block boundary when a step crosses it.
    """
    idx = block_index(clock_s, block_s)
    if state.index is None or state.last_t is None or clock_s < state.last_t:
        start = idx * block_s
        # Nothing known of the block before the first reading: assume the power now since its start.
        return BlockState(index=idx, energy_j=watts * (clock_s - start), last_t=clock_s, last_w=watts)
    if idx == state.index:
        return BlockState(index=idx, energy_j=state.energy_j + state.last_w * (clock_s - state.last_t),
                          last_t=clock_s, last_w=watts)
    start = idx * block_s
    return BlockState(index=idx, energy_j=state.last_w * (clock_s - max(start, state.last_t)),
                      last_t=clock_s, last_w=watts)


@dataclass(frozen=True, slots=True)
class BlockForecast:
    """The block's forecast average (W), the time left (s) and the cut (W) that brings it to the limit."""

    average_w: float
    remaining_s: float
    cut_w: float
    act: bool


def forecast(state: BlockState, clock_s: float, power_w: float, limit_w: float, block_s: float,
             reaction_s: float, sheddable_w: float, act_fraction: float) -> BlockForecast:
    """Forecast the block's average with ``power_w`` held to its end, and whether to act now.

    ``cut_w`` is the reduction that, taking effect after ``reaction_s``, ends the
    block exactly at ``limit_w``. ``act`` is set when that cut exceeds
    ``act_fraction`` of ``sheddable_w`` or the block ends within twice the
    reaction time: waiting any longer would leave too little to shed with.
    """
    idx = state.index if state.index is not None else block_index(clock_s, block_s)
    end = (idx + 1) * block_s
    remaining = max(0.0, end - clock_s)
    held = state.energy_j + (state.last_w * (clock_s - state.last_t) if state.last_t is not None else 0.0)
    average = (held + power_w * remaining) / block_s
    excess_j = (average - limit_w) * block_s
    if excess_j <= 0:
        return BlockForecast(average, remaining, 0.0, False)
    effective = max(remaining - reaction_s, 1.0)
    cut = excess_j / effective
    act = cut >= act_fraction * sheddable_w or remaining <= 2 * reaction_s
    return BlockForecast(average, remaining, cut, act)
