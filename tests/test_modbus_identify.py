"""The one marker search of the scan and the daemon, against a register map in memory."""

from __future__ import annotations

import asyncio

import pytest
from zaas_edge.drivers.modbus.decode import encode_string
from zaas_edge.drivers.modbus.identify import MarkerSearch, find_marker, identify
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.profile import get_profile, load_profiles
from zaas_edge.drivers.modbus.transport import CrcError, ExceptionResponse, LinkDown, NoResponse

SUNSPEC = get_profile("sunspec-inverter")


class Unit:
    """Holding registers of one unit; addresses outside them answer ``missing`` (an exception by default)."""

    def __init__(self, regs: dict[int, int], missing: type[Exception] = ExceptionResponse) -> None:
        self.regs = regs
        self.missing = missing
        self.reads: list[int] = []
        self.noise: set[int] = set()

    async def read(self, table: Table, start: int, count: int) -> list[int]:
        self.reads.append(start)
        if start in self.noise:
            self.noise.discard(start)
            raise CrcError("CRC mismatch")
        if table is not Table.HOLDING or any(a not in self.regs for a in range(start, start + count)):
            raise ExceptionResponse(2, 3, 1) if self.missing is ExceptionResponse else self.missing("no answer")
        return [self.regs[a] for a in range(start, start + count)]


def sunspec_at(base: int) -> dict[int, int]:
    regs = dict(enumerate(encode_string("SunS", 2), start=base))
    regs |= {base + 2: 1, base + 3: 65, base + 69: 103}
    return regs


@pytest.mark.parametrize("base", [40000, 0, 50000])
def test_the_marker_is_found_at_any_candidate_past_exceptions(base: int) -> None:
    unit = Unit(sunspec_at(base))
    assert asyncio.run(find_marker(SUNSPEC.detection, unit.read)) == MarkerSearch(True, base)


def test_a_marker_without_its_expected_model_chain_is_no_match() -> None:
    regs = sunspec_at(40000) | {40069: 7}
    assert asyncio.run(find_marker(SUNSPEC.detection, Unit(regs).read)) == MarkerSearch(True, None)


def test_a_silent_unit_costs_one_timeout_and_noise_only_its_read() -> None:
    silent = Unit({}, missing=NoResponse)
    assert asyncio.run(find_marker(SUNSPEC.detection, silent.read)) == MarkerSearch(False, None)
    assert silent.reads == [40000]
    noisy = Unit(sunspec_at(0))
    noisy.noise = {40000}
    assert asyncio.run(find_marker(SUNSPEC.detection, noisy.read)) == MarkerSearch(True, 0)


def test_a_lost_link_is_the_callers_business() -> None:
    with pytest.raises(LinkDown):
        asyncio.run(find_marker(SUNSPEC.detection, Unit({}, missing=LinkDown).read))


def test_identify_names_the_marker_profile_or_says_nothing_fits() -> None:
    found = asyncio.run(identify(Unit(sunspec_at(50000)).read, load_profiles().values()))
    assert found.profiles == ("sunspec-inverter",) and found.how == "SunS marker at 50000"
    nothing = asyncio.run(identify(Unit({}).read, load_profiles().values()))
    assert nothing.profiles == () and nothing.how == "no profile matches its registers"
