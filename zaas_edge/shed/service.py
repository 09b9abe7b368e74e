"""The load-shedding service: the engine fed by the hub, its actions carried out on the actuators."""

from __future__ import annotations

__all__ = ["ShedService"]

import asyncio

from zaas_edge.service import Service


class ShedService(Service):
    """Placeholder until the service lands: runs, does nothing."""

    name = "shed"

    async def run(self) -> None:
        await asyncio.Event().wait()
