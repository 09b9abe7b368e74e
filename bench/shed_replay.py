"""Load shedding: the scenario suite through the zaas-edge engine and through an OpenEMS-style baseline.

Every scenario of ``hil/scenarios/shed/`` runs twice in the same plant (the
same meter model, base load, loads, latencies and disobedient relays): once
with the engine on the scenario's ``[shedding]`` section, once with a
baseline of one uncoordinated threshold controller per load, as OpenEMS's
``Controller.IO.ChannelSingleThreshold`` (ENERGY.md §1): its input is the
meter's total power averaged over the last 60 s, with the load's own (static)
power taken off while it runs; it sheds its load above the limit in force and
restores it once the average with the load back is under the limit by a
hysteresis; after any switch it holds for 60 s (the lock-out that users take
for hysteresis). Every controller sees the same input, so they all act
together, with no priority, rotation, forecast or Linky filter.

For each scenario and controller it prints the figures; then the targets
(0 trips up to 5 x PCOUP, 0 over-run blocks, at most 6 switchings per load per
hour, shed spread 0.2 or less, restore p95 300 s or less) for zaas-edge, and a
last line ``ratio=<baseline shed energy / zaas-edge shed energy>`` summed
over the scenarios where zaas-edge has no trip and no over-run block: how much
more comfort the baseline takes away to do (at best) the same job.

    python bench/shed_replay.py [--scenarios DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zaas_edge.rules import limits as lim  # noqa: E402
from zaas_edge.rules import loads as ld  # noqa: E402
from zaas_edge.rules.config import SheddingConfig  # noqa: E402
from zaas_edge.rules.model import Action, Inputs, Reason, Restore, Shed  # noqa: E402
from zaas_edge.rules.scenario import load_scenario  # noqa: E402
from zaas_edge.rules.simulate import Figures, check_targets, simulate  # noqa: E402

LOCKOUT_S = 60.0
AVERAGE_S = 60.0
HYSTERESIS_W = 200.0
TARGETS = "0 trips up to 5x PCOUP, 0 over-run blocks, <= 6 switchings per load per hour, shed spread <= 0.2, " \
          "restore p95 <= 300 s"


class ThresholdBaseline:
    """One ChannelSingleThreshold per load, all on the meter's power averaged over 60 s, uncoordinated."""

    def __init__(self, config: SheddingConfig) -> None:
        self.cfg = config
        self.window: deque[tuple[float, float]] = deque()
        self.latest: dict[str, float] = {}
        self.on = {c.id: True for c in config.loads}
        self.changed: dict[str, float] = {}
        self.node = {c.id: config.limit(config.ancestors(c.circuit)[-1]) for c in config.loads}

    def __call__(self, inputs: Inputs, now: float) -> tuple[Action, ...]:
        for s in inputs.samples:  # the meter's total (a three-phase meter's phases add up), once a second
            self.latest[s.point] = s.watts
        if inputs.samples:
            self.window.append((now, sum(self.latest.values())))
        while self.window and self.window[0][0] <= now - AVERAGE_S:
            self.window.popleft()
        if not self.window:
            return ()  # no input: the outputs hold (OpenEMS channels go undefined; no fallback configured)
        mean = sum(w for _, w in self.window) / len(self.window)
        out: list[Action] = []
        for c in self.cfg.loads:
            if now - self.changed.get(c.id, -LOCKOUT_S) < LOCKOUT_S:
                continue
            limit_w, _ = lim.effective_limit(self.node[c.id], inputs)
            own = c.power_w if self.on[c.id] else 0.0  # switchedLoadPower, static
            values = {"mean_w": mean, "limit_w": limit_w, "switched_w": c.power_w}
            if self.on[c.id] and mean > limit_w:
                self.on[c.id], self.changed[c.id] = False, now
                out.append(Shed(c.id, 0.0, Reason("baseline: over threshold", self.node[c.id].id, values)))
            elif not self.on[c.id] and mean - own + c.power_w < limit_w - HYSTERESIS_W:
                self.on[c.id], self.changed[c.id] = True, now
                out.append(Restore(c.id, ld.full_level(c), Reason("baseline: under threshold", self.node[c.id].id,
                                                                   values)))
        return tuple(out)


def _row(name: str, f: Figures) -> str:
    return (f"  {name:<9} trips {f.trips:>2}  overrun blocks {f.overrun_blocks:>2}"
            f"  switchings/h {f.max_switchings_per_load_hour:>2}"
            f"  spread {f.shed_spread:5.2f}  restore p95 {f.restore_p95_s:6.0f} s  shed {f.shed_energy_wh:8.0f} Wh"
            f"  comfort {f.comfort_violations}  lost to trips {f.outage_wh:6.0f} Wh")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", type=Path, default=ROOT / "hil" / "scenarios" / "shed")
    ap.add_argument("--json", action="store_true", help="also print every figure as one JSON line per scenario")
    args = ap.parse_args()
    paths = sorted(args.scenarios.glob("*.toml"))
    if not paths:
        print(f"bench: no scenario in {args.scenarios}", file=sys.stderr)
        return 2
    zaas_wh = base_wh = both_zaas_wh = both_base_wh = 0.0
    both = 0
    missed: list[str] = []
    counted = 0
    t0 = time.perf_counter()
    for path in paths:
        sc, trace = load_scenario(path)
        ours = simulate(sc, trace).figures
        theirs = simulate(sc, trace, ThresholdBaseline(sc.shedding)).figures
        print(f"{path.stem}: {sc.name} ({sc.duration_s / 3600:.1f} h, {sc.plant.meter.model} meter)")
        print(_row("zaas-edge", ours))
        print(_row("baseline", theirs))
        if args.json:
            print(json.dumps({"scenario": path.stem, "zaas_edge": ours.as_dict(), "baseline": theirs.as_dict()}))
        missed += [f"{path.stem}: {m}" for m in check_targets(ours, sc.targets)]
        if ours.trips == 0 and ours.overrun_blocks == 0:
            counted += 1
            zaas_wh += ours.shed_energy_wh
            base_wh += theirs.shed_energy_wh
            if theirs.trips == 0 and theirs.overrun_blocks == 0:
                both += 1
                both_zaas_wh += ours.shed_energy_wh
                both_base_wh += theirs.shed_energy_wh
    elapsed = time.perf_counter() - t0
    print(f"simulated {len(paths)} scenarios twice in {elapsed:.1f} s")
    print(f"targets ({TARGETS}): {'met' if not missed else 'MISSED: ' + '; '.join(missed)}")
    print(f"shed energy over the {counted} scenarios with no trip and no over-run: zaas-edge {zaas_wh:.0f} Wh, "
          f"baseline {base_wh:.0f} Wh")
    if both and both_zaas_wh > 0:
        print(f"over the {both} where the baseline does not trip or over-run either: zaas-edge {both_zaas_wh:.0f} Wh, "
              f"baseline {both_base_wh:.0f} Wh, {both_base_wh / both_zaas_wh:.2f} x")
    print(f"ratio={base_wh / zaas_wh:.2f}" if zaas_wh > 0 else "ratio=nan")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
