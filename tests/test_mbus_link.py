"""The M-Bus link protocol over a real pty, against the simulated bus."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.mbus import FrameParser, LongHeader, RecordSpec, parse_frame, req_ud2, rsp_ud, snd_nke
from zaas_edge.drivers.mbus.link import MBusLink, PortError, ProbeResult, parse_secondary, response_timeout
from zaas_edge.drivers.mbus.records import Coding

from hil.mbus_sim import MBusSimulator, SimMeter, default_meters, wired_and
from zaas_edge.errors import TransientError

BAUD = 9600


@pytest.fixture
def sim():
    with MBusSimulator() as s:
        yield s


@pytest.fixture
async def link(sim):
    lk = await MBusLink.open_serial(sim.path, BAUD, retries=2)
    yield lk
    await lk.close()


def test_response_timeout_follows_the_baud_rate() -> None:
    # 330 bit times to start answering, 11 bits per byte, 50 ms slack.
    assert response_timeout(2400, 1) == pytest.approx((330 + 11) / 2400 + 0.05)
    assert response_timeout(2400) == pytest.approx((330 + 11 * 261) / 2400 + 0.05)
    assert response_timeout(300) > 10 > response_timeout(2400) > response_timeout(9600)
    assert response_timeout(9600, 1, extra_s=0.5) == pytest.approx((330 + 11) / 9600 + 0.55)


def test_parse_secondary_wildcards() -> None:
    assert parse_secondary("12345678") == ("12345678", None, None, None)
    assert parse_secondary("123456782c2d1b04") == ("12345678", "KAM", 0x1B, 0x04)
    assert parse_secondary("12345678FFFFFFFF") == ("12345678", None, None, None)
    with pytest.raises(Exception, match="8 or 16 hex digits"):
        parse_secondary("1234")


async def test_multi_telegram_readout_toggles_the_fcb(sim, link) -> None:
    await link.reset(5)
    readout = await link.read(5)
    assert readout.complete and len(readout.telegrams) == 2
    assert readout.telegrams[0].more_records_follow and not readout.telegrams[1].more_records_follow
    keys = readout.telegram.by_key()
    assert {"energy", "volume", "power", "flow_temperature", "energy.s1", "date.s1", "power.max"} <= set(keys)
    assert "manufacturer_data" not in {r.quantity for r in readout.telegram.records}
    assert keys["energy.s1"].value == 8_000_000 and keys["energy.s1"].unit == "Wh"
    assert isinstance(readout.header, LongHeader) and readout.header.identification == "12345678"
    assert [parse_frame(f).control for f in readout.frames] == [0x08, 0x08]
    # The next poll starts over at the first telegram (FCB toggled once more).
    again = await link.read(5)
    assert [t.more_records_follow for t in again.telegrams] == [True, False]
    assert link.counters["multi_telegram_requests"] == 2
    assert "timeouts" not in link.counters


async def test_lost_answer_is_repeated_with_the_same_fcb(sim, link) -> None:
    await link.reset(5)
    sim.inject("heat", "no_answer")  # the meter moves on, its answer is lost
    readout = await link.read(5)
    # The retry carries the same FCB: the meter repeats telegram 1 rather than skipping to 2.
    assert [t.more_records_follow for t in readout.telegrams] == [True, False]
    assert "energy" in readout.telegram.by_key() and "energy.s1" in readout.telegram.by_key()
    assert link.counters["timeouts"] == 1 and link.counters["retries"] == 1


@pytest.mark.parametrize("fault,counter", [("no_answer", "timeouts"), ("bad_checksum", "checksum_errors"),
                                           ("truncated", "truncated")])
async def test_each_fault_is_counted_and_recovered(sim, link, fault, counter) -> None:
    sim.inject("gas", fault)
    readout = await link.read(7)
    assert readout.header.identification == "30112233"
    assert readout.telegram.by_key()["volume"].unit == "m3"
    assert link.counters[counter] == 1
    assert link.counters["retries"] == 1


async def test_a_silent_meter_fails_after_the_retries(sim, link) -> None:
    sim.inject("water", "no_answer", times=3)
    with pytest.raises(TransientError, match="REQ_UD2 to address 6: no answer after 3 attempt"):
        await link.read(6)
    assert link.counters["timeouts"] == 3 and link.counters["retries"] == 2
    # and the meter answers again afterwards
    assert (await link.read(6)).header.identification == "12345699"


async def test_secondary_read_selects_then_reads_at_253(sim, link) -> None:
    readout = await link.read("12345699FFFFFFFF")
    assert readout.header.identification == "12345699" and readout.header.manufacturer == "SEN"
    assert [m.name for m in sim.bus.meters if m.selected] == ["water"]
    full = await link.read(sim.bus.meter("electricity").secondary)
    assert full.header.medium_name == "electricity"
    assert {"energy", "energy.t1", "energy.t2", "voltage", "current"} <= set(full.telegram.by_key())


async def test_application_reset_restarts_the_readout(sim, link) -> None:
    await link.reset(5)
    first, _ = await link.req_ud2(5)
    assert first.more_records_follow
    await link.application_reset(5)
    await link.reset(5)
    again, _ = await link.req_ud2(5)
    assert again.more_records_follow  # telegram 1 again, not telegram 2
    assert sim.bus.meter("heat").index == 0


async def test_probes_tell_silence_one_answer_and_collision_apart(sim, link) -> None:
    assert await link.probe_secondary("1234FFFF") is ProbeResult.COLLISION  # heat and water
    assert await link.probe_secondary("3FFFFFFF") is ProbeResult.SINGLE  # gas
    assert await link.probe_secondary("9FFFFFFF") is ProbeResult.NONE
    assert await link.probe_primary(9) is ProbeResult.SINGLE
    assert await link.probe_primary(100) is ProbeResult.NONE
    assert link.counters["collisions"] == 1


async def test_readout_is_bounded_when_a_meter_never_stops(sim) -> None:
    endless = SimMeter("endless", "55555555", "ABB", 1, 2, 20,
                       lambda t: [[RecordSpec(b"\x03", k, Coding.INT32, storage=k)] for k in range(20)])
    sim.bus.meters.append(endless)
    lk = await MBusLink.open_serial(sim.path, BAUD, max_telegrams=3)
    try:
        readout = await lk.read(20, reset=True)
    finally:
        await lk.close()
    assert not readout.complete and len(readout.telegrams) == 3
    assert sorted(r.storage for r in readout.telegram.records if r.quantity == "energy") == [0, 1, 2]
    assert lk.counters["readouts_cut"] == 1


async def test_missing_port_is_a_port_error(tmp_path) -> None:
    with pytest.raises(PortError, match="cannot open M-Bus port"):
        await MBusLink.open_serial(str(tmp_path / "ttyUSB9"), 2400)


def test_unknown_baud_rate_is_refused() -> None:
    with pytest.raises(Exception, match="not an M-Bus rate"):
        MBusLink(None, 1234)  # type: ignore[arg-type]


# -- the collision model and the stream parser ---------------------------------------------------


def test_wired_and_garbles_overlapping_answers() -> None:
    ack = b"\xe5"
    assert wired_and([(ack, 0)]) == ack
    assert wired_and([(ack, 0), (ack, 0)]) == ack  # perfectly aligned identical answers look clean
    assert wired_and([(ack, 0), (ack, 3)]) != ack
    heat, water = default_meters()[:2]
    a, b = heat.rsp_ud(True, 0.0), water.rsp_ud(True, 0.0)
    parser = FrameParser()
    assert parser.feed(wired_and([(a, 0), (b, 3)])) == []
    assert parser.dropped_bytes > 0


FRAMES = [snd_nke(5), req_ud2(5, True), b"\xe5",
          rsp_ud(5, LongHeader(1, 0, 0, "12345678", "KAM", 1, 4), [RecordSpec(b"\x04", 1230, Coding.INT32)])]


@settings(max_examples=200, deadline=None)
@given(order=st.lists(st.sampled_from(range(len(FRAMES))), min_size=1, max_size=12),
       cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_stream_parser_is_indifferent_to_chunking(order: list[int], cuts: list[int]) -> None:
    stream = b"".join(FRAMES[i] for i in order)
    parser = FrameParser()
    frames, pos = [], 0
    for size in cuts:
        frames += parser.feed(stream[pos : pos + size])
        pos += size
    frames += parser.feed(stream[pos:])
    assert frames == [parse_frame(FRAMES[i]) for i in order]
    assert parser.pending == 0 and parser.dropped_bytes == 0 and parser.bad_frames == 0


async def test_simulator_runs_as_a_module_and_prints_its_pty() -> None:
    import asyncio
    import sys

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hil.mbus_sim",
                                                stdout=asyncio.subprocess.PIPE)
    try:
        path = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert path.startswith("/dev/pts/")
        lk = await MBusLink.open_serial(path, 2400)
        try:
            readout = await lk.read(9, reset=True)
        finally:
            await lk.close()
        assert readout.header.manufacturer == "ABB" and readout.header.medium_name == "electricity"
    finally:
        proc.terminate()
        await proc.wait()


class ScriptedTransport:
    """The transport seam with a script of answer chunks instead of a serial port."""

    def __init__(self, answers: list[list[bytes]]) -> None:
        self.answers = answers
        self.sent: list[bytes] = []
        self._chunks: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.sent.append(data)
        self._chunks = list(self.answers.pop(0)) if self.answers else []

    async def read(self, timeout: float) -> bytes:
        import asyncio

        if self._chunks:
            return self._chunks.pop(0)
        await asyncio.sleep(timeout)
        return b""

    def discard_input(self) -> None:
        pass

    async def close(self) -> None:
        pass


GOOD = rsp_ud(5, LongHeader(1, 0, 0, "12345678", "KAM", 1, 4), [RecordSpec(b"\x04", 1230, Coding.INT32)])


@settings(max_examples=40, deadline=None)
@given(answers=st.lists(st.lists(st.one_of(st.binary(max_size=40), st.just(GOOD),
                                           st.builds(lambda k, b: GOOD[:k] + bytes([b]) + GOOD[k + 1:],
                                                     st.integers(0, len(GOOD) - 1), st.integers(0, 255))),
                                 max_size=4), max_size=3))
def test_any_answer_gives_a_readout_or_a_transient_error(answers: list[list[bytes]]) -> None:
    import asyncio

    async def go() -> None:
        link = MBusLink(ScriptedTransport(answers), 38400, retries=1)  # type: ignore[arg-type]
        try:
            readout = await link.read(5)
        except TransientError:
            assert link.counters["requests"] >= 1
            return
        assert readout.telegrams and all(not t.more_records_follow for t in readout.telegrams[-1:])

    asyncio.run(go())
