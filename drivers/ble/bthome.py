"""BTHome v2 adverts through the bthome-ble library, mapped to the gateway's readings.

bthome-ble does the decoding and decryption; this module is the boundary that
(1) feeds it service data without a live Bluetooth stack, (2) turns its
``SensorUpdate`` into ``(quantity, value, unit)`` with the gateway's units
(degC, hPa, m3, ...), and (3) turns the conditions it only logs (wrong
bindkey, encrypted advert without key, plaintext from a device that should
encrypt, unknown version) into ``ProtocolError`` with a message that says
what to do. Upgrading bthome-ble touches this file only.

``decode_bthome`` is stateless: one advert in, one result out.
``BTHomeDevice`` keeps the library's per-device state, so repeated adverts
(same packet id within 4 s) and replayed encrypted adverts (encryption counter
going backwards) are dropped as the library intends.
"""

from __future__ import annotations

__all__ = ["BTHOME_UUID", "BTHomeAdvert", "BTHomeEvent", "BTHomeDevice", "decode_bthome", "parse_bindkey"]

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bthome_ble import BTHomeBluetoothDeviceData, SensorUpdate
from bthome_ble.const import MEAS_TYPES
from bthome_ble.parser import BTHomeVersion, EncryptionScheme
from habluetooth import BluetoothServiceInfoBleak
from sensor_state_data.description import BaseBinarySensorDescription, BaseSensorDescription

from zaas_edge.errors import ConfigError, ProtocolError

BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"

# The library logs decryption failures and bad payloads at warning/error level for
# Home Assistant's UI; here they become ProtocolError and counters, so keep it quiet.
logging.getLogger("bthome_ble").setLevel(logging.CRITICAL)

# Library units to the gateway's ASCII units. Pressure: mbar and hPa are the same number.
_UNITS: dict[str, str] = {
    "°C": "degC",
    "mbar": "hPa",
    "m³": "m3",
    "m³/h": "m3/h",
    "m/s²": "m/s2",
    "µS/cm": "uS/cm",
    "µg/m³": "ug/m3",
    "°": "deg",
    "°/s": "deg/s",
}
# Quantities renamed to the gateway's names; any other key is kept as the library names it.
_QUANTITIES: dict[str, str] = {
    "carbon_dioxide": "co2",
    "volatile_organic_compounds": "voc",
}
_UNITLESS: dict[str, str] = {"count": "count"}
_NUMBERED = re.compile(r"^(.+)_(\d+)$")
_LB_TO_KG = 0.45359237
_SKIPPED = {"signal_strength", "packet_id"}  # RSSI is the scanner's, packet id is metadata


def _classes(kind: type) -> set[str]:
    return {
        str(m.meas_format.device_class)
        for m in MEAS_TYPES.values()
        if isinstance(m.meas_format, kind) and m.meas_format.device_class
    }


# On/off objects named like a measured quantity (power on/off and power in W, battery
# low and battery %) get "_state" so the two never share a point key.
_BINARY_RENAMED = _classes(BaseBinarySensorDescription) & _classes(BaseSensorDescription)


@dataclass(frozen=True, slots=True)
class BTHomeEvent:
    """A transient event (button press, dimmer turn): not a reading."""

    key: str
    event_type: str
    properties: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BTHomeAdvert:
    mac: str
    readings: tuple[tuple[str, float, str], ...]
    events: tuple[BTHomeEvent, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)  # text, raw and timestamp objects
    packet_id: int | None = None
    encrypted: bool = False


def parse_bindkey(bindkey: bytes | str | None) -> bytes | None:
    """A bindkey from configuration: 16 bytes, or 32 hex digits."""
    if bindkey is None or bindkey == "":
        return None
    if isinstance(bindkey, str):
        try:
            bindkey = bytes.fromhex(bindkey)
        except ValueError:
            raise ConfigError("BTHome bindkey must be 32 hex digits") from None
    if len(bindkey) != 16:
        raise ConfigError(f"BTHome bindkey must be 16 bytes (32 hex digits), got {len(bindkey)} bytes")
    return bytes(bindkey)


def _service_info(service_data: bytes, mac: str, at: float) -> BluetoothServiceInfoBleak:
    return BluetoothServiceInfoBleak(
        name=mac,
        address=mac,
        rssi=0,
        manufacturer_data={},
        service_data={BTHOME_UUID: bytes(service_data)},
        service_uuids=[BTHOME_UUID],
        source="zaas-edge",
        device=None,  # type: ignore[arg-type]  # the parser never touches the BLEDevice
        advertisement=None,
        connectable=False,
        time=at,
        tx_power=None,
    )


def _run(parser: BTHomeBluetoothDeviceData, info: BluetoothServiceInfoBleak) -> SensorUpdate:
    try:
        return parser.update(info)
    except Exception as exc:  # the library's own bugs on hostile input must not escape as anything else
        data = bytes(info.service_data[BTHOME_UUID]).hex()
        raise ProtocolError(f"BTHome advert {data} could not be parsed: {exc!r}") from None


def _check(parser: BTHomeBluetoothDeviceData, service_data: bytes, mac: str) -> None:
    """Turn the library's silent refusals into errors."""
    encrypted = parser.encryption_scheme is EncryptionScheme.BTHOME_BINDKEY
    if parser.downgrade_detected:
        raise ProtocolError(
            f"BTHome device {mac} sent an unencrypted advert although a bindkey is configured: "
            "ignored (spoofing, or encryption turned off on the device: remove the bindkey if intended)"
        )
    if parser.bthome_version is not BTHomeVersion.V2:
        version = (service_data[0] >> 5) & 7
        raise ProtocolError(f"BTHome advert from {mac} declares version {version}, only version 2 is supported")
    if encrypted and not parser.bindkey:
        raise ProtocolError(f"BTHome advert from {mac} is encrypted: configure the device's bindkey")
    if encrypted and parser.decryption_failed:
        raise ProtocolError(
            f"BTHome advert from {mac} could not be decrypted: wrong bindkey for this device, or a corrupted advert"
        )


def _advert(update: SensorUpdate, mac: str, encrypted: bool) -> BTHomeAdvert:
    readings: list[tuple[str, float, str]] = []
    attributes: dict[str, str] = {}
    packet_id: int | None = None
    for key, value in update.entity_values.items():
        name = key.key
        native = value.native_value
        if name == "packet_id" and isinstance(native, (int, float)):
            packet_id = int(native)
        if name in _SKIPPED or native is None:
            continue
        description = update.entity_descriptions.get(key)
        native_unit = description.native_unit_of_measurement if description else None
        unit = str(native_unit) if native_unit else ""
        if isinstance(native, bool) or not isinstance(native, (int, float)):
            attributes[name] = native.isoformat() if isinstance(native, datetime) else str(native)
            continue
        # The library numbers repeated quantities: temperature_1, temperature_2.
        numbered = _NUMBERED.match(name)
        base, suffix = (numbered.group(1), "_" + numbered.group(2)) if numbered else (name, "")
        quantity = _QUANTITIES.get(base, base) + suffix
        number = float(native)
        if unit == "lb":
            number, unit = round(number * _LB_TO_KG, 3), "kg"
        unit = _UNITS.get(unit, unit) or _UNITLESS.get(base, "")
        readings.append((quantity, number, unit))
    for key, state in update.binary_entity_values.items():
        if state.native_value is not None:
            numbered = _NUMBERED.match(key.key)
            base, suffix = (numbered.group(1), "_" + numbered.group(2)) if numbered else (key.key, "")
            quantity = base + "_state" + suffix if base in _BINARY_RENAMED else key.key
            readings.append((quantity, 1.0 if state.native_value else 0.0, "bool"))
    events = tuple(
        BTHomeEvent(key.key, event.event_type, event.event_properties) for key, event in update.events.items()
    )
    return BTHomeAdvert(mac, tuple(readings), events, attributes, packet_id, encrypted)


def decode_bthome(service_data: bytes, mac: str, bindkey: bytes | str | None = None) -> BTHomeAdvert:
    """Decode one BTHome v2 advert (service data of UUID 0xFCD2, after the UUID).

    ``mac`` is the advertiser's address "AA:BB:CC:DD:EE:FF"; it is part of the
    decryption nonce. Raises ``ProtocolError`` when the advert cannot be used.
    """
    return _decode_fresh(bytes(service_data), mac, parse_bindkey(bindkey), 0.0)[0]


def _decode_fresh(
    service_data: bytes, mac: str, bindkey: bytes | None, at: float
) -> tuple[BTHomeAdvert, BTHomeBluetoothDeviceData]:
    if not service_data:
        raise ProtocolError(f"empty BTHome service data from {mac}")
    parser = BTHomeBluetoothDeviceData(bindkey=bindkey)
    update = _run(parser, _service_info(service_data, mac, at))
    _check(parser, service_data, mac)
    return _advert(update, mac, parser.encryption_scheme is EncryptionScheme.BTHOME_BINDKEY), parser


class BTHomeDevice:
    """One BTHome device, remembering what the library needs to drop repeats and replays.

    ``decode`` returns None for an advert the device already sent (the same
    packet id again within 4 s, an older packet id, an identical encrypted
    advert) or a replayed encrypted one (counter going backwards).
    """

    def __init__(self, mac: str, bindkey: bytes | str | None = None) -> None:
        self.mac = mac
        self.bindkey = parse_bindkey(bindkey)
        self._state = BTHomeBluetoothDeviceData(bindkey=self.bindkey)
        self.skipped = 0  # adverts dropped as repeats or replays

    def decode(self, service_data: bytes, at: float) -> BTHomeAdvert | None:
        """Decode one advert heard at ``at`` (monotonic seconds); None when it is a repeat or a replay."""
        # A fresh parser gives this advert's values alone (the library's SensorUpdate
        # accumulates), and its errors; the long-lived one decides repeat or replay.
        advert, fresh = _decode_fresh(bytes(service_data), self.mac, self.bindkey, at)
        info = _service_info(service_data, self.mac, at)
        _run(self._state, info)
        accepted = self._state.last_service_info is info
        if advert.encrypted and self._state.encryption_counter != fresh.encryption_counter:
            accepted = False  # counter went backwards: the library refused to decrypt
        if not accepted and (advert.readings or advert.events or advert.attributes or advert.packet_id is not None):
            self.skipped += 1
            return None
        return advert

    def reset_replay_protection(self) -> None:
        """After a battery change, a device that seeds its counter randomly starts anywhere."""
        self._state.reset_encryption_counter()
