"""The physical side of a simulation: the meter the building hangs on, as pure state machines.

Three meter models, each stepped once a second as a Linky computes its
apparent power:

- ``linky``: the meter's own breaking filter (Enedis-NOI-CPT_54E §7, ENERGY.md
  §3.1) in the meter's fixed point, ``Z = 1000·Y·PCOUP²`` with the decay
  rounded down (as hil/linky_breaker.py, which the tests hold it to). It
  trips at ``Y ≥ 1.69``, phase by phase against PCOUP/3 on a three-phase
  meter, cuts the building off and is re-armed ``rearm_s`` later (someone
  presses the button), its filter still charged.
- ``block``: the 10-minute average billed above 36 kVA, on blocks aligned to
  the wall clock; a block whose average is over the subscribed power is an
  over-run.
- ``instant``: only measures.

Kept apart from the engine's own float filter on purpose: the engine
predicts, the plant decides, and a simulation where both were the same code
would prove nothing.
"""

from __future__ import annotations

__all__ = ["MeterState", "initial_meter", "meter_step", "close_meter", "filter_y"]

import math
from dataclasses import dataclass, replace

_GAIN = 8
_KEEP = 992
_SCALE = 1000
_TRIP = 1690


@dataclass(frozen=True, slots=True)
class MeterState:
    """The meter's memory: the Linky filter (``z``), whether it is open and until when, the block so far."""

    z: tuple[int, ...] = (0,)
    open_until: float | None = None
    trips: int = 0
    block: int | None = None
    block_j: float = 0.0
    overrun_blocks: int = 0
    overrun_list: tuple[int, ...] = ()


def initial_meter() -> MeterState:
    return MeterState()


def filter_y(state: MeterState, pcoup_va: float) -> float:
    """The Linky filter's ``Y`` (1.69 trips), the highest phase's on a three-phase meter."""
    p = max(1, int(pcoup_va))
    return max(state.z) / (_SCALE * p * p)


def meter_step(state: MeterState, model: str, t: float, wall_s: float, drawn_w: float, limit_w: float,
               block_s: float, rearm_s: float, phases_w: tuple[float, ...] = ()) -> MeterState:
    """One second of ``drawn_w`` (what the building would draw if supplied) through the meter.

    ``phases_w``: the same per phase on a three-phase meter (a Linky trips phase by phase).
    Returns the new state; ``open_until`` set means the supply is cut until then.
    """
    if model == "linky":
        p = max(1, int(limit_w))
        if state.open_until is not None and t >= state.open_until:
            state = replace(state, open_until=None)
        per = phases_w or (drawn_w,)
        factor = 3 if len(per) > 1 else 1  # X = S_phase / (PCOUP/3)
        old = state.z if len(state.z) == len(per) else (0,) * len(per)
        cut = state.open_until is not None
        z = tuple(_GAIN * (0 if cut else factor * max(0, int(w))) ** 2 + (_KEEP * o) // _SCALE
                  for w, o in zip(per, old, strict=True))
        if not cut and any(v >= _TRIP * p * p for v in z):
            return replace(state, z=z, open_until=t + rearm_s, trips=state.trips + 1)
        return replace(state, z=z)
    if model == "block":
        idx = math.floor(wall_s / block_s)
        if state.block is None or idx != state.block:
            state = _close_block(state, limit_w, block_s)
            state = replace(state, block=idx, block_j=0.0)
        return replace(state, block_j=state.block_j + max(0.0, drawn_w))
    return state


def _close_block(state: MeterState, limit_w: float, block_s: float) -> MeterState:
    if state.block is not None and state.block_j / block_s > limit_w:
        return replace(state, overrun_blocks=state.overrun_blocks + 1,
                       overrun_list=(*state.overrun_list, state.block))
    return state


def close_meter(state: MeterState, model: str, limit_w: float, block_s: float) -> MeterState:
    """At the end of a run: count the block in progress (a part-block counts by its own energy over the block)."""
    return _close_block(state, limit_w, block_s) if model == "block" else state
