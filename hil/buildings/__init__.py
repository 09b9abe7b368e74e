"""Simulated buildings: which meters and sensors the scenario runner puts around the daemon.

A building is a plain description (frozen dataclasses), not a configuration:
``hil.scenario`` starts a simulator for each bus and writes the matching
``[[drivers]]`` sections, so the two always agree. The demo building is the
one ``make demo`` runs; add another by defining a ``Building`` and listing it
in ``BUILDINGS``.
"""

from __future__ import annotations

__all__ = ["ModbusMeter", "ModbusLine", "MBusMeter", "MBusLine", "LoraNetwork", "TicMeter", "BleRadio", "Building",
           "BUILDINGS", "DEMO", "get_building"]

from dataclasses import dataclass
from typing import Literal

from hil.ble_replay import SimSensor


@dataclass(frozen=True, slots=True)
class ModbusMeter:
    id: str  # device id: the first half of its point keys
    unit: int
    profile: str  # a built-in profile (zaas-edge profiles list)


@dataclass(frozen=True, slots=True)
class ModbusLine:
    """One Modbus bus: a TCP endpoint on loopback, or an RS-485 line played by a pty pair."""

    id: str  # driver id
    transport: Literal["tcp", "rtu"]
    meters: tuple[ModbusMeter, ...]
    interval_fast_s: float = 2.0
    interval_slow_s: float = 10.0
    # served by hil.shed_plant: the eastron-sdm630 meter sees the loads the waveshare-relay-8ch switches
    # and the heidelberg-energy-control charger draws (a closed loop for load shedding)
    plant: bool = False


@dataclass(frozen=True, slots=True)
class MBusMeter:
    id: str
    sim: str  # the simulated meter it is: a name from hil.mbus_sim.default_meters()
    energy_unit: str | None = None


@dataclass(frozen=True, slots=True)
class MBusLine:
    """One wired M-Bus segment on a pty pair; meters are read by their primary address."""

    id: str
    meters: tuple[MBusMeter, ...]
    interval_s: float = 5.0


@dataclass(frozen=True, slots=True)
class LoraNetwork:
    """LoRaWAN sensors heard through simulated packet forwarders (GWMP over UDP on loopback)."""

    id: str = "lora"
    # ids from hil.lora_forwarder.DEMO_DEVICES (their session keys are written to the keys file)
    devices: tuple[str, ...] = ("water-1", "leak-1", "climate-1")
    interval_s: float = 5.0  # seconds between two uplinks of each device


@dataclass(frozen=True, slots=True)
class TicMeter:
    """The Linky at the head of the building, its TIC customer port on a pty (``hil.linky_sim``).

    When a Modbus line has ``plant=True`` the meter measures that plant (base
    load + closed relays + charger, phase by phase), so its apparent power
    follows the shedding; its breaker trips on the meter's own filter.
    """

    id: str = "linky"  # the tic driver's id; its device is "<id>-<meter_id>"
    mode: Literal["historic", "standard"] = "standard"
    phases: Literal[1, 3] = 3
    contract: Literal["base", "hc", "tempo", "ejp"] = "tempo"
    pref_kva: int = 24
    meter_id: str = "031762120855"
    tempo_today: Literal["blue", "white", "red"] = "blue"
    # Tempo days by date (ISO, colour): on a time scale the meter turns red at 06:00 of a red day by itself.
    tempo_calendar: tuple[tuple[str, Literal["blue", "white", "red"]], ...] = ()

    @property
    def device(self) -> str:
        return f"{self.id}-{self.meter_id}"


@dataclass(frozen=True, slots=True)
class BleRadio:
    """BLE sensors, their adverts replayed at the driver's boundary (``ZAAS_EDGE_BLE_REPLAY``)."""

    id: str = "ble"
    sensors: tuple[SimSensor, ...] = ()
    interval_s: float = 5.0  # between two adverts of each sensor
    hours: float = 3.0  # how long the replay lasts; then the sensors fall silent


@dataclass(frozen=True, slots=True)
class Building:
    name: str
    description: str
    modbus: tuple[ModbusLine, ...] = ()
    mbus: tuple[MBusLine, ...] = ()
    lora: LoraNetwork | None = None
    linky: TicMeter | None = None
    ble: BleRadio | None = None
    mqtt: bool = True  # a local mosquitto when /usr/sbin/mosquitto exists
    sync: bool = True  # the reference central API (hil.central), with enrollment

    def summary(self) -> list[str]:
        """One line per bus, for people."""
        lines = []
        for line in self.modbus:
            profiles = sorted({m.profile for m in line.meters})
            lines.append(f"{line.id}: {len(line.meters)} Modbus meters over {line.transport.upper()} "
                         f"({', '.join(profiles)})")
        for seg in self.mbus:
            lines.append(f"{seg.id}: {len(seg.meters)} M-Bus meters ({', '.join(m.sim for m in seg.meters)})")
        if self.lora is not None:
            lines.append(f"{self.lora.id}: {len(self.lora.devices)} LoRaWAN sensors through 2 simulated "
                         f"forwarders ({', '.join(self.lora.devices)})")
        if self.linky is not None:
            lines.append(f"{self.linky.id}: a {self.linky.phases}-phase Linky, {self.linky.contract}, "
                         f"{self.linky.pref_kva} kVA, TIC {self.linky.mode} mode")
        if self.ble is not None:
            lines.append(f"{self.ble.id}: {len(self.ble.sensors)} BLE sensors "
                         f"({', '.join(f'{x.id} {x.kind}' for x in self.ble.sensors)})")
        return lines

    def devices(self) -> list[str]:
        """Every device id the building's simulators play (what the daemon should end up reading)."""
        ids = [m.id for line in self.modbus for m in line.meters] + [m.id for seg in self.mbus for m in seg.meters]
        ids += list(self.lora.devices) if self.lora is not None else []
        ids += [self.linky.device] if self.linky is not None else []
        ids += [x.id for x in self.ble.sensors] if self.ble is not None else []
        return ids


DEMO = Building(
    name="demo",
    description="a small office building of 20 devices: a Linky at the head (TIC), a main switchboard on Modbus "
                "TCP, two sub-meters on RS-485, heat/water/electricity on M-Bus, LoRaWAN and BLE sensors, "
                "sheddable loads on a relay module and a wallbox",
    modbus=(
        ModbusLine("switchboard", "tcp", (
            ModbusMeter("main", 1, "eastron-sdm630"),
            ModbusMeter("hvac", 2, "eastron-sdm630"),
            ModbusMeter("lighting", 3, "abb-b23"),
            ModbusMeter("sockets", 4, "abb-b23"),
            ModbusMeter("kitchen", 5, "schneider-iem3155"),
            ModbusMeter("lift", 6, "schneider-iem3155"),
        )),
        ModbusLine("rs485", "rtu", (
            ModbusMeter("ev-1", 1, "eastron-sdm120"),
            ModbusMeter("ev-2", 2, "eastron-sdm120"),
        )),
        # The sheddable loads of the [shedding] section in config/demo.toml.
        ModbusLine("loads", "tcp", (
            ModbusMeter("board", 1, "eastron-sdm630"),
            ModbusMeter("relays", 2, "waveshare-relay-8ch"),
            ModbusMeter("wallbox", 3, "heidelberg-energy-control"),
        ), interval_fast_s=1.0, plant=True),
    ),
    mbus=(
        MBusLine("mbus", (
            MBusMeter("heat-1", "heat", energy_unit="kWh"),
            MBusMeter("water-main", "water"),
            MBusMeter("elec-common", "electricity", energy_unit="kWh"),
        )),
    ),
    lora=LoraNetwork(),
    # The [shedding] section's "linky" limit reads its apparent power, phase by phase.
    linky=TicMeter(),
    ble=BleRadio(sensors=(
        SimSensor("cold-room", "CB:B8:33:4C:88:4F", "ruuvi", 4.0, 80.0, rssi=-75),
        SimSensor("meeting-room", "A4:C1:38:5D:21:0E", "bthome", 21.5, 40.0, rssi=-62),
    )),
)

BUILDINGS: dict[str, Building] = {DEMO.name: DEMO}


def get_building(name: str) -> Building:
    try:
        return BUILDINGS[name]
    except KeyError:
        raise KeyError(f"unknown building {name!r} (known: {', '.join(sorted(BUILDINGS))})") from None
