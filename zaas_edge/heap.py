"""What the cyclic garbage collector need not look at again: the daemon's heap once it has started.

A started daemon holds some 80,000 objects that live as long as it does (modules, the
configuration, profiles, drivers, services). Python's full collections walk every one of them
again, however little garbage there is, and the per-reading allocations of a building's polling
trigger one every few seconds: 5 to 10 % of the daemon's CPU went to the collector. Once the
daemon has settled (``settle``), they are moved out of its sight (``gc.freeze``); what is made
afterwards is collected as before. A reload lets go of them first (``unsettle``): the replaced
configuration must be collectable, and the heap is settled again once the new one runs.
"""

from __future__ import annotations

__all__ = ["SETTLE_S", "settle", "unsettle", "frozen"]

import gc

SETTLE_S = 5.0  # after the daemon is ready: its drivers have built their devices by then


def settle() -> int:
    """Collect what start-up left over, then freeze what survives; returns the objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unsettle() -> None:
    """Hand the frozen objects back to the collector (before they may turn into garbage)."""
    gc.unfreeze()


def frozen() -> int:
    """Objects the collector currently leaves alone."""
    return gc.get_freeze_count()
