"""What the cyclic garbage collector need not look at again: the daemon's heap once it has started.

A started daemon holds some 80,000 objects that live as long as it does (modules, the
configuration, profiles, drivers, services). Python's full collections walk every one of them
again, however little garbage there is, and the per-reading allocations of a building's polling
trigger one every few seconds: 5 to 10 % of the daemon's CPU went to the collector. Once the
daemon has settled (``settle``), they are moved out of its sight (``gc.freeze``); what is made
afterwards is collected as before. A reload lets go of them first (``unsettle``): the replaced
configuration must be collectable, and the heap is settled again once the new one runs.

Settling also hands back to the system the memory start-up used and freed (reading the
configuration, the first discovery of every device): the C allocator keeps freed pages for
itself unless asked (``malloc_trim``, glibc only; elsewhere nothing is done). About 1.5 MB of a
Pi's memory in a building of 100 meters. The daemon asks again every ``TRIM_EVERY_S``: each
minute closes every point's upload window at once (the records, the batch, its encoding), and
the pages that burst leaves free inside the heap would otherwise stay resident, some 1 MB per
100 meters, growing with the building. A trim takes about a millisecond.
"""

from __future__ import annotations

__all__ = ["SETTLE_S", "TRIM_EVERY_S", "settle", "unsettle", "frozen", "trim"]

import functools
import gc
from collections.abc import Callable

SETTLE_S = 5.0  # after the daemon is ready: its drivers have built their devices by then
TRIM_EVERY_S = 60.0  # once per upload window


def settle() -> int:
    """Collect what start-up left over, freeze what survives, give freed pages back; returns the
    objects frozen."""
    gc.collect()
    gc.freeze()
    trim()
    return gc.get_freeze_count()


def trim() -> bool:
    """Return the C allocator's free pages to the system; False where there is no ``malloc_trim``."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once; None elsewhere."""
    try:
        import ctypes

        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def unsettle() -> None:
    """Hand the frozen objects back to the collector (before they may turn into garbage)."""
    gc.unfreeze()


def frozen() -> int:
    """Objects the collector currently leaves alone."""
    return gc.get_freeze_count()
