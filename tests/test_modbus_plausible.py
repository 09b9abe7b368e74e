"""Well-framed garbage is not data: a value outside its point's plausible range (the profile's
`plausible`, or the bound of its unit) is stored with quality error, counted, and logged once
when the point goes out of range and once when it comes back. A device's points are those of its
profile, whatever its registers hold."""

from __future__ import annotations

import logging
import math
import random
import struct

import pytest
from pydantic import ValidationError
from zaas_edge.drivers.modbus import get_profile
from zaas_edge.drivers.modbus.decode import encode_value
from zaas_edge.drivers.modbus.profile import PLAUSIBLE_ANY, PLAUSIBLE_BY_UNIT, ProfilePoint

from hil.modbus_harness import DriverRun, bus_options
from hil.modbus_sim import SimBus, serve_tcp
from zaas_edge.model import Quality

PROFILE = "eastron-sdm630"


def _point(**kw: object) -> ProfilePoint:
    return ProfilePoint.model_validate({"quantity": "power", "address": 0, "type": "float32", "unit": "W",
                                        "source": "manual p. 3", **kw})


def test_a_point_has_the_range_of_its_unit_unless_it_gives_its_own() -> None:
    assert _point().plausible_range == (-PLAUSIBLE_BY_UNIT["W"], PLAUSIBLE_BY_UNIT["W"])
    assert _point(unit="").plausible_range == (-PLAUSIBLE_ANY, PLAUSIBLE_ANY)
    assert _point(plausible=[-50_000, 50_000]).plausible_range == (-50_000, 50_000)
    for bad in ([1, 1], [5, -5], [0, math.inf], [math.nan, 1]):
        with pytest.raises(ValidationError, match="plausible"):
            _point(plausible=bad)


async def test_random_registers_are_stored_as_errors_never_as_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zaas_edge")
    profile = get_profile(PROFILE)
    bus = SimBus.of_profile(PROFILE, [1])
    meter = bus.meters[1]
    power = profile.point("power")
    table = profile.table_of(power)
    meter.write(table, power.address, list(encode_value(1e30, profile.register_spec(power))))
    rng = random.Random(17)
    for p in profile.points:  # well-framed random registers, as in the report: every float32 bit pattern
        if p.quantity != "power" and p.type.value == "float32" and rng.random() < 0.5:
            meter.write(profile.table_of(p), p.address, list(struct.unpack(">HH", rng.randbytes(4))))
    async with await serve_tcp(bus) as srv:
        async with DriverRun(bus_options(srv, [{"id": "m1", "unit": 1, "profile": PROFILE}])) as run:
            await run.driver.poll_now()
            await run.driver.poll_now()
            r = run.latest("m1/power")
            assert r is not None and r.quality is Quality.ERROR and r.value == pytest.approx(1e30, rel=1e-6)
            for reading in run.readings:
                quantity = reading.point.split("/", 1)[1]
                lo, hi = profile.point(quantity).plausible_range
                assert reading.quality is Quality.ERROR or lo <= reading.value <= hi, reading
            # The device's points are its profile's, whatever its registers hold.
            assert {x.point.split("/", 1)[1] for x in run.readings} <= profile.quantities
            assert run.counters["implausible_values"] >= 2
            # Back in range: quality ok again, one line each way.
            meter.write(table, power.address, list(encode_value(1500.0, profile.register_spec(power))))
            await run.driver.poll_now()
            r = run.latest("m1/power")
            assert r is not None and r.quality is Quality.OK and r.value == 1500.0
    out = [x for x in caplog.records if "power reads" in x.getMessage()]
    back = [x for x in caplog.records if "power is plausible again" in x.getMessage()]
    assert len(out) == 1 and len(back) == 1
