"""``zaas-edge mqtt test`` against a real mosquitto, with and without a login."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import tests.mosquitto as broker_helpers
from hil.daemon_harness import CLI, ROOT, write_config
from tests.mosquitto import Collector, Mosquitto, free_port

mosquitto = broker_helpers.mosquitto  # the fixture


def run(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "-c", str(cfg), "mqtt", "test", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


async def test_mqtt_test_reports_the_connection_and_gateway_status(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = write_config(tmp_path / "c.toml", tmp_path, extra=f"[mqtt]\nport = {mosquitto.port}\n")
    p = run(cfg, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["connected"] is True and out["gateway_status"] is None
    assert out["broker"] == f"mqtt://127.0.0.1:{mosquitto.port}" and out["base_topic"] == "zaas/v1/test-site/gw-test"
    async with Collector(mosquitto) as c:
        await c.publish("zaas/v1/test-site/gw-test/status", "online", retain=True)
    p = run(cfg)
    assert p.returncode == 0 and "gateway status: online" in p.stdout and "(anonymous)" in p.stdout


def test_mqtt_test_fails_in_one_line(tmp_path: Path) -> None:
    users = {"gateway": "right"}
    with Mosquitto(tmp_path / "broker", users=users) as broker:
        pw = tmp_path / "pw"
        pw.write_text("wrong\n")
        pw.chmod(0o600)
        cfg = write_config(tmp_path / "c.toml", tmp_path, extra=(
            f'[mqtt]\nport = {broker.port}\nusername = "gateway"\npassword_file = "{pw}"\n'))
        p = run(cfg)
        assert p.returncode == 1 and "refused the login" in p.stderr and "Traceback" not in p.stderr
        assert "wrong" not in p.stderr
        pw.write_text("right\n")
        p = run(cfg)
        assert p.returncode == 0 and "as gateway" in p.stdout
    cfg = write_config(tmp_path / "c2.toml", tmp_path, extra=f"[mqtt]\nport = {free_port()}\n")
    p = run(cfg)
    assert p.returncode == 1 and p.stderr.startswith("zaas-edge: error: broker mqtt://127.0.0.1:")
    assert len(p.stderr.strip().splitlines()) == 1
