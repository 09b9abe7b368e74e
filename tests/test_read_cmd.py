"""``zaas-edge read DEVICE`` and ``read --all`` against the simulators: with no daemon (the command opens
the ports) and through the running daemon (its drivers hold the ports and read between their polls)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from zaas_edge.drivers.tic import Mode

from hil.daemon_harness import SYSTEM_DRIVER, DaemonProcess, write_config
from hil.linky_sim import LinkyMeter, LinkySimulator, MeterConfig, constant
from hil.mbus_sim import MBusSimulator
from hil.modbus_sim import SimProcess
from zaas_edge.cli import cli
from zaas_edge.cli.group import register

register()
T0 = 1_767_261_600


@pytest.fixture(scope="module")
def buses():
    ticks = iter(range(10**9))
    meter = LinkyMeter(MeterConfig(Mode.STANDARD), curve=constant(1800), start=T0, clock=lambda: T0 + next(ticks))
    with SimProcess("--profile", "eastron-sdm630", "--units", "1-2", "--still") as modbus, \
            MBusSimulator() as mbus, LinkySimulator(meter, fast=True, interval=0.2) as linky:
        yield modbus, mbus, linky


def _drivers(modbus: SimProcess, mbus: MBusSimulator, linky: LinkySimulator) -> str:
    return f"""
[[drivers]]
id = "meters-a"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = {modbus.port}
timeout_s = 0.3
devices = [
  {{ id = "m2", unit = 2, profile = "eastron-sdm630" }},
  {{ id = "ghost", unit = 9, profile = "eastron-sdm630" }},
]

[[drivers]]
id = "heat"
type = "mbus"
port = "{mbus.path}"
baudrate = 9600
meters = [{{ id = "heat-1", address = 5, energy_unit = "kWh" }}]

[[drivers]]
id = "linky"
type = "tic"
port = "{linky.path}"
mode = "standard"
"""


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_read_each_bus_without_a_daemon(buses, tmp_path: Path) -> None:
    modbus, mbus, linky = buses
    cfg = str(write_config(tmp_path / "config.toml", tmp_path, _drivers(modbus, mbus, linky)))

    r = run("-c", cfg, "read", "heat-1", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["via"] == "port" and doc["driver"] == "heat" and doc["about"]["manufacturer"] == "KAM"
    points = {p["quantity"]: p for p in doc["points"]}
    assert points["energy"]["unit"] == "kWh"  # what the driver stores: the meter's energy_unit applied

    r = run("-c", cfg, "read", "linky")
    assert r.exit_code == 0, r.output
    assert "port opened by this command" in r.stdout and "apparent_power" in r.stdout and "1800" in r.stdout

    r = run("-c", cfg, "read", "m2")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"m2: driver meters-a, tcp 127.0.0.1:{modbus.port} (unit 2, profile eastron-sdm630)")
    assert "voltage_l1" in r.stdout


def test_read_all_runs_once_over_every_device_and_says_which_failed(buses, tmp_path: Path) -> None:
    modbus, mbus, linky = buses
    cfg = str(write_config(tmp_path / "config.toml", tmp_path, _drivers(modbus, mbus, linky)))
    r = run("-c", cfg, "read", "--all", "--json")
    assert r.exit_code == 1, r.output  # the ghost never answers
    doc = json.loads(r.stdout)
    by_device = {d["device"]: d for d in doc["devices"]}
    assert list(by_device) == ["m2", "ghost", "heat-1", "linky-031762120855"]  # in configuration order
    assert doc["failed"] == 1 and "no answer within 0.3 s" in by_device["ghost"]["error"]
    assert all(d["error"] is None and d["points"] for k, d in by_device.items() if k != "ghost")
    assert not (tmp_path / "state" / "store.sqlite").exists()  # run once: nothing stored

    r = run("-c", cfg, "read", "--all")
    assert "3 of 4 device(s) read" in r.stdout and "ghost (unit 9" in r.stderr


def test_read_refuses_an_unknown_device_or_no_device(buses, tmp_path: Path) -> None:
    modbus, mbus, linky = buses
    cfg = str(write_config(tmp_path / "config.toml", tmp_path, _drivers(modbus, mbus, linky)))
    r = CliRunner().invoke(cli, ["-c", cfg, "read", "nope"])
    message = str(r.exception or r.output)
    assert r.exit_code != 0 and "devices: m2, ghost, heat-1, linky" in message
    assert "listened to (LoRa, BLE) is read from the running daemon's latest values, and no daemon runs" in message
    r = CliRunner().invoke(cli, ["-c", cfg, "read"])
    assert r.exit_code == 2 and "give a DEVICE id, or --all" in r.output


@pytest.mark.timeout(120)
def test_read_goes_through_the_daemon_that_holds_the_ports(buses, tmp_path: Path) -> None:
    modbus, mbus, linky = buses
    cfg = write_config(tmp_path / "config.toml", tmp_path, _drivers(modbus, mbus, linky) + SYSTEM_DRIVER)
    daemon = DaemonProcess(cfg)
    try:
        daemon.wait_notify("READY=1")
        for device, point in (("m2", "frequency"), ("heat-1", "energy"), ("linky", "apparent_power")):
            out = daemon.cli("read", device, "--json")
            doc = json.loads(out.stdout)
            assert doc["via"] == "daemon", doc
            values = {p["quantity"]: p["value"] for p in doc["points"]}
            assert values[point] is not None, (device, values)
        text = daemon.cli("read", "linky").stdout
        assert "through the daemon" in text and "1800" in text
        ghost = daemon.cli("read", "ghost", check=False)
        assert ghost.returncode == 1 and "no answer within 0.3 s" in ghost.stderr
        assert len(ghost.stderr.strip().splitlines()) == 1
        every = daemon.cli("read", "--all", "--json", check=False)
        assert every.returncode == 1
        assert [d["via"] for d in json.loads(every.stdout)["devices"]] == ["daemon"] * 4

        # A device the daemon hears rather than polls: the latest values it heard.
        deadline = time.monotonic() + 30
        heard = daemon.cli("read", "system", "--json", check=False)
        while heard.returncode != 0 and time.monotonic() < deadline:  # until its first readings reach the hub
            time.sleep(0.2)
            heard = daemon.cli("read", "system", "--json", check=False)
        assert heard.returncode == 0, heard.stderr
        doc = json.loads(heard.stdout)
        assert doc["bus"] == "latest values heard by the daemon" and doc["driver"] == "system"
        assert "uptime" in {p["quantity"] for p in doc["points"]}
    finally:
        daemon.close()
