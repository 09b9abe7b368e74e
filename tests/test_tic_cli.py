"""``zaas-edge tic decode|read`` and ``zaas-edge scan tic``: the corpus, our own streams, garbage, a pty."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.tic import Group, Horodate, Mode, TicOptions, encode_frame

from hil.linky_sim import LinkyMeter, LinkySimulator, MeterConfig, constant
from hil.linky_tariff import Contract
from tests.corpora import corpus_cases, corpus_dir
from zaas_edge.cli import cli
from zaas_edge.cli.group import register

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_767_261_600
register()


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def decode_json(data: bytes, *extra: str) -> dict:
    r = run("tic", "decode", "-", "--json", *extra, input=data)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


# --- the real captures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
def test_decode_json_gives_each_captures_first_frame_and_frame_count(capture: dict) -> None:
    path = corpus_dir("tic") / capture["file"]
    r = run("tic", "decode", str(path), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["mode"] == capture["mode"]
    complete = [f for f in doc["frames"] if f["complete"]]
    assert len(complete) == capture["complete_frames"] == doc["counters"]["frames_complete"]
    first = complete[0]
    assert len(first["groups"]) == capture["groups_in_first_complete_frame"]
    for label, want in capture["first_complete_frame"].items():
        assert first["groups"][label]["data"] == want["data"], label
        assert first["groups"][label]["horodate"] == want.get("horodate"), label
    assert list(first["groups"])[: len(capture["first_complete_frame"])] == list(capture["first_complete_frame"])
    for bad in capture.get("bad_groups", []):
        frame = doc["frames"][bad["frame_index"]]
        assert {"label": bad["label"], "raw": bad["raw"], "reason": bad["reason"]} in frame["bad_groups"]


# --- our own streams -------------------------------------------------------------------------------------------------

_LABEL = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-"), min_size=1, max_size=8)
_DATA = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@st.composite
def _frames(draw: st.DrawFn, mode: Mode) -> list[Group]:
    labels = draw(st.lists(_LABEL, min_size=1, max_size=6, unique=True))
    groups = []
    for label in labels:
        data = draw(_DATA)
        if mode is Mode.HISTORIC:
            data = data.strip(" ") or "0"  # historic data with a trailing space is not one group
        stamp = None
        if mode is Mode.STANDARD and draw(st.booleans()):
            stamp = Horodate.parse(draw(st.sampled_from(["H260101120000", "E260701083000", "h260301000000"])))
        groups.append(Group(label, data, stamp))
    return groups


@pytest.mark.parametrize("mode", [Mode.HISTORIC, Mode.STANDARD])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_decode_json_gives_back_what_was_encoded_byte_exact(mode: Mode, data: st.DataObject) -> None:
    frames = [data.draw(_frames(mode)) for _ in range(data.draw(st.integers(1, 3)))]
    stream = b"\x00\x01noise" + b"".join(encode_frame(f, mode) for f in frames)
    doc = decode_json(stream, "--mode", mode.name.lower())
    assert doc["mode"] == mode.name.lower()
    assert [f["complete"] for f in doc["frames"]] == [True] * len(frames)
    for got, sent in zip(doc["frames"], frames, strict=True):
        assert got["bad_groups"] == []
        assert got["groups"] == {g.label: {"data": g.data, "horodate": g.horodate and g.horodate.raw} for g in sent}
        assert list(got["groups"]) == [g.label for g in sent]


def test_auto_mode_detects_each_mode_and_reports_bad_groups() -> None:
    std = encode_frame([Group("ADSC", "031762120855"), Group("SINSTS", "01500"), Group("NGTF", "     TEMPO      ")],
                       Mode.STANDARD)
    broken = std.replace(b"01500\t", b"01501\t")  # the checksum no longer matches: that group alone is lost
    doc = decode_json(std + broken + std[:20])
    assert doc["mode"] == "standard"
    assert [f["complete"] for f in doc["frames"]] == [True, True, False]
    assert doc["frames"][0]["groups"]["NGTF"]["data"] == "     TEMPO      "
    assert "SINSTS" not in doc["frames"][1]["groups"] and "ADSC" in doc["frames"][1]["groups"]
    start = broken.index(b"\nSINSTS") + 1
    raw = broken[start : broken.index(b"\r", start)].decode()
    assert doc["frames"][1]["bad_groups"] == [{"label": "SINSTS", "raw": raw, "reason": "checksum"}]
    assert doc["counters"]["frames_complete"] == 2 and doc["counters"]["groups_bad"] >= 1
    hist = encode_frame([Group("ADCO", "031762120855"), Group("PAPP", "00680")], Mode.HISTORIC)
    assert decode_json(hist)["mode"] == "historic"


@pytest.mark.parametrize("stream,mode", [
    (b"", "auto"),
    (b"random garbage \x00\xff" * 50, "auto"),
    (b"\x02\nPAPP 00680 X\r\x03", "auto"),  # a bad checksum
    (encode_frame([Group("PAPP", "00680")], Mode.HISTORIC), "standard"),  # a historic group read as standard
], ids=["empty", "garbage", "bad-checksum", "wrong-mode"])
def test_input_without_a_valid_group_exits_2_with_one_line(stream: bytes, mode: str) -> None:
    r = run("tic", "decode", "-", "--mode", mode, input=stream)
    assert r.exit_code == 2
    assert "no valid TIC group" in r.output and r.output.count("\n") <= 2


def test_the_installed_command_fails_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x02not a tic stream\x03")
    p = subprocess.run([sys.executable, "-m", "zaas_edge", "tic", "decode", str(junk)], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "zaas_edge", "tic", "read", "--port", str(tmp_path / "ttyUSB9")],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "cannot open TIC port" in p.stderr


# --- over a pty ----------------------------------------------------------------------------------------------------


def _sim(mode: Mode, contract: Contract = Contract.BASE) -> LinkySimulator:
    ticks = iter(range(10**9))
    meter = LinkyMeter(MeterConfig(mode, contract=contract), curve=constant(1800), start=T0,
                       clock=lambda: T0 + next(ticks))
    return LinkySimulator(meter, fast=True, interval=0.02)


@pytest.mark.timeout(60)
def test_read_prints_live_frames_as_a_table_and_json() -> None:
    with _sim(Mode.STANDARD) as sim:
        r = run("tic", "read", "--port", sim.path, "--mode", "standard", "--count", "2")
        assert r.exit_code == 0, r.output
        assert r.stdout.count("(complete)") == 2
        assert "apparent_power = 1800 VA" in r.stdout and "ADSC" in r.stdout
        r = run("tic", "read", "--port", sim.path, "--count", "1", "--json")
        doc = json.loads(r.stdout)
        assert (doc["mode"], doc["baudrate"]) == ("standard", 9600)
        assert doc["frames"][-1]["complete"] and doc["frames"][-1]["groups"]["SINSTS"]["data"] == "01800"


@pytest.mark.timeout(60)
def test_scan_identifies_the_meter_and_prints_a_working_configuration() -> None:
    with _sim(Mode.HISTORIC, Contract.TEMPO) as sim:
        r = run("scan", "tic", "--port", sim.path)
        assert r.exit_code == 0, r.output
        assert "historic (1200 Bd, 7E1)" in r.stdout and "031762120855" in r.stdout and "tempo" in r.stdout
        doc = tomllib.loads(r.stdout[r.stdout.index("[[drivers]]"):])
        opts = TicOptions.model_validate(doc["drivers"][0])
        assert (opts.port, opts.mode, opts.meter_id) == (sim.path, "historic", "031762120855")
        data = json.loads(run("scan", "tic", "--port", sim.path, "--json").stdout)
        assert data["phases"] == 1 and data["contract"] == "tempo" and data["baudrate"] == 1200
