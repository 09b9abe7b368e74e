"""Configuration of the ``mbus`` driver: one serial segment and its meters.

::

    [[drivers]]
    id = "mbus-1"
    type = "mbus"
    port = "/dev/ttyUSB0"
    baudrate = 2400
    meters = [
      { id = "heat-1", address = 5, interval_s = 900, energy_unit = "kWh" },
      { id = "water-1", secondary = "12345699FFFFFFFF", points = ["volume", "volume.s1"] },
    ]
"""

from __future__ import annotations

__all__ = ["MBusOptions", "MeterOptions", "ENERGY_UNITS"]

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zaas_edge.driver import ID_PATTERN, DriverOptions

ENERGY_UNITS = ("Wh", "kWh", "MWh", "J", "kJ", "MJ", "GJ")


class MeterOptions(BaseModel):
    """One meter on the segment, reached by primary or by secondary address."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN, description="Device part of the point keys: '<id>/<record key>'")
    address: int | None = Field(default=None, ge=0, le=250, description="Primary address (0 to 250)")
    secondary: str | None = Field(
        default=None, pattern=r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{8})?$",
        description="Secondary address: 8-digit identification, or 16 hex digits with manufacturer, "
                    "version and medium (F digits and FF bytes are wildcards)",
    )
    interval_s: float = Field(default=900.0, ge=1.0, le=86400.0, description="Seconds between two readouts")
    points: list[str] | None = Field(
        default=None, description="Record keys to keep (energy, volume.s1, ...); default: every numeric record")
    energy_unit: Literal["Wh", "kWh", "MWh", "J", "kJ", "MJ", "GJ"] | None = Field(
        default=None, description="Convert energy records to this unit; default: the meter's (Wh or J)")

    @model_validator(mode="after")
    def _one_address(self) -> MeterOptions:
        if (self.address is None) == (self.secondary is None):
            raise ValueError("set exactly one of address (primary, 0 to 250) or secondary (8 or 16 hex digits)")
        return self

    @property
    def target(self) -> int | str:
        return self.address if self.address is not None else str(self.secondary).upper()


class MBusOptions(DriverOptions):
    port: str = Field(description="Serial device of the M-Bus master (level converter), e.g. /dev/ttyUSB0")
    baudrate: Literal[300, 600, 1200, 2400, 4800, 9600, 19200, 38400] = Field(
        default=2400, description="Line speed; every meter on the segment must use it")
    retries: int = Field(default=2, ge=0, le=10, description="Repeats of a request that got no or a bad answer")
    extra_timeout_s: float = Field(
        default=0.0, ge=0.0, le=10.0, description="Added to the answer window computed from the baud rate")
    max_telegrams: int = Field(default=8, ge=1, le=64, description="Most telegrams read for one multi-telegram readout")
    offline_after: int = Field(default=3, ge=1, le=1000,
                               description="Failed readouts in a row before a meter is reported offline")
    reset_at_start: bool = Field(default=True, description="Send SND_NKE to every meter when the driver starts")
    meters: list[MeterOptions] = Field(min_length=1, description="The meters read on this segment")

    @model_validator(mode="after")
    def _unique(self) -> MBusOptions:
        for what, values in (("id", [m.id for m in self.meters]),
                             ("address", [m.address for m in self.meters if m.address is not None]),
                             ("secondary", [m.target for m in self.meters if m.secondary is not None])):
            dupes = sorted({str(v) for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"meters share the same {what}: {', '.join(dupes)}")
        return self
