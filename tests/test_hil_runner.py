"""Short variants of the HIL scenarios (CI): the real daemon in the simulated building, played by python -m hil.run.

Two runs of about half a minute each. The first puts most faults on one
timeline (a meter unplugged and back, the uplink down and up, a kill -9, a
broker restart, garbage on every bus, a load step over the limit) and one
expectation that cannot hold, so the exit status and the failure line are
checked too; the second boots with the clock a month behind until NTP steps
it, with the store at its size cap. Both must account for every committed
reading at the central exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil.mosquitto import available

ROOT = Path(__file__).resolve().parent.parent
STATUS = "zaas/v1/demo-park/gw-demo/status"

pytestmark = pytest.mark.skipif(not available(), reason="needs /usr/sbin/mosquitto (apt-get install mosquitto)")

FAULTS = f'''
name = "ci-faults"
description = "most faults on one short timeline"
scale = 10
duration = "5m"
seed = 5
drain = 60
without = ["ble"]

[[timeline]]
at = "30s"
event = "meter_unplugged"
device = "hvac"

[[timeline]]
at = "40s"
event = "uplink_down"

[[timeline]]
at = "80s"
event = "kill_daemon"

[[timeline]]
at = "100s"
event = "uplink_up"

[[timeline]]
at = "110s"
event = "load_step"
base_w = 15000

[[timeline]]
at = "130s"
event = "broker_restart"
down = "10s"

[[timeline]]
at = "150s"
event = "garbage"

[[timeline]]
at = "160s"
event = "meter_back"
device = "hvac"

[expect]
alarms_raised = ["device.hvac.offline", "no.such.alarm"]
alarms_cleared = ["device.hvac.offline"]
shed_at_least = 1
retained = [{{ topic = "{STATUS}", contains = "online" }}]
'''

CLOCK_AND_CAP = '''
name = "ci-clock-cap"
description = "the clock a month behind until NTP, the store at its cap"
scale = 10
duration = "2m"
drain = 60
without = ["ble", "lora"]
prefill_mb = 7.8

[config]
store = { max_size_mb = 8 }

[clock]
behind = "30d"

[[timeline]]
at = "40s"
event = "ntp_sync"

[expect]
cap_reached = true
alarms_raised = ["clock.skew"]
alarms_cleared = ["clock.skew"]
'''


def _run(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    spec = tmp_path / "scenario.toml"
    spec.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "hil.run", str(spec), "--run-dir", str(tmp_path / "run"),
                           "--report-dir", str(tmp_path / "report")], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    name = text.split('name = "')[1].split('"')[0]
    path = tmp_path / "report" / name / "report.json"
    assert path.exists(), proc.stdout + proc.stderr
    return proc, json.loads(path.read_text())


def test_most_faults_on_one_timeline_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    proc, report = _run(tmp_path, FAULTS)
    # the one expectation that cannot hold is named, with its scenario, and only it fails
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert report["failed"] == ["alarm no.such.alarm was never raised (raised: "
                                + ", ".join(report["alarms"]["raised"]) + ")"]
    assert "ci-faults: FAILED alarm no.such.alarm was never raised" in proc.stdout
    r = report["readings"]
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["dropped"] == 0, r
    assert r["delivered"] > 1000 and r["produced"] >= r["delivered"]
    assert report["drained"] is True
    assert [e["event"] for e in report["timeline"]] == ["meter_unplugged", "uplink_down", "kill_daemon",
                                                        "uplink_up", "load_step", "broker_restart", "garbage",
                                                        "meter_back"]
    assert not [e for e in report["timeline"] if "error" in e]
    garbage = next(e for e in report["timeline"] if e["event"] == "garbage")["done"]
    assert "rs485: broken CRCs" in garbage and "mbus: 256 random bytes" in garbage and "lora: 5" in garbage
    assert "device.hvac.offline" in report["alarms"]["raised"] and "device.hvac.offline" in report["alarms"]["cleared"]
    assert report["shed"]["shed"] + report["shed"]["modulate"] >= 1
    assert report["linky_trips"] == 0
    assert report["retained"][STATUS] == "online"
    d = report["daemon"]
    assert d["restarts"] == 1 and d["unexpected_exits"] == [] and d["peak_rss_bytes"] > 20 * 2**20 and d["cpu_s"] > 0
    assert report["power"]["point"] == "board/power" and report["power"]["limit_w"] == 20000
    assert report["power"]["samples"] > 10 and report["chart"] == "power.png"
    png = (tmp_path / "report" / "ci-faults" / "power.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_clock_stepped_by_ntp_and_a_store_at_its_cap_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    proc, report = _run(tmp_path, CLOCK_AND_CAP)
    assert proc.returncode == 0, proc.stdout + proc.stderr + json.dumps(report["failed"])
    assert "ci-clock-cap: PASSED" in proc.stdout
    r = report["readings"]
    assert r["lost"] == 0 and r["duplicated"] == 0 and r["delivered"] > 100, r
    assert r["history_before_start"] > 100_000
    assert report["store"]["cap_reached"] is True and report["store"]["used_bytes"] <= 8 * 2**20
    assert report["alarms"]["raised"].count("clock.skew") == 1 and "clock.skew" in report["alarms"]["cleared"]
    assert report["failed"] == [] and report["passed"] is True
