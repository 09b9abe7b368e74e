"""The LoRa driver's frame log (what ``zaas-edge lora frames`` shows): one verdict per frame heard."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.lora.framelog import FrameLog, Verdict
from zaas_edge.drivers.lora.keys import DeviceKeys

from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimForwarder, SimGateway, em300_di_payload
from tests.lora_helpers import running, until, write_keys
from zaas_edge.errors import PermanentError

WATER = DEMO_DEVICES[0]
GW1 = bytes.fromhex("AA555A0000000001")
GW2 = bytes.fromhex("AA555A0000000002")
STRANGER = DeviceKeys("stranger", 0x26FFFFFF, bytes(16), bytes(16), "milesight-em300-di")


@given(st.integers(1, 20), st.integers(0, 60), st.integers(0, 70))
def test_after_returns_exactly_the_newer_records_and_counts_the_lost(size: int, n: int, seen: int) -> None:
    log = FrameLog(size)
    for i in range(n):
        log.record(float(i), Verdict.ACCEPTED, fcnt=i)
    got = log.after(seen)
    assert [r.seq for r in got] == list(range(max(seen, n - size) + 1, n + 1))
    assert log.missed(seen) == max(0, min(n, n - size) - seen) if seen < n else log.missed(seen) == 0
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
