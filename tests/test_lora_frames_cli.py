"""``zaas-edge lora frames``: the frames the running daemon's driver heard, or the port itself with no daemon.

First the pieces: the frame log (a ring read by sequence number) and the driver's verdicts, through
``LoraDriver.control("frames")``; then the command against the real daemon and with no daemon.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.lora.framelog import FrameLog, Verdict
from zaas_edge.drivers.lora.keys import DeviceKeys, save_keys

from hil.daemon_harness import CLI, ROOT, DaemonProcess, write_config
from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimForwarder, SimGateway, em300_di_payload
from tests.lora_helpers import running, until, write_keys
from zaas_edge.control import ControlClient
from zaas_edge.errors import PermanentError

GW1, GW2 = bytes.fromhex("AA555A0000000001"), bytes.fromhex("AA555A0000000002")
STRANGER = DeviceKeys("stranger", 0x26FFFFFF, bytes(16), bytes(16), "milesight-em300-di")
WATER = DEMO_DEVICES[0]


@given(st.integers(1, 20), st.integers(0, 60), st.integers(0, 70))
def test_after_returns_exactly_the_newer_records_and_counts_the_lost(size: int, n: int, seen: int) -> None:
    log = FrameLog(size)
    for i in range(n):
        log.record(float(i), Verdict.ACCEPTED, fcnt=i)
    got = log.after(seen)
    assert [r.seq for r in got] == list(range(max(seen, n - size) + 1, n + 1))
    assert log.missed(seen) == max(0, n - size - seen)  # records the ring dropped before the reader got them
    assert log.answer(seen)["last_seq"] == n


def test_limit_keeps_the_newest() -> None:
    log = FrameLog()
    for i in range(5):
        log.record(0.0, Verdict.DUPLICATE, fcnt=i)
    assert [r.fcnt for r in log.after(0, limit=2)] == [3, 4]
    assert log.after(0, limit=2)[0].as_dict()["verdict"] == "duplicate"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_keys(tmp_path / "lora-keys.toml")


async def test_each_frame_gets_its_verdict_and_the_control_command_reads_them(keys_file: Path) -> None:
    gws = [SimGateway(GW1, rssi=-97.0, snr=1.5), SimGateway(GW2, rssi=-68.0, snr=9.25)]
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port, gws) as fwd:
        water = SimDevice(WATER, fcnt=41)
        first = water.uplink(em300_di_payload(1234))
        assert await fwd.uplink(first)  # both gateways: one accepted, one duplicate
        await until(lambda: rig.values("water-1/fcnt"))
        assert await fwd.uplink(first, gateways=gws[:1])  # the same frame later: duplicate of the last
        assert await fwd.uplink(water.uplink(em300_di_payload(1, 0), bad_mic=True), gateways=gws[:1])
        assert await fwd.uplink(water.uplink(em300_di_payload(2), fcnt=10), gateways=gws[:1])  # older counter
        assert await fwd.uplink(SimDevice(STRANGER).uplink(b"\x01"), gateways=gws[:1])
        await fwd.raw(fwd.push_data(gws[0], [b"\x40\x01"]))
        await until(lambda: rig.driver.frames.last_seq >= 7)
        answer = await rig.driver.control("frames", {"after": 0})
        frames = answer["frames"]
        assert [f["verdict"] for f in frames] == ["duplicate", "accepted", "duplicate", "bad MIC", "replay",
                                                  "unknown device", "invalid"]
        accepted = frames[1]
        assert accepted["device"] == "water-1" and accepted["fcnt"] == 41 and accepted["copies"] == 2
        assert accepted["rssi"] == -68.0 and accepted["snr"] == 9.25 and accepted["gateway"] == GW2.hex().upper()
        assert frames[0]["gateway"] == GW1.hex().upper()
        assert frames[0]["detail"] == "another gateway's copy (AA555A0000000002 heard it best)"
        assert frames[4]["device"] == "water-1" and frames[4]["fcnt"] == 10
        assert frames[5]["dev_addr"] == "26FFFFFF" and frames[5]["device"] is None
        later = await rig.driver.control("frames", {"after": answer["last_seq"] - 1})
        assert [f["verdict"] for f in later["frames"]] == ["invalid"] and later["missed"] == 0
        with pytest.raises(PermanentError, match="no command 'nosuch'"):
            await rig.driver.control("nosuch", {})
        with pytest.raises(PermanentError, match="after"):
            await rig.driver.control("frames", {"after": "x"})


# ---------------------------------------------------------------------------------------------- the command


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

        control = ControlClient(base / "run" / "control.sock")
        with pytest.raises(PermanentError, match="no running driver 'nosuch'"):
            control.call("driver.control", driver="nosuch", command="frames", args={})
        with pytest.raises(PermanentError, match="'after', a sequence number"):
            control.call("driver.control", driver="lora", command="frames", args={"after": -1})
        with pytest.raises(PermanentError, match="an 'args' object"):
            control.call("driver.control", driver="lora", command="frames", args=[1])

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
