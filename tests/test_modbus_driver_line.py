"""A serial line stays in step: late answers, stray frames and noise never cost the
other devices their readings; exception responses count as answers.

RTU frames carry no transaction id, so an answer is matched to its request by
unit id and function code alone. The link-level tests use a scripted RTU-over-TCP
peer on 127.0.0.1 that puts exactly the bytes a test wants on the wire, in one
write, the way a USB adapter hands two frames that arrived close together to the
driver in one read. The driver-level tests use the simulated meters on a pty and
over TCP.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

import pytest
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.transport import CrcError, Link, LinkSpec, NoResponse

from hil.modbus_harness import DriverRun, bus_options
from hil.modbus_sim import SimBus, serve_rtu_over_tcp, serve_rtu_pty

# --- RTU frames, built from the Modbus serial line specification ---------------------------


def crc16(data: bytes) -> bytes:
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), low byte first."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def frame(unit: int, function: int, payload: bytes) -> bytes:
    body = bytes([unit, function]) + payload
    return body + crc16(body)


def registers_answer(unit: int, function: int, regs: list[int]) -> bytes:
    data = b"".join(struct.pack(">H", r) for r in regs)
    return frame(unit, function, bytes([len(data)]) + data)


def test_crc_matches_the_specification_example() -> None:
    # Modbus over serial line V1.02, 6.2.2: 01 03 00 00 00 0A -> CRC C5 CD.
    assert crc16(bytes.fromhex("01030000000A")) == bytes.fromhex("C5CD")


# --- a scripted peer --------------------------------------------------------------------------

Script = Callable[[bytes], bytes]  # request frame -> the bytes put on the wire in answer


class Peer:
    """An RTU-over-TCP endpoint that answers each request with what ``script`` returns."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                request = await reader.readexactly(8)  # every request the tests send is 8 bytes long
                self.requests.append(request)
                if answer := self.script(request):
                    writer.write(answer)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Peer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self.writers:
            w.close()

    def link(self) -> Link:
        return Link(LinkSpec("rtu-over-tcp", host="127.0.0.1", port=self.port))


GOOD = [0x4366, 0x0000]  # 230.0 V as float32


def _answer_of(request: bytes) -> bytes:
    return registers_answer(request[0], request[1], GOOD)


@pytest.mark.parametrize("before", [
    pytest.param(registers_answer(2, 4, [0x1111, 0x2222]), id="another-unit"),
    pytest.param(registers_answer(1, 3, [0x1111, 0x2222]), id="another-function"),
    pytest.param(registers_answer(2, 4, [1, 2]) + registers_answer(1, 3, [3, 4]), id="two-strays"),
    pytest.param(frame(2, 0x84, b"\x04"), id="another-units-exception"),
])
async def test_a_stray_frame_before_the_answer_is_discarded(before: bytes) -> None:
    async with Peer(lambda req: before + _answer_of(req)) as peer:
        link = peer.link()
        try:
            assert await link.read(1, Table.INPUT, 0, 2, 1.0) == GOOD
            strays = 2 if len(before) > 9 else 1
            assert link.stray_frames == strays
            # The next exchange is not disturbed by anything left over.
            assert await link.read(1, Table.INPUT, 0, 2, 1.0) == GOOD
            assert link.stray_frames == 2 * strays
        finally:
            link.close()


async def test_noise_before_the_answer_is_skipped() -> None:
    tail = registers_answer(2, 4, [0x1111, 0x2222])[3:]  # the end of a late frame, its start lost
    async with Peer(lambda req: tail + _answer_of(req)) as peer:
        link = peer.link()
        try:
            assert await link.read(1, Table.INPUT, 0, 2, 1.0) == GOOD
        finally:
            link.close()


async def test_only_a_stray_frame_is_no_answer_not_a_crc_error() -> None:
    async with Peer(lambda req: registers_answer(2, 4, GOOD)) as peer:
        link = peer.link()
        try:
            with pytest.raises(NoResponse, match=r"unit 1: no answer within 0.2 s \(1 frame\(s\) for another"):
                await link.read(1, Table.INPUT, 0, 2, 0.2)
            assert link.stray_frames == 1
        finally:
            link.close()


async def test_a_frame_for_the_same_unit_but_another_function_is_not_taken_as_the_answer() -> None:
    # A late answer of the same meter to an earlier read of holding registers.
    async with Peer(lambda req: registers_answer(1, 3, [7, 7])) as peer:
        link = peer.link()
        try:
            with pytest.raises(NoResponse):
                await link.read(1, Table.INPUT, 0, 2, 0.2)
            assert link.stray_frames == 1
        finally:
            link.close()


async def test_a_garbled_answer_is_a_crc_error() -> None:
    def garbled(req: bytes) -> bytes:
        good = _answer_of(req)
        return good[:-1] + bytes([good[-1] ^ 0xFF])

    async with Peer(garbled) as peer:
        link = peer.link()
        try:
            with pytest.raises(CrcError, match="unit 1: answer with a bad CRC"):
                await link.read(1, Table.INPUT, 0, 2, 0.2)
            assert link.stray_frames == 0
        finally:
            link.close()


async def test_discard_input_drops_what_arrived_between_exchanges() -> None:
    half = registers_answer(2, 4, [1, 2])[:5]
    async with Peer(lambda req: _answer_of(req)) as peer:
        link = peer.link()
        try:
            assert await link.read(1, Table.INPUT, 0, 2, 1.0) == GOOD
            heard = link.last_rx
            peer.writers[0].write(half)  # half a frame, out of turn
            for _ in range(200):
                if link.last_rx > heard:
                    break
                await asyncio.sleep(0.005)
            assert link.last_rx > heard
            assert link.discard_input() == len(half)
            assert link.discard_input() == 0
            assert await link.read(1, Table.INPUT, 0, 2, 1.0) == GOOD
        finally:
            link.close()


# --- the driver on a line with a slow meter --------------------------------------------------

SERVE = {"rtu": serve_rtu_pty, "rtu-over-tcp": serve_rtu_over_tcp}


@pytest.mark.parametrize("kind", list(SERVE))
async def test_a_slow_meter_never_costs_the_other_its_readings(kind: str) -> None:
    bus = SimBus.of_profile("eastron-sdm630", [1, 2])
    bus.faults.slow_units[2] = 0.4  # answers every request, always after the 0.3 s timeout
    served = bus.meters[1].served
    devices = [{"id": f"m{u}", "unit": u, "profile": "eastron-sdm630", "interval_fast_s": 0.05} for u in (1, 2)]
    async with await SERVE[kind](bus) as srv:
        opts = bus_options(srv, devices, timeout_s=0.3, offline_after=3, retry_initial_s=0.1, retry_max_s=0.2)
        async with DriverRun(opts) as run:
            await run.until(lambda: run.alarms("device.m2.offline") == [True], what="m2 offline")
            await run.until(lambda: len([r for r in bus.log if r.unit == 2 and r.outcome == "late"]) >= 6,
                            what="six late answers")
            await run.until(lambda: run.driver.health()["m1"].polls >= 20, what="20 polls of m1")
            h1, h2 = run.driver.health()["m1"], run.driver.health()["m2"]
            assert run.driver.bus.max_in_flight == 1
    # Unit 1 answered every poll, with the values it serves.
    assert h1.online is True and h1.failed_polls == 0
    assert h1.counters["timeouts"] == 0 and h1.counters["checksum_errors"] == 0
    m1 = [r for r in run.readings if r.point.startswith("m1/")]
    assert m1 and all(r.value == served[r.point.split("/")[1]] for r in m1)
    assert run.alarms("device.m1.offline") == []
    # Unit 2 went offline after offline_after failed polls, on timeouts.
    assert h2.online is False and h2.counters["timeouts"] >= 3
    assert h2.counters["checksum_errors"] == 0 and h2.counters["answers"] == 0
    offline = [e for e in run.events("device.availability") if e.data["state"] == "offline"]
    assert [e.data["device"] for e in offline] == ["m2"]
    assert run.counters["resyncs"] >= h2.counters["timeouts"] - 1
    # From the line's side: no request went out before the previous answer (late ones too) was over.
    log = sorted(bus.log, key=lambda r: r.t_rx)
    assert {r.unit for r in log} == {1, 2}
    last_tx = 0.0
    for r in log:
        assert r.t_rx >= last_tx, f"a request to unit {r.unit} went out while an answer was on the line"
        if r.t_tx is not None:
            last_tx = max(last_tx, r.t_tx)


# --- exception responses and availability ------------------------------------------------------


async def test_an_exception_answer_keeps_the_device_online_and_is_evented_once_per_change(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zaas_edge")
    bus = SimBus.of_profile("eastron-sdm630", [1, 2])
    async with await serve_rtu_pty(bus) as srv:
        devices = [{"id": f"m{u}", "unit": u, "profile": "eastron-sdm630"} for u in (1, 2)]
        async with DriverRun(bus_options(srv, devices, offline_after=1)) as run:
            await run.driver.poll_now()
            assert run.driver.health()["m2"].counters["exceptions"] == 0
            n_readings = len([r for r in run.readings if r.point.startswith("m2/")])

            bus.faults.exception_units[2] = 4  # server device failure, to every request
            for _ in range(3):
                await run.driver.poll_now()
            h = run.driver.health()["m2"]
            blocks = len(run.driver.devices["m2"].plan.blocks_for(set(run.driver.devices["m2"].entries)))
            assert h.counters["exceptions"] == 3 * blocks and h.details["last_exception"] == 4
            assert h.online is True and h.failed_polls == 0 and h.counters["timeouts"] == 0
            assert run.alarms("device.m2.offline") == []
            assert len([r for r in run.readings if r.point.startswith("m2/")]) == n_readings  # nothing new read
            assert run.driver.devices["m2"].plan.barriers == frozenset()  # not taken for an addressing problem
            # The bus stayed in step: unit 1 read fine meanwhile, no resync was needed.
            assert run.driver.health()["m1"].counters["exceptions"] == 0
            assert run.counters.get("resyncs", 0) == 0

            bus.faults.exception_units[2] = 6  # busy now: a change, one more event
            await run.driver.poll_now()
            await run.driver.poll_now()
            bus.faults.exception_units.clear()
            await run.driver.poll_now()
            await run.driver.poll_now()
            h = run.driver.health()["m2"]
            assert h.details["last_exception"] is None and h.counters["exceptions"] == 5 * blocks
            assert run.latest("m2/power").value == bus.meters[2].served["power"]
    events = run.events("modbus.exception")
    assert [(e.data["device"], e.data["code"]) for e in events] == [("m2", 4), ("m2", 6), ("m2", None)]
    assert "exception 04 (server device failure)" in events[0].text
    assert "exception 06 (server device busy)" in events[1].text
    lines = [r for r in caplog.records if "m2 (unit 2) answers" in r.getMessage()]
    assert len(lines) == 3  # one journal line per change (the event's), not one per poll nor one per layer
