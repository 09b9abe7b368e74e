"""The store's history as a plant: what the meter recorded, with what the engine would have shed taken off.

``shed simulate --from/--to`` replays a window of recorded readings through
the engine with the configuration's ``[shedding]`` section. The recorded
total already contains every load at whatever it drew; the plant is that
total less each load at full power (its configured ``power_w``, the figure
the engine starts learning from), plus each load at the level the engine
commands, after its actuator's latency. So a load the engine sheds takes its
power off the metered total from the moment it would have been shed, and a
load it never touches leaves the record as it was.

Pure: the caller reads the rows (read-only) and hands them over.
"""

from __future__ import annotations

__all__ = ["history_scenario", "OUTAGE_GAP_S"]

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from zaas_edge.errors import ConfigError, ConfigIssue
from zaas_edge.rules.config import SheddingConfig
from zaas_edge.rules.scenario import BaseLoad, MeterModel, PlantConfig, PlantLoad, Scenario, Targets, Trace

#: A silence longer than this in the record is a meter outage (the store keeps a steady value only at its
#: interval, so shorter silences are the value held).
OUTAGE_GAP_S = 900.0
_NS = 1_000_000_000
_MAX_S = 7 * 86400


def history_scenario(shedding: SheddingConfig, rows: Mapping[str, Sequence[tuple[int, float]]],
                     since_ns: int, until_ns: int) -> tuple[Scenario, Trace]:
    """A scenario over ``[since_ns, until_ns)`` from ``rows`` (``point -> [(wall_ns, W)]``) and ``shedding``.

    The replay reads one metered point: the limits' points must be one point
    (a single meter or a sum the driver already makes).
    """
    where = "shed simulate --from/--to"
    points = sorted({p for lim in shedding.limits for p in lim.points})
    if len(points) != 1:
        raise ConfigError([ConfigIssue(where, "shedding.limits",
                                       f"a replay reads one metered point; the limits read {len(points)}: "
                                       f"{', '.join(points) or 'none'}")])
    point = points[0]
    if not 0 < (until_ns - since_ns) / _NS <= _MAX_S:
        raise ConfigError([ConfigIssue(where, "--from/--to", "expected a window of 1 s to 7 days, got "
                                       f"{(until_ns - since_ns) / _NS:g} s")])
    inside = sorted((ns, w) for ns, w in rows.get(point, ()) if since_ns <= ns < until_ns)
    if not inside:
        raise ConfigError([ConfigIssue(where, point, "no readings of this point in the window")])
    # the run starts at the first reading: before it the engine would only see a missing meter
    since_ns = inside[0][0]
    duration = max(1.0, (until_ns - since_ns) / _NS)
    got = [((ns - since_ns) / _NS, w) for ns, w in inside]
    node = next(lim for lim in shedding.limits if point in lim.points)
    model = {"linky": "linky", "block": "block"}.get(node.kind, "instant")
    outages = _outages([t for t, _ in got], duration)
    full = sum(c.power_w for c in shedding.loads)
    base = Trace([(t, w - full) for t, w in got], hold=True)
    loads = [PlantLoad(id=c.id, power_w=c.power_w, latency_s=shedding.actuator_latency_s(c)) for c in shedding.loads]
    sc = Scenario(
        name=f"history {_iso(since_ns)} to {_iso(until_ns)}", duration_s=duration,
        start=datetime.fromtimestamp(since_ns / _NS, UTC),
        plant=PlantConfig(meter=MeterModel(model=model, point=point, limit_w=node.limit_w, block_s=node.block_s,
                                           outages=outages),
                          base=BaseLoad(watts=0.0), loads=loads),
        shedding=shedding, targets=Targets())
    return sc, base


def _outages(times: list[float], duration: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    if times[0] > 0:
        out.append((0.0, times[0]))
    out += [(a + 1.0, b) for a, b in zip(times, times[1:], strict=False) if b - a > OUTAGE_GAP_S]
    if duration - times[-1] > OUTAGE_GAP_S:
        out.append((times[-1] + 1.0, duration))
    return out


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / _NS, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
