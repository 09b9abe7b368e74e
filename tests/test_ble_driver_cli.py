"""``zaas-edge ble scan`` with recorded adverts instead of the radio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
