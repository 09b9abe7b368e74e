"""The reference central API in its own process on 127.0.0.1 (``python -m hil.central``).

What the daemon's end-to-end tests and the sync benchmark run it as: a child
process in test mode, so ``/test/...`` tells what it holds.
"""

from __future__ import annotations

__all__ = ["CentralProcess"]

import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from hil.procs import stop_process

ROOT = Path(__file__).resolve().parent.parent.parent


class CentralProcess:
    """Started on construction; ``url``, ``ca`` (the CA file), ``tokens``; ``close()`` stops it."""

    def __init__(self, directory: Path, *, gateway: str | None = None, tokens: int = 1) -> None:
        args = [sys.executable, "-m", "hil.central", "--dir", str(directory), "--port", "0",
                "--tokens", str(tokens), "--test-mode"]
        if gateway:
            args += ["--gateway", gateway]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            info = json.loads(line)
        except ValueError:
            stop_process(self.proc)
            raise RuntimeError(f"the central did not start: {line!r}") from None
        self.url: str = info["url"]
        self.ca = Path(info["ca"])
        self.tokens: list[str] = list(info["tokens"])
        self.token = self.tokens[0]
        self.ctx = ssl.create_default_context(cafile=str(self.ca))

    def get(self, path: str) -> dict[str, Any]:
        """A test endpoint's JSON answer (blocking: for tests driving a daemon subprocess)."""
        with urllib.request.urlopen(self.url + path, context=self.ctx, timeout=10) as r:
            return json.loads(r.read())

    async def stats(self) -> dict[str, Any]:
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ctx)) as s, \
                s.get(f"{self.url}/test/stats") as r:
            return await r.json()

    def close(self) -> None:
        stop_process(self.proc, timeout=10)
