"""The readout a driver sends back to ``zaas-edge read``, and the pending reads that outlast a request."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zaas_edge.errors import PermanentError, ProtocolError
from zaas_edge.readout import DeviceReadout, PendingReads, PointReading

_text = st.text(min_size=1, max_size=12)
_value = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), _text)
_points = st.lists(st.builds(PointReading, _text, _value, st.text(max_size=4),
                             st.sampled_from(["ok", "error", "missing", "unread"])), max_size=6)
_readouts = st.builds(DeviceReadout, _text, _text, _text, _points.map(tuple),
                      st.dictionaries(_text, _text, max_size=3), st.one_of(st.none(), _text),
                      st.sampled_from(["port", "daemon"]))


@given(_readouts)
def test_a_readout_comes_back_from_json_as_it_was_sent(readout: DeviceReadout) -> None:
    wire = json.loads(json.dumps(readout.to_json()))  # what the control socket carries
    assert DeviceReadout.from_json(wire) == readout


@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                    max_leaves=12))
def test_garbage_from_the_daemon_is_a_protocol_error_never_a_crash(doc: object) -> None:
    try:
        DeviceReadout.from_json(doc)  # type: ignore[arg-type]
    except ProtocolError as exc:
        assert "readout" in str(exc)


def test_a_value_with_no_finite_number_is_sent_as_no_value() -> None:
    assert PointReading("p", math.nan).to_json()["value"] is None


def _readout(device: str) -> DeviceReadout:
    return DeviceReadout("drv", device, "bus", (PointReading("energy", 12.5, "kWh"),))


def test_a_read_longer_than_a_request_is_pending_then_collected() -> None:
    async def main() -> None:
        release = asyncio.Event()
        started: list[str] = []

        async def slow(device: str) -> DeviceReadout:
            started.append(device)
            await release.wait()
            return _readout(device)

        reads = PendingReads(wait_s=0.01)
        assert await reads.answer({"device": "m1"}, {"m1"}, slow) == {"pending": True}
        assert await reads.answer({"device": "m1", "again": True}, {"m1"}, slow) == {"pending": True}
        assert started == ["m1"]  # asked again: the same read is joined, not doubled
        release.set()
        answer = await reads.answer({"device": "m1", "again": True}, {"m1"}, slow)
        assert answer["pending"] is False and answer["readout"]["via"] == "daemon"
        assert DeviceReadout.from_json(answer["readout"]).points[0].value == 12.5

        with pytest.raises(PermanentError, match=r"no device 'm9' here \(devices: m1\)"):
            await reads.answer({"device": "m9"}, {"m1"}, slow)
        with pytest.raises(PermanentError, match="read needs a 'device' id"):
            await reads.answer({}, {"m1"}, slow)

    asyncio.run(main())


def test_a_read_left_uncollected_is_not_handed_to_the_next_technician() -> None:
    async def main() -> None:
        n = [0]
        first = asyncio.Event()

        async def fast(device: str) -> DeviceReadout:
            n[0] += 1
            if n[0] == 1:
                await first.wait()
            return DeviceReadout("drv", device, "bus", (PointReading("count", float(n[0])),))

        reads = PendingReads(wait_s=0.01)
        assert await reads.answer({"device": "m1"}, {"m1"}, fast) == {"pending": True}
        first.set()  # the first read finishes; its technician went away (Ctrl-C) and never asks again
        await asyncio.sleep(0.01)
        answer = await reads.answer({"device": "m1"}, {"m1"}, fast)  # a new read, not the old result
        while answer.get("pending"):
            answer = await reads.answer({"device": "m1", "again": True}, {"m1"}, fast)
        assert answer["readout"]["points"][0]["value"] == 2.0

    asyncio.run(main())
