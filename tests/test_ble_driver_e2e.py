"""End to end: the real daemon's ble driver on recorded adverts (ZAAS_EDGE_BLE_REPLAY), into status and the store."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config

DATA = Path(__file__).parent / "data" / "ble_adverts.jsonl"


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-ble-", dir="/tmp") as d:
        yield Path(d)


def test_recorded_adverts_become_readings_in_the_daemon(base: Path) -> None:
    bindkey = base / "lab.bindkey"
    bindkey.write_text("231d39c1d7cc1ab1aee224cd096db932\n")
    bindkey.chmod(0o600)
    drivers = ('[[drivers]]\nid = "ble"\ntype = "ble"\nmin_interval_s = 0\n'
               '[[drivers.devices]]\nmac = "CB:B8:33:4C:88:4F"\nid = "fridge"\n'
               '[[drivers.devices]]\nmac = "A4:C1:38:00:00:01"\nid = "office"\n'
               f'[[drivers.devices]]\nmac = "54:48:E6:8F:80:A5"\nid = "lab"\nbindkey_file = "{bindkey}"\n')
    cfg = write_config(base / "config.toml", base, drivers=drivers)
    d = DaemonProcess(cfg, env={"ZAAS_EDGE_BLE_REPLAY": str(DATA)})
    try:
        d.wait_notify("READY=1")
        st = d.wait_status(lambda s: s["drivers"]["ble"]["counters"].get("decode_errors") == 1)
        counters = st["drivers"]["ble"]["counters"]
        assert counters["adverts"] == 9
        assert counters["duplicates"] == 2  # the repeated Ruuvi measurement and the replayed encrypted advert
        assert counters["adverts_unknown"] == 1 and counters["fridge.decode_errors"] == 1
        assert st["drivers"]["ble"]["state"] == "running"
        points = d.status("--points")["points"]
        assert points["fridge/temperature"]["value"] == 24.3
        assert points["fridge/humidity"]["value"] == 53.49
        assert points["fridge/rssi"]["value"] == -60.0  # measurement 206, the last one heard
        assert points["office/temperature"]["value"] == 25.06
        assert points["office/humidity"]["value"] == 50.55
        assert points["lab/temperature"]["value"] == 25.14  # decrypted with the bindkey from its 0600 file
        assert points["lab/battery"]["value"] == 99.0
        assert not any(p.startswith("ble-") for p in points)
        assert d.stop() == 0
        out = d.output()
        assert "replaying recorded BLE adverts from" in out and "ZAAS_EDGE_BLE_REPLAY" in out
    finally:
        d.close()
    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        stored = db.execute(
            "select p.key, r.value from reading r join point p on p.id = r.point_id "
            "where p.key in ('fridge/temperature', 'lab/temperature', 'office/humidity') order by r.seq").fetchall()
    finally:
        db.close()
    assert stored == [("fridge/temperature", 24.3), ("fridge/temperature", 24.3), ("office/humidity", 50.55),
                      ("lab/temperature", 25.06), ("lab/temperature", 25.14)]
