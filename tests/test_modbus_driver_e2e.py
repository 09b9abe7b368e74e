"""The real daemon polling a simulated Modbus TCP meter: readings reach `zaas-edge status --points`."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config
from hil.modbus_sim import SimProcess


@pytest.fixture
def base() -> Path:
    with tempfile.TemporaryDirectory(prefix="zaas-mb-", dir="/tmp") as d:
        yield Path(d)


def test_daemon_polls_a_simulated_meter(base: Path) -> None:
    with SimProcess("--profile", "eastron-sdm630", "--units", "1-2", "--silent", "2", "--still") as sim:
        drivers = f"""
[[drivers]]
id = "meters-a"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = {sim.port}
timeout_s = 0.3
offline_after = 2
retry_initial_s = 0.5
devices = [
  {{ id = "m1", unit = 1, profile = "eastron-sdm630", interval_fast_s = 0.5 }},
  {{ id = "m2", unit = 2, profile = "eastron-sdm630", interval_fast_s = 0.5 }},
]
"""
        cfg = write_config(base / "config.toml", base, drivers=drivers)
        d = DaemonProcess(cfg)
        try:
            d.wait_notify("READY=1")
            st = d.wait_status(lambda s: s["drivers"]["meters-a"]["readings"] >= 34 * 2
                               and "device.m2.offline" in s["alarms"])
            drv = st["drivers"]["meters-a"]
            assert drv["type"] == "modbus" and drv["state"] == "running"
            assert drv["counters"]["requests"] >= 2 and drv["counters"]["timeouts"] >= 2

            out = d.cli("status", "--points", "--json")
            points = json.loads(out.stdout)["points"]
            m1 = {k: v for k, v in points.items() if k.startswith("m1/")}
            assert len(m1) == 34
            assert 220 < m1["m1/voltage_l1"]["value"] < 240 and m1["m1/voltage_l1"]["unit"] == "V"
            assert m1["m1/frequency"]["quality"] == "ok"
            assert not any(k.startswith("m2/") for k in points)
            text = d.cli("status", "--points").stdout
            assert "m1/energy_import" in text and "kWh" in text and "device.m2.offline" in text

            # Per-device health, from the driver through the control socket to the technician.
            devices = json.loads(d.cli("status", "--json").stdout)["drivers"]["meters-a"]["devices"]
            m1, m2 = devices["m1"], devices["m2"]
            assert (m1["online"], m1["unit"], m1["timeouts"], m1["checksum_errors"]) == (True, 1, 0, 0)
            assert m1["requests"] >= 2 and m1["requests"] == m1["answers"]
            assert m1["latency_last_ms"] > 0 and m1["latency_avg_ms"] > 0
            assert m1["consecutive_failures"] == 0 and m1["last_error"] is None
            assert m1["bus"] == f"tcp 127.0.0.1:{sim.port}" and m1["bus_down"] is None
            assert (m2["online"], m2["unit"], m2["answers"]) == (False, 2, 0)
            assert m2["timeouts"] >= 2 and m2["consecutive_failures"] >= 2 and m2["last_error"]
            assert m2["latency_last_ms"] is None
            lines = d.cli("status").stdout.splitlines()
            header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["driver", "device", "state"])
            row = {line.split()[1]: line.split() for line in lines[header + 2:header + 4]}
            assert row["m1"][0] == "meters-a" and row["m1"][2] == "online" and row["m1"][4:7] == ["0", "0", "0"]
            assert row["m2"][2] == "OFFLINE" and int(row["m2"][4]) >= 2
        finally:
            d.close()
    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert "reading" in tables
        n = db.execute("select count(*) from reading").fetchone()[0]
    finally:
        db.close()
    assert n >= 34
