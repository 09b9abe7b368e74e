"""The simulated meters: what they serve, the faults they inject, and their command line."""

from __future__ import annotations

import pytest
from zaas_edge.drivers.modbus import get_profile, load_profiles
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.transport import CrcError, ExceptionResponse, Link, LinkSpec, NoResponse

from hil.modbus_sim import SimBus, SimMeter, SimProcess, parse_units, serve_rtu_over_tcp, serve_rtu_pty, serve_tcp


@pytest.mark.parametrize("name", sorted(load_profiles()))
def test_served_values_are_what_the_registers_decode_to(name: str) -> None:
    prof = get_profile(name)
    m = SimMeter(prof, 4)
    for p in prof.points:
        if p.type.value == "string":
            assert m.served_text[p.quantity]
            continue
        table = m.tables[prof.table_of(p)]
        values = {p.quantity: [table.get(p.address + i, 0) for i in range(p.count)]}
        if p.scale_factor is not None:
            values[f"sf@{p.scale_factor}"] = [table[p.scale_factor]]
        assert prof.decode(p.quantity, values).value == m.served[p.quantity]
        if p.unit == "V":
            assert 225 <= m.served[p.quantity] <= 235
        if p.unit == "Hz":
            assert 49.9 <= m.served[p.quantity] <= 50.1


def test_values_move_but_counters_only_grow() -> None:
    m = SimMeter(get_profile("eastron-sdm630"), 1)
    first = dict(m.served)
    m.update(10.0)
    assert m.served["voltage_l1"] != first["voltage_l1"]
    assert m.served["energy_import"] > first["energy_import"]
    m.write(Table.INPUT, 0, [0x4366, 0x0000])  # 230.0 V, written by a client: stays put
    m.update(20.0)
    assert m.served["voltage_l1"] == 230.0


def test_parse_units() -> None:
    assert parse_units("1-3,7, 5") == [1, 2, 3, 5, 7]
    with pytest.raises(ValueError):
        parse_units("5-300")


SERVE = {"tcp": serve_tcp, "rtu": serve_rtu_pty, "rtu-over-tcp": serve_rtu_over_tcp}


def _link(srv) -> Link:  # noqa: ANN001
    if srv.kind == "rtu":
        return Link(LinkSpec("rtu", port=srv.pty_path, baudrate=115200))
    return Link(LinkSpec(srv.kind, host=srv.host, port=srv.port))


@pytest.mark.parametrize("kind", list(SERVE))
async def test_faults_as_a_client_sees_them(kind: str) -> None:
    bus = SimBus.of_profile("eastron-sdm630", [1, 2])
    async with await SERVE[kind](bus) as srv:
        link = _link(srv)
        try:
            regs = await link.read(1, Table.INPUT, 0, 2, 0.5)
            assert regs == bus.meters[1].read(Table.INPUT, 0, 2)

            bus.faults.silent_units.add(2)
            with pytest.raises(NoResponse, match="unit 2: no answer within 0.2 s"):
                await link.read(2, Table.INPUT, 0, 2, 0.2)
            assert bus.log[-1].outcome == "silent" and bus.log[-1].t_tx is None

            bus.faults.illegal_ranges.append((Table.INPUT, 0x10, 0x12))
            with pytest.raises(ExceptionResponse) as info:
                await link.read(1, Table.INPUT, 0x0E, 4, 0.5)
            assert info.value.code == 2 and "illegal data address" in str(info.value)
            assert await link.read(1, Table.INPUT, 0x0E, 2, 0.5) == bus.meters[1].read(Table.INPUT, 0x0E, 2)

            if kind != "tcp":
                bus.faults.crc_units.add(1)
                with pytest.raises(CrcError):
                    await link.read(1, Table.INPUT, 0, 2, 0.2)
                bus.faults.crc_units.clear()
                # The line recovers: the next answer is good.
                assert await link.read(1, Table.INPUT, 0, 2, 0.5) == bus.meters[1].read(Table.INPUT, 0, 2)

            await link.write_registers(1, 500, [1, 2, 3], 0.5)
            assert bus.meters[1].read(Table.HOLDING, 500, 3) == [1, 2, 3]
            await link.write_coil(1, 3, True, 0.5)
            assert await link.read(1, Table.COILS, 3, 1, 0.5) == [1]
        finally:
            link.close()


def test_command_line_serves_and_prints_its_port() -> None:
    import asyncio

    with SimProcess("--profile", "abb-b23", "--units", "3", "--still") as sim:
        assert sim.port > 0

        async def read() -> list[int]:
            link = Link(LinkSpec("tcp", host="127.0.0.1", port=sim.port))
            try:
                return await link.read(3, Table.HOLDING, 0x5B00, 2, 1.0)
            finally:
                link.close()

        regs = asyncio.run(read())
        assert 2250 <= (regs[0] << 16 | regs[1]) <= 2350  # 0.1 V steps near 230 V
