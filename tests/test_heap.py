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


def test_trim_gives_freed_pages_back_to_the_system() -> None:
    """On glibc the allocator's free pages go back: the resident size falls after a large free."""
    import platform

    def rss_kb() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4

    if platform.libc_ver()[0] != "glibc":
        assert heap.trim() in (True, False)
        return
    # Large holes between blocks that stay: free pages inside the heap, which glibc keeps until asked.
    kept, freed = [], []
    for _ in range(2_000):
        freed.append(bytearray(16_000))
        kept.append(bytearray(600))
    before = rss_kb()
    del freed
    gc.collect()
    assert heap.trim() is True
    assert rss_kb() < before - 10_000
    assert len(kept) == 2_000


async def test_the_daemon_trims_the_heap_every_so_often(monkeypatch) -> None:
    """The watchdog loop hands freed pages back once per ``TRIM_EVERY_S``, not only at start."""
    import asyncio
    from types import SimpleNamespace

    from zaas_edge.daemon import Daemon

    trims = asyncio.Event()
    calls: list[float] = []

    def trim() -> bool:
        calls.append(1.0)
        if len(calls) >= 2:
            trims.set()
        return True

    monkeypatch.setattr(heap, "trim", trim)
    monkeypatch.setattr(heap, "TRIM_EVERY_S", 0.0)

    async def backlog() -> dict[str, int]:
        return {}

    fake = SimpleNamespace(
        notifier=SimpleNamespace(watchdog_interval_s=0.02, watchdog=lambda: None, status=lambda line: None),
        supervisor=SimpleNamespace(stale_critical=lambda: []),
        hub=SimpleNamespace(flush_summaries=lambda now: None),
        clock=SimpleNamespace(monotonic_ns=lambda: 0),
        _refresh_backlog=backlog, _status_line=lambda: "")
    loop = asyncio.create_task(Daemon._watchdog_loop(fake))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(trims.wait(), 10)
    finally:
        loop.cancel()
    assert len(calls) >= 2
