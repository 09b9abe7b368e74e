"""The diagnostics bundle: what support needs, and never a secret."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from click.testing import CliRunner

from zaas_edge.cli import cli
from zaas_edge.cli.group import register

SECRET = "s3cr3t-broker-password"


def _config(tmp_path: Path) -> Path:
    secret = tmp_path / "mqtt.pass"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[gateway]
id = "gw-diag"
site = "site-d"
state_dir = "{tmp_path / 'state'}"
runtime_dir = "{tmp_path / 'run'}"

[mqtt]
username = "edge"
password_file = "{secret}"

[[drivers]]
id = "system"
type = "system"
""")
    return cfg


def test_bundle_holds_config_status_versions_and_no_secret(tmp_path: Path) -> None:
    register()
    cfg = _config(tmp_path)
    out = tmp_path / "bundle.tar.gz"
    result = CliRunner().invoke(cli, ["-c", str(cfg), "diagnostics", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and str(out) in result.output
    assert out.stat().st_mode & 0o077 == 0, "the bundle may hold site details: owner only"
    with tarfile.open(out) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert {"manifest.json", "config.json", "status.json", "drivers.json", "system.json", "journal.txt",
            "usb.txt", "kernel_serial.txt", "serial.json", "clock.txt", "unit.txt", "secret_files.json"} <= set(files)
    modes = json.loads(files["secret_files.json"])  # what support asks first when a secret is refused
    assert modes[str(tmp_path / "mqtt.pass")]["mode"] == "0600" and modes[str(tmp_path / "mqtt.pass")]["ok"]
    assert "by_id" in json.loads(files["serial.json"])
    manifest = json.loads(files["manifest.json"])
    assert manifest["gateway"] == "gw-diag" and manifest["versions"]["zaas-edge"]
    config = json.loads(files["config.json"])
    assert config["mqtt"]["password_file"] == str(tmp_path / "mqtt.pass")
    assert config["gateway"]["id"] == "gw-diag"
    status = json.loads(files["status.json"])
    assert status["running"] is False  # no daemon: the store is described instead
    assert "system" in json.loads(files["drivers.json"])
    for name, text in files.items():
        assert SECRET not in text, f"{name} leaks the secret"


def test_secret_values_are_scrubbed_from_every_file(tmp_path: Path, monkeypatch) -> None:
    """Even a file that happened to contain the secret (a journal line, say) is scrubbed."""
    import zaas_edge.diagnostics as diag

    register()
    cfg = _config(tmp_path)
    monkeypatch.setattr(diag, "_run", lambda cmd, timeout=10.0: f"login failed for edge with {SECRET}\n")
    out = tmp_path / "b.tar.gz"
    assert CliRunner().invoke(cli, ["-c", str(cfg), "diagnostics", "-o", str(out)]).exit_code == 0
    with tarfile.open(out) as tar:
        journal = tar.extractfile("zaas-edge-diagnostics/journal.txt").read().decode()
    assert journal == "login failed for edge with ***\n"
