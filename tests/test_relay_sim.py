"""The simulated relay module against the real Modbus driver, through the Waveshare profile."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.modbus.plan import Table

from hil.modbus_harness import DriverRun, bus_options
from hil.modbus_sim import SimBus, serve_rtu_pty, serve_tcp
from hil.relay_sim import ALL_COILS, CHANNELS, RelayModule
from zaas_edge.errors import PermanentError

SERVE = {"tcp": serve_tcp, "rtu": serve_rtu_pty}
RELAY = {"id": "rm", "unit": 2, "profile": "waveshare-relay-8ch"}


@pytest.mark.parametrize("kind", list(SERVE))
async def test_the_driver_switches_a_relay_and_reads_it_back(kind: str) -> None:
    relays = RelayModule(2)
    async with await SERVE[kind](SimBus([relays])) as srv:
        async with DriverRun(bus_options(srv, [RELAY])) as run:
            assert await run.driver.write("rm/relay_3", 1) == 1.0
            assert relays.states == {ch: ch == 3 for ch in range(1, CHANNELS + 1)}
            assert await run.driver.write("rm/relay_3", 0) == 0.0
            assert not relays.is_on(3)
            asked = [(c.channel, c.on, c.obeyed) for c in relays.commands]
            assert asked == [(3, True, True), (3, False, True)]
            assert relays.commands[0].t <= relays.commands[1].t
            assert run.latest("rm/relay_3").value == 0.0  # the read-back is a reading


async def test_polling_shows_a_relay_switched_by_hand_and_the_version() -> None:
    relays = RelayModule(2, on=[1])
    async with await serve_tcp(SimBus([relays])) as srv:
        async with DriverRun(bus_options(srv, [RELAY])) as run:
            await run.driver.poll_now()
            assert run.latest("rm/relay_1").value == 1.0 and run.latest("rm/relay_2").value == 0.0
            assert run.latest("rm/software_version").value == pytest.approx(2.0)
            relays.set(2, True)
            await run.driver.poll_now()
            assert run.latest("rm/relay_2").value == 1.0


async def test_a_disobedient_relay_makes_the_write_fail_after_its_retries() -> None:
    relays = RelayModule(2)
    relays.disobey.add(5)
    async with await serve_tcp(SimBus([relays])) as srv:
        async with DriverRun(bus_options(srv, [RELAY], write_retries=2)) as run:
            with pytest.raises(PermanentError, match="wrote 1, read back 0"):
                await run.driver.write("rm/relay_5", 1)
            assert not relays.is_on(5)
            assert [(c.channel, c.obeyed) for c in relays.commands] == [(5, False)] * 3  # 1 + 2 retries
            assert run.counters["write_failures"] == 1
            assert await run.driver.write("rm/relay_4", 1) == 1.0  # the others still obey


async def test_a_slow_module_still_switches() -> None:
    relays = RelayModule(2)
    bus = SimBus([relays])
    bus.faults.unit_delay_s[2] = 0.05
    async with await serve_tcp(bus) as srv:
        async with DriverRun(bus_options(srv, [RELAY])) as run:
            assert await run.driver.write("rm/relay_8", 1) == 1.0
    answered = [r for r in bus.log if r.unit == 2 and r.t_tx is not None]
    assert answered and all(r.t_tx - r.t_rx >= 0.05 for r in answered)


def test_the_all_relays_coil_switches_every_channel() -> None:
    relays = RelayModule(1)
    relays.write(Table.COILS, ALL_COILS, [1])
    assert all(relays.states.values())
    relays.write(Table.COILS, ALL_COILS, [0])
    assert not any(relays.states.values())


@given(st.lists(st.tuples(st.integers(0, 12), st.booleans()), max_size=40), st.sets(st.integers(1, CHANNELS)))
def test_each_relay_ends_as_its_last_obeyed_write(writes: list[tuple[int, bool]], disobey: set[int]) -> None:
    relays = RelayModule(1)
    relays.disobey |= disobey
    expected = dict.fromkeys(range(1, CHANNELS + 1), False)
    for address, on in writes:
        relays.write(Table.COILS, address, [int(on)])  # addresses past the eighth coil do nothing
        if address < CHANNELS and address + 1 not in disobey:
            expected[address + 1] = on
    assert relays.states == expected
    assert all(c.obeyed == (c.channel not in disobey) for c in relays.commands)


async def test_line_noise_and_garbage_frames_leave_the_module_answering() -> None:
    import asyncio
    import random

    rng = random.Random(7)
    relays = RelayModule(2)
    async with await serve_tcp(SimBus([relays])) as srv:
        _, writer = await asyncio.open_connection(srv.host, srv.port)
        for _ in range(200):
            writer.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))))
        await writer.drain()
        writer.close()
        async with DriverRun(bus_options(srv, [RELAY])) as run:
            assert await run.driver.write("rm/relay_6", 1) == 1.0
    assert relays.is_on(6)
    # garbage that happened to parse as a coil write moved nothing but the coils it named
    assert all(c.channel in range(1, CHANNELS + 1) for c in relays.commands)
