"""Configuration of the ``lora`` driver: where to listen, the keys file, the forwarders, the limits."""

from __future__ import annotations

__all__ = ["LoraOptions", "WILDCARD_V4"]

import re

from pydantic import Field, field_validator

from zaas_edge.bind import parse_bind
from zaas_edge.config_types import MaybeSecretFile
from zaas_edge.driver import DriverOptions

WILDCARD_V4 = "0.0.0.0"
_EUI = re.compile(r"^[0-9A-Fa-f]{16}$")


class LoraOptions(DriverOptions):
    bind: str = Field(
        default="127.0.0.1",
        description='IP address the GWMP server listens on; every interface only as "0.0.0.0" or "::" written out',
    )
    port: int = Field(default=1700, ge=0, le=65535, description="UDP port (0: any free port, for tests)")
    keys_file: MaybeSecretFile = Field(
        description="Keys of the devices (a secret file: absolute path, mode 0600), managed with "
                    "`zaas-edge lora add-device`; absent until the first device is added",
    )
    forwarders: list[str] = Field(
        default_factory=list,
        description="Gateway EUIs (16 hex digits) of the packet forwarders to accept; empty: any (set it: recommended)",
    )
    max_forwarders: int = Field(
        default=32, ge=1, le=1024,
        description="At most this many forwarders are tracked; a new one beyond it is refused unless one is silent",
    )
    dedup_window_s: float = Field(
        default=0.2, ge=0.0, le=5.0,
        description="Copies of one frame heard by several forwarders within this window are merged",
    )
    max_fcnt_gap: int = Field(
        default=16384, ge=1, le=65535,
        description="A frame counter further ahead than this is treated as a replay or a reset",
    )
    bad_mic_threshold: int = Field(
        default=5, ge=1, le=100000,
        description="Bad MICs per device within bad_mic_window_s that raise a lora.security event",
    )
    bad_mic_window_s: float = Field(default=300.0, gt=0, le=86400)
    max_datagram_bytes: int = Field(
        default=65507, ge=64, le=65507, description="Larger datagrams are dropped as oversize",
    )
    forwarder_timeout_s: float = Field(
        default=120.0, gt=0, le=86400,
        description="A forwarder silent this long is reported offline (gateway 'online' reading 0)",
    )
    offline_after_s: float = Field(
        default=3600.0, gt=0, le=7 * 86400,
        description="A device with no valid uplink for this long is reported offline (several of its report intervals)",
    )
    state_save_interval_s: float = Field(
        default=10.0, ge=0.0, le=3600,
        description="No longer used (frame counters are saved before the readings they guard leave the "
                    "driver); accepted so older files still load",
    )

    net_id: str = Field(
        default="000000", pattern=r"^[0-9A-Fa-f]{6}$",
        description="NetID sent in OTAA join accepts; a type 0 NetID (000000 and 000001 are for private networks)",
    )
    join_cflist: bool = Field(
        default=True,
        description="Join accepts carry the EU868 CFList with channels 867.1 to 867.9 MHz (3 default ones + 5)",
    )

    @field_validator("net_id")
    @classmethod
    def _type0_net_id(cls, value: str) -> str:
        if int(value, 16) >> 21:
            raise ValueError(f"NetID {value.upper()} is not a type 0 NetID: use 000000 or 000001, "
                             "or the type 0 NetID the LoRa Alliance assigned you")
        return value.upper()

    @field_validator("bind")
    @classmethod
    def _explicit_wildcard(cls, value: str) -> str:
        return parse_bind(value)

    @field_validator("forwarders")
    @classmethod
    def _euis(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for eui in value:
            if not isinstance(eui, str) or not _EUI.match(eui.strip()):
                raise ValueError(f"forwarder EUI {eui!r} is not 16 hex digits (its gateway_ID, e.g. AA555A0000000001)")
            if eui.strip().upper() not in out:
                out.append(eui.strip().upper())
        return out
