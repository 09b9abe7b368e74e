"""Configuration of the ``ble`` driver: the adapter, the known devices, throttling."""

from __future__ import annotations

__all__ = ["BleOptions", "BleDevice", "normalize_mac"]

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zaas_edge.config_types import SecretFile
from zaas_edge.driver import ID_PATTERN, DriverOptions

_MAC = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def normalize_mac(mac: str) -> str:
    """"aa-bb-cc-dd-ee-ff" and "aa:bb:..." both become "AA:BB:CC:DD:EE:FF"."""
    value = mac.strip().upper().replace("-", ":")
    if not _MAC.match(value):
        raise ValueError(f"expected a Bluetooth address like AA:BB:CC:DD:EE:FF, got {mac!r}")
    return value


class BleDevice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mac: str = Field(description="Bluetooth address, AA:BB:CC:DD:EE:FF")
    id: str = Field(pattern=ID_PATTERN, description="Device id: the device part of point keys")
    bindkey_file: SecretFile | None = Field(
        default=None, description="File (mode 0600) with the BTHome bindkey, 32 hex digits, for encrypted adverts",
    )
    offline_after_s: float | None = Field(
        default=None, gt=0, le=7 * 86400,
        description="Not heard for this long: offline (default: the driver's offline_after_s)",
    )

    @field_validator("mac")
    @classmethod
    def _mac(cls, v: str) -> str:
        return normalize_mac(v)


class BleOptions(DriverOptions):
    adapter: str = Field(default="hci0", pattern=r"^hci[0-9]{1,2}$", description="Bluetooth adapter")
    scanning_mode: Literal["passive", "active"] = Field(
        default="passive",
        description="passive: listen only (BlueZ advertisement monitor); falls back to active where unsupported",
    )
    min_interval_s: float = Field(
        default=10.0, ge=0.0, le=3600.0, description="At most one set of readings per device this often",
    )
    accept_unknown: bool = Field(
        default=False, description="Also report RuuviTag and BTHome devices not listed in devices (id ble-<mac>)",
    )
    offline_after_s: float = Field(
        default=600.0, gt=0, le=7 * 86400,
        description="A device with no valid advert for this long is reported offline (several advert intervals)",
    )
    retry_initial_s: float = Field(default=2.0, gt=0, le=600, description="First wait before reopening a lost adapter")
    retry_max_s: float = Field(default=60.0, gt=0, le=3600, description="Longest wait between two attempts")
    devices: list[BleDevice] = Field(default_factory=list)

    @field_validator("devices")
    @classmethod
    def _unique(cls, v: list[BleDevice]) -> list[BleDevice]:
        for attr in ("mac", "id"):
            seen: set[str] = set()
            for d in v:
                value = getattr(d, attr)
                if value in seen:
                    raise ValueError(f"duplicate device {attr} {value}")
                seen.add(value)
        return v
