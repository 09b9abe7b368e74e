"""Configuration of the ``tic`` driver: one Linky (or "bleu") meter's customer port.

::

    [[drivers]]
    id = "linky"
    type = "tic"
    port = "/dev/ttyUSB0"          # a USB TIC dongle, or /dev/serial0 for a Pi UART hat
    mode = "auto"                  # or "historic" (1200 Bd) / "standard" (9600 Bd)
    meter_id = "031762120855"      # ADSC (standard) or ADCO (historic); optional
    offline_after_s = 10
    store_interval_s = 60
    deadband_pct = 5
    points = { apparent_power = { store_interval_s = 10, deadband_abs = 100 } }

Every frame (about one a second) goes to the hub for the rules engine and
MQTT; ``store_interval_s`` and the deadbands decide which readings are also
stored (see :mod:`.throttle`).
"""

from __future__ import annotations

__all__ = ["TicOptions", "StorePolicy", "MODES"]

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zaas_edge.driver import DriverOptions

MODES = ("auto", "historic", "standard")
_GLOB = re.compile(r"^[a-z0-9_*?\[\]-]{1,64}$")


class StorePolicy(BaseModel):
    """What is stored of one point (or of the points a glob matches); unset keys take the driver's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store_interval_s: float | None = Field(
        default=None, ge=0, le=86400, description="Store at least this often even when the value holds")
    deadband_pct: float | None = Field(
        default=None, ge=0, le=100, description="Store when the value moved more than this percentage")
    deadband_abs: float | None = Field(
        default=None, ge=0, description="Store when the value moved more than this, in the point's unit")


class TicOptions(DriverOptions):
    port: str = Field(description="Serial device of the TIC dongle, e.g. /dev/ttyUSB0 (7E1)")
    mode: Literal["auto", "historic", "standard"] = Field(
        default="auto",
        description="historic (1200 Bd), standard (9600 Bd) or auto: try 9600 then 1200, keep the one "
                    "whose checksums pass")
    meter_id: str | None = Field(
        default=None, pattern=r"^[0-9A-Za-z]{1,16}$",
        description="The meter's ADSC/ADCO: its device is known (and can go offline) before the first frame")
    offline_after_s: float = Field(
        default=10.0, gt=0, le=86400,
        description="No valid frame for this long: the meter is offline (a frame comes every 1 to 2 s)")
    detect_s: float = Field(default=4.0, gt=0, le=60, description="Seconds listened at each speed in auto mode")
    store_interval_s: float = Field(
        default=60.0, ge=0, le=86400,
        description="Store each point at least this often; 0 stores every frame")
    deadband_pct: float = Field(
        default=5.0, ge=0, le=100,
        description="Store a measurement (not an energy index) when it moved more than this percentage")
    deadband_abs: float = Field(
        default=0.0, ge=0, description="... and more than this, in the point's unit")
    points: dict[str, StorePolicy] = Field(
        default_factory=dict,
        description="Per point (quantity, or a glob such as 'energy_*'): its own interval and deadbands")
    retry_initial_s: float = Field(default=1.0, gt=0, le=600, description="First wait before reopening a lost port")
    retry_max_s: float = Field(default=30.0, gt=0, le=3600, description="Longest wait between two attempts")

    @field_validator("points")
    @classmethod
    def _globs(cls, v: dict[str, StorePolicy]) -> dict[str, StorePolicy]:
        for key in v:
            if not _GLOB.match(key):
                raise ValueError(f"point {key!r} is not a quantity or a glob of quantities (a-z, 0-9, _, *, ?)")
        return v
