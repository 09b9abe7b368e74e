"""``zaas-edge lora frames``: the frames the running daemon's driver heard, or the port itself with no daemon."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from zaas_edge.drivers.lora.keys import DeviceKeys, save_keys

from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimForwarder, SimGateway, em300_di_payload
from tests.daemon_harness import CLI, ROOT, DaemonProcess, write_config

GW1, GW2 = bytes.fromhex("AA555A0000000001"), bytes.fromhex("AA555A0000000002")
STRANGER = DeviceKeys("stranger", 0x26FFFFFF, bytes(16), bytes(16), "milesight-em300-di")


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-lfr-", dir="/tmp") as d:
        yield Path(d)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(base: Path, port: int) -> Path:
    keys = base / "lora-keys.toml"
    save_keys(keys, DEMO_DEVICES)
    drivers = (f'[[drivers]]\nid = "lora"\ntype = "lora"\nport = {port}\nkeys_file = "{keys}"\n'
               "dedup_window_s = 0.1\n")
    return write_config(base / "config.toml", base, drivers=drivers)


async def send(port: int, frames: list[tuple[bytes, list[SimGateway] | None]], *, acked: bool = True) -> None:
    """Send each frame through the gateways named (both by default); ``acked``: each must get its PUSH_ACK."""
    gws = [SimGateway(GW1, -101.0, -2.5), SimGateway(GW2, -72.0, 8.0)]
    async with SimForwarder("127.0.0.1", port, gws) as fwd:
        for frame, which in frames:
            ok = await fwd.uplink(frame, gateways=[g for g in gws if which is None or g.eui in
                                                   [w.eui for w in which]], timeout=2.0 if acked else 0.5)
            assert ok or not acked


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_frames_heard_by_the_running_daemon_with_their_verdicts(base: Path) -> None:
    port = free_udp_port()
    cfg = config(base, port)
    water = SimDevice(DEMO_DEVICES[0], fcnt=10)
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        d.wait_status(lambda s: s["drivers"]["lora"]["state"] == "running")
        first = water.uplink(em300_di_payload(4320))
        one = [SimGateway(GW1)]
        asyncio.run(send(port, [(first, None), (water.uplink(em300_di_payload(1), bad_mic=True), one),
                                (SimDevice(STRANGER).uplink(b"\x01"), one)]))
        d.wait_status(lambda s: s["drivers"]["lora"]["counters"].get("unknown_devaddr") == 1)
        out = d.cli("lora", "frames", "--last", "10", "--count", "4", "--json")
        got = lines(out.stdout)
        # In the order of the verdicts: an accepted frame's comes when its dedup window closes.
        assert sorted(f["verdict"] for f in got) == ["accepted", "bad MIC", "duplicate", "unknown device"]
        by = {f["verdict"]: f for f in got}
        accepted = by["accepted"]
        assert (accepted["gateway"], accepted["rssi"], accepted["snr"], accepted["fcnt"], accepted["device"],
                accepted["copies"]) == ("AA555A0000000002", -72.0, 8.0, 10, "water-1", 2)
        assert by["unknown device"]["dev_addr"] == "26FFFFFF" and by["duplicate"]["gateway"] == "AA555A0000000001"
        text = d.cli("lora", "frames", "--last", "10", "--count", "4").stdout
        assert "VERDICT" in text.splitlines()[0] and "accepted (2 gateways)" in text and "bad MIC" in text

        # Live: a frame heard after the command started is printed as it comes.
        live = subprocess.Popen([*CLI, "-c", str(cfg), "lora", "frames", "--last", "0", "--count", "1", "--json",
                                 "--interval", "0.2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            for _ in range(50):  # until the command has seen one (it may start after the first)
                asyncio.run(send(port, [(water.uplink(em300_di_payload(4400)), one)]))
                try:
                    stdout, stderr = live.communicate(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                raise AssertionError("lora frames never printed a live frame")
        finally:
            live.kill()
            live.wait()
        assert live.returncode == 0, stderr
        [frame] = lines(stdout)
        assert frame["verdict"] == "accepted" and frame["fcnt"] > 10 and frame["gateway"] == "AA555A0000000001"
    finally:
        d.close()


def test_with_no_daemon_it_listens_on_the_configured_port(base: Path) -> None:
    port = free_udp_port()
    cfg = config(base, port)
    water = SimDevice(DEMO_DEVICES[0])
    proc = subprocess.Popen([*CLI, "-c", str(cfg), "lora", "frames", "--count", "2", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(50):
            asyncio.run(send(port, [(water.uplink(em300_di_payload(5)), [SimGateway(GW1)])], acked=False))
            try:
                stdout, stderr = proc.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("lora frames never printed a frame")
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert f"listening on 127.0.0.1:{port} myself" in stderr
    got = lines(stdout)
    assert [f["verdict"] for f in got] == ["accepted", "accepted"] and got[0]["device"] == "water-1"
