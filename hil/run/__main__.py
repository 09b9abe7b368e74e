"""``python -m hil.run FILE... [--report-dir D] [--scale F]``: play scenario files, report, judge.

Each file runs in ``<run dir>/<name>/`` (recreated) and writes
``report.json`` and ``power.png`` to ``<report dir>/<name>/``. The exit
status is 0 when every scenario passed, 1 when one missed an expectation
(each failed check is printed with its scenario's name), 2 when a file could
not be read or a building could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from pathlib import Path

from hil.run import report
from hil.run.runner import run
from hil.run.spec import SpecError, load_spec
from hil.scenario import ROOT, ScenarioError

DEFAULT_RUN_DIR = ROOT / ".hil"


async def _one(path: Path, args: argparse.Namespace) -> int:
    try:
        spec = load_spec(path)
    except SpecError as exc:
        print(f"hil.run: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir) / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    report_dir = Path(args.report_dir) / spec.name if args.report_dir else run_dir
    factor = args.scale or spec.scale
    print(f"hil.run: {spec.name}: {spec.description} ({spec.duration_s:g} scenario s at x{factor:g}: "
          f"{spec.duration_s / factor:.0f} real s, {len(spec.timeline)} events; log {run_dir / 'run.log'})",
          flush=True)
    with open(run_dir / "run.log", "w") as log:
        try:
            outcome = await run(spec, run_dir, factor=factor, out=log)
        except (ScenarioError, ValueError) as exc:
            print(f"hil.run: {spec.name}: cannot run: {exc}", file=sys.stderr)
            return 2
    config = tomllib.loads((run_dir / "config.toml").read_text()) if (run_dir / "config.toml").exists() else {}
    rep = report.build(outcome, config)
    failed = report.judge(rep, spec.expect, spec.kills())
    where = report.write(rep, failed, report_dir)
    r = rep["readings"]
    print(f"hil.run: {spec.name}: {'PASSED' if not failed else 'FAILED'}: {r['produced']} readings committed, "
          f"{r['delivered']} delivered, {r['lost']} lost, {r['duplicated']} duplicated; "
          f"{rep['daemon']['restarts']} restarts, peak RSS {rep['daemon']['peak_rss_bytes'] / 2**20:.1f} MiB; "
          f"report {where}", flush=True)
    for f in failed:
        print(f"hil.run: {spec.name}: FAILED {f}", flush=True)
    if args.json:
        print(json.dumps({"scenario": spec.name, "failed": failed}))
    return 1 if failed else 0


async def _main(args: argparse.Namespace) -> int:
    worst = 0
    for path in args.files:
        worst = max(worst, await _one(Path(path), args))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="scenario files (hil/scenarios/building/*.toml)")
    ap.add_argument("--report-dir", default=None, help="where report.json and power.png go (default: the run dir)")
    ap.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="where each scenario runs (recreated)")
    ap.add_argument("--scale", type=float, default=None, help="scenario seconds per real second (the file's scale)")
    ap.add_argument("--json", action="store_true", help="also print each verdict as a JSON line")
    args = ap.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
