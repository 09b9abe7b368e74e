"""Live readings reach every consumer but the store, in the same batch as the stored ones."""

from __future__ import annotations

from collections.abc import Sequence

from zaas_edge.hub import STORE_SINK, Hub
from zaas_edge.model import Reading


def _r(point: str, value: float) -> Reading:
    return Reading(point, value, "W", 1, 1, "boot", True)


def test_live_readings_skip_the_store_only() -> None:
    hub = Hub()
    seen: dict[str, list[list[str]]] = {STORE_SINK: [], "rules": []}

    def sink(name: str):
        def take(batch: Sequence[Reading]) -> None:
            seen[name].append([r.point for r in batch])
        return take

    hub.on_readings(STORE_SINK, sink(STORE_SINK))
    hub.on_readings("rules", sink("rules"))
    hub.readings([_r("m/energy", 1.0)], live=[_r("m/power", 2.0)])
    hub.readings([], live=[_r("m/power", 3.0)])
    assert seen[STORE_SINK] == [["m/energy"]]
    assert seen["rules"] == [["m/energy", "m/power"], ["m/power"]]
    assert hub.latest["m/power"].value == 3.0 and hub.readings_total == 3
