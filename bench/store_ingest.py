"""Store ingest: the real writer path against raw ``sqlite3.executemany``, side by side.

Appends 1,000,000 readings of 3,000 points (100 meters of 30 quantities, one
poll of every point per cycle) through ``zaas_edge.store.Writer``, then writes
the same rows with bare ``executemany`` into a fresh file with the same schema
and pragmas, one transaction per ``flush_rows`` batch.

What is timed, for the ratio: for the writer, from the first ``submit`` to
the last commit, with the ``Reading`` objects built beforehand (drivers build
them whatever the store does; a pool of 20 poll cycles is reused so memory
stays flat); for raw, only ``executemany`` and ``COMMIT`` on row tuples built
beforehand per batch (the floor nothing can beat). The last line is
``ratio=<ours/raw>``; the budget is 0.25 or more. An end-to-end figure that
also counts building every ``Reading`` is printed for information.

    python bench/store_ingest.py [--rows N] [--dir DIR] [--synchronous full|normal]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.model import Lane, Quality, Reading
from zaas_edge.store import Commit, Store, Writer
from zaas_edge.store.schema import QUALITY_CODES, connect, migrate

QUANTITIES = [
    ("active_power", "W"), ("reactive_power", "var"), ("apparent_power", "VA"), ("energy_import", "kWh"),
    ("energy_export", "kWh"), ("voltage_l1", "V"), ("voltage_l2", "V"), ("voltage_l3", "V"),
    ("current_l1", "A"), ("current_l2", "A"), ("current_l3", "A"), ("power_factor", ""),
    ("frequency", "Hz"), ("power_l1", "W"), ("power_l2", "W"), ("power_l3", "W"),
    ("thd_voltage", "%"), ("thd_current", "%"), ("temperature", "degC"), ("humidity", "%"),
    ("co2", "ppm"), ("water_volume", "m3"), ("flow", "m3/h"), ("gas_volume", "m3"),
    ("supply_temp", "degC"), ("return_temp", "degC"), ("heat_energy", "kWh"), ("heat_power", "W"),
    ("battery", "%"), ("rssi", "dBm"),
]
METERS = 100
POINTS = [(f"meter-{m:03d}/{q}", unit) for m in range(METERS) for q, unit in QUANTITIES]
BOOT = "5f0c2b7e-9d1a-4c3e-8b6f-0a1b2c3d4e5f"
T0 = 1_700_000_000_000_000_000
M0 = 5_000_000_000


def value(i: int, cycle: int) -> float:
    """A plausible, varying value with full float precision (not a small integer)."""
    return round(230.0 + 50.0 * math.sin(i * 0.7 + cycle * 0.01) + (i % 17) * 0.13, 3)


def cycles(total: int) -> list[int]:
    per = len(POINTS)
    return [min(per, total - c * per) for c in range(math.ceil(total / per))]


POOL_CYCLES = 20


def build(cycle: int, n: int) -> list[Reading]:
    wall, mono = T0 + cycle * 1_000_000_000, M0 + cycle * 1_000_000_000
    return [Reading(key, value(i, cycle % POOL_CYCLES), unit, wall, mono, BOOT, True, Quality.OK)
            for i, (key, unit) in enumerate(POINTS[:n])]


async def ours(path: Path, total: int, section: StoreSection, prebuilt: bool) -> float:
    clock = FakeClock(wall_ns=T0, mono_ns=M0, boot_id=BOOT)
    committed = 0

    def on_commit(commit: Commit) -> None:
        nonlocal committed
        first, last = commit.ranges.get(Lane.READING, (1, 0))
        committed += last - first + 1

    plan = cycles(total)
    pool = [build(c, len(POINTS)) for c in range(POOL_CYCLES)] if prebuilt else []
    writer = Writer(section, path, clock, on_commit=on_commit)
    await writer.start()
    started = time.perf_counter()
    for cycle, n in enumerate(plan):
        batch = pool[cycle % POOL_CYCLES][:n] if prebuilt else build(cycle % POOL_CYCLES, n)
        writer.submit(batch)
        # Back-pressure as a bulk producer: keep about two flushes queued.
        await writer.drain(2 * section.flush_rows)
    await writer.flush()
    elapsed = time.perf_counter() - started
    await writer.close()
    assert committed == total, (committed, total)
    return elapsed


def raw(path: Path, total: int, section: StoreSection) -> float:
    conn = connect(path, synchronous=section.synchronous)
    migrate(conn, path)
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO point (id, key, unit) VALUES (?, ?, ?)",
                     [(i + 1, k, u) for i, (k, u) in enumerate(POINTS)])
    conn.execute("INSERT INTO boot (id, boot_id) VALUES (1, ?)", (BOOT,))
    conn.execute("COMMIT")
    ok = QUALITY_CODES[Quality.OK]

    def source() -> Iterator[tuple]:
        for cycle, n in enumerate(cycles(total)):
            c = cycle % POOL_CYCLES
            wall, mono = T0 + c * 1_000_000_000, M0 + c * 1_000_000_000
            yield from ((i + 1, value(i, c), ok, wall, mono) for i in range(n))

    rows = source()
    elapsed = 0.0
    seq = 1
    while chunk := list(itertools.islice(rows, section.flush_rows)):
        batch = [(seq + j, pid, v, q, w, m, 1, 1) for j, (pid, v, q, w, m) in enumerate(chunk)]
        seq += len(batch)
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO reading VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch)
        conn.execute("COMMIT")
        elapsed += time.perf_counter() - t
    conn.close()
    return elapsed


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", type=Path, default=None, help="where the two files go (default: a temp dir)")
    ap.add_argument("--synchronous", choices=["full", "normal"], default="full")
    args = ap.parse_args()
    section = StoreSection(synchronous=args.synchronous, max_size_mb=100_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        ours_path, raw_path, e2e_path = (Path(tmp) / f"{n}.sqlite" for n in ("ours", "raw", "e2e"))
        t_ours = asyncio.run(ours(ours_path, args.rows, section, prebuilt=True))
        rss_ours = rss_mb()
        with Store(ours_path, readonly=True) as check:
            stats = check.stats()
            last = check.read(Lane.READING, args.rows - 1, 1)[0].item
        assert stats.lanes[Lane.READING].rows == args.rows
        assert last.value == value(len(POINTS[: (args.rows - 1) % len(POINTS) + 1]) - 1,
                                   ((args.rows - 1) // len(POINTS)) % POOL_CYCLES), last
        ours_path.unlink()
        t_raw = raw(raw_path, args.rows, section)
        rss_raw = rss_mb()
        raw_path.unlink()
        t_e2e = asyncio.run(ours(e2e_path, args.rows, section, prebuilt=False))
        r_ours, r_raw, r_e2e = args.rows / t_ours, args.rows / t_raw, args.rows / t_e2e
        print(f"rows={args.rows} points={len(POINTS)} flush_rows={section.flush_rows} "
              f"synchronous={section.synchronous}")
        print(f"writer: {t_ours:.2f} s, {r_ours:,.0f} readings/s, peak RSS {rss_ours:.0f} MB, "
              f"file {stats.file_bytes / 1e6:.1f} MB ({stats.used_bytes / args.rows:.1f} bytes/reading)")
        print(f"raw executemany: {t_raw:.2f} s, {r_raw:,.0f} readings/s, peak RSS (process) {rss_raw:.0f} MB")
        print(f"writer end to end (building each Reading too): {t_e2e:.2f} s, {r_e2e:,.0f} readings/s, "
              f"ratio {r_e2e / r_raw:.2f}")
        print(f"ratio={r_ours / r_raw:.2f}")

if __name__ == "__main__":
    main()
