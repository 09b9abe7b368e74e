"""The ble driver fed through its AdvertSource seam with recorded adverts (tests/data/ble_adverts.jsonl)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from zaas_edge.drivers.ble import BleDriver, BleOptions
from zaas_edge.drivers.ble.replay import load_adverts
from zaas_edge.drivers.ble.scanner import Advert

from hil.ble_replay import MissingAdapterSource, ReplaySource
from hil.driver_run import DriverRun
from tests.lora_helpers import until

DATA = Path(__file__).parent / "data" / "ble_adverts.jsonl"
RUUVI, PLAIN, SECRET = "CB:B8:33:4C:88:4F", "A4:C1:38:00:00:01", "54:48:E6:8F:80:A5"


@pytest.fixture
def bindkey_file(tmp_path: Path) -> Path:
    path = tmp_path / "bindkey"
    path.write_text("231d39c1d7cc1ab1aee224cd096db932\n")
    path.chmod(0o600)
    return path


def options(bindkey_file: Path, **extra: Any) -> BleOptions:
    return BleOptions.model_validate({
        "id": "ble", "type": "ble", "min_interval_s": 0, "retry_initial_s": 0.01, "retry_max_s": 0.02,
        "devices": [{"mac": RUUVI.lower(), "id": "fridge"}, {"mac": PLAIN.replace(":", "-"), "id": "office"},
                    {"mac": SECRET, "id": "lab", "bindkey_file": str(bindkey_file)}],
        **extra})


async def test_recorded_adverts_become_readings(bindkey_file: Path) -> None:
    source = ReplaySource(DATA)
    async with DriverRun(BleDriver(options(bindkey_file), source=source)) as rig:
        await until(lambda: source.played == len(source.adverts))
        await until(lambda: rig.counters.get("decode_errors") == 1)
        # RuuviTag data format 5, the specification's "valid data" example
        assert rig.values("fridge/temperature") == [24.3, 24.3]  # sequence 205, then 206; the repeat is dropped
        assert rig.values("fridge/humidity")[0] == 53.49
        assert rig.values("fridge/pressure")[0] == 1000.44
        assert rig.values("fridge/battery_voltage")[0] == 2.977
        assert rig.values("fridge/movement_counter")[0] == 66
        assert rig.values("fridge/rssi") == [-61.0, -60.0]
        # BTHome v2, plain and encrypted with the bindkey from the 0600 file
        assert rig.values("office/temperature") == [25.06]
        assert rig.values("office/humidity") == [50.55]
        assert rig.values("lab/temperature") == [25.06, 25.14]
        assert rig.values("lab/battery") == [100.0, 99.0]
        c = rig.counters
        assert c["duplicates"] == 2  # the repeated Ruuvi measurement and the replayed encrypted advert
        assert c["adverts_unknown"] == 1 and c["devices_unknown"] == 1
        assert c["fridge.decode_errors"] == 1  # the truncated Ruuvi frame
        assert not any(r.point.startswith("ble-") for r in rig.readings)
        assert rig.driver.state == "scanning"


async def test_min_interval_throttles_each_device(bindkey_file: Path) -> None:
    source = ReplaySource(DATA)
    async with DriverRun(BleDriver(options(bindkey_file, min_interval_s=600), source=source)) as rig:
        await until(lambda: source.played == len(source.adverts))
        await until(lambda: rig.counters.get("decode_errors") == 1)
        assert rig.values("fridge/temperature") == [24.3]
        assert rig.values("lab/temperature") == [25.06]
        assert rig.counters["throttled"] == 2  # Ruuvi sequence 206, BTHome packet 2


async def test_unknown_devices_are_reported_when_accepted(bindkey_file: Path) -> None:
    source = ReplaySource(DATA)
    async with DriverRun(BleDriver(options(bindkey_file, accept_unknown=True), source=source)) as rig:
        await until(lambda: source.played == len(source.adverts))
        await until(lambda: rig.values("ble-112233445566/temperature"))
        assert rig.values("ble-112233445566/temperature") == [25.06]
        assert "adverts_unknown" not in rig.counters


async def test_missing_adapter_is_retried_logged_once_and_alarmed_until_back(
        bindkey_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = MissingAdapterSource(3, ReplaySource(DATA))
    with caplog.at_level(logging.INFO, logger="zaas_edge"):
        async with DriverRun(BleDriver(options(bindkey_file), source=source)) as rig:
            await until(lambda: rig.values("office/temperature"))
            assert source.attempts == 4
            assert rig.counters["adapter_errors"] == 3
            assert [(a.alarm_id, a.active) for a in rig.alarm_items()] == [("ble.ble.adapter", True),
                                                                     ("ble.ble.adapter", False)]
            assert "hci0 not found" in rig.alarm_items()[0].text
    lost = [r for r in caplog.records if "hci0 not found" in r.getMessage()]  # the alarm's journal line
    assert len(lost) == 1 and lost[0].levelno >= logging.WARNING
    assert sum("scanning for BLE adverts" in r.getMessage() for r in caplog.records) == 1


async def test_an_adapter_that_vanishes_is_reopened(bindkey_file: Path) -> None:
    source = ReplaySource(DATA, then="vanish")
    async with DriverRun(BleDriver(options(bindkey_file), source=source)) as rig:
        await until(lambda: source.streams >= 2 and rig.driver.scanning.is_set())
        assert rig.counters["adapter_errors"] >= 1
        assert len(rig.values("office/temperature")) >= 2  # heard again after reopening


def test_device_options_are_checked(bindkey_file: Path) -> None:
    with pytest.raises(ValueError, match="AA:BB:CC:DD:EE:FF"):
        BleOptions.model_validate({"id": "b", "type": "ble", "devices": [{"mac": "nope", "id": "x"}]})
    with pytest.raises(ValueError, match="duplicate device mac"):
        BleOptions.model_validate({"id": "b", "type": "ble", "devices": [{"mac": RUUVI, "id": "x"},
                                                                         {"mac": RUUVI, "id": "y"}]})
    assert options(bindkey_file).devices[1].mac == PLAIN


async def test_bleak_source_without_an_adapter_raises_transient_error_naming_it() -> None:
    from zaas_edge.drivers.ble.scanner import BleakSource, adapter_present

    from zaas_edge.errors import TransientError

    if adapter_present("hci7"):
        pytest.skip("this machine has an hci7 adapter")
    with pytest.raises(TransientError, match="hci7 not found"):
        async for _ in BleakSource("hci7").stream():
            pass


async def test_a_bindkey_file_readable_by_others_is_refused(bindkey_file: Path) -> None:
    from zaas_edge.errors import ConfigError

    bindkey_file.chmod(0o644)
    rig = DriverRun(BleDriver(options(bindkey_file), source=ReplaySource(DATA)))
    with pytest.raises(ConfigError, match="chmod 600"):
        await rig.driver.run(rig.ctx)


async def test_replay_env_feeds_the_driver_at_its_boundary_and_says_so(
        bindkey_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("ZAAS_EDGE_BLE_REPLAY", str(DATA))
    driver = BleDriver(options(bindkey_file))
    assert driver.replay_file == DATA and driver.source is None  # no bleak scanner is built
    with caplog.at_level(logging.WARNING, logger="zaas_edge.driver.ble"):
        async with DriverRun(driver) as rig:
            await until(lambda: rig.counters.get("decode_errors") == 1)
            assert rig.values("office/temperature") == [25.06]
            assert rig.values("lab/temperature") == [25.06, 25.14]
    [warning] = [r for r in caplog.records if "replaying recorded BLE adverts" in r.getMessage()]
    assert str(DATA) in warning.getMessage() and "ZAAS_EDGE_BLE_REPLAY" in warning.getMessage()


async def test_replay_env_naming_a_missing_file_is_a_clear_start_up_error(
        bindkey_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zaas_edge.errors import ConfigError

    monkeypatch.setenv("ZAAS_EDGE_BLE_REPLAY", str(tmp_path / "nope.jsonl"))
    rig = DriverRun(BleDriver(options(bindkey_file)))
    with pytest.raises(ConfigError, match="nope.jsonl cannot be read .*unset ZAAS_EDGE_BLE_REPLAY"):
        await rig.driver.run(rig.ctx)


class QueueSource:
    """Adverts a test hands over one by one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Advert] = asyncio.Queue()

    async def stream(self) -> AsyncIterator[Advert]:
        while True:
            yield await self.queue.get()


async def test_a_device_not_heard_for_offline_after_s_goes_offline_until_its_next_advert(
        bindkey_file: Path) -> None:
    adverts: dict[str, Advert] = {}
    for _, advert in load_adverts(DATA):
        adverts.setdefault(advert.mac, advert)  # the first of each device is a good one
    offset = [0.0]
    source = QueueSource()
    driver = BleDriver(options(bindkey_file, offline_after_s=600), source=source,
                       clock=lambda: time.monotonic() + offset[0])
    driver.SILENCE_CHECK_S = 0.01
    async with DriverRun(driver) as rig:
        source.queue.put_nowait(adverts[RUUVI])
        await until(lambda: "fridge" in driver.health() and driver.health()["fridge"].online is True)
        assert driver.health()["office"].online is None  # not heard yet, not silent long enough yet
        offset[0] += 601
        await until(lambda: all(h.online is False for h in driver.health().values()))
        assert sorted(a.alarm_id for a in rig.alarm_items() if a.active) == [
            "device.fridge.offline", "device.lab.offline", "device.office.offline"]
        assert "BLE sensor fridge offline: nothing valid heard for 601 s" in rig.alarm_items()[0].text
        source.queue.put_nowait(adverts[RUUVI])  # the same measurement again still says it is there
        await until(lambda: driver.health()["fridge"].online is True)
        assert [(a.alarm_id, a.active) for a in rig.alarm_items() if a.alarm_id == "device.fridge.offline"] == [
            ("device.fridge.offline", True), ("device.fridge.offline", False)]
        assert driver.health()["office"].online is False
        assert driver.health()["fridge"].details["mac"] == RUUVI
