"""The local control socket: how the CLI asks the running daemon.

A unix stream socket in the runtime directory, mode 0660 so the service's
group (field technicians' accounts) can use it and nobody else. Membership
is the whole authority: every command (status, reload, sync now, load
overrides) is open to the group, each an operator's action with a bounded
effect; a read-only account reads the journal instead. One JSON
request per line, one JSON answer per line. Nothing listens on the network.
"""

from __future__ import annotations

__all__ = ["ControlServer", "ControlClient", "DaemonNotRunning", "Handler", "MAX_REQUEST", "RELOAD_TIMEOUT_S"]

import asyncio
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from zaas_edge.aio import wait_for
from zaas_edge.errors import PermanentError, TransientError, ZaasError

log = logging.getLogger("zaas_edge.control")

MAX_REQUEST = 64 * 1024
REQUEST_TIMEOUT_S = 5.0
RELOAD_TIMEOUT_S = 120.0  # a reload stops and starts drivers and services; systemctl reload waits for it

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class DaemonNotRunning(TransientError):
    pass


class ControlServer:
    """``timeouts`` gives commands that may take longer than :data:`REQUEST_TIMEOUT_S` their own
    bound (a reload stops and starts drivers)."""

    def __init__(self, path: Path, handlers: dict[str, Handler], *, mode: int = 0o660,
                 timeouts: Mapping[str, float] | None = None) -> None:
        self.path = path
        self.handlers = handlers
        self.timeouts = dict(timeouts or {})
        self.mode = mode
        self.requests = 0
        self.bad_requests = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists() or self.path.is_symlink():
            if _answers(self.path):
                raise PermanentError(
                    f"another zaas-edge daemon answers on {self.path}; stop it first (systemctl stop zaas-edge)")
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise PermanentError(f"{self.path} exists and is not a socket; remove it or set control.socket")
            self.path.unlink()  # stale, left by a daemon that was killed
        # Create with the final mode: no window where the socket is world-usable.
        old = os.umask(0o777 & ~self.mode)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        finally:
            os.umask(old)
        os.chmod(self.path, self.mode)

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
            try:
                self.path.unlink()
            except OSError:
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await wait_for(reader.readline(), REQUEST_TIMEOUT_S * 12)
                except (TimeoutError, ConnectionError):
                    return
                except (asyncio.LimitOverrunError, ValueError):
                    self.bad_requests += 1
                    await _send(writer, {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
                    return
                if not line:
                    return
                await _send(writer, await self._answer(line))
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        self.requests += 1
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise ValueError("expected a JSON object with a string 'cmd'")
        except ValueError as exc:
            self.bad_requests += 1
            return {"ok": False, "error": f"bad request: {exc}"}
        handler = self.handlers.get(req["cmd"])
        if handler is None:
            self.bad_requests += 1
            return {"ok": False, "error": f"unknown command {req['cmd']!r} (known: {', '.join(sorted(self.handlers))})"}
        try:
            timeout = self.timeouts.get(req["cmd"], REQUEST_TIMEOUT_S)
            return {"ok": True, "result": await wait_for(handler(req), timeout)}
        except ZaasError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control command %s failed", req["cmd"])
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}


async def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
    writer.write(json.dumps(obj, default=str).encode() + b"\n")
    await writer.drain()


def _answers(path: Path) -> bool:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


class ControlClient:
    """Blocking client for the CLI: one request, one answer."""

    def __init__(self, path: Path, timeout: float = REQUEST_TIMEOUT_S + 1) -> None:
        self.path = path
        self.timeout = timeout

    def call(self, cmd: str, **args: Any) -> Any:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            try:
                s.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise DaemonNotRunning(f"no daemon answers on {self.path}") from exc
            except PermissionError as exc:
                raise PermanentError(
                    f"not allowed to use {self.path}: run as root or as a member of the service's group") from exc
            s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            buf = bytearray()
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError as exc:
            raise TransientError(f"the daemon did not answer on {self.path} within {self.timeout:.0f}s") from exc
        finally:
            s.close()
        try:
            answer = json.loads(buf)
        except ValueError as exc:
            raise TransientError(f"unreadable answer from the daemon on {self.path}") from exc
        if not answer.get("ok"):
            raise PermanentError(f"the daemon refused {cmd!r}: {answer.get('error')}")
        return answer.get("result")
