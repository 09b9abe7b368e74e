"""Home Assistant's device block names the real device: an M-Bus meter's maker, serial, version and
medium from its own header, a LoRaWAN sensor's profile model and DevEUI.

The M-Bus meters are the simulator's, over a pseudo-terminal, read by the real driver (``DriverRun``)
and announced by the real MQTT service to mosquitto; the ids are chosen to lie ("gas-7" is the water
meter), so water and gas can only come from the header's medium.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.lora.keys import load_keys, save_keys
from zaas_edge.drivers.mbus import MBusDriver, MBusOptions
from zaas_edge.drivers.mbus.header import LongHeader, decode_manufacturer
from zaas_edge.drivers.mbus.identity import MANUFACTURERS, manufacturer_name, meter_identity

import tests.mosquitto as broker_helpers
from hil.driver_run import DriverRun
from hil.lora_forwarder import DEMO_DEVICES, SimForwarder, SimGateway
from hil.mbus_sim import MBusSimulator
from tests.lora_helpers import running, until
from tests.mosquitto import Collector, Mosquitto
from tests.test_mqtt_service import Harness
from zaas_edge.config_model import Config
from zaas_edge.driver import DeviceIdentity, Driver
from zaas_edge.mqtt.discovery import device_config
from zaas_edge.mqtt.ha_classes import check
from zaas_edge.service import DriverInfo

mosquitto = broker_helpers.mosquitto  # the fixture

MBUS = {"id": "mbus-1", "type": "mbus", "baudrate": 9600, "meters": [
    {"id": "gas-7", "address": 6, "interval_s": 3600},  # the simulator's water meter (Sensus)
    {"id": "water-9", "address": 7, "interval_s": 3600},  # its gas meter (Elster)
    {"id": "heat-1", "address": 5, "interval_s": 3600, "energy_unit": "kWh"},  # Kamstrup
]}


def header(manufacturer: str = "KAM", medium: int = 0x04, version: int = 0x1B) -> LongHeader:
    return LongHeader(access_no=1, status=0, signature=0, identification="12345678", manufacturer=manufacturer,
                      version=version, medium=medium)


def test_a_long_header_names_the_maker_the_kind_the_serial_the_version_and_the_medium() -> None:
    assert meter_identity(header()) == DeviceIdentity("Kamstrup", "heat meter (KAM, M-Bus)", "12345678", "27",
                                                      "heat_outlet")
    assert meter_identity(header("ELS", 0x03)).manufacturer == "Elster (Honeywell)"
    assert meter_identity(header("SEN", 0x07)).model == "water meter (SEN, M-Bus)"
    assert meter_identity(header("HYD", 0x16)).manufacturer == "Diehl Metering"
    # An unlisted maker shows its three letters; a medium that says nothing is left to the names.
    unknown = meter_identity(header("XYZ", 0x0F))
    assert (unknown.manufacturer, unknown.model, unknown.medium) == ("XYZ", "meter (XYZ, M-Bus)", "")
    assert meter_identity(header("ABB", 0x00)).medium == "" and meter_identity(header("ABB", 0x3F)).medium == ""
    assert manufacturer_name("kam") == "Kamstrup"
    from zaas_edge.drivers.mbus.scan import FoundMeter

    assert FoundMeter.from_header(header(), 5).as_dict()["maker"] == "Kamstrup"  # what a scan prints beside KAM
    assert all(len(code) == 3 and code.isupper() for code in MANUFACTURERS)


@given(st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255),
       st.text("0123456789ABCDEF", min_size=8, max_size=8))
def test_any_header_gives_an_identity_without_crashing(code: int, medium: int, version: int, ident: str) -> None:
    h = replace(header(decode_manufacturer(code), medium, version), identification=ident)
    i = meter_identity(h)
    assert i.manufacturer and i.serial == ident and i.sw_version == str(version)
    assert i.model.endswith(f"({h.manufacturer}, M-Bus)")


class LiveDrivers:
    """DriverControl over real driver instances, built the way the daemon builds ``drivers_info``."""

    def __init__(self, *drivers: Driver) -> None:
        self.drivers = {d.id: d for d in drivers}

    def drivers_info(self) -> dict[str, DriverInfo]:
        return {i: DriverInfo(i, d.options.type, True, "running", tuple(d.points()), d.device_identities())
                for i, d in self.drivers.items()}

    async def poll_now(self, driver_id: str) -> None:
        await self.drivers[driver_id].poll_now()

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        raise NotImplementedError

    async def write(self, point: str, value: float) -> float:
        raise NotImplementedError


def disco(device: str) -> str:
    return f"homeassistant/device/zaas_site-a_gw-1_{device}/config"


async def test_simulated_mbus_meters_announce_their_maker_serial_and_medium_whatever_their_ids(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    with MBusSimulator() as sim:
        section = MBUS | {"port": sim.path}
        async with DriverRun(MBusDriver(MBusOptions.model_validate(section))) as run:
            h = Harness(tmp_path, mosquitto)
            h.config = Config(gateway=h.config.gateway, mqtt=h.config.mqtt, drivers=[section])
            h.ctx.hub = run.hub  # the service consumes what the driver emits, as in the daemon
            h.ctx.drivers = LiveDrivers(run.driver)  # type: ignore[assignment]
            await h.start()
            try:
                async with Collector(mosquitto, "homeassistant/device/+/config") as sub:
                    water = json.loads(await sub.wait_for(disco("gas-7")))
                    gas = json.loads(await sub.wait_for(disco("water-9")))
                    heat = json.loads(await sub.wait_for(disco("heat-1")))
                    assert water["dev"] | {"ids": None} == {
                        "ids": None, "name": "site-a gas-7", "mf": "Sensus", "mdl": "water meter (SEN, M-Bus)",
                        "sn": "12345699", "sw": "104", "via_device": "zaas_site-a_gw-1"}
                    assert (gas["dev"]["mf"], gas["dev"]["sn"], gas["dev"]["mdl"]) == \
                        ("Elster (Honeywell)", "30112233", "gas meter (ELS, M-Bus)")
                    assert (heat["dev"]["mf"], heat["dev"]["sn"], heat["dev"]["sw"]) == ("Kamstrup", "12345678", "27")
                    # The header's medium decides, not the id: HA's Energy dashboard takes each as it is.
                    assert (water["cmps"]["volume"]["device_class"], water["cmps"]["volume"]["state_class"]) == \
                        ("water", "total_increasing")
                    assert gas["cmps"]["volume"]["device_class"] == "gas"
                    assert heat["cmps"]["volume"]["device_class"] == "volume"  # a heat meter's volume is neither
                    for doc in (water, gas, heat):
                        for key, c in doc["cmps"].items():
                            assert check(c["p"], c.get("device_class"), c.get("state_class"),
                                         c.get("unit_of_measurement")) is None, key

                    # The gas meter is replaced: same records, another serial. Its block is sent again.
                    sim.bus.meter("gas").identification = "30119999"
                    await run.driver.poll_now()
                    again = json.loads(await sub.wait_for(
                        disco("water-9"), lambda p: json.loads(p)["dev"].get("sn") == "30119999"))
                    assert again["dev"]["mf"] == "Elster (Honeywell)"
            finally:
                await h.stop()


async def test_a_refused_readout_teaches_no_identity() -> None:
    """After a restart the layout is remembered and the identity is not: a checksum-valid telegram of
    made-up records is refused whole, its header with it, and the next good readout tells who it is."""
    from zaas_edge.drivers.mbus import RecordSpec
    from zaas_edge.drivers.mbus.records import Coding

    from hil.mbus_sim import gas_telegrams
    from zaas_edge.context import MemoryState

    state = MemoryState()
    with MBusSimulator() as sim:
        opts = MBusOptions.model_validate(MBUS | {"port": sim.path, "meters": [MBUS["meters"][1]]})
        async with DriverRun(MBusDriver(opts), state=state) as run:  # the run before the restart
            await run.until(lambda: ("mbus-1", "points") in state.docs, "the layout saved")
        gas = sim.bus.meter("gas")
        gas.telegrams = lambda t: [[*gas_telegrams(t)[0], RecordSpec(b"\x07", 10**9, Coding.INT32)]]
        gas.manufacturer = "ZRI"
        async with DriverRun(MBusDriver(opts), state=state) as run:
            await run.until(lambda: run.counters.get("layout_mismatches"), "the refused readout")
            assert run.driver.device_identities() == {} and run.readings == []
            gas.telegrams, gas.manufacturer = gas_telegrams, "ELS"
            await run.driver.poll_now()
            assert run.driver.device_identities()["water-9"].manufacturer == "Elster (Honeywell)"


ABP_WITH_EUI = replace(DEMO_DEVICES[1], dev_eui=bytes.fromhex("24E124136B502217"))  # leak-1, an EM300-SLD


def test_an_abp_device_may_carry_its_deveui_as_a_serial_and_never_joins_with_it(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    save_keys(path, [ABP_WITH_EUI, DEMO_DEVICES[2]])
    keys = load_keys(path)
    leak = keys.devices[0]
    assert leak == ABP_WITH_EUI and not leak.otaa and leak.public()["dev_eui"] == "24E124136B502217"
    assert keys.by_eui() == {}  # only OTAA devices answer join requests


async def test_a_lora_sensors_block_has_its_profile_model_and_its_deveui_as_serial(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    save_keys(path, [ABP_WITH_EUI, DEMO_DEVICES[2]])
    gw = bytes.fromhex("AA555A0000000001")
    async with running(path) as rig, SimForwarder("127.0.0.1", rig.port, [SimGateway(gw)]) as fwd:
        ids = rig.driver.device_identities()
        assert ids["leak-1"] == DeviceIdentity("Milesight", "EM300-SLD", "24E124136B502217")
        assert ids["climate-1"] == DeviceIdentity("Milesight", "AM103")  # ABP without a DevEUI: no serial
        assert await fwd.stat(fwd.gateways[0], rxnb=3)
        await until(lambda: "lora-gw-aa555a0000000001" in rig.driver.device_identities())
        assert rig.driver.device_identities()["lora-gw-aa555a0000000001"] == \
            DeviceIdentity(model="LoRaWAN packet forwarder", serial="AA555A0000000001")

        h = _service(tmp_path, LiveDrivers(rig.driver))
        info = h._device_info("leak-1", LiveDrivers(rig.driver).drivers_info()["lora"])
        _, doc = device_config(h.topics, "leak-1", {"leak": _spec("leak", "bool")}, info=info)
        assert (doc["dev"]["mf"], doc["dev"]["mdl"], doc["dev"]["sn"]) == ("Milesight", "EM300-SLD",
                                                                           "24E124136B502217")
        assert "sw" not in doc["dev"]


def _spec(quantity: str, unit: str) -> Any:
    from zaas_edge.mqtt.discovery import PointSpec

    return PointSpec(quantity, unit)


def _service(tmp_path: Path, drivers: LiveDrivers) -> Any:
    from zaas_edge.clock import SystemClock
    from zaas_edge.config_model import GatewaySection
    from zaas_edge.hub import Hub
    from zaas_edge.mqtt.config import MqttSection
    from zaas_edge.mqtt.service import MqttService
    from zaas_edge.service import ServiceContext

    config = Config(gateway=GatewaySection(id="gw-1", site="site-a", state_dir=tmp_path, runtime_dir=tmp_path),
                    mqtt=MqttSection(enabled=True))
    ctx = ServiceContext(name="mqtt", config=lambda: config, hub=Hub(), clock=SystemClock(assume_synced=True),
                         outbox=None, drivers=drivers, notice=lambda item: None,  # type: ignore[arg-type]
                         heartbeat=lambda: None, add_command=lambda name, handler: None)
    return MqttService(ctx)


def test_without_a_known_identity_the_profile_and_the_names_still_decide(tmp_path: Path) -> None:
    """A driver that knows nothing of its devices keeps today's block: profile, id-guessed medium."""
    service = _service(tmp_path, LiveDrivers())
    info = service._device_info("water-main", DriverInfo("mbus", "mbus", True, "running"))
    assert (info.manufacturer, info.model, info.serial, info.sw_version) == ("", "mbus", "", "")
    assert "water" in info.medium
    known = DriverInfo("mbus", "mbus", True, "running",
                       identities={"water-main": DeviceIdentity("Zenner", "gas meter (ZRI, M-Bus)", "1", "2", "gas")})
    info = service._device_info("water-main", known)
    assert (info.manufacturer, info.serial, info.sw_version, info.medium) == ("Zenner", "1", "2", "gas")

