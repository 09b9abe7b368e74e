"""The profile format and the built-in profile library."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError
from zaas_edge.drivers.modbus.decode import DataType, encode_raw, encode_string
from zaas_edge.drivers.modbus.plan import Plan, Scheduler, Table
from zaas_edge.drivers.modbus.profile import (
    Profile,
    get_profile,
    load_profile,
    load_profiles,
    parse_profile,
    required_quantities,
    sf_key,
)

from zaas_edge.errors import ConfigError
from zaas_edge.model import Quality

LIBRARY = load_profiles()
NAMES = sorted(LIBRARY)
S = 1_000_000_000

MINIMAL = """
name = "test-meter"
manufacturer = "Acme"
model = "M1"
phases = 1
sources = ["written for this test"]
points = [
  { quantity = "power", address = 10, type = "int16", scale = 0.1, unit = "W", source = "table 1" },
]
[doc]
title = "Acme M1 manual"
version = "1"
"""


def test_library_has_the_expected_devices():
    assert len(LIBRARY) >= 12
    for name in ["eastron-sdm630", "eastron-sdm120", "eastron-sdm72d", "abb-b23", "carlo-gavazzi-em24",
                 "schneider-iem3155", "janitza-umg96rm-e", "siemens-pac2200", "finder-7m38",
                 "lovato-dmg610", "socomec-countis-e4x", "sunspec-inverter"]:
        assert name in LIBRARY
    assert sum(p.kind == "meter" for p in LIBRARY.values()) >= 11


@pytest.mark.parametrize("name", NAMES)
def test_every_required_quantity_is_present(name):
    p = LIBRARY[name]
    required = required_quantities(p.kind, p.phases)
    assert p.missing_required() == frozenset()
    # what is declared unsupported is required and explained
    assert set(p.unsupported) <= required
    assert all(len(why) > 10 for why in p.unsupported.values())
    # meters read every required quantity but, at most, the total power factor
    if p.kind == "meter":
        assert set(p.unsupported) <= {"pf"}
        if "pf" in p.unsupported:
            assert {"pf_l1", "pf_l2", "pf_l3"} <= p.quantities
    else:
        assert set(p.unsupported) <= {"power_l1", "power_l2", "power_l3", "energy_import"}


def test_single_phase_sdm120_needs_l1_only():
    p = LIBRARY["eastron-sdm120"]
    assert p.phases == 1
    assert {"voltage_l1", "current_l1", "power"} <= p.quantities
    assert "voltage_l2" not in p.quantities


def _unitless(p, pt) -> bool:
    """A switch (coil), a state or an identification register has no unit; a measurement has one."""
    return (p.table_of(pt) in (Table.COILS, Table.DISCRETE_INPUTS) or pt.quantity == "operating_state"
            or pt.quantity.endswith(("_state", "_version", "_lock", "_mode")))


@pytest.mark.parametrize("name", NAMES)
def test_points_have_sources_units_and_no_unintended_overlap(name):
    p = LIBRARY[name]
    assert p.doc.title and p.sources
    for pt in p.points:
        assert len(pt.source) >= 10, pt.quantity
        if pt.type is not DataType.STRING and not _unitless(p, pt):
            assert pt.unit or pt.quantity.startswith("pf"), pt.quantity
    for a, b in itertools.combinations(p.points, 2):
        if p.table_of(a) != p.table_of(b):
            continue
        overlap = a.address < b.end and b.address < a.end
        assert not overlap or (a.is_bit_field and b.is_bit_field), (a.quantity, b.quantity)
    sf = {pt.scale_factor for pt in p.points if pt.scale_factor is not None}
    assert not any(pt.address <= addr < pt.end for pt in p.points for addr in sf)


@pytest.mark.parametrize("name", NAMES)
def test_energy_is_slow_and_power_fast(name):
    p = LIBRARY[name]
    for pt in p.points:
        if pt.unit == "kWh":
            assert p.interval_s(pt) == 60
        if pt.quantity in ("power", "voltage_l1", "current_l1", "pf", "frequency"):
            assert p.interval_s(pt) == 1


@pytest.mark.parametrize("name", NAMES)
def test_each_profile_plans_into_few_requests(name):
    p = LIBRARY[name]
    plan = Plan.build(p.read_points(), p.defaults.max_gap)
    assert len(plan.blocks) <= 3
    assert len(plan.blocks) * 4 <= len(plan.points)


def test_sdm630_request_ratio():
    p = LIBRARY["eastron-sdm630"]
    plan = Plan.build(p.read_points(), p.defaults.max_gap)
    per_point = len(p.points)  # one request per point, uncoalesced
    coalesced = len(plan.blocks)
    assert (per_point, coalesced) == (34, 2)
    assert per_point / coalesced >= 8
    # at a fast tick only the instantaneous values are due: one request
    sched = Scheduler(p.intervals_ns(), start_ns=0)
    first = plan.blocks_for(sched.due(0))
    fast = plan.blocks_for(sched.due(S))
    assert len(first) == 2 and len(fast) == 1
    assert fast[0].end == 0x48  # up to the frequency, not the energy registers after it


def test_decode_through_profile_sdm630():
    p = LIBRARY["eastron-sdm630"]
    plan = Plan.build(p.read_points(), p.defaults.max_gap)
    block = plan.blocks[0]
    response = [0] * block.count
    power = next(pt for pt in block.points if pt.key == "power")
    response[power.address - block.start: power.end - block.start] = encode_raw(1234.5, DataType.FLOAT32)
    values = {pt.key: block.extract(response, pt) for pt in block.points}
    assert p.decode("power", values).value == 1234.5


def test_sunspec_scale_factors_and_sentinels():
    p = LIBRARY["sunspec-inverter"]
    keys = p.with_dependencies({"voltage_l1", "pf"})
    assert keys == {"voltage_l1", "pf", sf_key(40082), sf_key(40092)}
    values = {"voltage_l1": (2301,), sf_key(40082): (0xFFFF,), "pf": (9950,), sf_key(40092): (0xFFFE,)}
    assert p.decode("voltage_l1", values).value == pytest.approx(230.1)
    assert p.decode("pf", values).value == pytest.approx(0.995)
    assert p.decode("voltage_l1", {**values, "voltage_l1": (0xFFFF,)}).quality is Quality.ERROR
    assert p.decode("voltage_l1", {**values, sf_key(40082): (0x8000,)}).value is None
    assert p.decode("energy_export", {"energy_export": (0, 0), sf_key(40095): (0,)}).value is None
    got = p.decode("energy_export", {"energy_export": encode_raw(1_234_567, DataType.UINT32), sf_key(40095): (0,)})
    assert got.value == pytest.approx(1234.567)
    # scale-factor registers are planned with the points that use them
    blocks = Plan.build(p.read_points(), p.defaults.max_gap).blocks_for(keys)
    assert {k for b in blocks for k in b.keys} == keys


def test_sunspec_detection():
    det = LIBRARY["sunspec-inverter"].detection
    assert det is not None
    suns = encode_string("SunS", 2)
    found_at_zero = {0: suns, 2: (1,), 3: (65,), 69: (103,), 40000: (0, 0)}
    assert det.match(found_at_zero) == 0
    assert det.match({40000: suns, 40002: (1,), 40003: (65,), 40069: (101,)}) == 40000
    assert det.match({40000: suns, 40002: (1,), 40003: (66,), 40069: (103,)}) is None  # other layout
    assert det.match({40000: encode_string("Sun", 2)}) is None
    shifted = LIBRARY["sunspec-inverter"].read_points(shift=0 - det.candidates[0])
    assert min(rp.address for rp in shifted) == 4


def test_model_points():
    pts = LIBRARY["abb-b23"].model_points("meter-3")
    power = next(pt for pt in pts if pt.quantity == "power")
    assert (power.key, power.unit, power.resolution) == ("meter-3/power", "W", 0.01)
    assert all(pt.quantity not in ("manufacturer",) for pt in LIBRARY["sunspec-inverter"].model_points("inv"))


def test_get_profile():
    assert get_profile("eastron-sdm630").manufacturer == "Eastron"
    with pytest.raises(ConfigError, match="no Modbus profile named 'nope'.*eastron-sdm630"):
        get_profile("nope")


# --- validation ---------------------------------------------------------------------------

def test_minimal_profile_and_defaults():
    p = parse_profile(MINIMAL, "acme.toml")
    assert isinstance(p, Profile)
    assert p.defaults.table == "holding" and p.defaults.max_gap is None  # no quirk: the cost model decides
    assert p.decode("power", {"power": (1234,)}).value == pytest.approx(123.4)
    with pytest.raises(ValidationError, match="frozen"):
        p.defaults.max_gap = 3


@pytest.mark.parametrize(
    "edit, path, message",
    [
        (("phases = 1", "phases = 1\ncolour = 'red'"), "colour", "unknown key"),
        (('unit = "W"', 'unit = "W", wordorder = "CDAB"'), "points[0].wordorder", "unknown key"),
        (("address = 10", "address = 70000"), "points[0].address", "(point 'power')"),
        (('type = "int16"', 'type = "int12"'), "points[0].type", "expected one of 'int16'"),
        (('source = "table 1"', 'source = ""'), "points[0].source", "at least 3"),
        (('scale = 0.1', 'scale = 0'), "points[0]", "scale"),
        (('version = "1"', 'version = "1"\n[defaults]\nmax_gap = 500'), "defaults.max_gap", "expected a value <= 124"),
    ],
)
def test_errors_name_file_and_key_path(edit, path, message):
    old, new = edit
    assert old in MINIMAL
    with pytest.raises(ConfigError) as info:
        parse_profile(MINIMAL.replace(old, new, 1), "acme.toml")
    issue = info.value.issues[0]
    assert issue.file == "acme.toml"
    assert issue.path == path
    assert message in issue.message


def test_duplicate_quantity_and_bad_toml():
    second = '  { quantity = "power", address = 20, type = "int16", source = "table 2" },\n'
    dup = MINIMAL.replace("]\n[doc]", second + "]\n[doc]")
    with pytest.raises(ConfigError, match="declared twice"):
        parse_profile(dup, "acme.toml")
    with pytest.raises(ConfigError, match="acme.toml: not valid TOML"):
        parse_profile("name = ", "acme.toml")


def test_load_profile_from_file(tmp_path):
    f = tmp_path / "test-meter.toml"
    f.write_text(MINIMAL)
    assert load_profile(f).name == "test-meter"
    other = tmp_path / "other.toml"
    other.write_text(MINIMAL)
    with pytest.raises(ConfigError, match="differs from the file name"):
        load_profile(other)
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_profile(tmp_path / "missing.toml")
