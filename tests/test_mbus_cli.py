"""``zaas-edge scan mbus`` and ``zaas-edge mbus read|decode`` against the simulated bus."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from zaas_edge.drivers.mbus import LongHeader, RecordSpec, rsp_ud
from zaas_edge.drivers.mbus.options import MBusOptions
from zaas_edge.drivers.mbus.records import Coding, Function

from hil.mbus_sim import MBusSimulator
from tests.corpora import corpus_dir
from zaas_edge.cli import cli
from zaas_edge.cli.group import register

ROOT = Path(__file__).resolve().parent.parent
register()

TELEGRAM = rsp_ud(3, LongHeader(7, 0, 0, "87654321", "EFE", 2, 6), [
    RecordSpec(b"\x04", 123450, Coding.INT32),
    RecordSpec(b"\x13", 4.5, Coding.BCD8, storage=2, tariff=1),
    RecordSpec(b"\x2b", 900, Coding.INT16, function=Function.MAXIMUM, subunit=1),
])


@pytest.fixture(scope="module")
def sim():
    with MBusSimulator() as s:
        yield s


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_scan_secondary_lists_every_meter_and_a_working_config(sim) -> None:
    r = run("scan", "mbus", "--port", sim.path, "--baud", "9600", "--secondary")
    assert r.exit_code == 0, r.output
    out = r.stdout
    for m in sim.bus.meters:
        assert m.identification in out and m.secondary in out
    assert "heat_outlet" in out and "KAM" in out and "4 meter(s)" in out
    snippet = out[out.index("[[drivers]]"):]
    doc = tomllib.loads(snippet)
    opts = MBusOptions.model_validate(doc["drivers"][0])
    assert opts.port == sim.path and opts.baudrate == 9600
    assert {m.target for m in opts.meters} == {m.secondary for m in sim.bus.meters}
    assert "M-Bus secondary search" in r.stderr  # the progress bar goes to stderr


def test_scan_primary_json(sim) -> None:
    r = run("scan", "mbus", "--port", sim.path, "--baud", "9600", "--primary", "--first", "5", "--last", "8",
            "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [(m["address"], m["manufacturer"], m["medium_name"]) for m in data["meters"]] == [
        (5, "KAM", "heat_outlet"), (6, "SEN", "water"), (7, "ELS", "gas")]
    assert data["probes"] == 4 and data["problems"] == []
    assert 'address = 5' in data["config"]


def test_read_by_primary_and_secondary(sim) -> None:
    r = run("mbus", "read", "--port", sim.path, "--baud", "9600", "--address", "5")
    assert r.exit_code == 0, r.output
    assert "2 telegrams" in r.stdout and "energy.s1" in r.stdout and "power.max" in r.stdout
    assert "identification 12345678" in r.stdout
    r = run("mbus", "read", "--port", sim.path, "--baud", "9600", "--address", "40556677", "--json")
    data = json.loads(r.stdout)
    assert data["header"]["manufacturer"] == "ABB" and data["complete"] is True
    by_key = {rec["key"]: rec for rec in data["records"]}
    assert by_key["voltage"]["unit"] == "V" and by_key["voltage"]["vif"] == "fd48"
    assert by_key["energy.t1"]["tariff"] == 1
    r = run("mbus", "read", "--port", sim.path, "--baud", "9600", "--address", "7", "--raw")
    [line] = r.stdout.split()
    assert line.startswith("68") and line.endswith("16") and "33221130" in line  # the id, least significant first


def test_read_rejects_a_bad_address(sim) -> None:
    r = CliRunner().invoke(cli, ["mbus", "read", "--port", sim.path, "--address", "251"])
    assert r.exit_code == 2 and "0 to 250" in r.output
    r = CliRunner().invoke(cli, ["mbus", "read", "--port", sim.path, "--address", "12xy"])
    assert r.exit_code == 2 and "neither a primary address" in r.output


def test_decode_hex_json_with_raw_dif_vif() -> None:
    r = run("mbus", "decode", TELEGRAM.hex(" "), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["header"]["identification"] == "87654321" and data["header"]["manufacturer"] == "EFE"
    assert data["header"]["medium_name"] == "warm_water"
    energy, volume, power = data["records"]
    assert (energy["value"], energy["unit"], energy["quantity"], energy["dif"], energy["vif"]) == (
        123450, "Wh", "energy", "04", "04")
    assert (volume["storage"], volume["tariff"], volume["value"], volume["dif"], volume["vif"]) == (
        2, 1, 4.5, "8c11", "13")
    assert (power["function"], power["subunit"], power["dif"], power["vif"]) == ("maximum", 1, "9240", "2b")
    assert set(energy) >= {"value", "unit", "quantity", "function", "storage", "tariff", "subunit", "dif", "vif"}


def test_decode_from_file_and_stdin(tmp_path: Path) -> None:
    hexfile = tmp_path / "t.hex"
    hexfile.write_text(TELEGRAM.hex(" ").upper() + "\n")
    binfile = tmp_path / "t.bin"
    binfile.write_bytes(TELEGRAM)
    for args, stdin in (([str(hexfile)], None), ([str(binfile)], None), (["-"], TELEGRAM.hex())):
        r = run("mbus", "decode", *args, input=stdin)
        assert r.exit_code == 0, r.output
        assert "87654321" in r.stdout and "volume.s2.t1" in r.stdout and "power.max.u1" in r.stdout


def test_decode_corpus_telegrams() -> None:
    corpus = corpus_dir("libmbus")
    r = run("mbus", "decode", str(corpus / "test-frames" / "EDC.hex"), "--json")
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["records"]) > 5
    r = run("mbus", "decode", str(corpus / "error-frames" / "application_busy.hex"), "--json")
    assert json.loads(r.stdout)["header"]["type"] == "application_error"


def test_decode_malformed_exits_2_with_one_line() -> None:
    bad = bytearray(TELEGRAM)
    bad[-2] ^= 0xFF
    r = CliRunner().invoke(cli, ["mbus", "decode", bytes(bad).hex()])
    assert r.exit_code == 2 and "checksum" in r.output
    r = CliRunner().invoke(cli, ["mbus", "decode", "not hex at all"])
    assert r.exit_code == 2 and "not hexadecimal" in r.output
    # the real command, in its own process: one line on stderr, exit status 2, no traceback
    p = subprocess.run([sys.executable, "-m", "zaas_edge", "mbus", "decode", TELEGRAM[:-5].hex()],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("zaas-edge: error: malformed M-Bus telegram: ")
    assert "truncated" in lines[0]


def test_a_scan_interrupted_after_the_first_meter_still_prints_it_and_its_configuration(sim) -> None:
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "zaas_edge", "scan", "mbus", "--port", sim.path, "--baud", "9600",
                             "--primary", "--first", "5", "--last", "250"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed as soon as address 5 answered, long before address 250
        assert first.startswith("12345678 KAM heat_outlet") and "address 5" in first, first
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "(interrupted). Suggested configuration" in rest and "Traceback" not in err
    doc = tomllib.loads(rest[rest.index("[[drivers]]"):])
    assert doc["drivers"][0]["meters"][0]["address"] == 5
