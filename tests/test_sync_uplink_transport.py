"""The uplink's own transport (the standard library's http.client in a worker thread): a silent
platform times out, a cancelled request lets go of its socket at once, a keep-alive connection
that died while idle is replaced without an error, and an answer too large is refused."""

from __future__ import annotations

import asyncio
import ssl
import threading

import pytest

from hil.central import Central
from tests.sync_fixtures import GATEWAY, enrolled_identity
from zaas_edge.errors import PermanentError
from zaas_edge.sync.uplink import LinkDown, Timeout, Uplink


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word; records when each one closes."""

    def __init__(self) -> None:
        self.accepted = asyncio.Event()
        self.closed = asyncio.Event()

    async def __aenter__(self) -> SilentServer:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted.set()
            while await reader.read(4096):
                pass
            self.closed.set()
            writer.close()

        self.server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def _context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


async def test_a_silent_platform_times_out_as_a_link_fault() -> None:
    async with SilentServer() as srv:
        up = Uplink(f"https://127.0.0.1:{srv.port}", GATEWAY, _context(), connect_timeout_s=0.3,
                    request_timeout_s=0.3)
        with pytest.raises(Timeout, match="no answer in time"):
            await up.server_time()
        await asyncio.wait_for(srv.closed.wait(), 10)
        await up.close()


async def test_a_cancelled_request_lets_go_of_its_socket_at_once() -> None:
    async with SilentServer() as srv:
        up = Uplink(f"https://127.0.0.1:{srv.port}", GATEWAY, _context(), connect_timeout_s=60,
                    request_timeout_s=60)
        threads = threading.active_count()
        task = asyncio.create_task(up.server_time())
        await asyncio.wait_for(srv.accepted.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(srv.closed.wait(), 10)  # the socket was shut down, not left to its timeout
        await up.close()
        assert threading.active_count() <= threads + 1  # at most the executor's idle worker


async def test_refused_connection_is_a_link_fault_that_names_the_address() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    up = Uplink(f"https://127.0.0.1:{port}", GATEWAY, _context())
    with pytest.raises(LinkDown, match=f"127.0.0.1:{port}.*cannot connect"):
        await up.server_time()


def test_only_an_https_address_is_accepted() -> None:
    with pytest.raises(PermanentError, match="https://"):
        Uplink("http://127.0.0.1:1", GATEWAY, _context())


async def test_a_connection_that_died_while_idle_is_replaced_without_an_error(tmp_path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    up = Uplink(central.url, GATEWAY, ident.context())
    try:
        assert (await up.server_time())[0] is not None
        first = up._conn
        assert first is not None and first.conn.sock is not None  # kept alive
        first.abort()  # as a platform that closed the idle connection leaves it
        date, body = await up.server_time()
        assert date is not None and body is not None
        assert up._conn is not first  # a fresh connection took over
        assert central.requests["/v1/time"] == 2  # the dead one carried nothing
    finally:
        await up.close()
