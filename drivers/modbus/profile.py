"""Device profiles: a meter's register map as data (TOML), validated into frozen models.

A profile names the device and the manual it was written from, sets defaults
(table, word order, ``max_gap``), optionally says how to detect the device
(the SunSpec ``SunS`` marker), and lists its points. Addresses are 0-based
protocol addresses (what goes on the wire), never the 1-based "register
numbers" (30001, 40001) of many manuals. Every point carries a ``source``
tracing it to the page or table of the manual, so a reviewer can check it.

Quantity names are the stable second half of a point key
(``<device_id>/<quantity>``): ``power``, ``power_l1``, ``voltage_l1``,
``current_l1``, ``pf``, ``frequency``, ``energy_import``, ``energy_export``,
and so on. ``REQUIRED_METER``/``REQUIRED_INVERTER`` are what every profile of
the library must read (or list under ``unsupported`` with the reason).

The library ships in ``zaas_edge.drivers`` under ``profiles/modbus``;
``load_profiles()`` reads it, ``get_profile(name)`` picks one.
"""

from __future__ import annotations

__all__ = [
    "Profile",
    "ProfilePoint",
    "Defaults",
    "DocRef",
    "Detection",
    "DetectionExpect",
    "TableName",
    "TABLES",
    "REQUIRED_METER",
    "REQUIRED_INVERTER",
    "required_quantities",
    "parse_profile",
    "load_profile",
    "load_profiles",
    "get_profile",
    "sf_key",
    "PLAUSIBLE_BY_UNIT",
    "PLAUSIBLE_ANY",
]

import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zaas_edge.config import validation_issues
from zaas_edge.driver import ID_PATTERN
from zaas_edge.errors import ConfigError, ConfigIssue, ProtocolError
from zaas_edge.model import Point

from .decode import (
    DataType,
    Decoded,
    RegisterSpec,
    SentinelPolicy,
    WordOrder,
    decode_string,
    decode_value,
    register_count,
)
from .plan import ReadPoint, Table

TableName = Literal["coils", "discrete_inputs", "holding", "input"]
TABLES: dict[str, Table] = {
    "coils": Table.COILS,
    "discrete_inputs": Table.DISCRETE_INPUTS,
    "holding": Table.HOLDING,
    "input": Table.INPUT,
}

_PHASES = ("l1", "l2", "l3")
REQUIRED_METER_3P = frozenset(
    ["power", "pf", "frequency", "energy_import", "energy_export"]
    + [f"{q}_{ph}" for q in ("power", "voltage", "current") for ph in _PHASES]
)
REQUIRED_METER_1P = frozenset(
    ["power", "pf", "frequency", "energy_import", "energy_export", "voltage_l1", "current_l1"]
)
REQUIRED_METER = REQUIRED_METER_3P
# An inverter is held to the same list; what it cannot measure (SunSpec 101-103
# have no per-phase power nor an import counter) it lists under `unsupported`.
REQUIRED_INVERTER = REQUIRED_METER_3P
# Actuators measure little: a relay module its coils (how many varies), an EV
# charger at least the power it draws and the current limit load shedding writes.
REQUIRED_RELAY: frozenset[str] = frozenset()
REQUIRED_CHARGER = frozenset(["power", "current_limit"])

_ENERGY_UNITS = {"Wh", "kWh", "MWh", "varh", "kvarh", "VAh", "kVAh"}
# Magnitudes no device of a building reaches, by unit: past them a value is garbage read from a
# well-framed answer, stored with quality error. Wide on purpose (a site transformer, decades of
# counting); a profile point narrows its own with `plausible`.
PLAUSIBLE_BY_UNIT: dict[str, float] = {
    "V": 1e6, "A": 1e6, "W": 1e10, "kW": 1e7, "MW": 1e4, "var": 1e10, "kvar": 1e7, "VA": 1e10, "kVA": 1e7,
    "Hz": 1e3, "Wh": 1e16, "kWh": 1e13, "MWh": 1e10, "varh": 1e16, "kvarh": 1e13, "VAh": 1e16, "kVAh": 1e13,
    "°C": 1e4, "%": 1e4,
}
PLAUSIBLE_ANY = 1e15  # any other unit, and dimensionless points (power factor, status words)
_QUANTITY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


def sf_key(address: int) -> str:
    """The plan key of a scale-factor register (read along with the points that use it)."""
    return f"sf@{address}"


def required_quantities(kind: str, phases: int) -> frozenset[str]:
    if kind == "inverter":
        return REQUIRED_INVERTER
    if kind == "relay":
        return REQUIRED_RELAY
    if kind == "charger":
        return REQUIRED_CHARGER
    return REQUIRED_METER_1P if phases == 1 else REQUIRED_METER_3P


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocRef(_Model):
    """The manufacturer's document the register map comes from."""

    title: str = Field(min_length=3)
    version: str = Field(min_length=1, description="Edition, revision or date of the document")
    url: str | None = None


class Defaults(_Model):
    table: TableName = "holding"
    word_order: WordOrder = WordOrder.ABCD
    max_gap: int | None = Field(
        default=None, ge=0, le=124,
        description="A device quirk, when set: the widest hole of unused registers this device accepts inside one "
                    "request (0: none). Unset, the read planner bridges whatever the bus's cost model says is "
                    "cheaper than another request")
    sentinel: SentinelPolicy = SentinelPolicy.NONE
    addressing: Literal["protocol"] = Field(
        default="protocol", description="Addresses are 0-based protocol addresses (what goes on the wire)"
    )
    fast_interval_s: float = Field(default=1.0, gt=0, description="Default poll interval of instantaneous values")
    slow_interval_s: float = Field(default=60.0, gt=0, description="Default poll interval of energy counters")


class DetectionExpect(_Model):
    """A register the detected device must hold, at ``offset`` from the marker."""

    offset: int = Field(ge=0, le=0xFFFF)
    type: DataType = DataType.UINT16
    values: list[int] = Field(min_length=1)


class Detection(_Model):
    """How to recognise the device: a text marker at one of several candidate addresses."""

    table: TableName = "holding"
    marker: str = Field(min_length=1, max_length=32)
    candidates: list[int] = Field(min_length=1, description="Protocol addresses to probe, in order")
    relocate: bool = Field(
        default=False,
        description="Point addresses assume the marker at candidates[0]; shift them when found elsewhere",
    )
    expect: list[DetectionExpect] = []

    @property
    def marker_registers(self) -> int:
        return (len(self.marker) + 1) // 2

    def match(self, read: Mapping[int, Sequence[int]]) -> int | None:
        """The candidate address where the marker (and every ``expect``) is found, or None.

        ``read`` maps a protocol address to the registers read there: the
        driver reads ``marker_registers`` at each candidate and, for ``expect``,
        one value at candidate + offset.
        """
        for base in self.candidates:
            regs = read.get(base)
            if regs is None or len(regs) < self.marker_registers:
                continue
            try:
                text = decode_string(regs[: self.marker_registers])
            except ProtocolError:
                continue
            if text != self.marker:
                continue
            if all(self._expect_ok(e, read.get(base + e.offset)) for e in self.expect):
                return base
        return None

    @staticmethod
    def _expect_ok(e: DetectionExpect, regs: Sequence[int] | None) -> bool:
        if regs is None:
            return False
        try:
            spec = RegisterSpec(e.type)
            value = decode_value(regs[: spec.count], spec).value
        except ProtocolError:
            return False
        return value is not None and int(value) in e.values


class ProfilePoint(_Model):
    quantity: str = Field(pattern=_QUANTITY_PATTERN)
    address: int = Field(ge=0, le=0xFFFF, description="0-based protocol address")
    type: DataType
    table: TableName | None = None
    word_order: WordOrder | None = None
    length: int | None = Field(default=None, ge=1, le=125, description="Registers of a string")
    scale: float = 1.0
    offset: float = 0.0
    scale_factor: int | None = Field(
        default=None, ge=0, le=0xFFFF, description="Address of an int16 SunSpec scale-factor register"
    )
    unit: str = ""
    resolution: float = Field(default=0.0, ge=0)
    interval_s: float | None = Field(default=None, gt=0)
    sentinel: SentinelPolicy | None = None
    sentinel_values: list[int] = []
    bit: int | None = Field(default=None, ge=0, le=15)
    mask: int | None = Field(default=None, ge=1, le=0xFFFF)
    writable: bool = False
    plausible: tuple[float, float] | None = Field(
        default=None, description="[min, max] a working device can report, in the point's unit; a value "
        "outside is stored with quality error (default: by unit, see PLAUSIBLE_BY_UNIT)")
    description: str = ""
    source: str = Field(min_length=3, description="Page/table of the manual this register comes from")

    @model_validator(mode="after")
    def _consistent(self) -> ProfilePoint:
        if self.type is DataType.STRING and self.length is None:
            raise ValueError("a string point needs `length` (registers)")
        if self.type is not DataType.STRING and self.length is not None:
            raise ValueError("`length` is for string points only")
        if (self.bit is not None or self.mask is not None) and self.type not in (DataType.UINT16, DataType.INT16):
            raise ValueError("`bit`/`mask` apply to one 16-bit register (type uint16)")
        if self.bit is not None and self.mask is not None:
            raise ValueError("give `bit` or `mask`, not both")
        if self.scale == 0:
            raise ValueError("`scale` cannot be 0")
        if self.address + register_count(self.type, self.length) > 0x10000:
            raise ValueError("the point runs past address 65535")
        if self.plausible is not None:
            lo, hi = self.plausible
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"`plausible` must be [min, max] with finite min < max, found [{lo}, {hi}]")
        return self

    @property
    def plausible_range(self) -> tuple[float, float]:
        """Where a value of this point can come from a working device: its ``plausible`` or, unset,
        the bound of its unit. Well-framed garbage (a register map read at the wrong address, a
        device answering random registers) decodes to values like 1e30; those are errors, not data."""
        if self.plausible is not None:
            return self.plausible
        limit = PLAUSIBLE_BY_UNIT.get(self.unit, PLAUSIBLE_ANY)
        return (-limit, limit)

    @property
    def count(self) -> int:
        return register_count(self.type, self.length)

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def is_bit_field(self) -> bool:
        return self.bit is not None or self.mask is not None


class Profile(_Model):
    name: str = Field(pattern=ID_PATTERN)
    manufacturer: str = Field(min_length=1)
    model: str = Field(min_length=1)
    description: str = ""
    kind: Literal["meter", "inverter", "relay", "charger"] = "meter"
    phases: Literal[1, 3] = 3
    doc: DocRef
    sources: list[str] = Field(min_length=1, description="Where the map was checked (projects, files)")
    defaults: Defaults = Defaults()
    detection: Detection | None = None
    unsupported: dict[str, str] = Field(
        default={}, description="Required quantities this device does not provide, with the reason"
    )
    points: list[ProfilePoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        seen: set[str] = set()
        for p in self.points:
            if p.quantity in seen:
                raise ValueError(f"quantity {p.quantity!r} is declared twice")
            seen.add(p.quantity)
            if p.quantity.startswith("sf@"):
                raise ValueError(f"{p.quantity!r}: names starting with 'sf@' are reserved")
        for q in self.unsupported:
            if q in seen:
                raise ValueError(f"{q!r} is both a point and listed under `unsupported`")
        return self

    # --- lookups -------------------------------------------------------------

    def point(self, quantity: str) -> ProfilePoint:
        for p in self.points:
            if p.quantity == quantity:
                return p
        raise KeyError(f"profile {self.name!r} has no point {quantity!r}")

    @property
    def quantities(self) -> frozenset[str]:
        return frozenset(p.quantity for p in self.points)

    def missing_required(self) -> frozenset[str]:
        """Required quantities neither read nor declared unsupported."""
        return required_quantities(self.kind, self.phases) - self.quantities - set(self.unsupported)

    def table_of(self, p: ProfilePoint) -> Table:
        return TABLES[p.table or self.defaults.table]

    def interval_s(self, p: ProfilePoint) -> float:
        if p.interval_s is not None:
            return p.interval_s
        return self.defaults.slow_interval_s if p.unit in _ENERGY_UNITS else self.defaults.fast_interval_s

    def register_spec(self, p: ProfilePoint) -> RegisterSpec:
        return RegisterSpec(
            dtype=p.type,
            order=p.word_order or self.defaults.word_order,
            scale=p.scale,
            offset=p.offset,
            sentinel=p.sentinel or self.defaults.sentinel,
            sentinel_values=tuple(p.sentinel_values),
            bit=p.bit,
            mask=p.mask,
            length=p.length,
        )

    # --- planning ------------------------------------------------------------

    def read_points(self, shift: int = 0) -> list[ReadPoint]:
        """Every point and scale-factor register as planner input (``shift``: detection relocation)."""
        out = [ReadPoint(p.quantity, self.table_of(p), p.address + shift, p.count) for p in self.points]
        for addr, table in sorted(self._sf_registers().items()):
            out.append(ReadPoint(sf_key(addr), table, addr + shift, 1))
        return out

    def _sf_registers(self) -> dict[int, Table]:
        return {p.scale_factor: self.table_of(p) for p in self.points if p.scale_factor is not None}

    def intervals_ns(self) -> dict[str, int]:
        """Poll interval per point key, for ``Scheduler`` (scale factors follow via ``with_dependencies``)."""
        return {p.quantity: int(self.interval_s(p) * 1e9) for p in self.points}

    def with_dependencies(self, keys: Iterable[str]) -> frozenset[str]:
        """``keys`` plus the scale-factor registers they need."""
        keys = frozenset(keys)
        extra = {sf_key(p.scale_factor) for p in self.points if p.quantity in keys and p.scale_factor is not None}
        return keys | extra

    def decode(self, quantity: str, values: Mapping[str, Sequence[int]]) -> Decoded:
        """Decode ``quantity`` from the registers read per key (its own and its scale factor's)."""
        p = self.point(quantity)
        regs = values[quantity]
        if p.scale_factor is None:
            return decode_value(regs, self.register_spec(p))
        sf = values.get(sf_key(p.scale_factor))
        return decode_value(regs, self.register_spec(p), sf[0] if sf else None, has_sf=True)

    def model_points(self, device_id: str) -> list[Point]:
        """The points as ``zaas_edge.model.Point`` values of a device using this profile."""
        return [
            Point(device_id, p.quantity, p.unit, p.resolution, p.description, p.writable)
            for p in self.points
            if p.type is not DataType.STRING
        ]


# --- loading ------------------------------------------------------------------


_POINT_PATH = re.compile(r"points\[(\d+)\]")


def _issues(file: str, exc: ValidationError, data: Mapping[str, Any]) -> list[ConfigIssue]:
    """The configuration's own wording of a validation error, each point also named by its
    quantity, so that "points[12]" is findable in a file of sixty points."""
    points = data.get("points")
    issues = []
    for issue in validation_issues(exc, Profile, file=file):
        m = _POINT_PATH.match(issue.path)
        entry = points[int(m.group(1))] if m and isinstance(points, list) and int(m.group(1)) < len(points) else None
        quantity = entry.get("quantity") if isinstance(entry, dict) else None
        if quantity:
            issue = ConfigIssue(issue.file, issue.path, f"{issue.message} (point {quantity!r})")
        issues.append(issue)
    return issues


def parse_profile(text: str, file: str = "<profile>") -> Profile:
    """A profile from TOML text; every problem raises ``ConfigError`` naming file and key path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(file, "", f"not valid TOML: {exc}")]) from exc
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues(file, exc, data)) from exc


def load_profile(path: str | Path) -> Profile:
    """A profile file of one's own. Devices that name the same file share one (frozen) Profile: a
    building of 300 meters of one model holds its map once, not 300 times; an edited file (another
    modification time or size) is read again."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"cannot read profile: {exc.strerror}")]) from exc
    return _load_profile(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _load_profile(path: Path, _mtime_ns: int, _size: int) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"cannot read profile: {exc.strerror}")]) from exc
    profile = parse_profile(text, str(path))
    if profile.name != path.stem:
        raise ConfigError([ConfigIssue(str(path), "name", f"name {profile.name!r} differs from the file name")])
    return profile


@lru_cache(maxsize=1)
def _library() -> dict[str, Profile]:
    root = resources.files("zaas_edge.drivers").joinpath("profiles", "modbus")
    out: dict[str, Profile] = {}
    issues: list[ConfigIssue] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        file = f"profiles/modbus/{entry.name}"
        try:
            profile = parse_profile(entry.read_text(encoding="utf-8"), file)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        if profile.name != entry.name[: -len(".toml")]:
            issues.append(ConfigIssue(file, "name", f"name {profile.name!r} differs from the file name"))
            continue
        out[profile.name] = profile
    if issues:
        raise ConfigError(issues)
    return out


def load_profiles() -> dict[str, Profile]:
    """Every profile of the built-in library, by name."""
    return dict(_library())


def get_profile(name: str) -> Profile:
    """One profile of the library; an unknown name raises ``ConfigError`` listing the known ones."""
    lib = _library()
    try:
        return lib[name]
    except KeyError:
        known = ", ".join(sorted(lib))
        raise ConfigError([ConfigIssue("", "profile", f"no Modbus profile named {name!r} (known: {known})")]) from None
