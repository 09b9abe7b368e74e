"""The scenario runner: a simulated building around the real daemon, started and stopped as ``make demo`` does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from hil.buildings import DEMO, Building, ModbusLine, ModbusMeter, get_building
from hil.daemon_harness import ROOT
from hil.scenario import Scenario, ScenarioError, building_config, to_toml
from tests.mosquitto import available as mosquitto_available

CLI = [sys.executable, "-m", "zaas_edge"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose; only a real process counts
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _status(config: Path) -> dict[str, Any] | None:
    p = subprocess.run([*CLI, "-c", str(config), "status", "--json", "--points"], capture_output=True, text=True,
                       cwd=ROOT, timeout=30)
    return json.loads(p.stdout) if p.returncode == 0 else None


def _every_bus_read(st: dict[str, Any] | None) -> bool:
    if not st or not st.get("running"):
        return False
    drivers, points = st["drivers"], st.get("points", {})
    read = all(drivers.get(d, {}).get("readings", 0) > 0
               for d in ("system", "switchboard", "rs485", "loads", "mbus", "lora", "linky", "ble"))
    # Load shedding has throttled the car: everything on is over the demo's limit (config/demo.toml).
    limit = points.get("wallbox/current_limit", {}).get("value")
    read = read and limit is not None and limit < 16
    # Enrolled with the central API and uploading (events: readings wait for a synchronised clock).
    synced = st.get("services", {}).get("sync", {}).get("lanes", {}).get("event", {}).get("rows_sent", 0) > 0
    return read and synced and all(any(k.startswith(f"{dev}/") for k in points)
                        for dev in DEMO.devices() if dev not in ("leak-1", "water-1"))  # LoRa: every 5 s


def test_the_demo_building_runs_around_the_real_daemon_and_stops_cleanly(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    out_path = tmp_path / "scenario.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "hil.scenario", "--config", str(ROOT / "config" / "demo.toml"),
                                 "--run-dir", str(run_dir), "--duration", "60"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    config = run_dir / "config.toml"
    try:
        deadline = time.monotonic() + 35
        st = None
        while time.monotonic() < deadline and proc.poll() is None:
            if (run_dir / "scenario.json").exists() and _every_bus_read(st := _status(config)):
                break
            time.sleep(0.3)
        output = out_path.read_text(errors="replace")
        assert _every_bus_read(st), f"not every bus was read; last status {json.dumps(st)[:2000]}\n{output[-4000:]}"
        assert st is not None
        points = st["points"]
        assert 200 < points["main/voltage_l1"]["value"] < 260 and points["main/voltage_l1"]["unit"] == "V"
        assert points["heat-1/energy"]["unit"] == "kWh" and points["heat-1/energy"]["value"] > 8000
        assert points["climate-1/co2"]["unit"] == "ppm"
        # The shed plant: the board meter sees the loads, and the charger was throttled through the real driver.
        assert points["board/power"]["value"] < 24_000 and points["relays/relay_1"]["value"] in (0, 1)
        assert st["services"]["shed"]["state"] == "running"
        # The Linky at the head of the building measures the same plant, phase by phase (one frame's values).
        linky = {q: points[f"linky-031762120855/apparent_power{q}"]["value"] for q in ("", "_l1", "_l2", "_l3")}
        assert 5000 < linky[""] < 30_000 and abs(linky[""] - linky["_l1"] - linky["_l2"] - linky["_l3"]) <= 3
        assert linky["_l1"] > linky["_l2"]  # the water heater draws on L1
        assert points["linky-031762120855/breaker"]["value"] == 0  # closed: shedding keeps it so
        assert 2.0 < points["cold-room/temperature"]["value"] < 6.0 and points["meeting-room/humidity"]["unit"] == "%"
        p = subprocess.run([*CLI, "-c", str(config), "shed", "status", "--json"], capture_output=True, text=True,
                           cwd=ROOT, timeout=30)
        assert p.returncode == 0, p.stderr
        shed = json.loads(p.stdout)
        assert shed["limits"]["site"]["parent"] == "linky" and shed["limits"]["linky"]["kind"] == "linky"
        assert st["daemon"]["gateway"] == "gw-demo"  # from the base configuration
        if mosquitto_available():
            assert st["services"]["mqtt"]["connected"] is True
        # The banner names the generated configuration and says where to look next.
        assert f"-c {config} status --points" in output or "config.toml status --points" in output
        for hint in ("status --watch", "shed status", "alarms list", "/alarm/#", "sync status", "linky.sock"):
            assert hint in output, hint
        assert "20 simulated devices" in output
        pids = json.loads((run_dir / "scenario.json").read_text())["children"]
        assert {"daemon", "lora-forwarder", "central"} <= set(pids)
        assert st["services"]["sync"]["url"].startswith("https://127.0.0.1:")

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = out_path.read_text(errors="replace")
    assert "stop requested; flushing the store" in output and "scenario: stopped" in output
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    p = subprocess.run([*CLI, "-c", str(config), "status"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert p.returncode == 3 and "daemon: not running" in p.stdout
    generated = tomllib.loads(config.read_text())
    assert generated["gateway"]["state_dir"] == str(run_dir / "state")
    assert generated["sync"]["enabled"] is True
    assert (run_dir / "state" / "store.sqlite").stat().st_size > 0


def test_cli_help_lists_the_options() -> None:
    p = subprocess.run([sys.executable, "-m", "hil.scenario", "--help"], capture_output=True, text=True, cwd=ROOT,
                       timeout=30)
    assert p.returncode == 0
    for opt in ("--config", "--run-dir", "--duration", "--building", "--no-mqtt", "--no-sync", "--time-scale",
                "--start"):
        assert opt in p.stdout


@pytest.mark.parametrize("args, why", [(["--time-scale", "0.5"], "1 (real time) to 10000"),
                                       (["--time-scale", "fast"], "not a number"),
                                       (["--time-scale", "60", "--start", "25:00"], "not a time of day")])
def test_a_bad_time_scale_is_one_clear_message(args: list[str], why: str) -> None:
    p = subprocess.run([sys.executable, "-m", "hil.scenario", *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=30)
    assert p.returncode == 2 and why in p.stderr and "Traceback" not in p.stderr


def test_an_invalid_base_configuration_is_one_clear_message(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text('[gateway]\nid = "gw demo"\n')
    p = subprocess.run([sys.executable, "-m", "hil.scenario", "--config", str(base), "--run-dir",
                        str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert "base configuration is not valid" in p.stderr and "gateway.id" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout


async def test_a_simulator_that_cannot_start_is_one_line_and_nothing_left_stops_the_scenario(tmp_path: Path) -> None:
    broken = Building("broken", "one bus whose meter has no such profile",
                      modbus=(ModbusLine("bus", "tcp", (ModbusMeter("m", 1, "no-such-meter"),)),),
                      mqtt=False, sync=False)
    lines: list[str] = []

    class Out:
        def write(self, s: str) -> None:
            lines.extend(x for x in s.splitlines() if x)

        def flush(self) -> None:
            pass

    sc = Scenario(ROOT / "config" / "demo.toml", broken, tmp_path / "run", out=Out())  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="no simulated bus could start"):
        await sc.start()
    await sc.stop()
    failed = [x for x in lines if "Modbus line bus did not start" in x]
    assert len(failed) == 1 and "no-such-meter" in failed[0]
    assert sc.daemon is None and sc.children == {}


def test_building_config_has_a_driver_per_reached_bus_and_paths_in_the_run_dir(tmp_path: Path) -> None:
    base = {"gateway": {"id": "gw-x", "site": "s", "state_dir": "/elsewhere"}, "log": {"level": "info"},
            "drivers": [{"id": "system", "type": "system"}]}
    endpoints = {"switchboard": {"host": "127.0.0.1", "port": 5020},
                 "mbus": {"port": "/dev/pts/9", "addresses": {"heat": 5, "water": 6, "electricity": 9}}}
    doc = building_config(base, tmp_path, DEMO, endpoints, mqtt={"enabled": True, "port": 1884},
                          lora={"port": 1701, "keys_file": "/k.toml"})
    text = to_toml(doc)
    back = tomllib.loads(text)
    assert back["gateway"] == {"id": "gw-x", "site": "s", "state_dir": str(tmp_path / "state"),
                               "runtime_dir": str(tmp_path / "run")}
    ids = [d["id"] for d in back["drivers"]]
    assert ids == ["system", "switchboard", "mbus", "lora"]  # rs485 was not reached: no driver for it
    sb = back["drivers"][1]
    assert (sb["port"], len(sb["devices"]), sb["devices"][2]["profile"]) == (5020, 6, "abb-b23")
    assert [m["address"] for m in back["drivers"][2]["meters"]] == [5, 6, 9]
    assert "energy_unit" not in back["drivers"][2]["meters"][1]  # None values are left out
    assert back["mqtt"] == {"enabled": True, "port": 1884} and back["sync"] == {"enabled": False}
    assert base["gateway"]["state_dir"] == "/elsewhere"  # the base document is not changed


def test_to_toml_writes_what_tomllib_reads_back() -> None:
    doc = {"gateway": {"id": "a", "site": 'quote " and \\ and é'}, "store": {"max_size_mb": 64, "ratio": 0.5},
           "mqtt": {"enabled": False, "points": {"main/power": {"deadband_pct": 1.5}}},
           "drivers": [{"id": "x", "type": "modbus", "flags": [True, False], "devices": [{"id": "m", "unit": 1}]}]}
    assert tomllib.loads(to_toml(doc)) == doc


def test_unknown_building_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: demo"):
        get_building("castle")
