"""Primary and secondary (wildcard) search on the simulated bus, collisions included."""

from __future__ import annotations

import pytest
from zaas_edge.drivers.mbus.link import MBusLink
from zaas_edge.drivers.mbus.scan import scan_primary, scan_secondary

from hil.mbus_sim import MBusSimulator, SimMeter, default_meters, gas_telegrams, water_telegrams

BAUD = 9600


async def _open(sim: MBusSimulator) -> MBusLink:
    return await MBusLink.open_serial(sim.path, BAUD, retries=1)


async def test_secondary_search_finds_every_meter_despite_collisions() -> None:
    with MBusSimulator() as sim:
        link = await _open(sim)
        seen: list[float] = []
        try:
            result = await scan_secondary(link, seen.append)
        finally:
            await link.close()
        expected = {m.secondary: m for m in sim.bus.meters}
        collisions = sim.bus.collisions
    assert {m.secondary for m in result.meters} == set(expected)
    heat = next(m for m in result.meters if m.identification == "12345678")
    assert (heat.manufacturer, heat.version, heat.medium_name, heat.address) == ("KAM", 0x1B, "heat_outlet", None)
    assert result.problems == []
    # 12345678 and 12345699 share six digits: the search had to descend through collisions.
    assert collisions >= 7 and link.counters["collisions"] >= 7
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert 'secondary = "123456782C2D1B04"' in heat.config_snippet()


async def test_ids_differing_in_the_last_digit_and_a_shared_id() -> None:
    meters = [
        SimMeter("w1", "77777770", "SEN", 1, 7, 1, water_telegrams, reply_delay_bits=0),
        SimMeter("w2", "77777771", "SEN", 1, 7, 2, water_telegrams, reply_delay_bits=4),
        SimMeter("g1", "88888888", "ELS", 1, 3, 3, gas_telegrams, reply_delay_bits=2),
        SimMeter("g2", "88888888", "ITW", 1, 3, 4, gas_telegrams, reply_delay_bits=6),
    ]
    with MBusSimulator(meters) as sim:
        link = await _open(sim)
        try:
            result = await scan_secondary(link)
        finally:
            await link.close()
    assert sorted(m.identification for m in result.meters) == ["77777770", "77777771"]
    assert result.problems == ["identification 88888888: several meters share it; "
                               "select them with manufacturer, version and medium"]


async def test_primary_search_reads_each_address_that_answers() -> None:
    with MBusSimulator() as sim:
        link = await _open(sim)
        fractions: list[float] = []
        try:
            result = await scan_primary(link, range(0, 11), fractions.append)
        finally:
            await link.close()
    assert [(m.address, m.identification) for m in result.meters] == [
        (5, "12345678"), (6, "12345699"), (7, "30112233"), (9, "40556677")]
    assert result.problems == [] and result.probes == 11
    assert len(fractions) == 11 and fractions[-1] == 1.0
    assert result.meters[0].config_snippet() == '{ id = "heat-outlet-12345678", address = 5, interval_s = 900 }'


async def test_primary_search_reports_a_shared_primary_address() -> None:
    meters = default_meters()
    meters[1].address = 5  # the water meter was left at the heat meter's address
    with MBusSimulator(meters) as sim:
        link = await _open(sim)
        try:
            result = await scan_primary(link, range(4, 8))
        finally:
            await link.close()
    assert [m.address for m in result.meters] == [7]
    assert result.problems == ["address 5: garbled answer, several meters share this address"]
