"""Drivers' persistent documents survive a restart of the store (and so of the daemon)."""

from __future__ import annotations

from pathlib import Path

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.daemon import StoredDriverState
from zaas_edge.store import Writer


async def test_state_round_trips_through_the_store_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    clock = FakeClock()
    async with Writer(StoreSection(), path, clock) as writer:
        state = StoredDriverState(writer, clock)
        assert await state.load("lora-1", "fcnt") is None
        await state.save("lora-1", "fcnt", {"26011bda": 70001})
        await state.save("lora-1", "fcnt", {"26011bda": 70002, "26011bdb": 5})
        await state.save("other", "fcnt", {"x": 1})
    async with Writer(StoreSection(), path, clock) as writer:
        state = StoredDriverState(writer, clock)
        assert await state.load("lora-1", "fcnt") == {"26011bda": 70002, "26011bdb": 5}
        assert await state.load("other", "fcnt") == {"x": 1}
        assert await state.load("lora-1", "plan") is None
