"""What the writer reports committed survives ``kill -9``, at random moments, hundreds of times.

A small child process writes readings through the real ``Writer`` and prints
each committed seq range after the commit; the parent kills it with SIGKILL
0-100 ms after its first commit line, again and again on the same database,
then checks that every reported row is there with exactly the values written
(each derived from a counter, so a torn row would show) and that SQLite's
integrity check passes.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

KILLS = 200
RUN_STRIDE = 1_000_000  # counters of run i start at i * RUN_STRIDE
BASE_NS = 1_700_000_000_000_000_000

# The child imports zaas_edge.store only (no pydantic, no CLI) so it starts fast.
CHILD = r"""
import asyncio, sys, types
from zaas_edge.model import Lane, Quality, Reading
from zaas_edge.store import Writer

path, start = sys.argv[1], int(sys.argv[2])
QUALITIES = list(Quality)
UNITS = ("W", "kWh", "V")
config = types.SimpleNamespace(max_size_mb=1024, flush_interval_ms=10, flush_rows=400, synchronous="full",
                               memory_ring_rows=1_000_000, retry_interval_s=1.0)

class Clock:
    def now(self):
        from zaas_edge.model import Stamp
        return Stamp(0, 0, "child", False)

def reading(c):
    return Reading(f"dev-{c % 7}/q{c % 5}", c * 0.25 + (c % 11) / 7, UNITS[c % 3], BASE + c, c * 3 + 1,
                   f"boot-{c // STRIDE}", c % 2 == 0, QUALITIES[c % 4])

BASE, STRIDE = int(sys.argv[3]), int(sys.argv[4])
written = 0

def on_commit(commit):
    global written
    got = commit.ranges.get(Lane.READING)
    if got:
        lo, hi = got
        sys.stdout.write(f"{lo} {hi} {start + written}\n")
        sys.stdout.flush()
        written += hi - lo + 1

async def main():
    writer = Writer(config, path, Clock(), on_commit=on_commit)
    await writer.start()
    c = start
    while True:
        writer.submit([reading(k) for k in range(c, c + 97)])
        c += 97
        await asyncio.sleep(0.002)

asyncio.run(main())
"""


def expected(c: int) -> tuple:
    qualities = (0, 1, 2, 3)
    units = ("W", "kWh", "V")
    return (f"dev-{c % 7}/q{c % 5}", units[c % 3], c * 0.25 + (c % 11) / 7, qualities[c % 4], BASE_NS + c,
            c * 3 + 1, f"boot-{c // RUN_STRIDE}", int(c % 2 == 0))


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    seed = int(os.environ.get("ZAAS_KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    reported: list[tuple[int, int, int]] = []
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    errors = tmp_path / "child.err"
    started = time.monotonic()
    for run in range(KILLS):
        with errors.open("wb") as err:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(db), str(run * RUN_STRIDE), str(BASE_NS), str(RUN_STRIDE)],
                stdout=subprocess.PIPE, stderr=err, env=env)
            first = child.stdout.readline()
            assert first, f"run {run}: the child wrote nothing before exiting: {errors.read_text()[-2000:]}"
            time.sleep(rng.uniform(0.0, 0.1))
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL, (run, child.returncode, errors.read_text()[-2000:])
        text = (first + rest).decode()
        complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never fully reported
        for line in complete.splitlines():
            lo, hi, counter = map(int, line.split())
            reported.append((lo, hi, counter))
    elapsed = time.monotonic() - started

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    points = {i: (k, u) for i, k, u in conn.execute("SELECT id, key, unit FROM point")}
    boots = {i: b for i, b in conn.execute("SELECT id, boot_id FROM boot")}
    rows = {}
    for seq, pid, value, quality, wall, mono, boot, synced in conn.execute("SELECT * FROM reading"):
        key, unit = points[pid]
        rows[seq] = (key, unit, value, quality, wall, mono, boots[boot], synced)
    conn.close()

    # Every reported range is there, row for row, with the values written.
    checked = 0
    for lo, hi, counter in reported:
        for seq in range(lo, hi + 1):
            assert rows.get(seq) == expected(counter + seq - lo), (seed, seq, lo, hi, counter)
            checked += 1
    # Rows committed but not reported (killed between commit and print) are whole too.
    for seq, row in rows.items():
        assert row == expected(row[4] - BASE_NS), (seed, seq, row)
    # Seqs were never reused across the kills.
    assert len({lo for lo, _, _ in reported}) == len(reported)
    assert checked >= KILLS and len(reported) >= KILLS, (seed, checked, len(reported))
    print(f"kill -9 x{KILLS}: {len(reported)} reported commits, {checked} rows checked, {len(rows)} in the "
          f"database, {elapsed:.1f} s, seed {seed}")
