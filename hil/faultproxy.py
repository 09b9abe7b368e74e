"""A fault-injecting TCP proxy (asyncio) between the gateway and the central API.

It forwards bytes untouched (TLS passes through end to end) and, on demand:

- ``drop``: accepts and closes new connections at once (the link is down);
- ``blackhole``: accepts and swallows everything, never answering (a dead
  route: the gateway's timeouts fire);
- ``delay_s``: holds every chunk this long in each direction (a slow link);
- ``bandwidth_bps``: paces each direction to this many bytes per second;
- ``reset_after_bytes``: resets a connection (TCP RST) once that many bytes
  went up it, i.e. in the middle of a request;
- :meth:`reset_all`: resets every open connection now (a flapping link).

Tests set attributes or call :meth:`set` between steps; ``python -m
hil.faultproxy --target HOST:PORT`` runs it by hand.
"""

from __future__ import annotations

__all__ = ["FaultProxy"]

import argparse
import asyncio
import contextlib
import socket
import struct
import sys
import time
from typing import Any

from zaas_edge.aio import wait_for

CHUNK = 16 * 1024


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset rather than a FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self.mode = "pass"  # pass | drop | blackhole
        self.delay_s = 0.0
        self.bandwidth_bps: float | None = None
        self.reset_after_bytes: int | None = None
        self.connections = 0
        self.resets = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self._server: asyncio.AbstractServer | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()

    def set(self, **kw: Any) -> None:
        for k, v in kw.items():
            if not hasattr(self, k):
                raise AttributeError(f"FaultProxy has no setting {k!r}")
            setattr(self, k, v)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def stop(self) -> None:
        self.reset_all()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await wait_for(self._server.wait_closed(), 2)

    def reset_all(self) -> None:
        for client, upstream in list(self._open):
            _rst(client)
            if upstream is not None:
                _rst(upstream)
            self.resets += 1
        self._open.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "drop":
            _rst(writer)
            return
        if self.mode == "blackhole":
            pair = (writer, None)
            self._open.add(pair)
            try:
                while await reader.read(CHUNK):
                    pass
            except ConnectionError:
                pass
            finally:
                self._open.discard(pair)
                writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _rst(writer)
            return
        pair = (writer, up_writer)
        self._open.add(pair)
        state = {"up": 0}
        try:
            await asyncio.gather(self._pump(reader, up_writer, "up", state, pair),
                                 self._pump(up_reader, writer, "down", state, pair))
        finally:
            self._open.discard(pair)
            for w in (writer, up_writer):
                w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: str,
                    state: dict[str, int], pair: tuple) -> None:
        try:
            while True:
                size = CHUNK if not self.bandwidth_bps else max(1, min(CHUNK, int(self.bandwidth_bps / 10)))
                data = await src.read(size)
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.bandwidth_bps:
                    await asyncio.sleep(len(data) / self.bandwidth_bps)
                if direction == "up":
                    state["up"] += len(data)
                    self.bytes_up += len(data)
                    if self.reset_after_bytes is not None and state["up"] > self.reset_after_bytes:
                        # Forward part of it, then cut: the request arrives half-sent.
                        dst.write(data[: max(0, len(data) - (state["up"] - self.reset_after_bytes))])
                        self.resets += 1
                        _rst(pair[0])
                        _rst(pair[1])
                        return
                else:
                    self.bytes_down += len(data)
                if self.mode == "blackhole":
                    continue  # the route died mid-connection: swallow
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            _rst(pair[0])
            if pair[1] is not None:
                _rst(pair[1])


async def _main(args: argparse.Namespace) -> int:
    host, _, port = args.target.rpartition(":")
    proxy = FaultProxy(host or "127.0.0.1", int(port), port=args.port)
    await proxy.start()
    print(f"faultproxy {proxy.address} -> {args.target}", flush=True)
    started = time.monotonic()
    while True:
        await asyncio.sleep(3600)
        print(f"up {time.monotonic() - started:.0f}s, {proxy.connections} connections", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.faultproxy", description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="HOST:PORT to forward to")
    p.add_argument("--port", type=int, default=0)
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
