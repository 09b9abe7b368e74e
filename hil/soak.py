"""Soak: the demo building for an hour, the daemon's resources sampled every minute, growth judged.

``python -m hil.soak --duration 1h`` (what ``make soak`` runs) starts the
simulated building of ``make demo`` (``hil.scenario.Scenario``,
``config/demo.toml``, ``hil.buildings.DEMO``) and, every ``--every`` seconds
(60), records and prints the daemon's resident memory (``VmRSS`` of
``/proc/<pid>/status``), its open file descriptors (``/proc/<pid>/fd``), the
store's files on disk (database, WAL, shared memory) and the backlog of each
store lane (from ``status``). The series goes to ``<out>/soak.csv`` (a row per
sample, written as it is taken, so an interrupted soak keeps its data) and
``<out>/soak.json`` (the samples and the verdict). At the end
``hil.soak_judge.judge`` says whether the daemon held steady after the warm-up
(RSS and fds grow < 5 %, no lane's backlog trends up, the store stays under its
cap) and the exit status says it: 0 held, 1 a bound broken or the daemon died,
2 the building could not start. Ctrl-C ends the soak early and judges what was
sampled.

The daemon runs with ``clock.assume_synced = true`` by default (``--clock
kernel`` reads the kernel's flag instead): a gateway in the field has NTP, and
a container often reports an unsynchronised clock, for which the daemon holds
raw readings for up to 15 minutes (a ramp of the reading backlog that is
bounded, not a leak, but that an hour's soak would misjudge).
"""

from __future__ import annotations

__all__ = ["sample_process", "process_cpu_s", "store_files_bytes", "take_sample", "fold_backlog", "sample_line",
           "csv_row", "soak", "main", "CSV_LANES", "CSV_HEADER"]

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, TextIO

from hil.soak_judge import Bounds, Sample, Verdict, default_warmup, judge, summary_rows

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = ROOT / ".soak"
CSV_LANES = ("reading", "upload", "event", "alarm")
POLL_S = 5.0  # the backlog is polled this often between two samples, for its peaks


# --- measuring ----------------------------------------------------------------------------------

def sample_process(pid: int) -> tuple[int | None, int | None]:
    """``(rss_bytes, open_fds)`` of a live process from /proc; None for what cannot be read (it exited)."""
    rss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024  # kB
                break
    except (OSError, ValueError, IndexError):
        rss = None
    try:
        fds: int | None = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = None
    return rss, fds


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a live process has used, from /proc/<pid>/stat; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # the name in parentheses may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def store_files_bytes(store_path: Path) -> int | None:
    """The store's size on disk: the database and its ``-wal`` and ``-shm`` files (None before it exists)."""
    total, seen = 0, False
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            total += os.stat(f"{store_path}{suffix}").st_size
            seen = True
        except OSError:
            continue
    return total if seen else None


def take_sample(t_s: float, pid: int, status: Mapping[str, Any] | None, store_path: Path,
                peak: Mapping[str, int] | None = None) -> Sample:
    """One sample from /proc and the daemon's status (None: it did not answer this time).

    ``peak``: the largest backlog of each lane seen since the previous sample (the status polled in
    between); the sample's backlog is the larger of it and the status now. A lane drained in bursts
    (the aggregator's 60 s windows) is a saw-tooth, and a sample a minute would catch it at whatever
    phase; its peaks are what must stay bounded.
    """
    rss, fds = sample_process(pid)
    st = status or {}
    store = st.get("store") if isinstance(st.get("store"), dict) else {}
    path = Path(store["path"]) if isinstance(store.get("path"), str) else store_path
    cap = store.get("cap_bytes")
    total = st.get("readings_total")
    backlog = fold_backlog(dict(peak or {}), status)
    return Sample(t_s=round(t_s, 3), rss_bytes=rss, fds=fds, store_bytes=store_files_bytes(path),
                  cpu_s=process_cpu_s(pid),
                  backlog=backlog, readings_total=total if isinstance(total, int) else None,
                  sync_configured=bool(st.get("sync")) if status is not None else False,
                  store_cap_bytes=cap if isinstance(cap, int) else None)


def fold_backlog(peak: dict[str, int], status: Mapping[str, Any] | None) -> dict[str, int]:
    """``peak`` raised to the backlog ``status`` reports, lane by lane (garbage ignored)."""
    backlog = (status or {}).get("backlog")
    if isinstance(backlog, dict):
        for lane, n in backlog.items():
            if isinstance(n, int) and not isinstance(n, bool):
                peak[str(lane)] = max(n, peak.get(str(lane), n))
    return peak


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


def sample_line(s: Sample) -> str:
    """One sample for people, as it is taken."""
    m, sec = divmod(int(s.t_s), 60)
    h, m = divmod(m, 60)
    backlog = ("backlog " + " ".join(f"{lane} {s.backlog.get(lane, 0)}" for lane in CSV_LANES)
               if s.backlog else "backlog - (status did not answer)")
    return (f"soak: {h:02d}:{m:02d}:{sec:02d}  rss {_mb(s.rss_bytes)}  fds {'-' if s.fds is None else s.fds}  "
            f"store {_mb(s.store_bytes)}  {backlog}")


CSV_HEADER = ["t_s", "rss_bytes", "fds", "store_bytes", *(f"backlog_{lane}" for lane in CSV_LANES),
              "readings_total", "sync_configured", "cpu_s"]


def csv_row(s: Sample) -> list[object]:
    return [s.t_s, s.rss_bytes, s.fds, s.store_bytes, *(s.backlog.get(lane) for lane in CSV_LANES),
            s.readings_total, int(s.sync_configured), s.cpu_s]


# --- the run ------------------------------------------------------------------------------------

def _soak_base(config: Path, out_dir: Path, assume_synced: bool) -> Path:
    """The base configuration the building runs on: ``config`` as the scenario reads it, plus the clock's
    setting (written to ``out_dir``; paths are absolute in it, so it runs from anywhere)."""
    from hil.scenario import base_document, to_toml

    doc = base_document(config)
    if assume_synced:
        doc.setdefault("clock", {})["assume_synced"] = True
    path = out_dir / "base.toml"
    path.write_text(f"# Written by hil.soak from {config}: the soak's base configuration.\n\n" + to_toml(doc))
    return path


def _status(sock: Path) -> dict[str, Any] | None:
    from zaas_edge.control import ControlClient
    from zaas_edge.errors import ZaasError

    try:
        st = ControlClient(sock, timeout=10).call("status")
    except (ZaasError, OSError, ValueError):
        return None
    return st if isinstance(st, dict) else None


def print_summary(verdict: Verdict, out: TextIO) -> None:
    from zaas_edge.cli.output import table

    print("", file=out)
    rate = "-" if verdict.readings_per_s is None else f"{verdict.readings_per_s:.1f}"
    cpu = "-" if verdict.cpu_share is None else f"{verdict.cpu_share:.0%}"
    print(f"soak: judged {verdict.judged} samples after a {verdict.warmup_s:.0f} s warm-up; "
          f"{rate} readings/s; the daemon used {cpu} of a core", file=out)
    if verdict.checks:
        print(table(["check", "early", "late", "growth", "bound", "verdict"], summary_rows(verdict)), file=out)
    if verdict.reason:
        print(f"soak: {verdict.reason}", file=out)
    failed = ", ".join(c.name for c in verdict.failed)
    print("soak: HELD its bounds" if verdict.ok else f"soak: FAILED ({failed or verdict.reason})", file=out,
          flush=True)


async def soak(config: Path, run_dir: Path, duration_s: float, every_s: float, *, warmup_s: float | None = None,
               bounds: Bounds | None = None, assume_synced: bool = True, out: TextIO = sys.stdout,
               stop: asyncio.Event | None = None) -> tuple[int, list[Sample], Verdict | None]:
    """Run the demo building for ``duration_s``, sampling every ``every_s``; (exit status, samples, verdict).

    The series is written to ``run_dir/soak.csv`` and ``run_dir/soak.json``; the daemon's and the
    simulators' output to ``run_dir/scenario.log``.
    """
    from hil.buildings import DEMO
    from hil.scenario import Scenario, ScenarioError, start_unless_stopped
    from zaas_edge.config import load_config

    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or asyncio.Event()
    bounds = bounds or Bounds()
    warmup = default_warmup(duration_s) if warmup_s is None else warmup_s
    samples: list[Sample] = []
    log: IO[str] = open(run_dir / "scenario.log", "w")  # noqa: SIM115  (closed below)
    scenario: Scenario | None = None
    status = 0
    verdict: Verdict | None = None
    csv_file = open(run_dir / "soak.csv", "w", newline="")  # noqa: SIM115
    try:
        try:
            base = _soak_base(config.resolve(), run_dir, assume_synced)
            scenario = Scenario(base, DEMO, run_dir / "building", out=log)
            print(f"soak: starting the demo building in {run_dir / 'building'} (log {run_dir / 'scenario.log'})",
                  file=out, flush=True)
            await start_unless_stopped(scenario.start(), stop)
        except ScenarioError as exc:
            if stop.is_set():
                print("soak: interrupted while starting", file=out, flush=True)
                return 1, samples, None
            print(f"soak: the building could not start: {exc}", file=out, flush=True)
            return 2, samples, None
        assert scenario.daemon is not None
        pid = scenario.daemon.pid
        cfg = load_config(scenario.config_path).config
        print(f"soak: daemon pid {pid}; {duration_s:.0f} s, a sample every {every_s:g} s, "
              f"warm-up {warmup:.0f} s", file=out, flush=True)
        writer = csv.writer(csv_file)
        writer.writerow(CSV_HEADER)
        t0 = time.monotonic()
        k = 0
        peak: dict[str, int] = {}
        poll_s = min(POLL_S, every_s)
        while status == 0:
            st = await asyncio.to_thread(_status, cfg.control_socket)
            s = take_sample(time.monotonic() - t0, pid, st, cfg.store_path, peak)
            peak = {}
            samples.append(s)
            writer.writerow(csv_row(s))
            csv_file.flush()
            print(sample_line(s), file=out, flush=True)
            k += 1
            if s.t_s >= duration_s or stop.is_set():
                break
            target = t0 + min(k * every_s, duration_s)
            while (left := target - time.monotonic()) > 0 and not stop.is_set():
                if await scenario.wait(min(poll_s, left), stop) != 0:
                    print("soak: the daemon exited during the soak (its log: scenario.log)", file=out, flush=True)
                    status = 1
                    break
                if target - time.monotonic() > 0.5:  # between two samples: watch the backlog's peaks
                    fold_backlog(peak, await asyncio.to_thread(_status, cfg.control_socket))
            if stop.is_set():
                print("soak: interrupted; judging what was sampled", file=out, flush=True)
                break
        verdict = judge(samples, warmup, bounds)
        print_summary(verdict, out)
        if not verdict.ok:
            status = 1
        doc = {"duration_s": duration_s, "every_s": every_s, "warmup_s": warmup, "assume_synced": assume_synced,
               "bounds": {"max_growth": bounds.max_growth, "backlog_slack": bounds.backlog_slack,
                          "wal_allowance_bytes": bounds.wal_allowance_bytes},
               "samples": [x.as_dict() for x in samples], "verdict": verdict.as_dict(), "exit_status": status}
        (run_dir / "soak.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"soak: series in {run_dir / 'soak.csv'} and {run_dir / 'soak.json'}", file=out, flush=True)
        return status, samples, verdict
    finally:
        csv_file.close()
        if scenario is not None:
            await scenario.stop()
        log.close()


def _duration(text: str) -> float:
    from zaas_edge.cli.shed_cmd import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _main(args: argparse.Namespace) -> int:
    from hil.scenario import stop_on_signals

    stop = stop_on_signals()
    status, _, _ = await soak(Path(args.config), Path(args.run_dir), args.duration, args.every,
                              warmup_s=args.warmup, assume_synced=args.clock == "synced",
                              bounds=Bounds(max_growth=args.max_growth, backlog_slack=args.backlog_slack),
                              stop=stop)
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=_duration, default=_duration("1h"), help="how long: 90s, 20m, 1h (default 1h)")
    ap.add_argument("--every", type=_duration, default=60.0, help="seconds between two samples (default 60)")
    ap.add_argument("--warmup", type=_duration, default=None,
                    help="not judged at the start (default: 10 %% of the duration, at most 5 minutes)")
    ap.add_argument("--config", default=str(ROOT / "config" / "demo.toml"), help="the building's base configuration")
    ap.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR),
                    help="where the building runs and the series is written (default .soak)")
    ap.add_argument("--clock", choices=("synced", "kernel"), default="synced",
                    help="synced: the daemon assumes a synchronised clock, as with NTP (default); "
                         "kernel: it reads the kernel's flag")
    ap.add_argument("--max-growth", type=float, default=0.05, help="RSS and fds growth allowed (default 0.05)")
    ap.add_argument("--backlog-slack", type=int, default=50, help="rows a lane's backlog may rise (default 50)")
    args = ap.parse_args(argv)
    if args.every <= 0 or args.every > args.duration:
        ap.error("--every must be above zero and at most --duration")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
