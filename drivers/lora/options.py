"""Configuration of the ``lora`` driver: where to listen, the keys file, the limits."""

from __future__ import annotations

__all__ = ["LoraOptions", "WILDCARD_V4"]

from pathlib import Path

from pydantic import Field, field_validator

from zaas_edge.driver import DriverOptions

WILDCARD_V4 = "0.0.0.0"
# Spellings of "every interface" other than the explicit one: refused, so that
# listening beyond the box is always a deliberate, visible choice.
_IMPLICIT_WILDCARDS = {"", "*", "::", "[::]", "0", "any"}


class LoraOptions(DriverOptions):
    bind: str = Field(
        default="127.0.0.1",
        description='Address the GWMP server listens on; "0.0.0.0" (all interfaces) only when written out',
    )
    port: int = Field(default=1700, ge=0, le=65535, description="UDP port (0: any free port, for tests)")
    keys_file: Path = Field(
        description="ABP session keys of the devices (mode 0600), managed with `zaas-edge lora add-device`",
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
        description="Frame counters are saved at most this often (and on stop)",
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
        value = value.strip()
        if value.lower() in _IMPLICIT_WILDCARDS:
            raise ValueError(
                f'bind = "{value}" would listen on every interface: write bind = "0.0.0.0" to mean it, '
                'or keep the default "127.0.0.1" with the packet forwarder on this box'
            )
        return value
