"""OTAA joins in the lora driver on real UDP sockets, with the simulated forwarder playing gateways and device."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest
from zaas_edge.drivers.lora import join
from zaas_edge.drivers.lora.keys import load_keys, save_keys
from zaas_edge.drivers.lora.otaa import JOIN_STATE_KEY

from hil.lora_forwarder import DEMO_DEVICES, SimForwarder, SimGateway, SimOtaaDevice, am103_payload
from tests.lora_helpers import running, until
from zaas_edge.context import MemoryState
from zaas_edge.model import Severity

GW1 = bytes.fromhex("AA555A0000000001")
GW2 = bytes.fromhex("AA555A0000000002")


def new_device() -> SimOtaaDevice:
    return SimOtaaDevice("climate-otaa", bytes.fromhex("24E124710B423527"), bytes.fromhex("24E124C0002A0001"),
                         bytes.fromhex("5572404C696E6B4C6F52613230313823"))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "lora-keys.toml"
    save_keys(path, [*DEMO_DEVICES, new_device().keys])
    return path


def gateways() -> list[SimGateway]:
    return [SimGateway(GW1, rssi=-104.0, snr=-3.0), SimGateway(GW2, rssi=-71.0, snr=8.5)]


async def test_join_is_answered_through_the_best_gateway_at_rx1_and_the_session_works(keys_file: Path) -> None:
    state = MemoryState()
    dev = new_device()
    async with running(keys_file, state) as rig, SimForwarder("127.0.0.1", rig.port, gateways()) as fwd:
        for gw in fwd.gateways:
            assert await fwd.pull_data(gw)
        down = await fwd.join(dev)
        # PULL_RESP to the gateway that heard the request best, for RX1 of that gateway's copy.
        assert down.gateway == GW2
        assert down.txpk.tmst == fwd.rx_tmst[GW2] + 5_000_000
        assert (down.txpk.freq_mhz, down.txpk.datr, down.txpk.ipol, down.txpk.codr) == (868.5, "SF7BW125", True, "4/5")
        assert dev.accept is not None and dev.accept.net_id == 0 and dev.accept.app_nonce == 1
        assert dev.accept.rx_delay == 1 and dev.accept.rx2_dr == 0 and dev.accept.rx1_dr_offset == 0
        assert join.decode_cflist(dev.accept.cflist) == (867.1, 867.3, 867.5, 867.7, 867.9)
        assert dev.accept.dev_addr >> 25 == 0  # NwkID of NetID 000000
        await until(lambda: rig.counters.get("tx_ack") == 1)  # the forwarder confirmed the transmission
        assert rig.counters["joins_accepted"] == 1 and rig.counters["climate-otaa.joins"] == 1
        assert rig.counters["duplicates"] == 1  # the weaker gateway's copy
        [event] = rig.events("lora.join")
        assert event.data["dev_addr"] == f"{dev.accept.dev_addr:08X}" and event.data["copies"] == 2

        # The session is in the keys file (0600), with keys the device derived on its own.
        assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o600
        stored = {d.id: d for d in load_keys(keys_file).devices}["climate-otaa"]
        assert dev.session is not None
        assert (stored.dev_addr, stored.nwk_skey, stored.app_skey) == \
            (dev.accept.dev_addr, dev.session.keys.nwk_skey, dev.session.keys.app_skey)
        assert stored.app_key == dev.app_key and stored.dev_eui == dev.dev_eui
        assert state.docs[("lora", JOIN_STATE_KEY)]["24E124710B423527"] == {
            "id": "climate-otaa", "nonces": [dev.last_nonce], "join_nonce": 1}

        # Data frames of the joined device now become readings.
        await fwd.uplink(dev.session.uplink(am103_payload(21.5, 44.0, 700)))
        await fwd.uplink(dev.session.uplink(am103_payload(21.75, 44.5, 705)))
        await until(lambda: len(rig.values("climate-otaa/co2")) == 2)
        assert rig.values("climate-otaa/temperature") == [21.5, 21.8]
        assert rig.values("climate-otaa/fcnt") == [0.0, 1.0]
        assert "climate-otaa/co2" in {p.key for p in rig.driver.points()}

        # A rejoin opens a new session: new JoinNonce, new keys; the old session's frames are refused.
        old = dev.session
        down = await fwd.join(dev)
        assert dev.accept.app_nonce == 2 and dev.session.keys.nwk_skey != old.keys.nwk_skey
        await fwd.uplink(dev.session.uplink(am103_payload(22.0, 45.0, 710)))
        await until(lambda: len(rig.values("climate-otaa/co2")) == 3)
        await fwd.uplink(old.uplink(am103_payload(0.0, 0.0, 0)), gateways=fwd.gateways[:1])
        await until(lambda: rig.counters.get("unknown_devaddr") == 1)  # the old DevAddr is gone
        assert rig.values("climate-otaa/co2") == [700.0, 705.0, 710.0]


async def test_bad_join_requests_are_counted_and_reported(keys_file: Path) -> None:
    offset = [0.0]
    state = MemoryState()
    dev = new_device()
    async with running(keys_file, state, clock=lambda: time.monotonic() + offset[0]) as rig, \
            SimForwarder("127.0.0.1", rig.port) as fwd:
        assert await fwd.pull_data()
        # Unknown DevEUI
        stranger = SimOtaaDevice("x", bytes.fromhex("0011223344556677"), dev.app_eui, dev.app_key)
        await fwd.uplink(stranger.join_request())
        # Bad MIC (wrong AppKey, or forged)
        await fwd.uplink(dev.join_request(bad_mic=True))
        await until(lambda: rig.counters.get("join_bad_mic") == 1)
        assert rig.counters["unknown_dev_eui"] == 1 and rig.counters["climate-otaa.join_bad_mic"] == 1
        reasons = {e.data["reason"]: e for e in rig.events("lora.security")}
        assert reasons["unknown_dev_eui"].severity is Severity.INFO
        assert reasons["join_bad_mic"].severity is Severity.WARNING
        assert reasons["join_bad_mic"].data["device"] == "climate-otaa"
        # A good join, then the same request replayed once its copies are over.
        request = dev.join_request()
        await fwd.join(dev, request=request)
        offset[0] += 5.0
        await fwd.uplink(request)
        await until(lambda: rig.counters.get("join_replayed") == 1)
        [replay] = [e for e in rig.events("lora.security") if e.data["reason"] == "dev_nonce_replay"]
        assert replay.data["dev_nonce"] == dev.last_nonce and replay.severity is Severity.WARNING
        assert rig.counters["joins_accepted"] == 1 and rig.counters["climate-otaa.join_replayed"] == 1
        assert fwd.downlinks.empty()
    # After a restart the used DevNonce is still refused (it lives in the store).
    async with running(keys_file, state) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        assert await fwd.pull_data()
        await fwd.uplink(request)
        await until(lambda: rig.counters.get("join_replayed") == 1)
        assert "joins_accepted" not in rig.counters


async def test_a_forwarder_without_a_downlink_path_gets_no_accept(keys_file: Path) -> None:
    dev = new_device()
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        await fwd.uplink(dev.join_request())  # no PULL_DATA sent: the server has nowhere to send the accept
        await until(lambda: rig.counters.get("join_no_downlink") == 1)
        assert "joins_accepted" not in rig.counters
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(fwd.downlinks.get(), 0.3)
