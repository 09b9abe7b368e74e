"""The real daemon syncing to the reference central API: kill -9 in mid-upload, 50 times, loses and doubles nothing."""

from __future__ import annotations

import json
import random
import signal
import tempfile
import time
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess
from tests.sync_fixtures import CentralProcess, daemon_sync_config
from zaas_edge.model import Lane
from zaas_edge.store import Store

KILLS = 50


@pytest.fixture
def base():
    with tempfile.TemporaryDirectory(prefix="zaas-sync-", dir="/tmp") as d:
        yield Path(d)


def _config(base: Path, central: CentralProcess, driver_enabled: bool = True) -> Path:
    drivers = ('[[drivers]]\nid = "system"\ntype = "system"\ninterval_s = 1\n'
               f'enabled = {"true" if driver_enabled else "false"}')
    return daemon_sync_config(base, central, drivers=drivers)


def _source_lanes() -> dict[str, str]:
    """Which store lane feeds each wire lane, as the daemon's sync service sees it."""
    from zaas_edge.wire.codec import SOURCE_LANE

    return {str(k): str(v) for k, v in SOURCE_LANE.items()}


@pytest.mark.slow
def test_kill_9_in_mid_upload_loses_and_doubles_nothing(base: Path) -> None:
    central = CentralProcess(base / "central")
    try:
        cfg = _config(base, central)
        (base / "state").mkdir()
        probe = DaemonProcess.__new__(DaemonProcess)
        probe.config = cfg
        probe.cli("identity", "init")
        probe.cli("enroll", "--token", central.token, "--ca", central.ca)

        rng = random.Random(4)
        kills_mid_upload = 0
        for _ in range(KILLS):
            seen = central.get("/test/stats")["batches"]
            d = DaemonProcess(cfg)
            try:
                deadline = time.monotonic() + 20
                while central.get("/test/stats")["batches"] == seen:
                    assert d.proc.poll() is None, d.output()
                    assert time.monotonic() < deadline, f"no upload seen\n{d.output()[-3000:]}"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.3))
                d.proc.send_signal(signal.SIGKILL)
                d.proc.wait(10)
                kills_mid_upload += 1
            finally:
                d.close()
        assert kills_mid_upload == KILLS

        # A clean run with no new readings drains everything left.
        cfg = _config(base, central, driver_enabled=False)
        d = DaemonProcess(cfg)
        try:
            d.wait_notify("READY=1")

            def drained(_st: dict) -> bool:
                st = json.loads(d.cli("sync", "status", "--json").stdout)
                lanes = st.get("lanes") or {}
                return bool(lanes) and all(v["backlog"] == 0 for v in lanes.values()) and st.get("state") == "idle"

            d.wait_status(drained, timeout=60)
            text = d.cli("sync", "status").stdout
            assert "reading" in text and "backlog" in text
            assert d.stop() == 0
        finally:
            d.close()

        source = _source_lanes()
        with Store(base / "state" / "store.sqlite", readonly=True) as store:
            local = {wire: [r for r in store.export(Lane(src))] for wire, src in source.items()}
            cursors = store.cursors()["sync"]
            last = {wire: store.last_seq(Lane(src)) for wire, src in source.items()}
        held = central.get("/test/rows?gateway=gw-test")["rows"]
        epochs = {r["epoch"] for r in held}
        assert len(epochs) == 1
        for wire in ("alarm", "event", "reading"):
            cursor = cursors[Lane(source[wire])]
            theirs = [r["seq"] for r in held if r["lane"] == wire]
            ours = [r["seq"] for r in local[wire] if r["seq"] <= cursor]
            assert theirs == ours, f"{wire}: central {len(theirs)} rows, gateway {len(ours)}"
            # Only what the daemon said while stopping, after sync had stopped, is left.
            late = [r.get("kind") for r in local[wire] if r["seq"] > cursor]
            assert set(late) <= {"daemon.stopping"}, late
            assert cursor + len(late) == last[wire]
        readings = [r for r in held if r["lane"] == "reading"]
        assert readings  # readings were committed, and delivered, across the killed runs
        by_seq = {r["seq"]: r for r in local["reading"]}
        for r in readings:
            assert r["row"]["point"] == by_seq[r["seq"]]["point"]
            assert r["row"]["value"] == pytest.approx(by_seq[r["seq"]]["value"], rel=1e-3, abs=1e-2)
        assert central.get("/test/gaps")["gaps"] == []
        # A start event is delivered once it was committed: a kill before the
        # first flush of a run loses it with the rest of that uncommitted batch.
        events = [r["row"].get("kind") for r in held if r["lane"] == "event"]
        committed = [r.get("kind") for r in local["event"]].count("daemon.started")
        assert events.count("daemon.started") == committed >= KILLS // 2
    finally:
        central.close()
