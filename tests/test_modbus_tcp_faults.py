"""A Modbus TCP device that answers with frames the client library cannot decode: counted as a bad
response at the transport, never an exception escaping into the event loop, never a reconnect
storm, one log line per device per interval.

The peer is a scripted Modbus TCP endpoint on 127.0.0.1 that answers each request (its MBAP
transaction id echoed) with the bytes a test gives."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

import pytest
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.transport import BadResponse, Link, LinkSpec

from hil.modbus_harness import DriverRun

Script = Callable[[int, bytes], bytes]  # (request number, request PDU) -> answer PDU after the MBAP header


def mbap(tid: int, unit: int, pdu: bytes, *, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, 0, (len(pdu) + 1) if length is None else length, unit) + pdu


# The fault as reported: MBAP-consistent (length 3: unit, function, byte count), but the byte
# count says 2 and no register follows.
WRONG_COUNT = bytes.fromhex("0104") + b"\x02"
GOOD = bytes([0x04, 4]) + struct.pack(">HH", 0x4366, 0)  # input registers: 230.0 V as float32


class TcpPeer:
    def __init__(self, script: Callable[[int], bytes]) -> None:
        self.script = script
        self.requests = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", head)
                await reader.readexactly(length - 1)
                self.requests += 1
                pdu = self.script(self.requests)
                if pdu[:1] == b"\x01":  # the fault's bytes carry their own unit and MBAP length
                    writer.write(struct.pack(">HHH", tid, 0, 3) + pdu)
                else:
                    writer.write(mbap(tid, unit, pdu))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> TcpPeer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()


async def test_an_undecodable_answer_is_a_bad_response_on_the_same_connection() -> None:
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    async with TcpPeer(lambda n: WRONG_COUNT if n % 2 else GOOD) as peer:
        link = Link(LinkSpec("tcp", host="127.0.0.1", port=peer.port))
        try:
            with pytest.raises(BadResponse, match="cannot be decoded"):
                await link.read(1, Table.INPUT, 0, 2, 5.0)
            assert await link.read(1, Table.INPUT, 0, 2, 5.0) == [0x4366, 0]
            with pytest.raises(BadResponse):
                await link.read(1, Table.INPUT, 0, 2, 5.0)
            assert await link.read(1, Table.INPUT, 0, 2, 5.0) == [0x4366, 0]
            assert link.bad_frames == 2
        finally:
            link.close()
    assert errors == []  # nothing escaped into asyncio's default handler
    assert (peer.connections, link.connects) == (1, 1)  # no reconnect


async def test_a_device_answering_garbage_is_counted_and_logged_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    async with TcpPeer(lambda n: WRONG_COUNT) as peer:
        opts = {"id": "bus", "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "port": peer.port,
                "timeout_s": 2.0, "offline_after": 100,
                "devices": [{"id": "m1", "unit": 1, "profile": "eastron-sdm630"}]}
        async with DriverRun(opts) as run:
            for _ in range(25):
                await run.driver.poll_now()
            h = run.driver.health()["m1"]
    assert errors == []
    assert h.counters["bad_responses"] >= 25 and h.counters["timeouts"] == 0
    assert peer.connections == 1
    lines = [r for r in caplog.records if "device m1" in r.getMessage() and "decoded" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith(("zaas_edge", "asyncio")))
