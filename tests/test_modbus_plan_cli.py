"""``zaas-edge modbus plan DEVICE``: a configured device's requests and their bus time, from the configuration alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hil.daemon_harness import write_config
from zaas_edge.cli import cli
from zaas_edge.cli.group import register

register()
ROOT = Path(__file__).resolve().parents[1]

DRIVERS = """
[[drivers]]
id = "line-a"
type = "modbus"
transport = "rtu"
port = "/dev/zaas-no-such-port"
baudrate = 9600
parity = "E"
devices = [
  { id = "m1", unit = 1, profile = "eastron-sdm630" },
  { id = "pv", unit = 3, profile = "sunspec-inverter", inter_frame_delay_ms = 10 },
]

[[drivers]]
id = "lan"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = 1502
turnaround_ms = 2
devices = [{ id = "m9", unit = 9, profile = "eastron-sdm630" }]
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    return str(write_config(tmp_path / "config.toml", tmp_path, DRIVERS))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_rtu_device_plan_as_json(config: str) -> None:
    r = run("--config", config, "modbus", "plan", "m1", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["driver"], doc["device"], doc["unit"], doc["profile"]) == ("line-a", "m1", 1, "eastron-sdm630")
    assert doc["bus"] == "rtu /dev/zaas-no-such-port 9600 8E1"
    assert doc["cost"]["model"] == "rtu 9600 8E1" and doc["max_gap"] is None
    reqs = doc["requests"]
    assert reqs and all(r["table"] == "input" and 0 < r["count"] <= 125 for r in reqs)
    assert all(0 <= r["bridged"] < r["count"] for r in reqs)
    every = doc["every_point"]
    assert every["requests"] == len(reqs)
    assert every["bus_time_s"] == pytest.approx(sum(r["bus_time_s"] for r in reqs), abs=1e-5)
    assert 0 < every["lower_bound_s"] <= every["bus_time_s"]
    fast = doc["fastest"]
    assert fast["interval_s"] == 1 and fast["requests"] <= every["requests"]
    assert fast["bus_time_s"] < every["bus_time_s"]


def test_tcp_device_plan_for_people(config: str) -> None:
    r = run("--config", config, "modbus", "plan", "m9")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "m9: eastron-sdm630, unit 9 on tcp 127.0.0.1:1502"
    assert lines[1].startswith("cost model tcp rtt 2 ms: 2.0 ms a request")
    assert "widest hole allowed: none" in lines[1]
    assert lines[2].split() == ["table", "start", "count", "bridged", "points", "bus", "ms"]
    every = next(line for line in lines if line.startswith("every point"))
    assert every.endswith("0 %")  # on TCP the plan is the lower bound: bytes are free, requests are not


def test_scale_factor_points_are_planned_with_their_values(config: str) -> None:
    doc = json.loads(run("--config", config, "modbus", "plan", "pv", "--json").output)
    keys = {k for r in doc["requests"] for k in r["points"]}
    assert {"power", "voltage_l1"} <= keys and any(k.startswith("sf@") for k in keys)
    # the device's own inter-frame delay is part of its requests' cost: 13 characters at 9600 8E1,
    # two 10 ms silences, the default 20 ms turnaround
    assert doc["cost"]["fixed_s"] == pytest.approx(13 * 11 / 9600 + 2 * 0.010 + 0.020, abs=1e-6)


def zaas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zaas_edge", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def test_unknown_device_is_one_line(config: str) -> None:
    r = zaas("--config", config, "modbus", "plan", "nope")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [
        "zaas-edge: error: no Modbus device 'nope' in the configuration (Modbus devices: m1, m9, pv)"]


def test_missing_configuration_is_one_line(tmp_path: Path) -> None:
    r = zaas("--config", str(tmp_path / "absent.toml"), "modbus", "plan", "m1")
    assert r.returncode != 0 and len(r.stderr.splitlines()) == 1
    assert "not found" in r.stderr and "Traceback" not in r.stderr
