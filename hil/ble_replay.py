"""Recorded BLE adverts for the driver's ``AdvertSource`` seam, and sensors' test data.

The replay itself (``ReplaySource``, ``load_adverts``, the JSON-lines format)
lives in ``zaas_edge.drivers.ble.replay`` so that the daemon can use it when
``ZAAS_EDGE_BLE_REPLAY`` is set; it is re-exported here for tests and demos.
This module adds ``MissingAdapterSource`` (an adapter that is absent for the
first attempts) and ``bthome_encrypt``, which builds encrypted BTHome v2
adverts the way a sensor does (AES-CCM, 4-byte tag, nonce = MAC + UUID +
device info + counter), for test data made from the specification rather
than copied from elsewhere; ``ruuvi_df5`` and ``bthome_plain`` build the
adverts of a RuuviTag (data format 5) and of a plain BTHome v2 sensor, and
``write_adverts`` a replay file of such sensors advertising for hours (what
the demo building sets ``ZAAS_EDGE_BLE_REPLAY`` to).
"""

from __future__ import annotations

__all__ = ["ReplaySource", "MissingAdapterSource", "load_adverts", "bthome_encrypt", "ruuvi_df5", "bthome_plain",
           "SimSensor", "write_adverts", "BTHOME_UUID"]

import json
import math
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from zaas_edge.drivers.ble.replay import ReplaySource, load_adverts
from zaas_edge.drivers.ble.scanner import Advert

from zaas_edge.errors import TransientError


class MissingAdapterSource:
    """No adapter for the first ``failures`` attempts, then the adverts of ``then_source``."""

    def __init__(self, failures: int, then_source: ReplaySource | None = None, adapter: str = "hci0") -> None:
        self.failures = failures
        self.then_source = then_source
        self.adapter = adapter
        self.attempts = 0

    async def stream(self) -> AsyncIterator[Advert]:
        self.attempts += 1
        if self.attempts <= self.failures or self.then_source is None:
            raise TransientError(f"Bluetooth adapter {self.adapter} not found (no /sys/class/bluetooth/{self.adapter})")
        async for advert in self.then_source.stream():
            yield advert


def bthome_encrypt(plain: bytes, mac: str, bindkey: bytes, counter: int, device_info: int = 0x41) -> bytes:
    """The service data of an encrypted BTHome v2 advert carrying ``plain`` measurement objects."""
    count = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([device_info]) + count
    sealed = AESCCM(bindkey, tag_length=4).encrypt(nonce, plain, None)
    return bytes([device_info]) + sealed[:-4] + count + sealed[-4:]


BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
RUUVI_COMPANY_ID = 0x0499


def ruuvi_df5(mac: str, temperature_c: float, humidity_pct: float, pressure_pa: int, sequence: int,
              battery_mv: int = 2950, tx_dbm: int = 4, movement: int = 0) -> bytes:
    """A RuuviTag's manufacturer data in data format 5 (24 bytes after company id 0x0499), per Ruuvi's spec."""
    power = ((battery_mv - 1600) & 0x7FF) << 5 | ((tx_dbm + 40) // 2 & 0x1F)
    return struct.pack(">BhHHhhhHBH6s", 0x05, round(temperature_c / 0.005), round(humidity_pct / 0.0025),
                       pressure_pa - 50000, 0, 0, 1000, power, movement & 0xFF, sequence & 0xFFFF,
                       bytes.fromhex(mac.replace(":", "")))


def bthome_plain(packet_id: int, battery_pct: int, temperature_c: float, humidity_pct: float) -> bytes:
    """Unencrypted BTHome v2 service data: packet id, battery, temperature, humidity (objects 0x00-0x03)."""
    return bytes([0x40, 0x00, packet_id & 0xFF, 0x01, battery_pct]) + struct.pack(
        "<BhBH", 0x02, round(temperature_c * 100), 0x03, round(humidity_pct * 100))


@dataclass(frozen=True, slots=True)
class SimSensor:
    """A BLE sensor of a simulated building: a RuuviTag or a BTHome thermometer around a temperature."""

    id: str  # device id: the first half of its point keys
    mac: str
    kind: Literal["ruuvi", "bthome"]
    temperature_c: float
    humidity_pct: float = 45.0
    rssi: int = -70


def write_adverts(path: str | Path, sensors: Sequence[SimSensor], *, interval_s: float = 5.0,
                  hours: float = 3.0) -> int:
    """Write a replay file of ``sensors`` each advertising every ``interval_s`` for ``hours``; lines written.

    Values wander slowly (a few tenths of a degree) and each advert carries a
    new measurement sequence or packet id, so the driver takes every one.
    After the last advert the replay holds, as a quiet radio: past ``hours``
    the sensors go offline, as they would with flat batteries.
    """
    rounds = max(1, int(hours * 3600 / interval_s))
    lines = [f"# {len(sensors)} simulated BLE sensors, one advert each every {interval_s:g} s for {hours:g} h"]
    for n in range(rounds):
        for i, sensor in enumerate(sensors):
            wobble = 0.3 * math.sin(n / 40.0 + i)
            t, h = sensor.temperature_c + wobble, sensor.humidity_pct + 2 * wobble
            rec: dict[str, object] = {"mac": sensor.mac, "rssi": sensor.rssi + n % 3,
                                      "delay_s": interval_s if i == 0 and n else 0.0}
            if sensor.kind == "ruuvi":
                rec["manufacturer_data"] = {str(RUUVI_COMPANY_ID): ruuvi_df5(sensor.mac, t, h, 101_325, n).hex()}
            else:
                rec["service_data"] = {BTHOME_UUID: bthome_plain(n, 90 - n // 2000, t, h).hex()}
            lines.append(json.dumps(rec))
    Path(path).write_text("\n".join(lines) + "\n")
    return len(lines) - 1
