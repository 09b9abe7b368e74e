"""``zaas-edge ble scan`` with recorded adverts instead of the radio, ``ble decode``, the bindkey file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_ble_bthome import KEY, MAC, encrypt_advert
from zaas_edge.cli import cli
from zaas_edge.cli.group import register

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ble_adverts.jsonl"


def test_scan_lists_the_sensors_heard_with_their_values() -> None:
    env = {**os.environ, "ZAAS_EDGE_BLE_REPLAY": str(DATA), "ZAAS_EDGE_CONFIG": "/nonexistent/config.toml"}
    out = subprocess.run([sys.executable, "-m", "zaas_edge", "ble", "scan", "--duration", "5", "--json"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {r["mac"]: r for r in json.loads(out.stdout)}
    assert rows["CB:B8:33:4C:88:4F"]["kind"] == "ruuvi"
    assert rows["CB:B8:33:4C:88:4F"]["values"]["temperature"] == 24.3
    assert rows["CB:B8:33:4C:88:4F"]["adverts"] == 4
    assert rows["A4:C1:38:00:00:01"]["values"] == {"temperature": 25.06, "humidity": 50.55}
    assert "bindkey" in rows["54:48:E6:8F:80:A5"]["error"]  # encrypted: the scan has no key
    text = subprocess.run([sys.executable, "-m", "zaas_edge", "ble", "scan", "--duration", "5"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60).stdout
    assert "MAC" in text and "temperature=24.3degC" in text


# ---------------------------------------------------------------------------------------------- decode

register()
RUUVI_DF5 = "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F"  # the Ruuvi spec's "valid data" example
SEALED = encrypt_advert(bytes.fromhex("02ca0903bf13"), 7).hex()  # temperature 25.06, humidity 50.55


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["ble", "decode", *args], env={"ZAAS_EDGE_CONFIG": "/nonexistent", **(env or {})})


def test_decode_a_ruuvi_advert() -> None:
    out = invoke(RUUVI_DF5, "--format", "ruuvi", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["temperature_c"] == 24.3 and data["pressure_pa"] == 100044 and data["mac"] == "CB:B8:33:4C:88:4F"
    assert {v["quantity"]: v["value"] for v in data["values"]}["temperature"] == 24.3
    assert re.search(r"^temperature +24\.3 +degC$", invoke(RUUVI_DF5, "--format", "ruuvi").stdout, re.M)


def test_decode_an_encrypted_bthome_advert_with_its_bindkey_and_mac(tmp_path: Path) -> None:
    out = invoke(SEALED, "--format", "bthome", "--bindkey", KEY.hex(), "--mac", MAC.lower(), "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["encrypted"] is True and data["mac"] == MAC
    assert {v["quantity"]: v["value"] for v in data["values"]} == {"temperature": 25.06, "humidity": 50.55}
    from_env = invoke(SEALED, "--format", "bthome", "--mac", MAC, "--json", env={"ZAAS_EDGE_BLE_BINDKEY": KEY.hex()})
    assert json.loads(from_env.stdout)["values"] == data["values"]
    key_file = tmp_path / "bindkey"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o600)
    from_file = invoke(SEALED, "--format", "bthome", "--mac", MAC, "--bindkey-file", str(key_file), "--json")
    assert json.loads(from_file.stdout)["values"] == data["values"]


@pytest.mark.parametrize("args, reason", [
    ((SEALED, "--format", "bthome", "--mac", MAC, "--bindkey", "00" * 16), "wrong bindkey"),
    ((SEALED, "--format", "bthome", "--mac", MAC), "configure the device's bindkey"),
    ((SEALED, "--format", "bthome", "--bindkey", KEY.hex()), "--mac"),
    (("0512FC", "--format", "ruuvi"), "needs 24 bytes"),
    (("03" + RUUVI_DF5[2:], "--format", "ruuvi"), "format 3 is not supported"),
    (("nothex", "--format", "ruuvi"), "not hex"),
    (("", "--format", "bthome"), "BTHome"),
])
def test_a_malformed_advert_or_a_wrong_bindkey_exits_2_with_the_reason(args: tuple[str, ...], reason: str) -> None:
    out = invoke(*args)
    assert out.exit_code == 2 and reason in out.stderr, out.output
    assert out.stderr.count("\n") == 1


def test_a_malformed_bindkey_is_refused_without_decoding() -> None:
    out = invoke(SEALED, "--format", "bthome", "--mac", MAC, "--bindkey", "abc")
    assert out.exit_code == 2 and "32 hex digits" in out.stderr


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=40), st.sampled_from(["bthome", "ruuvi"]))
def test_garbage_never_crashes(advert: bytes, fmt: str) -> None:
    out = invoke(advert.hex() or "00", "--format", fmt, "--mac", MAC, "--bindkey", KEY.hex())
    assert out.exit_code in (0, 2), out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_decode_through_the_installed_command() -> None:
    out = subprocess.run([sys.executable, "-m", "zaas_edge", "ble", "decode", SEALED, "--format", "bthome",
                          "--mac", MAC], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "ZAAS_EDGE_BLE_BINDKEY": KEY.hex(), "ZAAS_EDGE_CONFIG": "/nonexistent"})
    assert out.returncode == 0 and re.search(r"^temperature +25\.06 +degC$", out.stdout, re.M), out.stderr


# ---------------------------------------------------------------------------------------------- bindkey file


def test_config_check_refuses_a_bindkey_file_readable_by_others(tmp_path: Path) -> None:
    key_file = tmp_path / "bindkey"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o644)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[gateway]\nstate_dir = "{tmp_path}"\nruntime_dir = "{tmp_path}"\n\n'
                   f'[[drivers]]\nid = "ble"\ntype = "ble"\n'
                   f'devices = [{{ mac = "{MAC}", id = "t1", bindkey_file = "{key_file}" }}]\n')
    out = subprocess.run([sys.executable, "-m", "zaas_edge", "config", "check", str(cfg)], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    said = out.stdout + out.stderr
    assert out.returncode == 2 and "drivers[0].devices[0].bindkey_file" in said, said
    assert "mode 0644" in said and f"chmod 600 {key_file}" in said and KEY.hex() not in said
    key_file.chmod(0o600)
    ok = subprocess.run([sys.executable, "-m", "zaas_edge", "config", "check", str(cfg)], capture_output=True,
                        text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
