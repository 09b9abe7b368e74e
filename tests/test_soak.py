"""The soak (``make soak``): the judge on made-up series, the measures on real processes and files, and a
short soak of the real demo building whose series and verdict are checked."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.daemon_harness import ROOT
from hil.soak import (
    CSV_HEADER,
    fold_backlog,
    process_cpu_s,
    sample_line,
    sample_process,
    store_files_bytes,
    take_sample,
)
from hil.soak_judge import Bounds, Sample, default_warmup, judge, summary_rows

MIB = 1048576
CAP = 1024 * MIB


def _series(n: int = 60, every: float = 60.0, rss=lambda i: 60 * MIB, fds=lambda i: 30,
            store=lambda i: 10 * MIB + i * 100_000, backlog=lambda i: {"reading": 8000, "upload": 40, "event": 0,
                                                                       "alarm": 0},
            sync: bool = True) -> list[Sample]:
    return [Sample(t_s=i * every, rss_bytes=rss(i), fds=fds(i), store_bytes=store(i), backlog=backlog(i),
                   readings_total=125 * int(i * every), sync_configured=sync, store_cap_bytes=CAP,
                   cpu_s=0.25 * i * every)
            for i in range(n + 1)]


def _check(verdict, name: str):
    return next(c for c in verdict.checks if c.name == name)


def test_a_flat_series_holds() -> None:
    v = judge(_series(), default_warmup(3600))
    assert v.ok, summary_rows(v)
    assert v.warmup_s == 300 and v.judged == 56  # samples at 300 s .. 3600 s
    assert v.readings_per_s == pytest.approx(125) and v.cpu_share == pytest.approx(0.25)
    assert all(c.ok for c in v.checks), [c for c in v.checks if not c.ok]


def test_noise_and_a_warm_up_climb_do_not_fail_it() -> None:
    # RSS climbs 20 % while caches fill during the warm-up, then wobbles by 2 %; one fd more now and then.
    rss = lambda i: int(50 * MIB * (1 + 0.2 * min(i, 5) / 5) * (1 + 0.02 * ((i * 7) % 3 - 1)))  # noqa: E731
    fds = lambda i: 30 + (i % 9 == 0)  # noqa: E731
    v = judge(_series(rss=rss, fds=fds), default_warmup(3600))
    assert v.ok, summary_rows(v)


def test_a_memory_leak_is_caught() -> None:
    v = judge(_series(rss=lambda i: 60 * MIB + i * 200_000), default_warmup(3600))  # +12 MiB over the hour
    assert not v.ok
    rss = _check(v, "rss")
    assert rss.ok is False and rss.growth is not None and rss.growth > 0.05
    assert "median of the last quarter" in rss.detail
    assert [c.name for c in v.failed] == ["rss"]


def test_a_descriptor_leak_is_caught() -> None:
    v = judge(_series(fds=lambda i: 30 + i // 6), default_warmup(3600))  # one socket lost every 6 minutes
    assert [c.name for c in v.failed] == ["fds"]


def test_a_backlog_that_climbs_with_sync_up_fails_and_a_saw_tooth_does_not() -> None:
    climbing = lambda i: {"reading": 8000, "upload": 40 * i, "event": 0, "alarm": 0}  # noqa: E731
    v = judge(_series(backlog=climbing), default_warmup(3600))
    assert [c.name for c in v.failed] == ["backlog upload"]
    assert "not drained as fast as it fills" in _check(v, "backlog upload").detail
    tooth = lambda i: {"reading": [1200, 8800, 5000, 3000][i % 4], "upload": 0, "event": 0, "alarm": 0}  # noqa: E731
    assert judge(_series(backlog=tooth), default_warmup(3600)).ok


def test_without_sync_only_the_aggregators_lane_is_judged() -> None:
    """Nothing drains the alarm, event and upload lanes without sync: they grow and are not judged."""
    growing = lambda i: {"reading": 8000, "upload": 40 * i, "event": 3 * i, "alarm": i}  # noqa: E731
    v = judge(_series(backlog=growing, sync=False), default_warmup(3600))
    assert v.ok
    assert _check(v, "backlog upload").ok is None and "sync is not configured" in _check(v, "backlog upload").detail
    assert _check(v, "backlog reading").ok is True
    v = judge(_series(backlog=lambda i: {"reading": 1000 + 300 * i}, sync=False), default_warmup(3600))
    assert [c.name for c in v.failed] == ["backlog reading"]


def test_the_store_grows_until_its_cap_and_fails_above_it() -> None:
    v = judge(_series(), default_warmup(3600))
    store = _check(v, "store size")
    assert store.ok and "MB/h" in store.detail and "reaches the cap in about" in store.detail
    over = judge(_series(store=lambda i: CAP + 65 * MIB if i > 40 else CAP), default_warmup(3600))
    assert [c.name for c in over.failed] == ["store size"]
    assert judge(_series(store=lambda i: CAP + 60 * MIB), default_warmup(3600)).ok  # the WAL's allowance


def test_too_short_a_soak_cannot_hold() -> None:
    v = judge(_series(n=2), 0)  # three samples
    assert not v.ok and not v.checks and "4 needed" in v.reason
    assert not judge(_series(n=10), 600.0).ok  # everything sampled inside the warm-up


def test_the_warm_up_is_a_tenth_of_the_run_at_most_five_minutes() -> None:
    assert default_warmup(3600) == 300 and default_warmup(20) == 2 and default_warmup(600) == 60


def test_missing_figures_are_skipped_not_fatal() -> None:
    samples = [Sample(t_s=i * 2.0, rss_bytes=None if i % 3 == 0 else 50 * MIB, fds=None, store_bytes=None)
               for i in range(12)]
    v = judge(samples, 2.0)
    assert _check(v, "fds").ok is None and _check(v, "store size").ok is None
    assert _check(v, "rss").ok is True
    assert v.ok  # nothing broken, though little judged


figures = st.one_of(st.none(), st.integers(min_value=-10, max_value=2**40))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(figures, figures, figures,
                          st.dictionaries(st.sampled_from(["reading", "upload", "event", "alarm", "x"]),
                                          st.integers(min_value=0, max_value=10**7), max_size=5),
                          st.booleans(), figures), max_size=40),
       st.floats(min_value=0, max_value=100))
def test_the_judge_never_crashes_on_any_series(rows, warmup: float) -> None:
    samples = [Sample(t_s=float(i), rss_bytes=r, fds=f, store_bytes=s, backlog=b, sync_configured=sync,
                      store_cap_bytes=cap) for i, (r, f, s, b, sync, cap) in enumerate(rows)]
    v = judge(samples, warmup)
    assert isinstance(v.ok, bool)
    summary_rows(v)
    json.dumps(v.as_dict())


# --- the measures -------------------------------------------------------------------------------


def test_a_live_process_is_measured_from_proc_and_a_gone_one_reads_none() -> None:
    rss, fds = sample_process(os.getpid())
    assert rss is not None and rss > 10 * MIB and fds is not None and fds >= 3
    cpu = process_cpu_s(os.getpid())
    assert cpu is not None and cpu > 0
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert sample_process(child.pid) == (None, None) and process_cpu_s(child.pid) is None


def test_the_store_size_counts_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    assert store_files_bytes(path) is None
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x BLOB)")
    db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    db.commit()
    size = store_files_bytes(path)
    assert size is not None and size > 100_000
    assert size == sum(p.stat().st_size for p in tmp_path.iterdir())
    db.close()


def test_a_sample_takes_the_backlogs_peak_and_ignores_garbage(tmp_path: Path) -> None:
    peak = fold_backlog({}, {"backlog": {"reading": 9000, "upload": 3}})
    fold_backlog(peak, {"backlog": {"reading": 1000, "upload": "x", "event": True, "alarm": 2}})
    fold_backlog(peak, {"backlog": ["nonsense"]})
    fold_backlog(peak, None)
    assert peak == {"reading": 9000, "upload": 3, "alarm": 2}
    status = {"backlog": {"reading": 1200, "upload": 5}, "readings_total": 42, "sync": {"state": "idle"},
              "store": {"path": str(tmp_path / "none.sqlite"), "cap_bytes": CAP}}
    s = take_sample(61.0, os.getpid(), status, tmp_path / "other.sqlite", peak)
    assert s.backlog == {"reading": 9000, "upload": 5, "alarm": 2}
    assert s.readings_total == 42 and s.sync_configured and s.store_cap_bytes == CAP and s.store_bytes is None
    assert "00:01:01" in sample_line(s) and "reading 9000" in sample_line(s)
    silent = take_sample(1.0, os.getpid(), None, tmp_path / "x.sqlite")
    assert silent.backlog == {} and "status did not answer" in sample_line(silent)
    odd = take_sample(1.0, os.getpid(), {"store": "garbage", "backlog": 7, "readings_total": "many"}, tmp_path / "x")
    assert odd.backlog == {} and odd.readings_total is None


# --- a short soak of the real demo building ----------------------------------------------------


def test_a_short_soak_of_the_demo_building_writes_its_series_and_judges_it(tmp_path: Path) -> None:
    """20 s, a sample every 2 s. The aggregator's windows are shortened to 2 s so the reading lane's
    saw-tooth turns within the run (at 60 s it would only climb in 20 s); everything else is the demo's."""
    from hil.scenario import base_document, to_toml

    doc = base_document(ROOT / "config" / "demo.toml")
    doc.setdefault("sync", {}).update(window_s=2, aggregate_grace_s=1)
    base = tmp_path / "base.toml"
    base.write_text(to_toml(doc))
    run_dir = tmp_path / "soak"
    p = subprocess.run([sys.executable, "-m", "hil.soak", "--config", str(base), "--run-dir", str(run_dir),
                        "--duration", "20s", "--every", "2"], capture_output=True, text=True, cwd=ROOT, timeout=180)
    log = (run_dir / "scenario.log").read_text(errors="replace")[-3000:] if (run_dir / "scenario.log").exists() else ""
    assert p.returncode in (0, 1), f"{p.stdout}{p.stderr}\n{log}"
    with open(run_dir / "soak.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_HEADER
    samples = rows[1:]
    assert 6 <= len(samples) <= 11, p.stdout  # one at start, then every 2 s (fewer on a loaded machine)
    times = [float(r[0]) for r in samples]
    assert times == sorted(times) and times[0] < 2 and times[-1] >= 20
    for r in samples:
        row = dict(zip(CSV_HEADER, r, strict=True))
        assert int(row["rss_bytes"]) > 20 * MIB and int(row["fds"]) > 5 and int(row["store_bytes"]) > 0
        assert row["backlog_reading"] != "" and row["sync_configured"] == "1" and float(row["cpu_s"]) > 0
    assert int(samples[-1][CSV_HEADER.index("readings_total")]) > int(samples[0][CSV_HEADER.index("readings_total")])

    doc = json.loads((run_dir / "soak.json").read_text())
    assert doc["warmup_s"] == 2 and doc["every_s"] == 2 and len(doc["samples"]) == len(samples)
    again = judge([Sample(**s) for s in doc["samples"]], doc["warmup_s"],
                  Bounds(**doc["bounds"]))
    assert again.as_dict() == doc["verdict"]
    names = [c["name"] for c in doc["verdict"]["checks"]]
    assert names[:3] == ["rss", "fds", "store size"] and "backlog reading" in names and "backlog upload" in names
    assert {c["name"]: c["ok"] for c in doc["verdict"]["checks"]}["rss"] is not None
    assert p.returncode == (0 if doc["verdict"]["ok"] else 1) == doc["exit_status"]
    assert ("HELD its bounds" if doc["verdict"]["ok"] else "FAILED") in p.stdout
    assert doc["verdict"]["cpu_share"] > 0 and "of a core" in p.stdout
    for line in ("check", "rss", "fds", "store size", "backlog reading"):
        assert line in p.stdout
    # Stopped with the building: no daemon left on the control socket.
    assert not any(run_dir.glob("building/run/control.sock")) or subprocess.run(
        [sys.executable, "-m", "zaas_edge", "-c", str(run_dir / "building" / "config.toml"), "status"],
        capture_output=True, cwd=ROOT, timeout=30).returncode == 3
