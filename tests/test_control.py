"""The control socket: a unix socket with restrictive mode, JSON lines, clear refusals."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from zaas_edge.control import ControlClient, ControlServer, DaemonNotRunning
from zaas_edge.errors import PermanentError


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    # unix socket paths are limited to ~108 bytes; tmp_path can be long.
    short = Path("/tmp") / f"zaas-ctl-{os.getpid()}-{id(tmp_path) % 100000}"
    short.mkdir(exist_ok=True)
    yield short / "control.sock"
    for p in short.iterdir():
        p.unlink()
    short.rmdir()


async def _server(path: Path) -> ControlServer:
    async def status(req):
        return {"running": True, "points": bool(req.get("points"))}

    async def broken(req):
        raise RuntimeError("bug")

    srv = ControlServer(path, {"status": status, "broken": broken}, mode=0o660)
    await srv.start()
    return srv


async def test_round_trip_and_socket_mode(sock_path: Path) -> None:
    srv = await _server(sock_path)
    serve = asyncio.create_task(srv.serve_forever())
    try:
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o660
        client = ControlClient(sock_path)
        assert await asyncio.to_thread(client.call, "status", points=True) == {"running": True, "points": True}
        with pytest.raises(PermanentError, match="unknown command 'nope'"):
            await asyncio.to_thread(client.call, "nope")
        with pytest.raises(PermanentError, match="internal error: RuntimeError: bug"):
            await asyncio.to_thread(client.call, "broken")
        assert srv.requests == 3 and srv.bad_requests == 1
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
    assert not sock_path.exists()


async def test_garbage_requests_are_refused_and_counted(sock_path: Path) -> None:
    srv = await _server(sock_path)
    serve = asyncio.create_task(srv.serve_forever())
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock_path))
        for line in (b"not json\n", b"[1,2]\n", b'{"cmd": 3}\n'):
            writer.write(line)
            answer = json.loads(await reader.readline())
            assert answer["ok"] is False and answer["error"].startswith("bad request")
        writer.write(b"x" * (70 * 1024) + b"\n")
        answer = json.loads(await reader.readline())
        assert answer == {"ok": False, "error": "request longer than 65536 bytes"}
        writer.close()
        assert srv.bad_requests == 4
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)


async def test_second_daemon_is_refused_and_stale_socket_replaced(sock_path: Path) -> None:
    srv = await _server(sock_path)
    with pytest.raises(PermanentError, match="another zaas-edge daemon answers"):
        await ControlServer(sock_path, {}).start()
    await srv.close()
    # A socket file left by a killed daemon: nobody answers, so it is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()
    assert sock_path.exists()
    srv2 = await _server(sock_path)
    assert await asyncio.to_thread(ControlClient(sock_path).call, "status") == {"running": True, "points": False}
    await srv2.close()


def test_client_says_when_no_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="no daemon answers on"):
        ControlClient(tmp_path / "absent.sock").call("status")
