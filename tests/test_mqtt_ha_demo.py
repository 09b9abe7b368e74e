"""Every Home Assistant entity the demo building announces is a combination HA accepts.

The demo building's points are built the way its drivers make them, without
running it: the Modbus profiles' points, the simulated M-Bus meters' telegrams
decoded by the M-Bus codec, the LoRaWAN payload profiles with the radio
metadata and a forwarder's statistics, the simulated Linky's frame decoded by
the TIC codec with its tariff-state points, the BLE sensors' simulated adverts
decoded by the Ruuvi and BTHome decoders, the system driver's points. Each is
held to ``zaas_edge.mqtt.ha_classes.check``, the mirror of HA's
``DEVICE_CLASS_UNITS`` and ``DEVICE_CLASS_STATE_CLASSES``.
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.ble.bthome import decode_bthome
from zaas_edge.drivers.ble.ruuvi import decode_df5
from zaas_edge.drivers.lora.gwmp import _STAT_READINGS
from zaas_edge.drivers.lora.payloads import load_profile as load_lora_profile
from zaas_edge.drivers.mbus.encode import rsp_ud
from zaas_edge.drivers.mbus.identity import meter_identity
from zaas_edge.drivers.mbus.telegram import decode_telegram
from zaas_edge.drivers.modbus.profile import get_profile
from zaas_edge.drivers.system.driver import POINTS as SYSTEM_POINTS
from zaas_edge.drivers.tic import Mode
from zaas_edge.drivers.tic.codec import Frame
from zaas_edge.drivers.tic.meaning import interpret
from zaas_edge.drivers.tic.state_points import state_points

from hil.ble_replay import bthome_plain, ruuvi_df5
from hil.buildings import DEMO
from hil.linky_meter import MeterConfig
from hil.linky_sim import Contract, LinkyMeter, constant
from hil.lora_forwarder import DEMO_DEVICES
from hil.mbus_sim import default_meters
from zaas_edge.clock import SystemClock
from zaas_edge.config_model import Config, GatewaySection
from zaas_edge.hub import Hub
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.mqtt.discovery import DeviceInfo, PointSpec, device_config, entity_name
from zaas_edge.mqtt.ha_classes import check, classify
from zaas_edge.mqtt.service import MqttService, profile_identity
from zaas_edge.mqtt.topics import Topics
from zaas_edge.service import DriverInfo, ServiceContext

T = Topics("demo-park", "gw-demo")
ENERGY = {"Wh", "kWh", "MWh", "J", "kJ", "MJ", "GJ"}


def demo_devices() -> dict[str, tuple[DeviceInfo, dict[str, PointSpec]]]:
    """Device id -> (device block, points) of everything the demo building reports."""
    out: dict[str, tuple[DeviceInfo, dict[str, PointSpec]]] = {}
    for line in DEMO.modbus:
        for m in line.meters:
            p = get_profile(m.profile)
            out[m.id] = (DeviceInfo(p.manufacturer, p.model, medium=m.id),
                         {pt.quantity: PointSpec(pt.quantity, pt.unit, resolution=pt.resolution)
                          for pt in p.points})
    sims = {s.name: s for s in default_meters()}
    for mline in DEMO.mbus:
        for meter in mline.meters:
            sim = sims[meter.sim]
            header = sim.header()
            specs: dict[str, PointSpec] = {}
            for part in sim.telegrams(0.0):
                for key, record in decode_telegram(rsp_ud(sim.address or 0, header, part)).by_key().items():
                    if record.is_numeric:
                        unit = record.unit or ""
                        if meter.energy_unit and unit in ENERGY:
                            unit = meter.energy_unit
                        specs[key] = PointSpec(key, unit)
            ident = meter_identity(header)  # what the driver learns from the header: its medium decides
            out[meter.id] = (DeviceInfo(ident.manufacturer, ident.model, ident.serial, ident.medium), specs)
    assert DEMO.lora is not None
    for keys in DEMO_DEVICES:
        if keys.id not in DEMO.lora.devices:
            continue
        prof = load_lora_profile(keys.profile)
        specs = {q: PointSpec(q, u, resolution=r) for q, u, r, _ in prof.points}
        specs |= {"rssi": PointSpec("rssi", "dBm", resolution=1), "snr": PointSpec("snr", "dB", resolution=0.1),
                  "fcnt": PointSpec("fcnt", "count", resolution=1)}
        out[keys.id] = (DeviceInfo(prof.vendor, prof.model, medium=keys.id), specs)
    assert DEMO.linky is not None and DEMO.ble is not None
    linky = DEMO.linky
    meter = LinkyMeter(MeterConfig(mode=Mode.STANDARD if linky.mode == "standard" else Mode.HISTORIC,
                                   phases=linky.phases, contract=Contract(linky.contract), pref_kva=linky.pref_kva,
                                   adco=linky.meter_id), curve=constant(9000.0), clock=lambda: 1_767_225_600.0)
    groups = meter.groups()
    interp = interpret(Frame(True, {g.label: g for g in groups}, [], Mode.STANDARD))
    specs = {q: PointSpec(q, m.unit) for q, m in interp.measurements.items()}
    specs |= {p.quantity: PointSpec(p.quantity, p.unit, p.description, states=p.states)
              for p in state_points(linky.device)}
    out[linky.device] = (DeviceInfo(medium=linky.device), specs)
    for sensor in DEMO.ble.sensors:
        if sensor.kind == "ruuvi":
            readings = decode_df5(ruuvi_df5(sensor.mac, sensor.temperature_c, sensor.humidity_pct, 101_325, 1))\
                .readings()
        else:
            readings = list(decode_bthome(bthome_plain(1, 90, sensor.temperature_c, sensor.humidity_pct),
                                          sensor.mac).readings)
        specs = {q: PointSpec(q, u) for q, _, u in readings} | {"rssi": PointSpec("rssi", "dBm", resolution=1)}
        out[sensor.id] = (DeviceInfo(medium=sensor.id), specs)
    forwarder = {q: PointSpec(q, u) for _, q, u in _STAT_READINGS} | {"online": PointSpec("online", "bool")}
    out["lora-gw-0016c001ff10a235"] = (DeviceInfo(medium="lora-gw"), forwarder)
    out["system"] = (DeviceInfo(), {q: PointSpec(q, u, d, resolution=r) for q, u, r, d in SYSTEM_POINTS})
    return out


def announced() -> dict[str, dict]:
    docs = {}
    for device, (info, specs) in demo_devices().items():
        info = DeviceInfo(info.manufacturer, info.model, info.serial, info.medium, "demo-park", T.gateway_object_id)
        _, doc = device_config(T, device, specs, info=info)
        docs[device] = doc
    return docs


def test_every_announced_entity_of_the_demo_building_is_a_valid_combination() -> None:
    docs = announced()
    assert set(DEMO.devices()) <= set(docs) and len(DEMO.devices()) == 20  # every simulated device is checked
    bad = []
    for device, doc in docs.items():
        for key, c in doc["cmps"].items():
            why = check(c["p"], c.get("device_class"), c.get("state_class"), c.get("unit_of_measurement"))
            if why:
                bad.append(f"{device}/{key}: {why}")
            assert "object_id" not in c and c["default_entity_id"] == f"{c['p']}.{c['unique_id']}"
            assert not (c.get("device_class") == "volume" and c.get("state_class") == "measurement")
    assert bad == []


def test_the_demo_building_classes_that_the_energy_dashboard_needs() -> None:
    docs = announced()
    heat, water = docs["heat-1"]["cmps"], docs["water-main"]["cmps"]
    assert heat["temperature_difference"]["device_class"] == "temperature_delta"
    assert (heat["energy"]["device_class"], heat["energy"]["state_class"]) == ("energy", "total_increasing")
    assert "device_class" not in heat["energy_s1"] and "state_class" not in heat["energy_s1"]  # billing date
    assert heat["energy_s1"]["name"] == "Energy (billing date 1)"
    assert (water["volume"]["device_class"], water["volume"]["state_class"]) == ("water", "total_increasing")
    main = docs["main"]["cmps"]
    assert (main["energy_reactive_import"]["device_class"], main["energy_reactive_import"]["state_class"]) == \
        ("reactive_energy", "total_increasing")
    assert main["voltage_l1"]["suggested_display_precision"] == 1 and main["voltage_l1"]["name"] == "Voltage L1"
    assert main["pf_l1"]["device_class"] == "power_factor"
    assert docs["main"]["dev"]["mf"] == "Eastron" and docs["main"]["dev"]["name"] == "demo-park main"
    assert docs["heat-1"]["dev"]["sn"] and docs["heat-1"]["dev"]["via_device"] == "zaas_demo-park_gw-demo"
    assert (docs["heat-1"]["dev"]["mf"], docs["water-main"]["dev"]["mf"]) == ("Kamstrup", "Sensus")  # the headers'
    leak = docs["leak-1"]["cmps"]
    assert (leak["leak"]["p"], leak["leak"]["device_class"]) == ("binary_sensor", "moisture")
    assert leak["leak"]["value_template"] == "{{ 'ON' if value_json['points']['leak'] else 'OFF' }}"
    assert leak["rssi"]["entity_category"] == "diagnostic" and leak["snr"]["entity_category"] == "diagnostic"
    water_1 = docs["water-1"]["cmps"]
    assert water_1["pulse_count"]["state_class"] == "total_increasing"
    assert "unit_of_measurement" not in water_1["pulse_count"]
    link = docs["lora-gw-0016c001ff10a235"]["cmps"]["online"]
    assert (link["p"], link["device_class"]) == ("binary_sensor", "connectivity")
    tic = docs["linky-031762120855"]["cmps"]
    assert (tic["apparent_power_l1"]["device_class"], tic["apparent_power_l1"]["unit_of_measurement"]) == \
        ("apparent_power", "VA")
    assert (tic["energy_import"]["device_class"], tic["energy_import"]["state_class"]) == \
        ("energy", "total_increasing")
    assert tic["tempo_today"]["device_class"] == "enum" and "red" in tic["tempo_today"]["options"]
    cold, meeting = docs["cold-room"]["cmps"], docs["meeting-room"]["cmps"]
    assert (cold["temperature"]["device_class"], cold["temperature"]["unit_of_measurement"]) == ("temperature", "°C")
    assert (meeting["humidity"]["device_class"], meeting["battery"]["device_class"]) == ("humidity", "battery")
    system = docs["system"]["cmps"]
    assert all(system[k]["entity_category"] == "diagnostic" for k in ("backlog_reading", "cpu_usage", "cpu_load_1m"))


_UNITS = ["", "bool", "count", "%", "W", "kW", "kWh", "Wh", "MWh", "varh", "kvarh", "var", "VA", "V", "A", "Hz",
          "degC", "K", "m3", "m3/h", "L", "dBm", "dB", "s", "B", "ppm", "lx", "hPa", "bar", "deg", "m", "furlong"]


@given(st.text(string.ascii_lowercase + "_./0123456789", max_size=30), st.sampled_from(_UNITS),
       st.text(string.ascii_lowercase + " -", max_size=20), st.integers(0, 3))
def test_classify_never_makes_a_combination_home_assistant_refuses(quantity: str, unit: str, medium: str,
                                                                    states: int) -> None:
    c = classify(quantity, unit, medium=medium, states=states)
    assert check(c.platform, c.device_class, c.state_class, c.unit) is None
    assert entity_name(quantity or "x")  # a name for people, never empty


def test_the_service_names_a_modbus_device_by_its_profiles_manufacturer_and_model(tmp_path) -> None:
    assert profile_identity("modbus", "eastron-sdm630") == ("Eastron", "SDM630-Modbus V2")
    assert profile_identity("modbus", "../../etc/passwd") == ("", "../../etc/passwd (modbus)")  # never a path
    assert profile_identity("modbus", "my-own") == ("", "my-own (modbus)")
    line = {"id": "switchboard", "type": "modbus", "transport": "tcp", "host": "127.0.0.1",
            "devices": [{"id": "main", "unit": 1, "profile": "eastron-sdm630"}]}
    config = Config(gateway=GatewaySection(id="gw-demo", site="demo-park", state_dir=tmp_path, runtime_dir=tmp_path),
                    mqtt=MqttSection(enabled=True), drivers=[line])
    ctx = ServiceContext(name="mqtt", config=lambda: config, hub=Hub(), clock=SystemClock(assume_synced=True),
                         outbox=None, drivers=None, notice=lambda item: None, heartbeat=lambda: None,  # type: ignore[arg-type]
                         add_command=lambda name, handler: None)
    info = MqttService(ctx)._device_info("main", DriverInfo("switchboard", "modbus", True, "running"))
    assert (info.manufacturer, info.model, info.site, info.via) == \
        ("Eastron", "SDM630-Modbus V2", "demo-park", "zaas_demo-park_gw-demo")
