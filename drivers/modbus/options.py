"""Configuration of a Modbus bus: the ``[[drivers]] type = "modbus"`` section.

One section is one bus: a Modbus TCP endpoint, an RS-485 line on a serial
port (RTU), or RTU frames carried over TCP by a serial device server (Moxa
NPort, USR-TCP232 in "TCP server, no protocol conversion" mode). Its devices
are listed inline with the profile that describes their registers::

    [[drivers]]
    id = "meters-a"
    type = "modbus"
    transport = "rtu"
    port = "/dev/ttyUSB0"
    baudrate = 9600
    devices = [
      { id = "m1", unit = 1, profile = "eastron-sdm630" },
      { id = "m2", unit = 2, profile = "abb-b23", interval_fast_s = 5,
        points = { energy_import = { interval_s = 900 } } },
    ]

Validation happens here, so a typo is reported by ``zaas-edge config check``
with its key path (``drivers[0].devices[1].unit``), not when the bus opens.
"""

from __future__ import annotations

__all__ = [
    "parse_units",
    "ModbusOptions",
    "DeviceOptions",
    "PointOverride",
    "BAUD_RATES",
    "char_time_s",
    "min_frame_gap_s",
]

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from zaas_edge.driver import ID_PATTERN, DriverOptions
from zaas_edge.errors import ConfigError

from .cost import char_time_s, min_frame_gap_s
from .decode import WordOrder
from .profile import Profile, get_profile, load_profile

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
Baud = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointOverride(_Model):
    """Per-point changes to a profile, for one device."""

    enabled: bool = Field(default=True, description="false: never read this point")
    interval_s: float | None = Field(default=None, gt=0, le=86400, description="Poll interval of this point")
    scale: float | None = Field(default=None, description="Replaces the profile's scale (a CT ratio, say)")
    offset: float | None = Field(default=None, description="Replaces the profile's offset")
    word_order: WordOrder | None = Field(default=None, description="Replaces the profile's word order")
    writable: bool | None = Field(default=None, description="Allow (or forbid) writes to this point")

    @field_validator("scale")
    @classmethod
    def _scale_not_zero(cls, v: float | None) -> float | None:
        if v == 0:
            raise ValueError("scale cannot be 0")
        return v


class DeviceOptions(_Model):
    """One device (unit id) on the bus."""

    id: str = Field(pattern=ID_PATTERN, description="Device id: the first half of its point keys")
    unit: int = Field(ge=1, le=247, description="Modbus unit id (slave address), 1 to 247")
    profile: str | None = Field(default=None, description="Name of a built-in profile (zaas-edge profiles list)")
    profile_file: Path | None = Field(default=None, description="Path of a profile TOML of your own")
    enabled: bool = True
    interval_fast_s: float | None = Field(
        default=None, gt=0, le=86400, description="Poll interval of instantaneous values (default: the profile's)")
    interval_slow_s: float | None = Field(
        default=None, gt=0, le=86400, description="Poll interval of energy counters (default: the profile's)")
    timeout_s: float | None = Field(default=None, gt=0, le=30, description="Answer timeout (default: the bus's)")
    inter_frame_delay_ms: float | None = Field(
        default=None, ge=0, le=1000,
        description="Silence before each request to this device (RTU; default: the bus's)")
    points: dict[str, PointOverride] = Field(default={}, description="Per-point overrides, by quantity")

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                get_profile(v)
            except ConfigError as exc:
                raise ValueError(exc.issues[0].message) from None
        return v

    @field_validator("profile_file")
    @classmethod
    def _readable_profile(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                load_profile(v)
            except ConfigError as exc:
                raise ValueError("; ".join(str(i) for i in exc.issues)) from None
        return v

    @field_validator("points")
    @classmethod
    def _known_points(cls, v: dict[str, PointOverride], info: ValidationInfo) -> dict[str, PointOverride]:
        name, path = info.data.get("profile"), info.data.get("profile_file")
        if not v or (name is None and path is None):
            return v
        try:
            profile = get_profile(name) if name else load_profile(path)  # type: ignore[arg-type]
        except ConfigError:
            return v  # reported on its own key
        unknown = sorted(set(v) - profile.quantities)
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a point of profile {profile.name!r} "
                             f"(see zaas-edge profiles show {profile.name})")
        return v

    @model_validator(mode="after")
    def _one_profile(self) -> DeviceOptions:
        if (self.profile is None) == (self.profile_file is None):
            raise ValueError("give `profile` (a built-in profile name) or `profile_file`, exactly one")
        return self

    @property
    def resolved_profile(self) -> Profile:
        """The device's profile. Not kept on the options: both lookups already share one Profile per
        name or file (a profile file is checked for changes by one ``stat``), and a cached value
        would grow each device's attribute table, some 400 bytes a meter, for a value read once."""
        return get_profile(self.profile) if self.profile else load_profile(self.profile_file)  # type: ignore[arg-type]


class ModbusOptions(DriverOptions):
    """One Modbus bus and the devices on it."""

    transport: Literal["tcp", "rtu", "rtu-over-tcp"] = Field(
        description="tcp: Modbus TCP; rtu: RS-485 serial port; rtu-over-tcp: RTU frames through a serial device server")
    host: str | None = Field(default=None, min_length=1, description="TCP host (tcp, rtu-over-tcp)")
    port: int | str | None = Field(
        default=None, description="TCP port (tcp: default 502; rtu-over-tcp: required) or serial device (rtu)")
    baudrate: Baud = Field(default=9600, description="Serial speed (rtu)")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Serial parity: N, E or O (rtu)")
    stopbits: Literal[1, 2] = Field(default=1, description="Serial stop bits (rtu)")
    bytesize: Literal[8] = Field(default=8, description="Serial data bits: Modbus RTU is always 8")
    timeout_s: float = Field(default=1.0, gt=0, le=30, description="Answer timeout per request")
    inter_frame_delay_ms: float | None = Field(
        default=None, ge=0, le=1000,
        description="Silence between frames (RTU); default: 3.5 character times at the baud rate")
    turnaround_ms: float | None = Field(
        default=None, ge=0, le=5000,
        description="How long a device takes to answer a request (RTU), or the network round trip (tcp), for the "
                    "read planner's weighing of one more request against unused registers (default: 20 ms on a "
                    "serial line, 5 ms on TCP, 25 ms RTU over TCP)")
    resync_s: float | None = Field(
        default=None, ge=0, le=30,
        description="After a failed request on a serial line, how long to listen for a late answer before the "
                    "next request (default: the request's timeout, at most 0.5 s)")
    max_concurrency: int = Field(
        default=2, ge=1, le=16, description="Requests in flight at once to a TCP endpoint (tcp only)")
    offline_after: int = Field(default=3, ge=1, le=100, description="Failed polls in a row that mark a device offline")
    retry_initial_s: float = Field(default=5.0, gt=0, le=3600, description="First retry of an offline device")
    retry_max_s: float = Field(default=300.0, gt=0, le=86400, description="Longest wait between retries")
    write_retries: int = Field(default=2, ge=0, le=10, description="Extra attempts when a write does not read back")
    devices: list[DeviceOptions] = Field(min_length=1, description="The devices on this bus")

    @field_validator("port")
    @classmethod
    def _port_shape(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and not 1 <= v <= 65535:
            raise ValueError(f"a TCP port is 1 to 65535, got {v}")
        if isinstance(v, str) and not v:
            raise ValueError("the serial device path is empty")
        return v

    @model_validator(mode="after")
    def _transport_keys(self) -> ModbusOptions:
        if self.transport == "rtu":
            if not isinstance(self.port, str):
                raise ValueError('transport "rtu" needs `port`, the serial device (port = "/dev/ttyUSB0")')
            if self.host is not None:
                raise ValueError('`host` is for transports "tcp" and "rtu-over-tcp"; an RTU bus has a serial `port`')
        else:
            if self.host is None:
                raise ValueError(f'transport "{self.transport}" needs `host` (host = "192.0.2.10")')
            if isinstance(self.port, str):
                raise ValueError(
                    f'transport "{self.transport}" needs a TCP port number, not the path {self.port!r}')
            if self.transport == "rtu-over-tcp" and self.port is None:
                raise ValueError(
                    'transport "rtu-over-tcp" needs `port`, the TCP port of the serial server (often 4001)')
        seen: dict[str, int] = {}
        units: dict[int, str] = {}
        for d in self.devices:
            if d.id in seen:
                raise ValueError(f"device id {d.id!r} is used twice; ids must be unique")
            seen[d.id] = d.unit
            if d.unit in units:
                raise ValueError(f"unit {d.unit} is used by devices {units[d.unit]!r} and {d.id!r}; "
                                 "two devices on one bus need different unit ids")
            units[d.unit] = d.id
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self

    @property
    def is_serial_line(self) -> bool:
        """One request at a time: an RS-485 line, directly or behind a serial server."""
        return self.transport != "tcp"

    @property
    def tcp_port(self) -> int:
        return int(self.port) if self.port is not None else 502

    @property
    def frame_gap_s(self) -> float:
        """The bus-wide silent interval between frames (0 for Modbus TCP)."""
        if self.transport == "tcp":
            return 0.0
        if self.inter_frame_delay_ms is not None:
            return self.inter_frame_delay_ms / 1000
        return min_frame_gap_s(self.baudrate, self.parity, self.stopbits, self.bytesize)

    @property
    def turnaround_s(self) -> float | None:
        """The configured answer time in seconds, or None for the planner's default."""
        return None if self.turnaround_ms is None else self.turnaround_ms / 1000

    def describe(self) -> str:
        """Where the bus is, for messages: ``tcp 192.0.2.10:502``, ``rtu /dev/ttyUSB0 9600 8N1``."""
        if self.transport == "rtu":
            return f"rtu {self.port} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"
        return f"{self.transport} {self.host}:{self.tcp_port}"


def parse_units(text: str, low: int = 1, high: int = 247) -> list[int]:
    """Unit ids written as ranges, ``"1-5,9"`` -> ``[1, 2, 3, 4, 5, 9]``; ValueError when out of range."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if not low <= a <= b <= high:
            raise ValueError(f"unit range {part!r} is not within {low}..{high}")
        out.extend(range(a, b + 1))
    return sorted(set(out))
