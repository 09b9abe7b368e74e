"""End to end: the real daemon runs the lora driver; the simulated forwarder's uplinks reach status and the store."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from zaas_edge.drivers.lora.keys import save_keys

from hil.daemon_harness import CLI, DaemonProcess, write_config
from hil.lora_forwarder import (
    DEMO_DEVICES,
    SimDevice,
    SimForwarder,
    SimGateway,
    SimOtaaDevice,
    am103_payload,
    em300_di_payload,
)


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-lora-", dir="/tmp") as d:
        yield Path(d)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WATER, CLIMATE = SimDevice(DEMO_DEVICES[0], fcnt=10), SimDevice(DEMO_DEVICES[2])


def gateways() -> list[SimGateway]:
    return [SimGateway(bytes.fromhex("AA555A0000000001"), -101.0, -2.5),
            SimGateway(bytes.fromhex("AA555A0000000002"), -72.0, 8.0)]


async def send_uplinks(port: int) -> None:
    async with SimForwarder("127.0.0.1", port, gateways()) as fwd:
        assert await fwd.pull_data(fwd.gateways[0], timeout=10)
        assert await fwd.stat(fwd.gateways[0], rxnb=3)
        assert await fwd.uplink(WATER.uplink(em300_di_payload(4320)))
        assert await fwd.uplink(WATER.uplink(em300_di_payload(4321)))
        assert await fwd.uplink(CLIMATE.uplink(am103_payload(23.5, 40.0, 950)))


async def send_attacks(port: int) -> None:
    async with SimForwarder("127.0.0.1", port, gateways()) as fwd:
        assert await fwd.uplink(WATER.sent[0])  # a replay: acked at the UDP level, refused by the driver
        assert await fwd.uplink(WATER.uplink(em300_di_payload(9), bad_mic=True))


def test_forwarder_uplinks_reach_status_points_and_the_store(base: Path) -> None:
    keys = base / "lora-keys.toml"
    save_keys(keys, DEMO_DEVICES)
    port = free_udp_port()
    drivers = (f'[[drivers]]\nid = "lora"\ntype = "lora"\nport = {port}\nkeys_file = "{keys}"\n'
               "dedup_window_s = 0.1\n")
    cfg = write_config(base / "config.toml", base, drivers=drivers)
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        d.wait_status(lambda s: s["drivers"]["lora"]["state"] == "running")
        asyncio.run(send_uplinks(port))
        d.wait_status(lambda s: s["drivers"]["lora"]["counters"].get("uplinks") == 3)
        asyncio.run(send_attacks(port))
        st = d.wait_status(lambda s: s["drivers"]["lora"]["counters"].get("bad_mic") == 1
                           and s["drivers"]["lora"]["counters"].get("uplinks") == 3)
        counters = st["drivers"]["lora"]["counters"]
        assert counters["replayed"] == 1 and counters["duplicates"] == 5  # second copies
        points = d.status("--points")["points"]
        assert points["water-1/pulse_count"]["value"] == 4321.0
        assert points["water-1/rssi"]["value"] == -72.0 and points["water-1/fcnt"]["value"] == 11.0
        assert points["climate-1/co2"]["value"] == 950.0 and points["climate-1/co2"]["unit"] == "ppm"
        assert points["lora-gw-aa555a0000000001/rx_packets"]["value"] == 3.0
        listed = json.loads(d.cli("lora", "devices", "--json").stdout)
        water = next(r for r in listed["devices"] if r["id"] == "water-1")
        assert (water["fcnt"], water["rssi"], water["snr"], water["uplinks"], water["replayed"], water["bad_mic"]) \
            == (11.0, -72.0, 8.0, 2, 1, 1)
        assert "2B7E1516" not in json.dumps(listed).upper()  # keys appear as fingerprints only
        assert d.stop() == 0
    finally:
        d.close()
    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        names = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
        assert "reading" in names
        stored = db.execute(
            "select p.key, r.value from reading r join point p on p.id = r.point_id "
            "where p.key in ('water-1/pulse_count', 'climate-1/temperature')").fetchall()
        security = db.execute("select count(*) from event where kind = 'lora.security'").fetchone()[0]
    finally:
        db.close()
    assert sorted(stored) == [("climate-1/temperature", 23.5), ("water-1/pulse_count", 4320.0),
                              ("water-1/pulse_count", 4321.0)]
    assert security == 1  # the replay (one bad MIC stays under the threshold)


def test_an_otaa_device_joins_through_the_daemon_and_its_uplinks_are_stored(base: Path) -> None:
    keys = base / "lora-keys.toml"
    dev = SimOtaaDevice("climate-otaa", bytes.fromhex("24E124710B423527"), bytes.fromhex("24E124C0002A0001"),
                        bytes.fromhex("5572404C696E6B4C6F52613230313823"))
    port = free_udp_port()
    drivers = (f'[[drivers]]\nid = "lora"\ntype = "lora"\nport = {port}\nkeys_file = "{keys}"\n'
               'dedup_window_s = 0.1\nnet_id = "000013"\n')
    cfg = write_config(base / "config.toml", base, drivers=drivers)
    add = subprocess.run([*CLI, "-c", str(cfg), "lora", "add-device", "--otaa", "--dev-eui", "24E124710B423527",
                          "--app-eui", "24E124C0002A0001", "--app-key", dev.app_key.hex(), "--profile",
                          "milesight-am103", "--id", "climate-otaa"], capture_output=True, text=True, timeout=60)
    assert add.returncode == 0 and "OTAA" in add.stdout, add.stderr
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        d.wait_status(lambda s: s["drivers"]["lora"]["state"] == "running")

        async def join_and_send() -> tuple[bytes, int, int]:
            async with SimForwarder("127.0.0.1", port, gateways()) as fwd:
                for gw in fwd.gateways:
                    assert await fwd.pull_data(gw, timeout=10)
                down = await fwd.join(dev, timeout=10)
                heard_at = fwd.rx_tmst[down.gateway]
                assert dev.session is not None
                assert await fwd.uplink(dev.session.uplink(am103_payload(19.5, 52.0, 1230)))
                assert await fwd.uplink(dev.session.uplink(am103_payload(19.7, 51.5, 1250)))
                return down.gateway, down.txpk.tmst or 0, heard_at

        gateway, tmst, rx_tmst = asyncio.run(join_and_send())
        assert gateway == bytes.fromhex("AA555A0000000002") and tmst == rx_tmst + 5_000_000
        assert dev.accept is not None and dev.accept.net_id == 0x13 and dev.accept.dev_addr >> 25 == 0x13
        st = d.wait_status(lambda s: s["drivers"]["lora"]["counters"].get("uplinks") == 2)
        assert st["drivers"]["lora"]["counters"]["joins_accepted"] == 1
        points = d.status("--points")["points"]
        assert points["climate-otaa/co2"]["value"] == 1250.0 and points["climate-otaa/fcnt"]["value"] == 1.0
        listed = json.loads(d.cli("lora", "devices", "--json").stdout)
        [row] = listed["devices"]
        assert (row["activation"], row["dev_addr"], row["joins"], row["uplinks"]) == \
            ("otaa", f"{dev.accept.dev_addr:08X}", 1, 2)
        assert dev.app_key.hex().upper() not in json.dumps(listed).upper()
        assert d.stop() == 0
    finally:
        d.close()
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert f'dev_addr = "{dev.accept.dev_addr:08X}"' in keys.read_text()
    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        stored = db.execute(
            "select r.value from reading r join point p on p.id = r.point_id "
            "where p.key = 'climate-otaa/co2' order by r.seq").fetchall()
        joins = db.execute("select count(*) from event where kind = 'lora.join'").fetchone()[0]
    finally:
        db.close()
    assert stored == [(1230.0,), (1250.0,)] and joins == 1
