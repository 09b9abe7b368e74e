"""The Modbus commands as a technician runs them: real processes, a simulated bus on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from zaas_edge.drivers.modbus import get_profile

from hil.modbus_sim import SimProcess

ROOT = Path(__file__).resolve().parent.parent


def zaas(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "zaas_edge"] + (["-c", str(config)] if config else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def sim():
    # Three SDM630s and a SunSpec inverter; values held still so reads can be compared.
    with SimProcess("--profile", "eastron-sdm630", "--units", "1-3", "--still") as meters, \
            SimProcess("--profile", "sunspec-inverter", "--units", "7", "--still") as inverter:
        yield meters, inverter


def test_profiles_list_names_the_fourteen_modbus_and_every_lora_profile() -> None:
    from zaas_edge.drivers.lora.payloads import profile_names

    out = zaas("profiles", "list", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    names = [p["name"] for p in listed if p["bus"] == "modbus"]
    assert [p["name"] for p in listed if p["bus"] == "lora"] == profile_names() == [
        "milesight-am103", "milesight-em300-di", "milesight-em300-sld"]
    assert len(names) == 14 and "eastron-sdm630" in names and "sunspec-inverter" in names
    assert "waveshare-relay-8ch" in names and "heidelberg-energy-control" in names
    text = zaas("profiles", "list").stdout
    assert "Eastron" in text and "SDM630-Modbus V2" in text and "Milesight" in text and "AM103" in text


def test_profiles_show_a_lora_payload_profile() -> None:
    out = zaas("profiles", "show", "milesight-am103")
    assert out.returncode == 0, out.stderr
    assert "Milesight AM103" in out.stdout and "codec milesight-am103" in out.stdout
    assert "temperature" in out.stdout and "degC" in out.stdout and "ppm" in out.stdout
    data = json.loads(zaas("profiles", "show", "milesight-em300-sld", "--json").stdout)
    assert data["bus"] == "lora" and data["manufacturer"] == "Milesight"
    assert {p["quantity"] for p in data["points"]} >= {"battery"}


def test_profiles_show_table_and_json() -> None:
    out = zaas("profiles", "show", "eastron-sdm630")
    assert out.returncode == 0
    assert "energy_import" in out.stdout and "72 (0x0048)" in out.stdout and "float32" in out.stdout
    data = json.loads(zaas("profiles", "show", "abb-b23", "--json").stdout)
    assert data["name"] == "abb-b23" and len(data["points"]) == len(get_profile("abb-b23").points)
    bad = zaas("profiles", "show", "eastron-sdm9999")
    assert bad.returncode != 0 and "no Modbus or LoRaWAN profile named 'eastron-sdm9999'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_scan_finds_the_units_and_suggests_a_configuration(sim) -> None:
    meters, inverter = sim
    out = zaas("scan", "modbus", "--host", "127.0.0.1", "--tcp-port", str(meters.port), "--units", "1-5",
               "--timeout", "0.2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [f["unit"] for f in data["found"]] == [1, 2, 3]
    assert all("eastron-sdm630" in f["profiles"] for f in data["found"])
    snippet = tomllib.loads(data["config"])
    [drv] = snippet["drivers"]
    assert drv["transport"] == "tcp" and drv["port"] == meters.port
    assert [d["unit"] for d in drv["devices"]] == [1, 2, 3]

    out = zaas("scan", "modbus", "--host", "127.0.0.1", "--tcp-port", str(inverter.port), "--units", "6-7",
               "--timeout", "0.2")
    assert out.returncode == 0, out.stderr
    assert "sunspec-inverter" in out.stdout and "SunS marker at 40000" in out.stdout


def test_scan_progress_goes_to_a_terminal_on_stderr_and_json_stays_clean(sim) -> None:
    import os
    import select

    meters, _ = sim
    master, slave = os.openpty()  # stderr is a terminal, as for a technician; stdout a pipe
    proc = subprocess.Popen([sys.executable, "-m", "zaas_edge", "scan", "modbus", "--host", "127.0.0.1",
                             "--tcp-port", str(meters.port), "--units", "1-6", "--timeout", "0.2", "--json"],
                            stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, text=True)
    os.close(slave)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, "the scan wrote nothing to its terminal for 30 s"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        out = proc.stdout.read()
        assert proc.wait(30) == 0, shown
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = shown.decode(errors="replace")
    assert f"scanning tcp 127.0.0.1:{meters.port}" in text
    assert "100%" in text and "[" in text and "#" in text  # the bar itself, drawn to the end
    data = json.loads(out)  # nothing but the JSON document on stdout
    assert [f["unit"] for f in data["found"]] == [1, 2, 3] and data["probed"] == 6

    piped = zaas("scan", "modbus", "--host", "127.0.0.1", "--tcp-port", str(meters.port), "--units", "4-5",
                 "--timeout", "0.2", "--json")
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["found"] == []
    # Not a terminal: the label once, no redraws.
    assert piped.stderr.strip() == f"scanning tcp 127.0.0.1:{meters.port}"


def test_raw_read_and_write(sim) -> None:
    meters, _ = sim
    conn = ["--host", "127.0.0.1", "--tcp-port", str(meters.port)]
    out = zaas("modbus", "read", *conn, "--unit", "2", "--function", "4", "--address", "0", "--count", "3",
               "--type", "float32", "--json")
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)["values"]
    assert [v["address"] for v in values] == [0, 2, 4]
    assert all(225 < v["value"] < 235 for v in values)  # phase voltages

    out = zaas("modbus", "write", *conn, "--unit", "3", "--address", "20", "--value", "-1234.5",
               "--type", "float32", "--function", "16", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["value"] == -1234.5
    back = json.loads(zaas("modbus", "read", *conn, "--unit", "3", "--address", "20", "--type", "float32",
                           "--json").stdout)
    assert back["values"][0]["value"] == -1234.5

    out = zaas("modbus", "write", *conn, "--unit", "3", "--function", "5", "--address", "4", "--value", "1")
    assert out.returncode == 0 and "reads back 0001" in out.stdout


def test_one_line_errors(sim, tmp_path: Path) -> None:
    meters, _ = sim
    silent = zaas("modbus", "read", "--host", "127.0.0.1", "--tcp-port", str(meters.port), "--unit", "9",
                  "--address", "0", "--timeout", "0.2")
    assert silent.returncode == 1 and silent.stderr.strip() == "zaas-edge: error: unit 9: no answer within 0.2 s"
    missing = zaas("modbus", "read", "--port", str(tmp_path / "ttyUSB7"), "--address", "0")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith(f"zaas-edge: error: serial port {tmp_path / 'ttyUSB7'} does not exist")
    both = zaas("scan", "modbus", "--port", "/dev/ttyUSB0", "--host", "x")
    assert both.returncode != 0 and "--port" in both.stderr and "Traceback" not in both.stderr


def _config(tmp_path: Path, port: int) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[gateway]
state_dir = "{tmp_path / 'state'}"
runtime_dir = "{tmp_path / 'run'}"

[[drivers]]
id = "meters-a"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = {port}
timeout_s = 0.3
devices = [
  {{ id = "m2", unit = 2, profile = "eastron-sdm630" }},
  {{ id = "ghost", unit = 9, profile = "eastron-sdm630" }},
]
""")
    return cfg


def test_read_a_configured_device(sim, tmp_path: Path) -> None:
    meters, _ = sim
    cfg = _config(tmp_path, meters.port)
    out = zaas("read", "m2", "--json", config=cfg)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["about"] == {"unit": "2", "profile": "eastron-sdm630"} and data["via"] == "port"
    assert data["driver"] == "meters-a" and data["bus"] == f"tcp 127.0.0.1:{meters.port}"
    points = {p["quantity"]: p for p in data["points"]}
    assert len(points) == 34 and all(p["quality"] == "ok" for p in points.values())
    assert 49.9 < points["frequency"]["value"] < 50.1 and points["voltage_l1"]["unit"] == "V"
    text = zaas("read", "m2", config=cfg).stdout
    assert "energy_import" in text and "kWh" in text

    ghost = zaas("read", "ghost", config=cfg)
    assert ghost.returncode == 1 and "ghost (unit 9, profile eastron-sdm630 on tcp 127.0.0.1" in ghost.stderr
    assert "no answer within 0.3 s" in ghost.stderr
    unknown = zaas("read", "m7", config=cfg)
    assert unknown.returncode == 1
    assert "no device 'm7' in the configuration of a polling driver" in unknown.stderr
    assert "devices: m2, ghost" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1


def test_config_errors_name_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[gateway]
state_dir = "{tmp_path / 'state'}"

[[drivers]]
id = "meters-a"
type = "modbus"
transport = "rtu"
port = "/dev/ttyUSB0"
baudrate = 9601
devices = [
  {{ id = "m1", unit = 1, profile = "eastron-sdm630" }},
  {{ id = "m2", unit = 2, profile = "eastron-sdm360" }},
  {{ id = "m3", unit = 300, profile = "abb-b23", points = {{ power = {{ interval_s = 0 }} }} }},
]
""")
    out = zaas("config", "check", config=cfg)
    assert out.returncode == 2
    err = out.stdout + out.stderr
    assert "drivers[0].baudrate" in err and "9600" in err
    assert "drivers[0].devices[1].profile" in err and "no Modbus profile named 'eastron-sdm360'" in err
    assert "drivers[0].devices[2].unit" in err
    assert "drivers[0].devices[2].points" in err and "interval_s: expected a value > 0, got 0" in err
    assert "Traceback" not in err


def test_write_refuses_a_value_the_register_cannot_hold(sim) -> None:
    meters, _ = sim
    conn = ["--host", "127.0.0.1", "--tcp-port", str(meters.port), "--unit", "3", "--address", "30"]
    assert zaas("modbus", "write", *conn, "--type", "int16", "--value", "22").returncode == 0
    for value, dtype, reason in (("-21.5", "int16", "int16 holds whole numbers from -32768 to 32767"),
                                 ("70000", "uint16", "uint16 holds whole numbers from 0 to 65535"),
                                 ("-2", "uint32", "uint32 holds whole numbers from 0 to 4294967295")):
        out = zaas("modbus", "write", *conn, "--type", dtype, "--value", value)
        assert out.returncode == 2, out.stdout
        assert reason in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    after = json.loads(zaas("modbus", "read", *conn, "--type", "int16", "--json").stdout)["values"][0]["value"]
    assert after == 22  # the refused values never reached the device (-21.5 was not rounded to -22 either)


def test_a_scan_interrupted_after_the_first_unit_still_prints_it_and_its_configuration(sim) -> None:
    import signal

    meters, _ = sim
    proc = subprocess.Popen([sys.executable, "-m", "zaas_edge", "scan", "modbus", "--host", "127.0.0.1",
                             "--tcp-port", str(meters.port), "--units", "1,10-200", "--timeout", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed the moment unit 1 answered, long before the scan ends
        assert first.startswith("unit 1: eastron-sdm630"), first
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "(interrupted), 1 answered" in rest and "Traceback" not in err
    doc = tomllib.loads(rest[rest.index("[[drivers]]"):])
    assert [d["unit"] for d in doc["drivers"][0]["devices"]] == [1]
