"""The daemon's long-lived heap is frozen out of the cyclic collector's way, and handed back."""

from __future__ import annotations

import gc
import weakref

from zaas_edge import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settle_freezes_what_lives_and_unsettle_makes_it_collectable_again() -> None:
    try:
        kept = Node()
        assert heap.settle() == heap.frozen() > 0
        ref = weakref.ref(kept)
        del kept
        gc.collect()
        assert ref() is not None  # frozen: out of the collector's sight, even as garbage
        heap.unsettle()
        assert heap.frozen() == 0
        gc.collect()
        assert ref() is None  # handed back: collected
        made_after = Node()
        after = weakref.ref(made_after)
        heap.settle()
        heap.unsettle()
        del made_after
        gc.collect()
        assert after() is None
    finally:
        heap.unsettle()
