"""The real daemon: system-driver readings become upload records (aggregates) that reach the central API.

Each record the central holds is checked against the raw readings left in the
gateway's store: a window aggregate's count, min, max, avg and last are those
of the raw readings in its window; a ``last`` record is the window's last
reading.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import pytest
from zaas_edge.drivers.system.driver import POINTS as SYSTEM_POINTS

from hil.daemon_harness import DaemonProcess
from tests.sync_fixtures import CentralProcess, daemon_sync_config
from zaas_edge.model import Lane
from zaas_edge.store import Store

S = 1_000_000_000
MS = 1_000_000
WINDOW_S = 2
LAST_POINT = "system/uptime"  # sent by the "last" policy; every other system point as 2 s aggregates


@pytest.fixture
def base():
    with tempfile.TemporaryDirectory(prefix="zaas-agg-", dir="/tmp") as d:
        yield Path(d)


def _config(base: Path, central: CentralProcess) -> Path:
    policy = f'[[sync.policies]]\nmatch = "{LAST_POINT}"\npolicy = "last"\n'
    return daemon_sync_config(base, central, window_s=WINDOW_S, aggregate_grace_s=0.5, extra=policy)


def _close(a: float, b: float, step: float) -> bool:
    """Equal at the point's resolution (the wire keeps values to half a step)."""
    return abs(a - b) <= step / 2 + 1e-9 * max(1.0, abs(a))


def test_readings_reach_the_central_as_aggregates_consistent_with_the_raw_ones(base: Path) -> None:
    central = CentralProcess(base / "central")
    try:
        cfg = _config(base, central)
        (base / "state").mkdir()
        d = DaemonProcess(cfg)
        try:
            d.cli("identity", "init")
            d.cli("enroll", "--token", central.token, "--ca", central.ca)
            d.wait_notify("READY=1")

            def enough(_st: dict) -> bool:
                rows = central.get("/test/rows?gateway=gw-test&lane=reading")["rows"]
                windows = {r["row"]["wall_ns"] for r in rows if r["row"]["point"] == "system/cpu_usage"}
                return len(windows) >= 3 and any(r["row"]["point"] == LAST_POINT for r in rows)

            d.wait_status(enough, timeout=60)
            text = d.cli("status").stdout  # the sync part of the status is a table per lane
            assert "lane" in text and "backlog" in text and "last success" in text and "{'state'" not in text
            # Uploading loads neither cryptography nor an HTTP framework, and a steady building's small
            # batches go as gzip, so zstd is not loaded either: their native parts are not mapped.
            maps = Path(f"/proc/{d.proc.pid}/maps").read_text()
            assert "cryptography" not in maps and "aiohttp" not in maps and "multidict" not in maps
            assert "zstandard" not in maps
            assert d.stop() == 0
        finally:
            d.close()

        held = [r["row"] for r in central.get("/test/rows?gateway=gw-test&lane=reading")["rows"]]
        with Store(base / "state" / "store.sqlite", readonly=True) as store:
            raw = list(store.export(Lane.READING))
        resolution = {f"system/{q}": res for q, _unit, res, _desc in SYSTEM_POINTS}  # the declared steps
        assert raw and held
        by_point: dict[str, list[dict]] = collections.defaultdict(list)
        for r in raw:
            by_point[r["point"]].append(r)

        # Partial aggregates of one window (a late reading) merge: group them first.
        windows: dict[tuple[str, int], list[dict]] = collections.defaultdict(list)
        for rec in held:
            windows[(rec["point"], rec["wall_ns"] - rec["wall_ns"] % (WINDOW_S * S))].append(rec)
        aggregates = 0
        for (point, start), recs in windows.items():
            step = resolution[point]
            inside = [r for r in by_point[point] if start <= r["wall_ns"] < start + WINDOW_S * S]
            assert inside, f"{point} window {start}: no raw reading behind the record"
            last = max(inside, key=lambda r: r["wall_ns"])
            if point == LAST_POINT:
                assert [r["kind"] for r in recs] == ["raw"]
                assert _close(recs[0]["value"], last["value"], step)
                assert recs[0]["wall_ns"] == last["wall_ns"] - last["wall_ns"] % MS
                continue
            count = sum(r.get("count", 1) for r in recs)
            assert count == len(inside), f"{point} window {start}: {count} counted, {len(inside)} raw"
            values = [r["value"] for r in inside]
            lo = min(r.get("min", r["value"]) for r in recs)
            hi = max(r.get("max", r["value"]) for r in recs)
            assert _close(lo, min(values), step) and _close(hi, max(values), step)
            latest = max(recs, key=lambda r: r.get("last_ns", r["wall_ns"]))
            assert _close(latest.get("last", latest["value"]), last["value"], step)
            total = sum(r["value"] * r.get("count", 1) for r in recs)
            assert abs(total / count - sum(values) / len(values)) <= step + 1e-9 * abs(total)
            if count > 1:
                aggregates += 1
                assert any(r["kind"] == "agg" and r["window_s"] == WINDOW_S for r in recs)
        assert aggregates >= 10  # real windows of several readings, not single samples
        points = {p for p, _ in windows}
        assert {"system/cpu_usage", "system/mem_used", LAST_POINT} <= points
        assert central.get("/test/gaps")["gaps"] == []
    finally:
        central.close()
