"""Fixtures shared across test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
async def central(tmp_path: Path):
    """The reference central API on 127.0.0.1, with its own test CA, in this event loop."""
    from hil.central import Central

    c = Central(tmp_path / "central")
    await c.start()
    yield c
    await c.stop()
