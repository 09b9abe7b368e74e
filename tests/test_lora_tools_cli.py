"""The technician's LoRa commands: ``lora decode``, ``lora remove-device``, ``add-device`` without a terminal."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.lora import join, lorawan
from zaas_edge.drivers.lora.describe import FrameKeys, MicStatus, describe_frame
from zaas_edge.drivers.lora.keys import load_keys, save_keys

from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimOtaaDevice, em300_di_payload
from zaas_edge.cli import cli
from zaas_edge.cli.group import register

register()
ROOT = Path(__file__).resolve().parent.parent
WATER = DEMO_DEVICES[0]
NWK, APP = WATER.nwk_skey.hex().upper(), WATER.app_skey.hex().upper()
NO_CONFIG = {"ZAAS_EDGE_CONFIG": "/nonexistent/config.toml"}
APP_KEY = bytes.fromhex("5572404C696E6B4C6F52613230313823")


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):  # noqa: A002
    return CliRunner().invoke(cli, list(args), env={**NO_CONFIG, **(env or {})}, input=input)


def row(name: str, value: str, text: str) -> bool:
    """Whether a table line reads ``name`` then ``value`` (however the columns are aligned)."""
    return re.search(rf"^{re.escape(name)} +{re.escape(value)}\b", text, re.M) is not None


def uplink(fcnt: int = 70000, pulses: int = 1234) -> str:
    """An EM300-DI report signed and encrypted as the device does (FCnt past a 16-bit rollover)."""
    return SimDevice(WATER).uplink(em300_di_payload(pulses, battery=91), fcnt=fcnt).hex()


def test_a_data_frame_with_its_keys_shows_every_field_the_mic_and_the_values() -> None:
    out = invoke("lora", "decode", uplink(), "--nwkskey", NWK, "--appskey", APP, "--profile", "milesight-em300-di",
                 "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["kind"] == "data" and data["mic_status"] == "ok" and data["mtype"] == "unconfirmed_data_up"
    assert data["dev_addr"] == "26011BDA" and data["fcnt"] == 70000 & 0xFFFF and data["fcnt32"] == 70000
    assert data["fport"] == 85 and data["fopts"] == "" and data["fctrl"]["adr"] is False
    assert data["plaintext"] == em300_di_payload(1234, battery=91).hex().upper()
    assert {v["quantity"]: v["value"] for v in data["values"]} == {"battery": 91.0, "pulse_count": 1234.0}
    text = invoke("lora", "decode", uplink(), "--nwkskey", NWK, "--appskey", APP, "--profile", "milesight-em300-di")
    assert row("MIC STATUS", "ok", text.stdout) and row("pulse_count", "1234", text.stdout)


def test_without_keys_the_mic_is_not_checked_and_the_payload_stays_encrypted() -> None:
    out = invoke("lora", "decode", uplink(), "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["mic_status"] == "not checked" and "plaintext" not in data
    assert any("NwkSKey" in n for n in data["notes"]) and any("AppSKey" in n for n in data["notes"])


def test_a_bad_mic_prints_the_fields_then_exits_2_with_the_reason() -> None:
    out = invoke("lora", "decode", uplink(), "--nwkskey", APP, "--appskey", APP)
    assert out.exit_code == 2
    assert row("DEV ADDR", "26011BDA", out.stdout) and row("MIC STATUS", "bad", out.stdout)
    assert "MIC mismatch" in out.stderr and "PLAINTEXT" not in out.stdout


@pytest.mark.parametrize("frame", ["", "40", "40aabbccdd", "c0" + "00" * 20, "5c" + "00" * 20, "zz-not-hex"])
def test_a_malformed_frame_exits_2_with_one_line(frame: str) -> None:
    out = invoke("lora", "decode", frame or "''")
    assert out.exit_code == 2 and out.stderr.count("\n") == 1, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_never_crashes(frame: bytes) -> None:
    out = invoke("lora", "decode", frame.hex() or "00", "--nwkskey", NWK, "--appskey", APP, "--appkey", NWK,
                 "--profile", "milesight-am103")
    assert out.exit_code in (0, 2), out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 16 * 0x10000 + 0xFFFF), st.integers(1, 223),
       st.binary(max_size=48), st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
       st.booleans())
def test_describe_reads_back_what_the_encoder_built(dev_addr: int, fcnt32: int, fport: int, payload: bytes,
                                                    nwk: bytes, app: bytes, confirmed: bool) -> None:
    mtype = lorawan.MType.CONFIRMED_DATA_UP if confirmed else lorawan.MType.UNCONFIRMED_DATA_UP
    phy = lorawan.build_data_frame(dev_addr=dev_addr, fcnt32=fcnt32, fport=fport, payload=payload, nwk_skey=nwk,
                                   app_skey=app, mtype=mtype)
    report = describe_frame(phy, FrameKeys(nwk_skey=nwk, app_skey=app)).as_dict()
    assert report["mic_status"] == "ok" and report["fcnt32"] == fcnt32 and report["fport"] == fport
    assert report["dev_addr"] == f"{dev_addr:08X}" and report["confirmed"] is confirmed
    assert report.get("plaintext", "") == payload.hex().upper()
    other = bytes(b ^ 1 for b in nwk)
    assert describe_frame(phy, FrameKeys(nwk_skey=other)).mic is MicStatus.BAD


def test_keys_come_from_the_environment_or_from_the_keys_file(tmp_path: Path) -> None:
    env = {"ZAAS_EDGE_LORA_NWKSKEY": NWK, "ZAAS_EDGE_LORA_APPSKEY": APP}
    out = invoke("lora", "decode", uplink(), "--json", env=env)
    assert json.loads(out.stdout)["mic_status"] == "ok"
    keys = tmp_path / "keys.toml"
    save_keys(keys, DEMO_DEVICES)
    found = invoke("lora", "decode", uplink(pulses=7), "--keys-file", str(keys), "--json")  # by its DevAddr
    data = json.loads(found.stdout)
    assert data["device"] == "water-1" and data["mic_status"] == "ok" and data["profile"] == "milesight-em300-di"
    assert {v["quantity"]: v["value"] for v in data["values"]}["pulse_count"] == 7.0
    named = invoke("lora", "decode", uplink(), "--keys-file", str(keys), "--device", "leak-1")  # the wrong keys
    assert named.exit_code == 2 and "MIC mismatch" in named.stderr
    missing = invoke("lora", "decode", uplink(), "--keys-file", str(keys), "--device", "nosuch")
    assert missing.exit_code == 1 and "water-1, leak-1, climate-1" in missing.stderr
    assert NWK not in found.output + named.output
    os.chmod(keys, 0o644)
    loose = invoke("lora", "decode", uplink(), "--keys-file", str(keys))
    assert loose.exit_code != 0 and "chmod 600" in str(loose.exception or loose.stderr)


def test_base64_as_a_forwarder_logs_it_is_read_too() -> None:
    frame = base64.b64encode(bytes.fromhex(uplink())).decode()
    out = invoke("lora", "decode", frame, "--nwkskey", NWK, "--json")
    assert out.exit_code == 0 and json.loads(out.stdout)["dev_addr"] == "26011BDA"


def test_join_request_and_join_accept_are_explained_with_the_appkey() -> None:
    dev = SimOtaaDevice("c", bytes.fromhex("24E124710B423527"), bytes.fromhex("24E124C0002A0001"), APP_KEY)
    request = dev.join_request(dev_nonce=0x1234).hex()
    out = invoke("lora", "decode", request, "--appkey", APP_KEY.hex(), "--json")
    data = json.loads(out.stdout)
    assert out.exit_code == 0 and data["kind"] == "join request" and data["mic_status"] == "ok"
    assert data["dev_eui"] == "24E124710B423527" and data["app_eui"] == "24E124C0002A0001"
    assert data["dev_nonce"] == 0x1234
    assert invoke("lora", "decode", request, "--appkey", NWK).exit_code == 2
    accept = join.build_join_accept(APP_KEY, join.JoinAcceptFields(
        app_nonce=5, net_id=0x13, dev_addr=0x26000001, cflist=join.encode_cflist([867.1, 867.3]))).hex()
    out = invoke("lora", "decode", accept, "--appkey", APP_KEY.hex(), "--json")
    data = json.loads(out.stdout)
    assert data["kind"] == "join accept" and data["mic_status"] == "ok" and data["dev_addr"] == "26000001"
    assert data["net_id"] == "000013" and data["cflist_mhz"] == [867.1, 867.3]
    sealed = json.loads(invoke("lora", "decode", accept, "--json").stdout)
    assert sealed["mic_status"] == "not checked" and "dev_addr" not in sealed


def test_fport_0_mac_commands_are_opened_with_the_nwkskey() -> None:
    frame = lorawan.build_data_frame(dev_addr=WATER.dev_addr, fcnt32=3, fport=0, payload=b"\x02",
                                     nwk_skey=WATER.nwk_skey, app_skey=WATER.app_skey).hex()
    data = json.loads(invoke("lora", "decode", frame, "--nwkskey", NWK, "--json").stdout)
    assert data["plaintext"] == "02" and any("MAC commands" in n for n in data["notes"])


def test_decode_through_the_installed_command() -> None:
    out = subprocess.run([sys.executable, "-m", "zaas_edge", "lora", "decode", uplink(), "--nwkskey", NWK],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, **NO_CONFIG})
    assert out.returncode == 0 and row("FCNT32", "70000", out.stdout), out.stderr
    bad = subprocess.run([sys.executable, "-m", "zaas_edge", "lora", "decode", "40aa"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60, env={**os.environ, **NO_CONFIG})
    assert bad.returncode == 2 and bad.stderr.startswith("zaas-edge: error: not a LoRaWAN frame")
    assert "Traceback" not in bad.stderr


# ---------------------------------------------------------------------------------------------- keys file


def test_remove_device_rewrites_the_keys_file_0600_without_it(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    save_keys(keys, DEMO_DEVICES)
    out = invoke("lora", "remove-device", "leak-1", "--keys-file", str(keys))
    assert out.exit_code == 0, out.output
    assert "removed leak-1 (DevAddr 26011BDB)" in out.stdout and "within a few seconds" in out.stdout
    assert [d.id for d in load_keys(keys).devices] == ["water-1", "climate-1"]
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    again = invoke("lora", "remove-device", "leak-1", "--keys-file", str(keys))
    assert again.exit_code == 1 and "no device 'leak-1'" in again.stderr and "water-1, climate-1" in again.stderr
    gone = invoke("lora", "remove-device", "x", "--keys-file", str(tmp_path / "none.toml"))
    assert gone.exit_code == 1 and "does not exist" in gone.stderr


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
    return subprocess.run([sys.executable, "-m", "zaas_edge", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, input=input, env={**os.environ, **NO_CONFIG})


def test_add_device_without_a_terminal_reads_the_keys_from_stdin_silently(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    out = run("lora", "add-device", "--keys-file", str(keys), "--dev-addr", "26011BDA", "--profile",
              "milesight-em300-di", "--id", "water-1", input=f"# from the provisioning sheet\n{NWK}\n{APP}\n")
    assert out.returncode == 0 and out.stderr == "", out.stderr
    [dev] = load_keys(keys).devices
    assert dev.nwk_skey == WATER.nwk_skey and dev.app_skey == WATER.app_skey
    short = run("lora", "add-device", "--keys-file", str(keys), "--dev-addr", "26011BDB", "--profile",
                "milesight-em300-di", "--id", "w2", input=f"{NWK}\n")
    assert short.returncode == 2 and "AppSKey missing" in short.stderr and NWK not in short.stderr


def test_add_device_reads_the_keys_from_a_0600_file(tmp_path: Path) -> None:
    keys, secret = tmp_path / "keys.toml", tmp_path / "otaa.key"
    secret.write_text(APP_KEY.hex() + "\n")
    os.chmod(secret, 0o644)
    args = ["lora", "add-device", "--keys-file", str(keys), "--otaa", "--dev-eui", "24E124710B423527",
            "--app-eui", "24E124C0002A0001", "--keys-from", str(secret), "--profile", "milesight-am103", "--id", "c"]
    loose = run(*args)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr and not keys.exists()
    os.chmod(secret, 0o600)
    out = run(*args)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert load_keys(keys).devices[0].app_key == APP_KEY
