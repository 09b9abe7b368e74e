"""The alarm rules in the real daemon (a subprocess), across restarts, and the ``alarms`` commands.

The rule watches a point of the gateway's own ``system`` driver (its uptime),
so the condition is under the test's control through the configuration: a
threshold the uptime is above raises; the same rule after a restart must
not raise again; a threshold raised out of reach while the daemon was down
(the condition ended meanwhile) must clear once after the next start.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.daemon_harness import CLI, ROOT, DaemonProcess, write_config
from hil.modbus_sim import SimProcess
from zaas_edge.model import Lane
from zaas_edge.store import Store

AID = "rule.up.system.uptime"


def _config(base: Path, above: float) -> Path:
    extra = f"""
[alarms]
enabled = true

[[alarms.rules]]
id = "up"
kind = "threshold"
points = ["system/uptime"]
above = {above}
severity = "notice"
action = "Nothing to do: the test's own alarm"
"""
    return write_config(base / "config.toml", base, extra=extra)


def _transitions(base: Path) -> list[tuple[str, bool]]:
    with Store(base / "state" / "store.sqlite", readonly=True) as store:
        return [(s.item.alarm_id, s.item.active) for s in store.read(Lane.ALARM, 0, 10_000)
                if s.item.alarm_id.startswith("rule.")]


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-alarms-", dir="/tmp") as d:
        yield Path(d)


def _run(base: Path, above: float, until) -> dict:
    daemon = DaemonProcess(_config(base, above))
    try:
        daemon.wait_notify("READY=1")
        st = daemon.wait_status(until, timeout=30)
        listed = json.loads(daemon.cli("alarms", "list", "--json").stdout)
        return {"status": st, "listed": listed}
    finally:
        daemon.close()


def test_an_alarm_is_raised_once_across_restarts_and_cleared_once_when_it_ended_while_down(base: Path) -> None:
    first = _run(base, 0, lambda s: AID in (s.get("alarms") or {}))
    [row] = [r for r in first["listed"] if r["id"] == AID]
    assert row["value"] > 0 and row["threshold"] == 0 and row["action"].startswith("Nothing to do")
    assert row["data"]["gateway"] == "gw-test" and row["data"]["site"] == "test-site"
    assert _transitions(base) == [(AID, True)]

    # the same rule after a restart: still active, shown at once, not raised again
    second = _run(base, 0, lambda s: (s.get("services") or {}).get("alarms", {}).get("evaluations", 0) > 3)
    assert AID in second["status"]["alarms"]
    assert _transitions(base) == [(AID, True)]

    # the condition ended while the daemon was down (the threshold moved out of reach): cleared once
    third = _run(base, 1e15, lambda s: (s.get("services") or {}).get("alarms", {}).get("cleared", 0) >= 1)
    assert AID not in third["status"]["alarms"]
    assert _transitions(base) == [(AID, True), (AID, False)]

    # the history is read from the store, with the daemon stopped
    rows = json.loads(_cli(base, "alarms", "history", "--since", "-1h", "--json"))
    mine = [(r["id"], r["active"]) for r in rows if r["id"] == AID]
    assert mine == [(AID, True), (AID, False)]
    assert rows[-1]["data"]["raised_value"] > 0 and rows[-1]["data"]["since"] == rows[0]["data"]["since"]
    text = _cli(base, "alarms", "history")
    assert "raised" in text and "cleared" in text


def _cli(base: Path, *args: str) -> str:
    p = subprocess.run([*CLI, "-c", str(base / "config.toml"), *args], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_alarms_list_without_a_daemon_says_so_in_one_line(base: Path) -> None:
    _config(base, 0)
    p = subprocess.run([*CLI, "-c", str(base / "config.toml"), "alarms", "list"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "is the daemon running?" in p.stderr


def test_alarms_list_of_a_daemon_without_alarm_rules_shows_what_status_knows(base: Path) -> None:
    # no [alarms]: the daemon still holds the drivers' alarms (a meter that never answers goes offline)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    drivers = f"""
[[drivers]]
id = "meters"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = {port}
timeout_s = 0.2
offline_after = 1
retry_initial_s = 0.2
devices = [{{ id = "m9", unit = 1, profile = "eastron-sdm630", interval_fast_s = 0.5 }}]
"""
    daemon = DaemonProcess(write_config(base / "config.toml", base, drivers=drivers))
    try:
        daemon.wait_notify("READY=1")
        daemon.wait_status(lambda st: "device.m9.offline" in (st.get("alarms") or {}))
        rows = json.loads(daemon.cli("alarms", "list", "--json").stdout)
        [row] = [r for r in rows if r["id"] == "device.m9.offline"]
        assert row["severity"] == "warning" and row["age_s"] >= 0 and row["value"] is None
        assert "device.m9.offline" in daemon.cli("alarms", "list").stdout
    finally:
        daemon.close()


def test_a_bus_of_twenty_meters_going_dark_raises_one_summary_alarm(base: Path) -> None:
    units = 20
    extra = """
[alarms]
enabled = true
summary_hold_s = 3

[[alarms.rules]]
id = "bus"
kind = "stale"
points = ["m*/energy_import"]
after_s = 3
summary_after = 5
severity = "error"
action = "Check the Modbus line and its gateway"
"""
    with SimProcess("--profile", "eastron-sdm630", "--units", f"1-{units}", "--still") as sim:
        devices = ",\n".join(f'  {{ id = "m{i}", unit = {i}, profile = "eastron-sdm630", interval_fast_s = 1 }}'
                             for i in range(1, units + 1))
        drivers = f"""
[[drivers]]
id = "meters"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = {sim.port}
timeout_s = 0.3
retry_initial_s = 0.5
devices = [
{devices}
]
"""
        daemon = DaemonProcess(write_config(base / "config.toml", base, drivers=drivers, extra=extra))
        try:
            daemon.wait_notify("READY=1")
            _wait_points(daemon, units)
            sim.close()  # the bus goes dark
            st = daemon.wait_status(lambda s: "rule.bus.summary" in (s.get("alarms") or {}), timeout=60)
            assert not [a for a in st["alarms"] if a.startswith("rule.bus.m")]
        finally:
            daemon.close()
    rule_alarms = [t for t in _transitions(base) if t[0].startswith("rule.bus")]
    assert rule_alarms == [("rule.bus.summary", True)]
    with Store(base / "state" / "store.sqlite", readonly=True) as store:
        [summary] = [s.item for s in store.read(Lane.ALARM, 0, 10_000) if s.item.alarm_id == "rule.bus.summary"]
    assert summary.data["members"] == sorted(f"m{i}/energy_import" for i in range(1, units + 1))
    assert summary.data["action"] == "Check the Modbus line and its gateway" and summary.severity.value == "error"


def _wait_points(daemon: DaemonProcess, units: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        p = daemon.cli("status", "--points", "--json", check=False)
        points = (json.loads(p.stdout).get("points") or {}) if p.returncode in (0, 4) else {}
        if all(f"m{i}/energy_import" in points for i in range(1, units + 1)):
            return
        time.sleep(0.3)
    raise AssertionError("the meters were never all heard")
