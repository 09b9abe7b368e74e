"""``zaas-edge lora add-device`` and ``lora devices`` without a daemon."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NWK, APP = "2B7E151628AED2A6ABF7158809CF4F3C", "3C4FCF098815F7ABA6D2AE2816157E2B"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zaas_edge", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={**os.environ, "ZAAS_EDGE_CONFIG": "/nonexistent/config.toml"})


def test_add_device_writes_a_0600_file_and_lists_without_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    add = ["lora", "add-device", "--keys-file", str(keys), "--dev-addr", "26011bda", "--nwk-skey", NWK,
           "--app-skey", APP, "--profile", "milesight-em300-di", "--id", "water-1"]
    out = run(*add)
    assert out.returncode == 0, out.stderr
    assert "added water-1 (DevAddr 26011BDA" in out.stdout and NWK not in out.stdout
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    again = run(*add)
    assert again.returncode == 1 and "--replace" in again.stderr and "Traceback" not in again.stderr
    listed = run("lora", "devices", "--keys-file", str(keys), "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    [dev] = data["devices"]
    assert dev["id"] == "water-1" and dev["dev_addr"] == "26011BDA" and dev["fcnt"] is None
    assert dev["nwk_skey"].startswith("sha256:") and NWK not in listed.stdout and APP not in listed.stdout


def test_bad_input_is_one_line_without_the_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    short = NWK[:-1]
    out = run("lora", "add-device", "--keys-file", str(keys), "--dev-addr", "26011BDA", "--nwk-skey", short,
              "--app-skey", APP, "--profile", "milesight-am103", "--id", "c1")
    assert out.returncode != 0 and "32 hex digits" in out.stderr and short not in out.stderr
    out = run("lora", "add-device", "--keys-file", str(keys), "--dev-addr", "26011BDA", "--nwk-skey", NWK,
              "--app-skey", APP, "--profile", "nosuch", "--id", "c1")
    assert out.returncode == 2 and "available: milesight-am103" in out.stderr
    assert not keys.exists()


def test_add_device_otaa_keeps_root_keys_hidden_and_refuses_mixed_modes(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    app_key = "5572404C696E6B4C6F52613230313823"
    out = run("lora", "add-device", "--keys-file", str(keys), "--otaa", "--dev-eui", "24e124710b423527",
              "--app-eui", "24E124C0002A0001", "--app-key", app_key, "--profile", "milesight-am103",
              "--id", "climate-otaa", "--json")
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)["added"]
    assert added["activation"] == "otaa" and added["dev_eui"] == "24E124710B423527" and added["dev_addr"] is None
    assert added["app_key"].startswith("sha256:") and app_key not in out.stdout
    assert stat.S_IMODE(os.stat(keys).st_mode) == 0o600
    assert f'app_key = "{app_key}"' in keys.read_text() and "dev_addr" not in keys.read_text()
    listed = run("lora", "devices", "--keys-file", str(keys))
    assert "climate-otaa  otaa" in listed.stdout and "(not joined)" in listed.stdout
    mixed = run("lora", "add-device", "--keys-file", str(keys), "--otaa", "--dev-eui", "24E124710B423528",
                "--app-eui", "24E124C0002A0001", "--app-key", app_key, "--dev-addr", "26011BDA",
                "--profile", "milesight-am103", "--id", "c2")
    assert mixed.returncode == 2 and "by joining" in mixed.stderr
    again = run("lora", "add-device", "--keys-file", str(keys), "--otaa", "--dev-eui", "24E124710B423527",
                "--app-eui", "24E124C0002A0001", "--app-key", app_key, "--profile", "milesight-am103", "--id", "c3")
    assert again.returncode == 1 and "climate-otaa (24E124710B423527) already in" in again.stderr
