"""Modbus polling: 100 simulated SDM630 meters on TCP loopback, every point every second.

The meters are served by a separate process (``python -m hil.modbus_sim``, one
endpoint with unit ids 1..100, values moving); the driver runs in this
process with a minimal hub, so the CPU time and resident memory measured are
the polling side's only. Every profile point is polled each second (fast and
slow intervals both 1 s) for ``--duration`` seconds after a warm-up cycle.

Printed: requests per cycle for the coalesced plan and for one request per
point; the achieved cycle time (first request to last answer of each
one-second round) and points/s; CPU seconds per 1,000 points and the share of
one core; peak RSS. The last line is ``ratio=<one-request-per-point requests /
planned requests>``. Budgets: every point every second, under 30 % of one
core, under 60 MB resident, ratio >= 8.

    python bench/modbus_poll.py [--meters 100] [--duration 60] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `hil` lives in the source tree

from zaas_edge.drivers.modbus import get_profile  # noqa: E402
from zaas_edge.drivers.modbus.device import Device  # noqa: E402

from hil.modbus_harness import DriverRun  # noqa: E402
from hil.modbus_sim import SimProcess  # noqa: E402
from zaas_edge.model import Reading  # noqa: E402

PROFILE = "eastron-sdm630"


async def bench(meters: int, duration: float, concurrency: int, port: int) -> dict[str, float]:
    devices = [{"id": f"m{u}", "unit": u, "profile": PROFILE, "interval_fast_s": 1, "interval_slow_s": 1}
               for u in range(1, meters + 1)]
    run = DriverRun({"id": "bench", "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "port": port,
                     "timeout_s": 1.0, "max_concurrency": concurrency, "devices": devices}, keep_readings=False)
    spans: list[tuple[float, float]] = []

    # Every poll timed, through the class (devices are slotted: no attribute of their own to replace).
    untimed = Device.poll

    async def timed(self: Device, keys: frozenset[str] | set[str]) -> list[Reading]:
        t0 = time.monotonic()
        try:
            return await untimed(self, keys)
        finally:
            spans.append((t0, time.monotonic()))

    Device.poll = timed  # type: ignore[method-assign]
    try:
        return await _measure(run, spans, meters, duration)
    finally:
        Device.poll = untimed  # type: ignore[method-assign]


async def _measure(run: DriverRun, spans: list[tuple[float, float]], meters: int,
                   duration: float) -> dict[str, float]:
    await run.start()
    await run.until(lambda: bool(run.driver.devices), what="the driver to start")
    points_per_meter = len(run.driver.devices["m1"].entries)
    # Warm-up: every meter answered once (connections open, plans cached).
    await run.until(lambda: run.readings_total >= meters * points_per_meter, timeout=30, what="a first full cycle")
    spans.clear()
    r0, req0 = run.readings_total, run.counters.get("requests", 0)
    over0 = run.counters.get("overruns", 0)
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(duration)
    cpu1, t1 = time.process_time(), time.monotonic()
    readings = run.readings_total - r0
    requests = run.counters.get("requests", 0) - req0
    overruns = run.counters.get("overruns", 0) - over0
    offline = sum(1 for d in run.driver.devices.values() if d.health.online is not True)
    await run.stop()

    planned = sum(len(d.plan.blocks_for(d.entries)) for d in run.driver.devices.values())
    per_point = sum(len(d.entries) for d in run.driver.devices.values())
    # One round per second: group polls by the second they started in.
    rounds: dict[int, list[tuple[float, float]]] = {}
    for s, e in spans:
        rounds.setdefault(int(s - t0), []).append((s, e))
    cycles = [max(e for _, e in r) - min(s for s, _ in r) for r in rounds.values() if len(r) >= meters // 2]
    elapsed = t1 - t0
    cpu = cpu1 - cpu0
    return {
        "meters": meters, "points_per_meter": points_per_meter, "planned": planned, "per_point": per_point,
        "requests_per_s": requests / elapsed, "readings": readings, "points_per_s": readings / elapsed,
        "expected_points_per_s": meters * points_per_meter, "overruns": overruns, "offline": offline,
        "cycle_mean_s": statistics.mean(cycles) if cycles else float("nan"),
        "cycle_max_s": max(cycles) if cycles else float("nan"),
        "cpu_s": cpu, "elapsed_s": elapsed, "cpu_share": cpu / elapsed,
        "cpu_per_1000_points": cpu / (readings / 1000) if readings else float("nan"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds (after a warm-up cycle)")
    ap.add_argument("--concurrency", type=int, default=4, help="connections to the endpoint")
    args = ap.parse_args()
    get_profile(PROFILE)
    with SimProcess("--profile", PROFILE, "--units", f"1-{args.meters}") as sim:
        r = asyncio.run(bench(args.meters, args.duration, args.concurrency, sim.port))
    print(f"meters: {r['meters']} x {PROFILE} ({r['points_per_meter']} points each) on TCP loopback, "
          f"{args.concurrency} connections, {r['elapsed_s']:.1f} s measured")
    print(f"requests per cycle: planned {r['planned']}, one per point {r['per_point']}")
    print(f"achieved: {r['requests_per_s']:.0f} requests/s, {r['points_per_s']:.0f} points/s "
          f"(every point every second: {r['expected_points_per_s']}/s), overruns {r['overruns']}, "
          f"offline meters {r['offline']}")
    print(f"cycle time: mean {r['cycle_mean_s'] * 1000:.0f} ms, max {r['cycle_max_s'] * 1000:.0f} ms")
    print(f"cpu: {r['cpu_s']:.2f} s in {r['elapsed_s']:.1f} s = {r['cpu_share'] * 100:.1f} % of one core, "
          f"{r['cpu_per_1000_points'] * 1000:.1f} ms per 1,000 points")
    print(f"peak rss: {r['peak_rss_mb']:.1f} MB")
    ok = (r["points_per_s"] >= 0.98 * r["expected_points_per_s"] and r["cpu_share"] < 0.30
          and r["peak_rss_mb"] < 60 and r["per_point"] / r["planned"] >= 8)
    print(f"budgets: {'met' if ok else 'MISSED'} (every point every second, < 30 % of a core, < 60 MB, ratio >= 8)")
    print(f"ratio={r['per_point'] / r['planned']:.1f}")


if __name__ == "__main__":
    main()
