"""Sync drain: 1,000,000 readings through the real uplink to the reference central API, and what they cost.

Builds a backlog of realistic readings (default 1,000,000) from a building of
3,000 points: 100 meters, each with 20 fast points polled every second
(voltages around 230 V, currents, powers with noise, frequency, power factor)
and 10 slow points read every minute (monotonic energy and volume counters,
temperatures), stamped per meter poll with a few milliseconds of jitter.

What a "reading" is: one raw sample of one point. What goes up is an *upload
record* (``UploadRecord``), made by the upload policies: under the ``raw``
policy one record per reading; under the default policies one record per
point and minute (an aggregate: count, avg, min, max, last, or a counter's
last value). Every figure says which of the two it is per.

The drain: the upload records sit in the upload lane of a real store (a
SQLite file, as the aggregator leaves them), and the real sync service
(``zaas_edge.sync.service``: frozen batches, the codec, zstd, one keep-alive
mTLS connection through ``zaas_edge.sync.uplink``) sends them to the
reference central API (``hil.central``, its own process on 127.0.0.1, which
decodes each batch and stores every row in SQLite, UNIQUE per seq) until
every record is acknowledged; the central's row count is checked. Run twice:

- ``raw`` policy, every reading goes up: the readings/s of the drain and the
  wire bytes per reading (the targets >= 100,000 readings/s, <= 3 bytes);
- default policies: records/s and bytes per upload record, and the same per
  raw reading the records stand for.

It also prints the two JSON baselines (one JSON object per reading, and the
same JSON lines gzip-compressed), the store's bytes per buffered raw reading
and per upload record (measured on the SQLite files), the projected store
size of a 7-day outage under the defaults (< 2 GB), and a last line
``ratio=<JSON-per-reading bytes / our wire bytes per reading>`` (>= 20; ours:
the raw-policy drain, as measured on the wire).

    python bench/sync_drain.py [--readings N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # hil/ runs from the source tree

from hil.central.process import CentralProcess  # noqa: E402
from zaas_edge.clock import SystemClock  # noqa: E402
from zaas_edge.config_model import Config  # noqa: E402
from zaas_edge.hub import Hub  # noqa: E402
from zaas_edge.model import Lane, Reading, Stamp, UploadRecord  # noqa: E402
from zaas_edge.service import ServiceContext  # noqa: E402
from zaas_edge.store import Store, Stored  # noqa: E402
from zaas_edge.sync.aggregate import Aggregation  # noqa: E402
from zaas_edge.sync.config import SyncSection  # noqa: E402
from zaas_edge.sync.policy import PolicySet  # noqa: E402

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_040 * S
BOOT = "5f0c2b7e-9d1a-4c3e-8b6f-0a1b2c3d4e5f"
METERS = 100
DAY_S = 86_400
_UPLOAD = getattr(Lane, "UPLOAD", Lane.READING)  # the store lane of upload records (label only here)

# (quantity, unit, resolution, fast?)
FAST = [("voltage_l1", "V", 0.1), ("voltage_l2", "V", 0.1), ("voltage_l3", "V", 0.1),
        ("current_l1", "A", 0.01), ("current_l2", "A", 0.01), ("current_l3", "A", 0.01),
        ("power_l1", "W", 1.0), ("power_l2", "W", 1.0), ("power_l3", "W", 1.0), ("active_power", "W", 1.0),
        ("reactive_power", "var", 1.0), ("apparent_power", "VA", 1.0), ("power_factor", "", 0.001),
        ("frequency", "Hz", 0.01), ("thd_voltage", "%", 0.1), ("thd_current", "%", 0.1),
        ("flow", "m3/h", 0.01), ("heat_power", "W", 1.0), ("supply_temp", "degC", 0.1), ("return_temp", "degC", 0.1)]
SLOW = [("energy_import", "kWh", 0.01), ("energy_export", "kWh", 0.01), ("energy_l1", "kWh", 0.01),
        ("energy_l2", "kWh", 0.01), ("energy_l3", "kWh", 0.01), ("reactive_energy", "kvarh", 0.01),
        ("water_volume", "m3", 0.001), ("heat_energy", "kWh", 0.1), ("temperature", "degC", 0.1),
        ("humidity", "%", 0.1)]


class Building:
    """Simulated meters: each keeps its own state so curves are continuous."""

    def __init__(self, seed: int = 7) -> None:
        self.rnd = random.Random(seed)
        r = self.rnd
        self.meters = []
        for m in range(METERS):
            self.meters.append({
                "phase_ms": (m * 9) % 1000,  # each meter is polled at its own moment of the second
                "load": r.uniform(500, 15000),  # W
                "v": [r.uniform(228, 233) for _ in range(3)],
                "energy": r.uniform(1e3, 1e6),
                "export": r.uniform(0, 1e4),
                "water": r.uniform(10, 5000),
                "heat": r.uniform(1e3, 1e5),
                "temp": r.uniform(18, 24),
            })
        self.resolution = {f"meter-{m:03d}/{q}": res for m in range(METERS) for q, _u, res in FAST + SLOW}

    def second(self, t: int) -> list[Reading]:
        """All readings stamped within second ``t`` (fast points each second, slow ones once a minute)."""
        r = self.rnd
        out = []
        for m, st in enumerate(self.meters):
            stamp_ns = T0 + t * S + (st["phase_ms"] + int(abs(r.gauss(0, 2)))) * MS + r.randrange(MS)
            stamp = Stamp(stamp_ns, stamp_ns - T0 + 5 * S, BOOT, True)
            st["load"] = max(100.0, st["load"] + r.gauss(0, 30))
            p = st["load"] + r.gauss(0, 15)
            vs = [v + r.gauss(0, 0.15) for v in st["v"]]
            phases = [p * f for f in (0.34, 0.33, 0.33)]
            cur = [ph / v / 0.95 for ph, v in zip(phases, vs, strict=True)]
            vals = vs + cur + phases + [p, p * 0.3 + r.gauss(0, 5), p / 0.95, 0.95 + r.gauss(0, 0.003),
                                        50 + r.gauss(0, 0.01), 2.1 + r.gauss(0, 0.05), 8 + r.gauss(0, 0.3),
                                        1.2 + r.gauss(0, 0.02), 3000 + r.gauss(0, 40), 65 + r.gauss(0, 0.05),
                                        45 + r.gauss(0, 0.05)]
            base = f"meter-{m:03d}/"
            out.extend(Reading.at(stamp, base + q, v, u) for (q, u, _res), v in zip(FAST, vals, strict=True))
            st["energy"] += p / 3_600_000  # kWh per second
            st["export"] += 0.0001
            st["water"] += r.uniform(0, 0.0005)
            st["heat"] += 0.0008
            if (t + m) % 60 == 0:
                e = st["energy"]
                slow = [e, st["export"], e * 0.34, e * 0.33, e * 0.33, e * 0.3, st["water"], st["heat"],
                        st["temp"] + r.gauss(0, 0.1), 45 + r.gauss(0, 0.5)]
                out.extend(Reading.at(stamp, base + q, v, u) for (q, u, _res), v in zip(SLOW, slow, strict=True))
        return out


def backlog(n: int) -> tuple[list[Reading], Building, float]:
    b = Building()
    out: list[Reading] = []
    t = 0
    while len(out) < n:
        out.extend(b.second(t))
        t += 1
    return out[:n], b, t


def json_lines(readings: list[Reading]) -> list[bytes]:
    """One JSON object per reading, the shape common gateways send."""
    return [json.dumps({"gateway": "gw-demo", "point": r.point, "value": r.value, "unit": r.unit,
                        "ts": r.wall_ns // MS, "quality": str(r.quality)}, separators=(",", ":")).encode()
            for r in readings]


def store_bytes_per_reading(readings: list[Reading], directory: Path) -> float:
    path = directory / "raw.db"
    with Store(path) as st:
        for i in range(0, len(readings), 5000):
            st.append(readings[i:i + 5000])
        st.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return st.used_bytes() / len(readings)


def upload_commits(readings: list[Reading], building: Building, policies: PolicySet,
                   cfg: SyncSection) -> tuple[list[list[UploadRecord]], float]:
    """The records the aggregator makes of ``readings`` under ``policies``, as it commits them, and how
    fast (readings/s).

    Pass by pass, as the aggregator runs: the readings of each ``aggregate_interval_s`` are fed, the
    windows due are closed, and what the pass made is one commit (one or more store blocks; sync reads
    these blocks back, so their size is part of what a drain costs).
    """
    agg = Aggregation(policies, grace_s=cfg.aggregate_grace_s, resolution=building.resolution.get)
    step = int(cfg.aggregate_interval_s * S)
    out: list[list[UploadRecord]] = []
    t = time.perf_counter()
    i, n = 0, len(readings)
    end = readings[0].wall_ns - readings[0].wall_ns % step + step
    while i < n:
        j = i
        while j < n and readings[j].wall_ns < end:
            j += 1
        recs, _ = agg.feed([Stored(Lane.READING, k + 1, readings[k]) for k in range(i, j)])
        recs += agg.close(Stamp(end, end - T0 + 5 * S, BOOT, True))  # the readings' own monotonic clock
        if recs:
            out.append(recs)
        i, end = j, end + step
    rest = agg.close(Stamp(end + 3600 * S, end + 3600 * S - T0 + 5 * S, BOOT, True), everything=True)
    if rest:
        out.append(rest)
    return out, n / (time.perf_counter() - t)


async def drain(chunks: list[list[UploadRecord]], state: Path, central: CentralProcess,
                gateway: str) -> dict[str, float]:
    """Buffer the records in a real store's upload lane, one commit per chunk, then time the sync service
    sending them all."""
    from zaas_edge.store import Writer
    from zaas_edge.sync.enroll import enroll
    from zaas_edge.sync.identity import Identity
    from zaas_edge.sync.service import SyncService

    state.mkdir(parents=True)
    cfg = Config.model_validate({
        "gateway": {"id": gateway, "site": "bench", "state_dir": str(state), "runtime_dir": str(state / "run")},
        "store": {"max_size_mb": 4096},
        "sync": {"enabled": True, "url": central.url, "config_pull_interval_s": 0, "idle_interval_s": 0.05},
    })
    ident = Identity(state / "identity")
    ident.init(gateway, "bench")
    await enroll(ident, central.url, central.tokens.pop(), gateway, central.ca)
    clock = SystemClock(assume_synced=True)
    writer = Writer(cfg.store, cfg.store_path, clock)
    await writer.start()
    try:
        t = time.perf_counter()
        records = [r for c in chunks for r in c]

        def put(st: Store) -> None:
            for chunk in chunks:
                with st.transaction("buffering upload records"):
                    st.insert_uploads(chunk)
        await writer._call(put)  # the benchmark fills the store on its thread, before the drain
        buffer_s = time.perf_counter() - t

        def measure(st: Store) -> tuple[int, int]:
            st.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            return st.used_bytes(), st.last_seq(Lane.UPLOAD)
        used, last = await writer._call(measure)
        status: dict[str, Any] = {}
        ctx = ServiceContext(name="sync", config=lambda: cfg, hub=Hub(), clock=clock, outbox=writer,
                             drivers=None, notice=lambda item: None, heartbeat=lambda: None,  # type: ignore[arg-type]
                             add_command=lambda name, fn: None, log=logging.getLogger("zaas_edge.sync"),
                             status=status)
        svc = SyncService(ctx)  # the records are in the upload lane already (the aggregator is a service of its own)
        # This process also holds the benchmark's own data (millions of readings and records): out of
        # the garbage collector's sight, so its pauses are the gateway's own, as in the daemon.
        gc.collect()
        gc.freeze()
        t = time.perf_counter()
        task = asyncio.create_task(svc.run())
        while (await writer.position("sync", Lane.UPLOAD)).cursor < last:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        drain_s = time.perf_counter() - t
        gc.unfreeze()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        lane = svc.lanes[Lane.READING]
        held = (await central.stats())["rows_by_gateway_lane"].get(f"{gateway}/reading", 0)
        if held != len(records):
            raise SystemExit(f"the central holds {held} records of {gateway}, {len(records)} were sent")
        return {"records": len(records), "drain_s": drain_s, "wire_bytes": lane.bytes_sent,
                "batches": lane.batches_sent, "store_bytes": used, "buffer_rps": len(records) / buffer_s,
                "blocks": len(chunks),
                "encoding": svc.last_encoding}
    finally:
        await writer.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="where the store files and the central go")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    n = args.readings

    t = time.perf_counter()
    readings, building, seconds = backlog(n)
    fast = METERS * len(FAST)
    slow = METERS * len(SLOW)
    rate = fast + slow / 60
    print(f"backlog: {n} readings of {fast + slow} points ({fast} at 1 s, {slow} at 60 s; {rate:.0f} readings/s), "
          f"{seconds:.0f} s of building time, built in {time.perf_counter() - t:.1f} s")
    print("a reading: one raw sample of one point; an upload record: what the upload policies send "
          "(raw policy: one per reading; default policies: one per point and minute)")

    lines = json_lines(readings)
    json_per = sum(len(x) for x in lines) / n
    jsonl_gz = len(gzip.compress(b"\n".join(lines), 6)) / n
    del lines
    print(f"baseline JSON object per reading:  {json_per:8.2f} bytes/reading")
    print(f"baseline JSON lines, gzip:         {jsonl_gz:8.2f} bytes/reading")

    cfg = SyncSection()
    raw_commits, raw_agg_rps = upload_commits(readings, building, PolicySet(default_policy="raw",
                                                                            counter_policy="raw"), cfg)
    def_commits, def_agg_rps = upload_commits(readings, building, PolicySet(window_s=cfg.window_s), cfg)
    def_recs = [r for c in def_commits for r in c]
    assert sum(len(c) for c in raw_commits) == n
    print(f"upload policies: raw makes {n} records ({raw_agg_rps:,.0f} readings/s); "
          f"defaults make {len(def_recs)} ({n / len(def_recs):.1f} readings each, {def_agg_rps:,.0f} readings/s)")

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        central = CentralProcess(Path(d) / "central", tokens=2)
        try:
            raw = asyncio.run(drain(raw_commits, Path(d) / "gw-raw", central, "gw-raw"))
            dflt = asyncio.run(drain(def_commits, Path(d) / "gw-default", central, "gw-default"))
        finally:
            central.close()
        per_raw_store = store_bytes_per_reading(readings[:300_000], Path(d))

    raw_rps = raw["records"] / raw["drain_s"]
    raw_wire = raw["wire_bytes"] / n
    print(f"drain, raw policy (every reading goes up), sync service -> uplink -> mTLS -> central on 127.0.0.1 "
          f"({raw['encoding']}): {n} readings in {raw['drain_s']:.2f} s, {raw['batches']} batches")
    print(f"  {raw_rps:,.0f} readings/s (target >= 100,000)")
    print(f"  {raw_wire:.2f} wire bytes/reading (target <= 3; batch bodies as sent, compressed; "
          f"{jsonl_gz / raw_wire:.1f}x fewer than gzipped JSON lines, target >= 2.5)")
    d_rps = dflt["records"] / dflt["drain_s"]
    print(f"drain, default policies ({dflt['encoding']}): {dflt['records']} upload records in {dflt['drain_s']:.2f} s, "
          f"{dflt['batches']} batches")
    print(f"  {d_rps:,.0f} upload records/s = {d_rps * n / dflt['records']:,.0f} raw readings represented/s")
    print(f"  {dflt['wire_bytes'] / dflt['records']:.2f} wire bytes/upload record = "
          f"{dflt['wire_bytes'] / n:.3f} wire bytes/raw reading represented")

    per_upload_store = dflt["store_bytes"] / dflt["records"]
    print(f"upload lane blocks as the aggregator commits them (a pass every {cfg.aggregate_interval_s:g} s): "
          f"raw policy {raw['records'] / raw['blocks']:.0f} records each, defaults "
          f"{dflt['records'] / dflt['blocks']:.0f}")
    print(f"store: {per_raw_store:.1f} bytes per buffered raw reading (reading lane, measured); "
          f"{per_upload_store:.1f} bytes per upload record under the defaults, "
          f"{raw['store_bytes'] / n:.1f} under the raw policy (upload lane, measured)")

    # 7-day outage of this building under the defaults.
    records_per_s = len(def_recs) / seconds
    upload_7d = records_per_s * 7 * DAY_S * per_upload_store
    window_s = cfg.local_window_h * 3600
    raw_window = rate * window_s * per_raw_store
    cap = 2 * 1000**3
    total = upload_7d + raw_window
    print(f"7-day outage: upload records {upload_7d / 1e6:,.0f} MB ({records_per_s:.1f} records/s, all kept); "
          f"raw readings of the local window ({cfg.local_window_h:g} h, older ones dropped once aggregated) "
          f"{raw_window / 1e6:,.0f} MB")
    print(f"7-day outage projected store size: {total / 1e6:,.0f} MB (target < 2 GB)")
    ratio = json_per / raw_wire
    verdict = {
        ">=100,000 readings/s (raw drain)": raw_rps >= 100_000,
        "<=3 wire bytes/reading (raw drain)": raw_wire <= 3,
        ">=2.5x fewer than gzipped JSON lines": jsonl_gz / raw_wire >= 2.5,
        "7-day outage <2 GB": total < cap,
        "ratio>=20": ratio >= 20,
    }
    print("targets: " + "; ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in verdict.items()))
    print(f"ratio={ratio:.1f}")
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
