"""Error paths name the key of a table of tables (``points.<quantity>.<key>``)."""

from __future__ import annotations

from pathlib import Path

from zaas_edge.config import check_config


def test_error_path_keeps_the_key_of_a_mapping_of_models(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[gateway]
state_dir = "{tmp_path}"
runtime_dir = "{tmp_path}"

[[drivers]]
id = "meters"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = 5020
devices = [{{ id = "m1", unit = 1, profile = "eastron-sdm630", points = {{ power = {{ interval_s = "often" }} }} }}]
""")
    issues = [str(i) for i in check_config(cfg, environ={})]
    assert any("drivers[0].devices[0].points.power.interval_s" in i for i in issues), issues
