"""RuuviTag data format 5 (RAWv2), sans I/O.

Input is the manufacturer-specific data after the company id 0x0499 (what
bleak gives as ``manufacturer_data[0x0499]``), 24 bytes starting with 0x05.
Every field has a "not available" sentinel (the minimum of a signed field,
the maximum of an unsigned one); those become ``None`` and no reading is made,
so a broken sensor never shows up as -163.835 degC.

Units follow the gateway's conventions: degC, %, hPa (pressure), g
(acceleration), V, dBm.
"""

from __future__ import annotations

__all__ = ["RUUVI_COMPANY_ID", "RuuviDF5", "decode_df5", "manufacturer_data"]

import struct
from dataclasses import dataclass

from zaas_edge.errors import ProtocolError

RUUVI_COMPANY_ID = 0x0499
_DF5 = 0x05
_DF5_LEN = 24
_LAYOUT = struct.Struct(">BhHHhhhHBH6s")


@dataclass(frozen=True, slots=True)
class RuuviDF5:
    temperature_c: float | None
    humidity_pct: float | None
    pressure_pa: int | None
    acc_x_g: float | None
    acc_y_g: float | None
    acc_z_g: float | None
    battery_v: float | None
    tx_power_dbm: int | None
    movement_counter: int | None
    measurement_sequence: int | None
    mac: str | None  # "CB:B8:33:4C:88:4F"

    def readings(self) -> list[tuple[str, float, str]]:
        """(quantity, value, unit) for every available field."""
        out: list[tuple[str, float, str]] = []
        for quantity, value, unit in (
            ("temperature", self.temperature_c, "degC"),
            ("humidity", self.humidity_pct, "%"),
            ("pressure", None if self.pressure_pa is None else self.pressure_pa / 100, "hPa"),
            ("acceleration_x", self.acc_x_g, "g"),
            ("acceleration_y", self.acc_y_g, "g"),
            ("acceleration_z", self.acc_z_g, "g"),
            ("battery_voltage", self.battery_v, "V"),
            ("tx_power", self.tx_power_dbm, "dBm"),
            ("movement_counter", self.movement_counter, "count"),
        ):
            if value is not None:
                out.append((quantity, float(value), unit))
        return out


def decode_df5(data: bytes) -> RuuviDF5:
    """Decode one data format 5 payload; raise ``ProtocolError`` if it is not one.

    Bytes after the 24 of the format are ignored: some scanners append the
    RSSI, and a later revision may extend the frame.
    """
    data = bytes(data)
    if not data:
        raise ProtocolError("empty Ruuvi manufacturer data")
    if data[0] != _DF5:
        raise ProtocolError(f"Ruuvi data format {data[0]} is not supported (only format 5, RAWv2)")
    if len(data) < _DF5_LEN:
        raise ProtocolError(f"Ruuvi data format 5 needs {_DF5_LEN} bytes, got {len(data)}")
    _, t, h, p, ax, ay, az, power, movement, seq, mac = _LAYOUT.unpack_from(data)
    volts_raw, tx_raw = power >> 5, power & 0x1F
    return RuuviDF5(
        temperature_c=None if t == -0x8000 else round(t * 0.005, 3),
        humidity_pct=None if h == 0xFFFF else round(h * 0.0025, 4),
        pressure_pa=None if p == 0xFFFF else p + 50000,
        acc_x_g=None if ax == -0x8000 else ax / 1000,
        acc_y_g=None if ay == -0x8000 else ay / 1000,
        acc_z_g=None if az == -0x8000 else az / 1000,
        battery_v=None if volts_raw == 0x7FF else (1600 + volts_raw) / 1000,
        tx_power_dbm=None if tx_raw == 0x1F else -40 + 2 * tx_raw,
        movement_counter=None if movement == 0xFF else movement,
        measurement_sequence=None if seq == 0xFFFF else seq,
        mac=None if mac == b"\xff" * 6 else ":".join(f"{b:02X}" for b in mac),
    )


def manufacturer_data(advertisement: bytes, company_id: int = RUUVI_COMPANY_ID) -> bytes | None:
    """The manufacturer data of ``company_id`` in raw advertisement AD structures (None if absent).

    For scanners that hand over the raw advertisement rather than a parsed
    dictionary; a truncated structure ends the scan.
    """
    i = 0
    while i < len(advertisement):
        length = advertisement[i]
        if length == 0:
            break
        end = i + 1 + length
        if end > len(advertisement):
            break
        if advertisement[i + 1] == 0xFF and length >= 3:
            cid = int.from_bytes(advertisement[i + 2 : i + 4], "little")
            if cid == company_id:
                return bytes(advertisement[i + 4 : end])
        i = end
    return None
