"""The whole daemon in a building of 100 meters with MQTT and sync on: CPU and memory against budget.

What runs, all on 127.0.0.1: 100 simulated SDM630 meters spread over 4 Modbus
TCP endpoints, each served by its own process (``python -m hil.modbus_sim``,
values moving); a mosquitto when ``/usr/sbin/mosquitto`` exists; the
reference central API (``hil.central``) with the gateway enrolled; and the
real daemon (``python -m zaas_edge -c cfg run``) as a child, with a Modbus
driver per endpoint polling 14 points of each meter every second (``--points
all`` for the profile's 34: the load ThingsBoard IoT Gateway was compared on
is 14), the system driver, MQTT publishing and sync uploading (``[clock]
assume_synced = true`` so records flow): the way a building runs.
``--no-sync`` leaves the uplink out, to see what it costs. The building is
started by ``hil.scenario`` (its configuration writer, central API start-up
and enrollment); a part that cannot start costs one line and the bench goes on
without it, saying so.

The daemon runs from bytecode compiled beforehand (``compileall`` of ``zaas_edge`` and
``drivers`` into their ``__pycache__``), as an installed wheel does (pip compiles at install;
the unit's ``PYTHONDONTWRITEBYTECODE`` only stops writes): a checkout run with that variable set
would otherwise compile every module of the project from source at each start, and the
compiler's scratch memory would count in the peak (about 2 MB).

Measured after a warm-up (``--warmup``, 15 s) for ``--duration`` seconds
(60): the daemon's CPU from ``/proc/<pid>/stat`` (utime + stime, every thread)
as a share of one core, its peak and final resident memory (VmHWM, VmRSS),
readings/s through the hub and rows/s committed to the store, points/s polled
against the configured rate, overruns, MQTT messages published, sync rows
acknowledged. Then the same daemon runs a second building of ``--slope-meters``
(300) measured the same way (the same warm-up and window, so both have made
their first uploads), and the growth of its resident memory per additional
meter is the slope. Then the same meters are polled by the same
driver sections in this process alone (``hil.modbus_harness.DriverRun``, as
``bench/modbus_poll.py``), measured the same way: what polling alone costs.

Budget (issue: a Pi's footprint): peak RSS at most 50 MB for 100 meters x 14
points with MQTT and sync on, at most 30 kB per additional meter, at most
5.5 % of one core here (a third of ThingsBoard IoT Gateway's best, 16.3 %,
on the same load). The last line is ``ratio=<CPU budget / CPU measured>``:
above 1 the CPU budget is met.

    python bench/daemon_building.py [--duration 60] [--warmup 15] [--meters 100] [--endpoints 4]
                                    [--points 14|all] [--slope-meters 300] [--no-sync]
                                    [--profile-slow] [--run-dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `hil` and `tests` live in the source tree

from zaas_edge.drivers.modbus import get_profile  # noqa: E402

from hil.buildings import Building, ModbusLine, ModbusMeter  # noqa: E402
from hil.modbus_harness import DriverRun  # noqa: E402
from hil.modbus_sim import SimProcess  # noqa: E402
from hil.scenario import (  # noqa: E402
    DAEMON_STOP_S,
    Scenario,
    ScenarioError,
    start_unless_stopped,
    stop_on_signals,
    to_toml,
)
from zaas_edge.control import ControlClient  # noqa: E402

PROFILE = "eastron-sdm630"
# The 14 points of each SDM630 in the load compared with ThingsBoard IoT Gateway.
POINTS_14 = ("voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
             "power_l1", "power_l2", "power_l3", "power", "pf", "frequency", "energy_import", "energy_export")
CPU_BUDGET = 0.055  # of one core: a third of ThingsBoard IoT Gateway's 16.3 % on the same load
RSS_BUDGET_MB = 50.0
SLOPE_BUDGET_KB = 30.0  # per additional meter
CLK_TCK = os.sysconf("SC_CLK_TCK")

BASE_CONFIG = """\
# Base configuration of bench/daemon_building.py (the bench adds the buses, MQTT and sync).
[gateway]
id = "gw-bench"
site = "bench-park"

[log]
level = "info"

[clock]
assume_synced = true

[[drivers]]
id = "system"
type = "system"
interval_s = 1
"""


def subset_profile(name: str, points: tuple[str, ...], new_name: str) -> str:
    """A built-in profile's TOML with only ``points`` (one point per line in the library's files)."""
    text = resources.files("zaas_edge.drivers").joinpath("profiles", "modbus", f"{name}.toml").read_text()
    keep = []
    for line in text.splitlines():
        row = line.strip()
        if row.startswith('{ quantity = "') and row.removeprefix('{ quantity = "').split('"', 1)[0] not in points:
            continue
        keep.append(f'name = "{new_name}"' if line.startswith("name = ") else line)
    return "\n".join(keep) + "\n"


def bench_building(meters: int, endpoints: int, slow_interval_s: float) -> Building:
    """``meters`` SDM630 spread over ``endpoints`` TCP lines, unit ids restarting at 1 on each line."""
    per_line = [meters // endpoints + (i < meters % endpoints) for i in range(endpoints)]
    lines, n = [], 0
    for i, count in enumerate(per_line):
        ms = tuple(ModbusMeter(f"m{n + u:03d}", u, PROFILE) for u in range(1, count + 1))
        n += count
        lines.append(ModbusLine(f"line{i + 1}", "tcp", ms, interval_fast_s=1.0, interval_slow_s=slow_interval_s))
    return Building("bench", f"{meters} x {PROFILE} on {endpoints} Modbus TCP endpoints",
                    modbus=tuple(line for line in lines if line.meters))


class BenchBuilding(Scenario):
    """The scenario runner's building, with each Modbus endpoint served by its own simulator process
    (so neither this process nor the daemon pays for the meters)."""

    def __init__(self, *args: Any, points: tuple[str, ...] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sims: list[SimProcess] = []
        self.points = points  # None: every point of the profile

    def write_config(self) -> Path:
        """The scenario's configuration; with ``self.points``, every meter reads them through one profile
        file of its own (the SDM630's map cut to those points), as an integrator would write it."""
        path = super().write_config()
        if self.points is None:
            return path
        prof = self.run_dir / f"{PROFILE}-{len(self.points)}.toml"
        prof.write_text(subset_profile(PROFILE, self.points, prof.stem))
        doc = tomllib.loads(path.read_text())
        for d in doc.get("drivers", []):
            for dev in d.get("devices", []) if d.get("type") == "modbus" else []:
                del dev["profile"]
                dev["profile_file"] = str(prof)
        path.write_text(to_toml(doc))
        return path

    def say(self, line: str) -> None:
        print(f"bench: {line}", flush=True)

    def _banner(self, st: dict[str, Any]) -> None:
        pass  # the bench prints its own summary

    async def _start_modbus(self) -> None:
        for line in self.building.modbus:
            units = f"1-{len(line.meters)}"
            try:
                sim = await asyncio.to_thread(SimProcess, "--profile", PROFILE, "--units", units, "--port", "0")
            except Exception as exc:  # noqa: BLE001  (one line, go on)
                self._skip(f"Modbus simulator {line.id}", exc)
                continue
            self.sims.append(sim)
            self.children[f"sim-{line.id}"] = sim.proc.pid
            self._endpoints[line.id] = {"host": "127.0.0.1", "port": sim.port}
            self._closers.append((line.id, lambda sim=sim: asyncio.to_thread(sim.close)))
            self.running.append(f"{line.id}: {len(line.meters)} meters on 127.0.0.1:{sim.port} (pid {sim.proc.pid})")

    def modbus_sections(self) -> list[dict[str, Any]]:
        """The daemon's Modbus driver sections, exactly as written to its configuration."""
        doc = tomllib.loads(self.config_path.read_text())
        return [d for d in doc["drivers"] if d.get("type") == "modbus"]

    async def stop_daemon(self) -> None:
        if self.daemon is not None:
            await self._stop_child(self.daemon, DAEMON_STOP_S)


# --- the daemon, seen from outside ----------------------------------------------------------

def proc_cpu_s(pid: int) -> float:
    """utime + stime of every thread of ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def proc_mem_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(rest.split()[0]) / 1024
    return out


def snapshot(client: ControlClient, pid: int) -> dict[str, Any]:
    st = client.call("status")
    drivers = st.get("drivers", {})
    counters: dict[str, int] = {}
    for d in drivers.values():
        for k, v in (d.get("counters") or {}).items():
            if isinstance(v, int | float):
                counters[k] = counters.get(k, 0) + v
    mqtt = st.get("mqtt") or {}
    sync = st.get("sync") or {}
    store = st.get("store") or {}
    return {
        "t": time.monotonic(), "cpu_s": proc_cpu_s(pid), "readings": st.get("readings_total", 0),
        "counters": counters, "mqtt_published": mqtt.get("published", 0), "mqtt_dropped": mqtt.get("dropped", 0),
        "mqtt_connected": mqtt.get("connected"),
        "sync_rows": sum(lane.get("rows_sent", 0) for lane in (sync.get("lanes") or {}).values()),
        "sync_batches": sum(lane.get("batches_sent", 0) for lane in (sync.get("lanes") or {}).values()),
        "sync_state": sync.get("state"), "store": store, "backlog": st.get("backlog") or {},
        "drivers": {k: d.get("state") for k, d in drivers.items()},
    }


def stored_rows(store: dict[str, Any]) -> int | None:
    """Rows the writer committed (every lane: readings, upload records, events), from the status."""
    v = store.get("rows_written")
    return v if isinstance(v, int) else None


async def measure_daemon(b: BenchBuilding, warmup: float, duration: float, stop: asyncio.Event) -> dict[str, Any]:
    assert b.daemon is not None
    pid = b.daemon.pid
    client = ControlClient(b.run_dir / "run" / "control.sock", timeout=10)
    b.say(f"daemon pid {pid} ready; warm-up {warmup:g} s")
    if await _interrupted(stop, warmup) or b.daemon.returncode is not None:
        raise ScenarioError("interrupted during the warm-up" if stop.is_set() else "the daemon exited")
    s0 = await asyncio.to_thread(snapshot, client, pid)
    b.say(f"measuring the daemon for {duration:g} s")
    rss_samples: list[float] = []
    end = s0["t"] + duration
    while (left := end - time.monotonic()) > 0:
        if await _interrupted(stop, min(1.0, left)) or b.daemon.returncode is not None:
            raise ScenarioError("interrupted while measuring" if stop.is_set() else "the daemon exited")
        rss_samples.append(proc_mem_mb(pid)["VmRSS"])
    s1 = await asyncio.to_thread(snapshot, client, pid)
    mem = proc_mem_mb(pid)
    elapsed = s1["t"] - s0["t"]
    c0, c1 = s0["counters"], s1["counters"]
    r0, r1 = stored_rows(s0["store"]), stored_rows(s1["store"])
    return {
        "pid": pid, "elapsed_s": elapsed, "cpu_s": s1["cpu_s"] - s0["cpu_s"],
        "cpu_share": (s1["cpu_s"] - s0["cpu_s"]) / elapsed,
        "rss_peak_mb": mem["VmHWM"], "rss_final_mb": mem["VmRSS"],
        "rss_first_mb": rss_samples[0] if rss_samples else mem["VmRSS"],
        "readings_per_s": (s1["readings"] - s0["readings"]) / elapsed,
        "stored_per_s": (r1 - r0) / elapsed if r0 is not None and r1 is not None else None,
        "overruns": c1.get("overruns", 0) - c0.get("overruns", 0),
        "requests_per_s": (c1.get("requests", 0) - c0.get("requests", 0)) / elapsed,
        "mqtt_published": s1["mqtt_published"] - s0["mqtt_published"],
        "mqtt_dropped": s1["mqtt_dropped"] - s0["mqtt_dropped"], "mqtt_connected": s1["mqtt_connected"],
        "sync_rows": s1["sync_rows"] - s0["sync_rows"], "sync_batches": s1["sync_batches"] - s0["sync_batches"],
        "sync_state": s1["sync_state"], "backlog": s1["backlog"], "drivers": s1["drivers"],
    }


async def _interrupted(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


# --- the baseline: the same driver sections, alone, in this process --------------------------

async def measure_driver_only(sections: list[dict[str, Any]], warmup: float, duration: float,
                              stop: asyncio.Event) -> dict[str, Any]:
    runs = [DriverRun(s, keep_readings=False) for s in sections]
    for r in runs:
        await r.start()
    try:
        total = lambda: sum(r.readings_total for r in runs)  # noqa: E731
        counter = lambda k: sum(r.counters.get(k, 0) for r in runs)  # noqa: E731
        if await _interrupted(stop, warmup):
            raise ScenarioError("interrupted during the baseline's warm-up")
        r0, o0, q0 = total(), counter("overruns"), counter("requests")
        cpu0, t0 = time.process_time(), time.monotonic()
        if await _interrupted(stop, duration):
            raise ScenarioError("interrupted while measuring the baseline")
        cpu1, t1 = time.process_time(), time.monotonic()
        elapsed = t1 - t0
        return {"elapsed_s": elapsed, "cpu_s": cpu1 - cpu0, "cpu_share": (cpu1 - cpu0) / elapsed,
                "readings_per_s": (total() - r0) / elapsed, "overruns": counter("overruns") - o0,
                "requests_per_s": (counter("requests") - q0) / elapsed}
    finally:
        for r in runs:
            # Bounded: a driver task that swallows one cancellation gets a second one from wait_for.
            try:
                await asyncio.wait_for(r.stop(), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                print(f"bench: driver {r.options.id} did not stop within 5 s of its cancellation", flush=True)


def expected_points_per_s(building: Building, points_per_meter: int) -> float:
    """Points per second the configuration asks for: every point of every meter at 1 s (the bench polls
    energy counters at 1 s too, unless --profile-slow)."""
    line = building.modbus[0]
    if line.interval_slow_s == line.interval_fast_s:
        return sum(len(ln.meters) for ln in building.modbus) * points_per_meter / line.interval_fast_s
    prof = get_profile(PROFILE)
    total = 0.0
    for ln in building.modbus:
        for p in prof.points:
            default = prof.interval_s(p)
            slow = default == prof.defaults.slow_interval_s and default != prof.defaults.fast_interval_s
            total += len(ln.meters) / (ln.interval_slow_s if slow else ln.interval_fast_s)
    return total


# --- the run -------------------------------------------------------------------------------------

async def boot(args: argparse.Namespace, meters: int, run_dir: Path, stop: asyncio.Event,
               ) -> tuple[BenchBuilding, Building, Any]:
    prof = get_profile(PROFILE)
    slow = prof.defaults.slow_interval_s if args.profile_slow else 1.0
    building = bench_building(meters, args.endpoints, slow)
    run_dir.mkdir(parents=True, exist_ok=True)
    base = run_dir / "base.toml"
    base.write_text(BASE_CONFIG)
    daemon_log = open(run_dir / "daemon.log", "w")  # noqa: SIM115  (closed by the caller)
    points = None if args.points == "all" else POINTS_14
    b = BenchBuilding(base, building, run_dir, out=daemon_log, sync=not args.no_sync, points=points)
    try:
        await start_unless_stopped(b.start(), stop)
        if len(b.sims) != len(building.modbus):
            raise ScenarioError("not every Modbus simulator started: the figures would not be the building's")
    except BaseException:
        await b.stop()
        daemon_log.close()
        raise
    return b, building, daemon_log


def compile_bytecode() -> bool:
    """The daemon's own modules compiled beside their sources, as installing the wheel does."""
    import compileall

    return all([compileall.compile_dir(ROOT / pkg, quiet=1) for pkg in ("zaas_edge", "drivers")])


async def run(args: argparse.Namespace) -> int:
    if not compile_bytecode():
        print("bench: some modules did not compile; the daemon compiles them at each start", file=sys.stderr)
    top = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="zaas-bench-"))
    stop = stop_on_signals()
    status = 0
    slope: dict[str, Any] | None = None
    b = log = None
    try:
        b, building, log = await boot(args, args.meters, top / f"m{args.meters}", stop)
        expected = expected_points_per_s(building, len(b.points or get_profile(PROFILE).points))
        d = await measure_daemon(b, args.warmup, args.duration, stop)
        await b.stop_daemon()
        b.say(f"daemon stopped; baseline: the same {len(b.modbus_sections())} driver sections alone in this "
              f"process, warm-up 5 s, {args.duration:g} s measured")
        base_r = await measure_driver_only(b.modbus_sections(), 5.0, args.duration, stop)
        await b.stop()
        log.close()
        shown, b, log = b, None, None
        if args.slope_meters and args.slope_meters > args.meters:
            b2, _building2, log = await boot(args, args.slope_meters, top / f"m{args.slope_meters}", stop)
            b = b2
            b2.say(f"second size: {args.slope_meters} meters, for the memory slope")
            window = args.duration  # the same phase of the daemon's life as the first size (its first uploads)
            big = await measure_daemon(b2, args.warmup, window, stop)
            extra = args.slope_meters - args.meters
            slope = {"meters": args.slope_meters, "rss_peak_mb": big["rss_peak_mb"],
                     "rss_final_mb": big["rss_final_mb"], "cpu_share": big["cpu_share"],
                     "kb_per_meter": (big["rss_final_mb"] - d["rss_final_mb"]) * 1024 / extra,
                     "peak_kb_per_meter": (big["rss_peak_mb"] - d["rss_peak_mb"]) * 1024 / extra}
    except ScenarioError as exc:
        print(f"bench: {exc} (logs under {top})", file=sys.stderr, flush=True)
        status = 2
    finally:
        if b is not None:
            await b.stop()
        if log is not None:
            log.close()
    if status:
        return status
    report(args, shown, building, expected, d, base_r, slope)
    if not args.keep and not args.run_dir:
        shutil.rmtree(top, ignore_errors=True)
    else:
        print(f"run directory kept: {top}")
    return 0


def report(args: argparse.Namespace, b: BenchBuilding, building: Building, expected: float,
           d: dict[str, Any], base_r: dict[str, Any], slope: dict[str, Any] | None) -> None:
    meters = sum(len(line.meters) for line in building.modbus)
    points = len(b.points or get_profile(PROFILE).points)
    slow = building.modbus[0].interval_slow_s
    print(f"building: {meters} x {PROFILE} ({points} points each, {meters * points} points) on "
          f"{len(building.modbus)} Modbus TCP endpoints (one simulator process each); fast points every 1 s, "
          f"energy counters every {slow:g} s")
    print("services: " + ", ".join([
        f"mqtt {'to mosquitto' if b._mqtt else 'DISABLED'}",
        f"sync {'to the reference central, enrolled' if b._sync else 'DISABLED'}",
        "system driver"]))
    for s in b.skipped:
        print(f"  not running: {s}")
    print(f"daemon ({d['elapsed_s']:.1f} s measured after {args.warmup:g} s warm-up, pid {d['pid']}):")
    print(f"  cpu: {d['cpu_s']:.2f} s = {d['cpu_share'] * 100:.1f} % of one core")
    print(f"  rss: peak {d['rss_peak_mb']:.1f} MB, final {d['rss_final_mb']:.1f} MB "
          f"(at the start of the window {d['rss_first_mb']:.1f} MB)")
    stored = "n/a" if d["stored_per_s"] is None else f"{d['stored_per_s']:.0f}"
    print(f"  readings: {d['readings_per_s']:.0f}/s through the hub, {stored}/s committed to the store; "
          f"expected {expected:.0f}/s; {d['requests_per_s']:.0f} requests/s; overruns {d['overruns']}")
    print(f"  mqtt: {d['mqtt_published']} messages published ({d['mqtt_published'] / d['elapsed_s']:.0f}/s), "
          f"{d['mqtt_dropped']} dropped, connected {d['mqtt_connected']}")
    print(f"  sync: {d['sync_rows']} rows acknowledged in {d['sync_batches']} batches, state {d['sync_state']}; "
          f"backlog at the end {json.dumps(d['backlog'], sort_keys=True)}")
    print(f"  drivers: {', '.join(f'{k} {v}' for k, v in sorted(d['drivers'].items()))}")
    if slope is not None:
        print(f"second size ({slope['meters']} meters): rss peak {slope['rss_peak_mb']:.1f} MB, final "
              f"{slope['rss_final_mb']:.1f} MB, cpu {slope['cpu_share'] * 100:.1f} %; slope "
              f"{slope['kb_per_meter']:.1f} kB per additional meter (peaks: {slope['peak_kb_per_meter']:.1f} kB)")
    print(f"driver only ({base_r['elapsed_s']:.1f} s measured, same sections, in-process):")
    print(f"  cpu: {base_r['cpu_s']:.2f} s = {base_r['cpu_share'] * 100:.1f} % of one core; "
          f"readings {base_r['readings_per_s']:.0f}/s; {base_r['requests_per_s']:.0f} requests/s; "
          f"overruns {base_r['overruns']}")
    every = d["readings_per_s"] >= 0.98 * expected and d["overruns"] == 0
    cpu_ok = d["cpu_share"] <= CPU_BUDGET
    rss_ok = d["rss_peak_mb"] <= RSS_BUDGET_MB
    slope_ok = slope is None or slope["kb_per_meter"] <= SLOPE_BUDGET_KB
    full = bool(b._mqtt) and bool(b._sync)
    verdict = "met" if every and cpu_ok and rss_ok and slope_ok else "MISSED"
    slope_txt = "" if slope is None else (
        f", slope {slope['kb_per_meter']:.1f} kB/meter {'<=' if slope_ok else '>'} {SLOPE_BUDGET_KB:g} kB")
    print(f"budget: {verdict}: every point at its interval {'yes' if every else 'NO'}, "
          f"cpu {d['cpu_share'] * 100:.1f} % {'<=' if cpu_ok else '>'} {CPU_BUDGET * 100:g} %, "
          f"peak rss {d['rss_peak_mb']:.1f} MB {'<=' if rss_ok else '>'} {RSS_BUDGET_MB:g} MB{slope_txt}"
          + ("" if full else " (NOT the whole daemon: a service is disabled, see above)"))
    print(f"daemon cpu / driver-only cpu: {d['cpu_share'] / base_r['cpu_share']:.2f}" if base_r["cpu_share"] else
          "daemon cpu / driver-only cpu: n/a")
    ratio = CPU_BUDGET / d["cpu_share"] if d["cpu_share"] else float("nan")
    print(f"ratio={ratio:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds, daemon and baseline each")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds between the daemon ready and the measure")
    ap.add_argument("--meters", type=int, default=100)
    ap.add_argument("--endpoints", type=int, default=4, help="Modbus TCP endpoints (one simulator process each)")
    ap.add_argument("--points", choices=("14", "all"), default="14",
                    help="points read per meter: the 14 of the comparison with ThingsBoard, or the profile's 34")
    ap.add_argument("--slope-meters", type=int, default=300,
                    help="a second building this size gives the memory per additional meter (0: skip)")
    ap.add_argument("--no-sync", action="store_true", help="leave the uplink out (to see what it costs)")
    ap.add_argument("--profile-slow", action="store_true",
                    help="poll energy counters at the profile's slow interval instead of every second")
    ap.add_argument("--run-dir", default=None, help="where configuration, store and logs go (kept)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary run directory")
    args = ap.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
