"""The lora driver on real UDP sockets, fed by the simulated packet forwarder."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from zaas_edge.drivers.lora import LoraOptions, gwmp, lorawan
from zaas_edge.drivers.lora.driver import STATE_KEY
from zaas_edge.drivers.lora.keys import save_keys
from zaas_edge.drivers.lora.server import warn_beyond_loopback

from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimForwarder, SimGateway, am103_payload, em300_di_payload
from tests.lora_helpers import running, until, write_keys
from zaas_edge.context import MemoryState
from zaas_edge.errors import ConfigError
from zaas_edge.model import Alarm, Severity

WATER, LEAK, CLIMATE = DEMO_DEVICES
GW1 = bytes.fromhex("AA555A0000000001")
GW2 = bytes.fromhex("AA555A0000000002")


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write_keys(tmp_path / "lora-keys.toml")


def gateways() -> list[SimGateway]:
    return [SimGateway(GW1, rssi=-97.0, snr=1.5), SimGateway(GW2, rssi=-68.0, snr=9.25)]


async def test_uplink_heard_by_two_gateways_becomes_one_set_of_readings_with_the_best_rssi(keys_file: Path) -> None:
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port, gateways()) as fwd:
        water = SimDevice(WATER, fcnt=41)
        assert await fwd.uplink(water.uplink(em300_di_payload(1234, battery=88)))  # PUSH_ACK from each gateway
        await until(lambda: rig.values("water-1/fcnt"))
        assert rig.values("water-1/pulse_count") == [1234.0]
        assert rig.values("water-1/battery") == [88.0]
        assert rig.values("water-1/rssi") == [-68.0]  # the second gateway heard it better
        assert rig.values("water-1/snr") == [9.25]
        assert rig.values("water-1/fcnt") == [41.0]
        assert rig.values("water-1/gateways") == [2.0]
        assert rig.counters["uplinks"] == 1 and rig.counters["duplicates"] == 1
        assert rig.counters["water-1.uplinks"] == 1

        climate = SimDevice(CLIMATE)
        assert await fwd.uplink(climate.uplink(am103_payload(22.4, 41.5, 812)), gateways=fwd.gateways[:1])
        await until(lambda: rig.values("climate-1/co2"))
        assert rig.values("climate-1/temperature") == [22.4]
        assert rig.values("climate-1/humidity") == [41.5]
        assert rig.values("climate-1/co2") == [812.0]
        assert rig.values("climate-1/rssi") == [-97.0]
        assert {p.key for p in rig.driver.points()} >= {"water-1/pulse_count", "leak-1/leak", "climate-1/co2",
                                                         "climate-1/rssi", "water-1/fcnt"}


async def test_replayed_frame_is_refused_counted_and_reported(keys_file: Path) -> None:
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        water = SimDevice(WATER)
        for n in range(3):
            await fwd.uplink(water.uplink(em300_di_payload(100 + n)))
        await until(lambda: len(rig.values("water-1/fcnt")) == 3)
        await fwd.uplink(water.sent[0])  # an old frame, captured and sent again
        await until(lambda: rig.counters.get("replayed") == 1)
        assert rig.counters["water-1.replayed"] == 1
        [event] = rig.events("lora.security")
        assert event.severity is Severity.WARNING
        assert event.data["reason"] == "replay" and event.data["device"] == "water-1"
        assert event.data["fcnt"] == 0 and event.data["last_fcnt"] == 2
        # The last accepted frame again (a retransmission or a late copy): dropped quietly.
        await fwd.uplink(water.sent[2])
        await until(lambda: rig.counters.get("duplicates") == 1)
        assert rig.values("water-1/pulse_count") == [100.0, 101.0, 102.0]
        assert len(rig.events("lora.security")) == 1


async def test_bad_mics_are_counted_and_past_the_threshold_raise_a_security_event(keys_file: Path) -> None:
    async with running(keys_file, bad_mic_threshold=3, bad_mic_window_s=60) as rig, \
            SimForwarder("127.0.0.1", rig.port) as fwd:
        water = SimDevice(WATER)
        for _ in range(2):
            await fwd.uplink(water.uplink(em300_di_payload(5), bad_mic=True))
        await until(lambda: rig.counters.get("bad_mic") == 2)
        assert rig.events("lora.security") == []
        await fwd.uplink(water.uplink(em300_di_payload(5), bad_mic=True))
        await until(lambda: rig.events("lora.security"))
        [event] = rig.events("lora.security")
        assert event.data == {"reason": "bad_mic", "device": "water-1", "dev_addr": "26011BDA", "count": 3,
                              "window_s": 60.0}
        assert rig.counters["water-1.bad_mic"] == 3
        assert rig.values("water-1/pulse_count") == []
        # A good frame after the forgeries still gets through.
        await fwd.uplink(water.uplink(em300_di_payload(6)))
        await until(lambda: rig.values("water-1/pulse_count"))
        assert rig.values("water-1/pulse_count") == [6.0]
        assert rig.values("water-1/fcnt") == [3.0]


async def test_unknown_devaddr_and_join_requests_are_counted(keys_file: Path) -> None:
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        stranger = lorawan.build_data_frame(dev_addr=0x01020304, fcnt32=1, fport=85, payload=b"\x01\x75\x10",
                                            nwk_skey=bytes(16), app_skey=bytes(16))
        join = bytes([0x00]) + bytes(8) + bytes(range(8)) + b"\x01\x00" + bytes(4)
        await fwd.uplink(stranger)
        await fwd.uplink(join)
        await until(lambda: rig.counters.get("unknown_dev_eui") == 1)
        assert rig.counters["unknown_devaddr"] == 1 and rig.counters["join_requests"] == 1
        assert rig.readings == []
        [event] = rig.events("lora.security")
        assert event.data == {"reason": "unknown_dev_eui", "dev_eui": "0706050403020100"}


async def test_frame_counters_survive_a_restart_of_the_driver(keys_file: Path) -> None:
    state = MemoryState()
    water = SimDevice(WATER, fcnt=65534)  # the 16-bit counter on air rolls over in this session
    async with running(keys_file, state) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        for n in range(3):
            await fwd.uplink(water.uplink(em300_di_payload(n)))
        await until(lambda: len(rig.values("water-1/fcnt")) == 3)
        assert rig.values("water-1/fcnt") == [65534.0, 65535.0, 65536.0]
    assert state.docs[("lora", STATE_KEY)]["26011BDA"]["last"] == 65536
    async with running(keys_file, state) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        await fwd.uplink(water.sent[1])  # replayed after the restart
        await until(lambda: rig.counters.get("replayed") == 1)
        await fwd.uplink(water.uplink(em300_di_payload(9)))
        await until(lambda: rig.values("water-1/fcnt"))
        assert rig.values("water-1/fcnt") == [65537.0]  # 32-bit counter kept across the restart
        assert rig.values("water-1/pulse_count") == [9.0]


async def test_first_contact_with_a_device_past_a_rollover_finds_the_high_bits(keys_file: Path) -> None:
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        await fwd.uplink(SimDevice(WATER, fcnt=3 * 65536 + 17).uplink(em300_di_payload(1)))
        await until(lambda: rig.values("water-1/fcnt"))
        assert rig.values("water-1/fcnt") == [3 * 65536 + 17.0]
        assert "bad_mic" not in rig.counters


async def test_new_session_keys_start_a_new_counter(keys_file: Path, tmp_path: Path) -> None:
    state = MemoryState()
    state.docs[("lora", STATE_KEY)] = {"26011BDA": {"last": 500, "session": "00000000", "id": "water-1"}}
    async with running(keys_file, state) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        await fwd.uplink(SimDevice(WATER, fcnt=0).uplink(em300_di_payload(1)))
        await until(lambda: rig.values("water-1/fcnt"))
        assert rig.values("water-1/fcnt") == [0.0]


async def test_bad_datagrams_are_dropped_and_counted_and_good_ones_still_pass(keys_file: Path) -> None:
    async with running(keys_file, max_datagram_bytes=512) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        gw = fwd.gateways[0]
        head = bytes([2]) + b"\x00\x01" + bytes([0x00]) + gw.eui
        bad_b64 = json.dumps({"rxpk": [{"freq": 868.1, "datr": "SF7BW125", "data": "!!notbase64!!"}]})
        short_frame = json.dumps({"rxpk": [{"freq": 868.1, "datr": "SF7BW125",
                                            "data": base64.b64encode(b"\x40\x01\x02").decode()}]})
        for data in (b"\x02\x00", head + b"{not json", head + b"[1,2]", bytes([3]) + head[1:] + b"{}",
                     head + b"{" + b" " * 600 + b"}", gwmp.push_ack(b"\x00\x09"), head + bad_b64.encode()):
            await fwd.raw(data)
        await fwd.uplink(SimDevice(WATER).uplink(em300_di_payload(77)))
        await fwd.raw(head + short_frame.encode())
        await until(lambda: rig.counters.get("frames_invalid") == 1)
        await until(lambda: rig.values("water-1/pulse_count") == [77.0])
        c = rig.counters
        assert c["datagram_bad_length"] == 1
        assert c["datagram_bad_json"] == 2
        assert c["datagram_bad_version"] == 1
        assert c["datagram_oversize"] == 1
        assert c["datagram_unexpected"] == 1
        assert c["rxpk_bad_base64"] == 1 and c["rxpk_dropped"] == 1
        assert c["datagrams_dropped"] == 6


async def test_repeated_push_data_is_acked_but_used_once(keys_file: Path) -> None:
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        gw = fwd.gateways[0]
        frame = SimDevice(WATER).uplink(em300_di_payload(3))
        data = fwd.push_data(gw, [frame], token=b"\x12\x34")
        assert await fwd._send(gw, data, gwmp.Identifier.PUSH_ACK, 2.0)
        assert await fwd._send(gw, data, gwmp.Identifier.PUSH_ACK, 2.0)
        await until(lambda: rig.counters.get("datagram_repeated") == 1)
        assert rig.counters["push_data"] == 1


async def test_stat_and_pull_data_track_each_forwarder(keys_file: Path) -> None:
    async with running(keys_file) as rig, SimForwarder("127.0.0.1", rig.port, gateways()) as fwd:
        for gw in fwd.gateways:
            assert await fwd.pull_data(gw)
        assert await fwd.stat(fwd.gateways[0], rxnb=12, temp=41.5)
        await until(lambda: rig.values("lora-gw-aa555a0000000001/rx_packets"))
        assert rig.values("lora-gw-aa555a0000000001/rx_packets") == [12.0]
        assert rig.values("lora-gw-aa555a0000000001/temperature") == [41.5]
        assert rig.values("lora-gw-aa555a0000000001/online") == [1.0]
        server = rig.driver.server
        assert server is not None and set(server.forwarders) == {GW1, GW2}
        one = server.forwarders[GW1]
        assert one.addr[0] == "127.0.0.1" and one.pull_data == 1 and one.push_data == 1
        assert server.forwarders[GW2].pull_addr is not None
        assert rig.counters["pull_data"] == 2


async def test_a_device_added_to_the_keys_file_is_picked_up_while_running(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    save_keys(path, [WATER])
    async with running(path) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        save_keys(path, [WATER, CLIMATE])
        os.utime(path, ns=(1, 1))  # a distinct mtime even on coarse file systems
        await until(lambda: CLIMATE.dev_addr in rig.driver._devices, timeout=10)
        await fwd.uplink(SimDevice(CLIMATE).uplink(am103_payload(20.0, 50.0, 500)))
        await until(lambda: rig.values("climate-1/co2") == [500.0])


async def test_keys_file_readable_by_others_stops_the_driver(keys_file: Path) -> None:
    os.chmod(keys_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        async with running(keys_file):
            pass


@pytest.mark.parametrize("bad", ["", "*", "0", "0.0", "0x0", "0x00000000", "::0", "0:0:0:0:0:0:0:0", "0000::",
                                 "[::]", "::ffff:0.0.0.0", "::ffff:0:0", "any", "localhost", "00.0.0.0"])
def test_bind_refuses_every_other_spelling_of_every_interface_with_the_reason(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r'bind = "|0\.0\.0\.0|IPv4') as info:
        LoraOptions(id="lora", type="lora", keys_file=tmp_path / "k", bind=bad)
    text = str(info.value)
    assert "every interface" in text or "IPv4-mapped" in text, text


def test_bind_takes_ip_addresses_and_the_two_explicit_wildcards(tmp_path: Path) -> None:
    def bind(value: str) -> str:
        return LoraOptions(id="lora", type="lora", keys_file=tmp_path / "k", bind=value).bind

    assert LoraOptions(id="l", type="lora", keys_file=tmp_path / "k").bind == "127.0.0.1"
    assert [bind(v) for v in ("0.0.0.0", "::", " 127.0.0.1 ", "::1", "192.168.1.10", "FE80::1")] \
        == ["0.0.0.0", "::", "127.0.0.1", "::1", "192.168.1.10", "fe80::1"]
    with pytest.raises(ValidationError, match='write bind = "127.0.0.1" instead'):
        bind("::ffff:127.0.0.1")


def test_config_check_refuses_an_implicit_wildcard(tmp_path: Path) -> None:
    from zaas_edge.config import check_config

    for bad, ok in (("::0", False), ("0.0", False), ("::ffff:0.0.0.0", False), ("0x0", False), ("::", True)):
        cfg = tmp_path / "config.toml"
        cfg.write_text(f'[gateway]\nid = "gw"\nsite = "s"\nstate_dir = "{tmp_path}"\n\n[[drivers]]\nid = "lora"\n'
                       f'type = "lora"\nbind = "{bad}"\nkeys_file = "{tmp_path / "keys.toml"}"\n')
        issues = check_config(cfg, environ={})
        assert (issues == []) is ok, (bad, issues)
        if not ok:
            [issue] = issues
            assert issue.path == "drivers[0].bind" and "every interface" in issue.message, issue


def test_a_listener_beyond_loopback_is_named_once_with_its_bound_address(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.lora")
    with caplog.at_level(logging.WARNING, logger="test.lora"):
        warn_beyond_loopback(("127.0.0.1", 1700), log, "lora")
        warn_beyond_loopback(("::1", 1700), log, "lora")
        warn_beyond_loopback(("0.0.0.0", 1700), log, "lora")
        warn_beyond_loopback(("192.168.1.10", 1701), log, "lora")
        warn_beyond_loopback(("::", 1702), log, "lora")
    shown = [r.getMessage() for r in caplog.records]
    assert len(shown) == 3
    assert "0.0.0.0:1700 (every interface)" in shown[0]
    assert "192.168.1.10:1701 (a network interface)" in shown[1]
    assert "[::]:1702 (every interface)" in shown[2]


async def test_the_driver_warns_at_start_with_the_address_it_bound(keys_file: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        async with running(keys_file, bind="::") as rig:
            assert rig.driver.address is not None and rig.driver.address[0] == "::"
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "listens on" in r.getMessage()]
    assert warnings == [f"GWMP server listens on [::]:{rig.port} (every interface): any host that reaches this port "
                        "can talk to it; keep the peer on this box, restrict who may connect, or firewall the port "
                        "(set forwarders = [...] to accept only your gateways' EUIs)"]


async def test_a_device_silent_past_offline_after_s_goes_offline_and_its_next_uplink_brings_it_back(
        keys_file: Path) -> None:
    offset = [0.0]
    async with running(keys_file, clock=lambda: time.monotonic() + offset[0], offline_after_s=600) as rig, \
            SimForwarder("127.0.0.1", rig.port) as fwd:
        water = SimDevice(WATER, fcnt=1)
        assert await fwd.uplink(water.uplink(em300_di_payload(10, battery=90)))
        await until(lambda: rig.driver.health()["water-1"].online is True)
        assert rig.driver.health()["water-1"].counters["uplinks"] == 1
        offset[0] += 601  # ten minutes and a second without a word from anyone
        await until(lambda: len(rig.events("device.availability")) == 4, timeout=10)
        states = {(e.data["device"], e.data["state"]) for e in rig.events("device.availability")}
        assert states == {("water-1", "online"), ("water-1", "offline"), ("leak-1", "offline"),
                          ("climate-1", "offline")}
        assert [(a.alarm_id, a.active) for a in rig.notices if isinstance(a, Alarm) and "water" in a.alarm_id] \
            == [("device.water-1.offline", True)]
        assert rig.driver.health()["water-1"].online is False
        assert await fwd.uplink(water.uplink(em300_di_payload(11, battery=90)))
        await until(lambda: rig.driver.health()["water-1"].online is True)
        alarms = [(a.alarm_id, a.active) for a in rig.notices if isinstance(a, Alarm) and "water" in a.alarm_id]
        assert alarms == [("device.water-1.offline", True), ("device.water-1.offline", False)]


async def test_a_flood_of_bad_mics_is_one_security_event_per_device_per_window_with_its_count(
        keys_file: Path) -> None:
    offset = [0.0]
    async with running(keys_file, clock=lambda: time.monotonic() + offset[0], bad_mic_threshold=3,
                       bad_mic_window_s=60) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
        water, leak = SimDevice(WATER), SimDevice(LEAK)
        for _ in range(40):
            await fwd.uplink(water.uplink(em300_di_payload(5), bad_mic=True))
        for _ in range(3):
            await fwd.uplink(leak.uplink(em300_di_payload(5), bad_mic=True))
        await until(lambda: rig.counters.get("bad_mic") == 43)
        assert rig.counters["water-1.bad_mic"] == 40 and rig.counters["leak-1.bad_mic"] == 3
        events = rig.events("lora.security")
        assert [(e.data["device"], e.data["count"]) for e in events] == [("water-1", 3), ("leak-1", 3)]
        offset[0] += 61  # the window is over: the next burst is reported with everything since the last event
        for _ in range(3):
            await fwd.uplink(water.uplink(em300_di_payload(5), bad_mic=True))
        await until(lambda: len(rig.events("lora.security")) == 3)
        last = rig.events("lora.security")[-1]
        assert last.data["device"] == "water-1" and last.data["count"] == 40
        assert "40 LoRaWAN frames with a bad MIC for water-1" in last.text
        assert rig.counters["bad_mic"] == 46


def test_the_example_block_documents_every_option_and_loads(tmp_path: Path) -> None:
    import tomllib

    from tests.example_config import driver_block, load_driver_block

    block = tomllib.loads(driver_block("lora"))["drivers"][0]
    assert set(block) == set(LoraOptions.model_fields) - {"enabled", "critical"}
    opts = load_driver_block(tmp_path, "lora")
    assert isinstance(opts, LoraOptions)
    assert opts.forwarders == ["AA555A0000000001"] and opts.bind == "127.0.0.1" and opts.max_forwarders == 32


class _FailingState(MemoryState):
    """A store that cannot save (disk full) until ``ok`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.ok = False
        self.saves = 0

    async def save(self, driver_id: str, key: str, value: dict) -> None:
        self.saves += 1
        if not self.ok:
            from zaas_edge.errors import StoreUnavailable

            raise StoreUnavailable("disk full")
        await super().save(driver_id, key, value)


async def test_counters_are_saved_before_each_batch_leaves_and_a_failing_store_costs_no_reading(
        keys_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = _FailingState()
    with caplog.at_level(logging.INFO):
        async with running(keys_file, state) as rig, SimForwarder("127.0.0.1", rig.port) as fwd:
            water = SimDevice(WATER, fcnt=300)
            for n in range(3):
                await fwd.uplink(water.uplink(em300_di_payload(n)))
            await until(lambda: len(rig.values("water-1/fcnt")) == 3)
            assert rig.counters["state_save_errors"] >= 1  # each batch tried before its readings went out
            assert ("lora", STATE_KEY) not in state.docs
            state.ok = True
            await fwd.uplink(water.uplink(em300_di_payload(3)))
            await until(lambda: len(rig.values("water-1/fcnt")) == 4)
            # Saved before the reading was emitted: by the time it is seen, the counter is in the store.
            assert state.docs[("lora", STATE_KEY)]["26011BDA"]["last"] == 303
    errors = [r.getMessage() for r in caplog.records if "cannot be saved" in r.getMessage()]
    assert len(errors) == 1, errors
    assert any("frame counters saved again" in r.getMessage() for r in caplog.records)
