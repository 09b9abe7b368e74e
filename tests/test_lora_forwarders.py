"""Spoofed and noisy packet forwarders: the allow-list, the cap on the table, the downlink path, the log.

GWMP has no authentication, so these play an attacker on the same loopback
network: datagrams claiming made-up gateway EUIs, and PULL_DATA claiming a
real gateway's EUI from another host (127.0.0.2 plays that host).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from zaas_edge.drivers.lora.keys import save_keys

from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimForwarder, SimGateway, SimOtaaDevice, em300_di_payload
from tests.lora_helpers import running, until

WATER = DEMO_DEVICES[0]
GW1 = bytes.fromhex("AA555A0000000001")
GW2 = bytes.fromhex("AA555A0000000002")
ATTACKER_HOST = "127.0.0.2"  # another host, as far as the server can tell


def otaa_device() -> SimOtaaDevice:
    return SimOtaaDevice("climate-otaa", bytes.fromhex("24E124710B423527"), bytes.fromhex("24E124C0002A0001"),
                         bytes.fromhex("5572404C696E6B4C6F52613230313823"))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "lora-keys.toml"
    save_keys(path, [*DEMO_DEVICES, otaa_device().keys])
    return path


async def test_with_an_allow_list_other_euis_are_dropped_unanswered_and_create_nothing(keys_file: Path) -> None:
    async with running(keys_file, forwarders=["aa555a0000000001"]) as rig, \
            SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1), SimGateway(GW2)]) as fwd:
        stranger = fwd.gateways[1]
        await fwd.raw(fwd.push_data(stranger, stat={"rxnb": 1}), stranger)
        await fwd.raw(fwd.push_data(stranger, [SimDevice(WATER, fcnt=5).uplink(em300_di_payload(1))]), stranger)
        await until(lambda: rig.counters.get("forwarder_refused") == 2)
        assert await fwd.uplink(SimDevice(WATER, fcnt=6).uplink(em300_di_payload(2)), gateways=fwd.gateways[:1])
        await until(lambda: rig.values("water-1/pulse_count") == [2.0])
        assert rig.driver.server is not None and set(rig.driver.server.forwarders) == {GW1}
        assert not [r for r in rig.readings if "aa555a0000000002" in r.point]
        assert stranger._endpoint is not None and stranger._endpoint.acks.empty()  # not even a PUSH_ACK


async def test_made_up_euis_fill_the_table_only_up_to_its_cap(keys_file: Path) -> None:
    async with running(keys_file, max_forwarders=3) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        gw = fwd.gateways[0]
        for n in range(50):
            fake = SimGateway(os.urandom(8))
            await fwd.raw(fwd.push_data(fake, stat={"rxnb": n}), gw)
        await until(lambda: rig.counters.get("forwarders_full") == 47)
        assert rig.driver.server is not None and len(rig.driver.server.forwarders) == 3
        assert len({r.point.split("/")[0] for r in rig.readings}) == 3  # three gateway devices, not fifty


async def test_a_silent_forwarder_makes_room_for_a_new_one(keys_file: Path) -> None:
    offset = [0.0]
    async with running(keys_file, clock=lambda: time.monotonic() + offset[0], max_forwarders=1,
                       forwarder_timeout_s=60) as rig, \
            SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1), SimGateway(GW2)]) as fwd:
        assert await fwd.stat(fwd.gateways[0])
        await fwd.raw(fwd.push_data(fwd.gateways[1], stat={"rxnb": 1}), fwd.gateways[1])
        await until(lambda: rig.counters.get("forwarders_full") == 1)
        offset[0] += 61
        assert await fwd.stat(fwd.gateways[1])
        assert rig.driver.server is not None and set(rig.driver.server.forwarders) == {GW2}
        assert rig.counters["forwarders_forgotten"] == 1


async def test_a_pull_data_claiming_a_known_eui_from_another_host_does_not_take_its_downlinks(
        keys_file: Path) -> None:
    dev = otaa_device()
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port, [SimGateway(GW2)]) as real, \
            SimForwarder("127.0.0.1", rig.port, [SimGateway(GW2)], local_host=ATTACKER_HOST) as attacker:
        assert await real.pull_data()
        server = rig.driver.server
        assert server is not None
        path = server.forwarders[GW2].pull_addr
        assert await attacker.pull_data()  # answered, as any keepalive is...
        assert rig.counters["pull_path_unconfirmed"] == 1
        assert server.forwarders[GW2].pull_addr == path  # ...but the downlink path stays
        down = await real.join(dev)
        assert down.gateway == GW2 and dev.accept is not None
        assert attacker.downlinks.empty()  # the join accept went to the real forwarder only
        # A verified uplink from the attacker's host is what would move it; a forged one does not.
        assert await attacker.uplink(SimDevice(WATER, fcnt=7).uplink(em300_di_payload(1), bad_mic=True))
        await until(lambda: rig.counters.get("bad_mic") == 1)
        assert server.forwarders[GW2].pull_addr == path and "pull_path_moved" not in rig.counters


async def test_a_restarted_forwarder_gets_its_downlinks_back_with_its_first_verified_uplink(
        keys_file: Path) -> None:
    async with running(keys_file) as rig:
        async with SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1)]) as before:
            assert await before.pull_data()
        server = rig.driver.server
        assert server is not None
        old = server.forwarders[GW1].pull_addr
        async with SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1)]) as after:  # new sockets, new ports
            assert await after.pull_data()
            assert server.forwarders[GW1].pull_addr == old
            assert await after.uplink(SimDevice(WATER, fcnt=20).uplink(em300_di_payload(3)))
            await until(lambda: rig.counters.get("pull_path_moved") == 1)
            new = server.forwarders[GW1].pull_addr
            assert new != old and new is not None and new[0] == "127.0.0.1"
            assert server.forwarders[GW1].pull_candidate is None


async def test_a_downlink_path_silent_past_the_forwarder_timeout_may_move(keys_file: Path) -> None:
    offset = [0.0]
    async with running(keys_file, clock=lambda: time.monotonic() + offset[0], forwarder_timeout_s=60) as rig, \
            SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1)]) as real, \
            SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1)], local_host=ATTACKER_HOST) as other:
        assert await real.pull_data()
        offset[0] += 61
        assert await other.pull_data()
        server = rig.driver.server
        assert server is not None
        addr = server.forwarders[GW1].pull_addr
        assert addr is not None and addr[0] == ATTACKER_HOST
        assert rig.counters["pull_path_moved"] == 1


async def test_a_forwarder_switching_source_ports_is_logged_once_a_minute(keys_file: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1)]) as a, \
                SimForwarder("127.0.0.1", rig.port, [SimGateway(GW1)]) as b:
            for _ in range(10):
                assert await a.stat()
                assert await b.stat()
            await until(lambda: rig.counters.get("forwarder_moved") == 19)
    moved = [r.getMessage() for r in caplog.records if "now sends from" in r.getMessage()]
    assert len(moved) == 1, moved
    assert rig.counters["push_data"] + rig.counters.get("datagram_repeated", 0) == 20  # each one acked and counted


def test_forwarder_euis_are_checked_and_normalised(tmp_path: Path) -> None:
    from pydantic import ValidationError
    from zaas_edge.drivers.lora import LoraOptions

    opts = LoraOptions(id="lora", type="lora", keys_file=tmp_path / "k",
                       forwarders=["aa555a0000000001", "AA555A0000000001", " AA555A0000000002 "])
    assert opts.forwarders == ["AA555A0000000001", "AA555A0000000002"]
    with pytest.raises(ValidationError, match="not 16 hex digits"):
        LoraOptions(id="lora", type="lora", keys_file=tmp_path / "k", forwarders=["AA555A00"])
