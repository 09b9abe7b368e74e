"""The ABP keys file: mode 0600, atomic writes, keys never shown."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from zaas_edge.drivers.lora.keys import DeviceKeys, fingerprint, load_keys, save_keys

from hil.lora_forwarder import DEMO_DEVICES
from zaas_edge.errors import ConfigError


def test_save_writes_mode_0600_atomically_and_load_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "keys.toml"
    save_keys(path, DEMO_DEVICES)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keys.toml"]  # no temporary file left behind
    loaded = load_keys(path)
    assert loaded.devices == tuple(DEMO_DEVICES)
    assert loaded.by_addr()[0x26011BDA].id == "water-1"


def test_keys_never_appear_in_repr_or_public_view() -> None:
    dev = DEMO_DEVICES[0]
    shown = repr(dev) + str(dev.public())
    assert dev.nwk_skey.hex() not in shown.lower() and dev.app_skey.hex() not in shown.lower()
    assert f"sha256:{fingerprint(dev.nwk_skey)}" in shown
    assert dev.public()["dev_addr"] == "26011BDA"


def test_looser_mode_missing_file_and_bad_content_are_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    with pytest.raises(ConfigError, match="lora add-device"):
        load_keys(path)
    assert load_keys(path, missing_ok=True).devices == ()
    save_keys(path, DEMO_DEVICES[:1])
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keys(path)
    secret = "00112233445566778899AABBCCDDEEF"  # 31 digits: one short
    path.write_text(f'[[device]]\nid = "x"\ndev_addr = "26011BDA"\nnwk_skey = "{secret}"\n'
                    f'app_skey = "{secret}"\nprofile = "milesight-am103"\n')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as exc:
        load_keys(path)
    assert "device[0].nwk_skey" in str(exc.value) and secret not in str(exc.value)
    dup = DeviceKeys("y", DEMO_DEVICES[0].dev_addr, bytes(16), bytes(16), "milesight-am103")
    save_keys(path, [DEMO_DEVICES[0], dup])
    with pytest.raises(ConfigError, match="duplicate DevAddr 26011BDA"):
        load_keys(path)


def _lora_config(tmp_path: Path, keys: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path}"\n\n'
                   f'[[drivers]]\nid = "lora"\ntype = "lora"\nkeys_file = "{keys}"\n')
    return cfg


def test_config_check_treats_the_keys_file_as_a_secret_file(tmp_path: Path) -> None:
    from zaas_edge.config import check_config, load_config
    from zaas_edge.secrets import secret_paths

    keys = tmp_path / "lora-keys.toml"
    cfg = _lora_config(tmp_path, keys)
    assert check_config(cfg, environ={}) == []  # not created yet: the first `lora add-device` makes it
    save_keys(keys, DEMO_DEVICES)
    assert check_config(cfg, environ={}) == []
    assert secret_paths(load_config(cfg, environ={})) == [keys]
    os.chmod(keys, 0o644)
    [issue] = check_config(cfg, environ={})
    assert issue.path == "drivers[0].keys_file" and "chmod 600" in issue.message
    assert "2B7E1516" not in issue.message.upper()


def test_a_relative_keys_file_is_refused_like_any_secret_file(tmp_path: Path) -> None:
    from zaas_edge.config import check_config

    [issue] = check_config(_lora_config(tmp_path, Path("lora-keys.toml")), environ={})
    assert issue.path == "drivers[0].keys_file" and "absolute" in issue.message


def test_the_diagnostics_bundle_scrubs_every_lora_key_and_any_token(tmp_path: Path, monkeypatch) -> None:
    import tarfile

    from click.testing import CliRunner

    import zaas_edge.diagnostics as diag
    from zaas_edge.cli import cli
    from zaas_edge.cli.group import register

    keys = tmp_path / "lora-keys.toml"
    save_keys(keys, DEMO_DEVICES)
    cfg = _lora_config(tmp_path, keys)
    water, leak = DEMO_DEVICES[0], DEMO_DEVICES[1]
    assert water.nwk_skey and water.app_skey and leak.nwk_skey
    journal = (f"debug: session {water.nwk_skey.hex()} app {water.app_skey.hex().upper()} leak {leak.nwk_skey.hex()}\n"
               "sudo -E zaas-edge enroll --url https://c --token 6f1c9a2e77d04b1c\n"
               "env ZAAS_ENROLL_TOKEN=a1b2c3d4e5f6 {\"token\": \"q9w8e7r6t5\"} Authorization: Bearer eyJhbGciOi.x.y\n")
    monkeypatch.setattr(diag, "_run", lambda cmd, timeout=10.0: journal)
    monkeypatch.setenv("ZAAS_ENROLL_TOKEN", "env-token-0042")
    monkeypatch.setattr(diag, "collect", lambda loaded, status: {"journal.txt": journal + "env-token-0042\n"})
    register()
    out = tmp_path / "b.tar.gz"
    result = CliRunner().invoke(cli, ["-c", str(cfg), "diagnostics", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with tarfile.open(out) as tar:
        text = tar.extractfile("zaas-edge-diagnostics/journal.txt").read().decode()
    for secret in (water.nwk_skey.hex(), water.app_skey.hex(), leak.nwk_skey.hex(), "6f1c9a2e77d04b1c",
                   "a1b2c3d4e5f6", "q9w8e7r6t5", "eyJhbGciOi", "env-token-0042"):
        assert secret.lower() not in text.lower(), (secret, text)
    assert text.startswith("debug: session *** app *** leak ***\n")
    assert "--token ***" in text and "Bearer ***" in text


def test_the_keys_file_is_written_through_the_one_atomic_write_helper(tmp_path: Path, monkeypatch) -> None:
    import zaas_edge.drivers.lora.keys as keys_module

    from zaas_edge import files

    calls: list[tuple[Path, int]] = []

    def spy(path: Path, data: bytes, mode: int = 0o644) -> None:
        calls.append((Path(path), mode))
        files.atomic_write(path, data, mode)

    monkeypatch.setattr(keys_module, "atomic_write", spy)
    assert keys_module.atomic_write is not files.atomic_write and files.atomic_write.__module__ == "zaas_edge.files"
    save_keys(tmp_path / "k.toml", DEMO_DEVICES)
    assert calls == [(tmp_path / "k.toml", 0o600)]
    assert [d.id for d in load_keys(tmp_path / "k.toml").devices] == [d.id for d in DEMO_DEVICES]
