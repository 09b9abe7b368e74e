"""Run the real daemon as a subprocess, with a real sd_notify socket: end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hil.procs import stop_process

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "zaas_edge"]


SYSTEM_DRIVER = '[[drivers]]\nid = "system"\ntype = "system"\ninterval_s = 1\ncritical = true'


def write_config(path: Path, base: Path, drivers: str = "", extra: str = "") -> Path:
    drivers = drivers or SYSTEM_DRIVER
    path.write_text(f"""
[gateway]
id = "gw-test"
site = "test-site"
state_dir = "{base / 'state'}"
runtime_dir = "{base / 'run'}"

[log]
level = "debug"

[clock]
assume_synced = true

{extra}

{drivers}
""")
    return path


class DaemonProcess:
    """The daemon under test, with its notify socket and captured output."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        # AF_UNIX paths are short: keep the notify socket in a short temp dir.
        self._dir = tempfile.mkdtemp(prefix="zaas-ntf-", dir="/tmp")
        self.notify_path = os.path.join(self._dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.messages: list[str] = []
        self.notify.settimeout(0.2)
        self._closed = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._drain_notify, name="notify-reader", daemon=True)
        self._reader.start()
        self.log_path = Path(self._dir) / "out.log"
        full_env = {**os.environ, "NOTIFY_SOCKET": self.notify_path, "WATCHDOG_USEC": "2000000",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        if "JOURNAL_STREAM" not in (env or {}):
            full_env.pop("JOURNAL_STREAM", None)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*CLI, "-c", str(config), "run"], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)

    def _drain_notify(self) -> None:
        """Read notifications as they come: an unread AF_UNIX datagram queue holds
        only ~10 messages, after which the daemon's sends fail with EAGAIN."""
        while not self._closed:
            try:
                msg = self.notify.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append(msg)
                self._cond.notify_all()

    def wait_notify(self, predicate: str, timeout: float = 20.0) -> str:
        """Wait for a notification datagram containing ``predicate`` (e.g. READY=1)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for msg in self.messages[seen:]:
                    if predicate in msg:
                        return msg
                seen = len(self.messages)
                exited = self.proc.poll() is not None
                left = deadline - time.monotonic()
                if left <= 0 or (exited and not self._cond.wait(0.5)):
                    state = f"exited with {self.proc.returncode}" if exited else "still running"
                    raise AssertionError(f"no {predicate} within {timeout}s (daemon {state}); "
                                         f"got {self.messages}\n{self.output()}")
                if not exited:
                    self._cond.wait(min(0.5, left))

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([*CLI, "-c", str(self.config), *args], capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"zaas-edge {' '.join(args)} exited {p.returncode}: {p.stderr}{p.stdout}")
        return p

    def status(self, *args: str) -> dict[str, Any]:
        """``zaas-edge status --json`` (plus ``args``, e.g. ``--points``), whatever the alarms say."""
        p = self.cli("status", "--json", *args, check=False)
        if p.returncode not in (0, 4):  # 4: running, with an error-level alarm active
            raise AssertionError(f"zaas-edge status --json exited {p.returncode}: {p.stderr}{p.stdout}")
        return json.loads(p.stdout)

    def wait_status(self, predicate, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status()
            if predicate(st):
                return st
            time.sleep(0.2)
        raise AssertionError(f"status never matched; last: {json.dumps(st, indent=1)[:3000]}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.proc, timeout)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        self.stop()
        self._log.close()
        self._closed = True
        self._reader.join(2)
        self.notify.close()
        for p in Path(self._dir).iterdir():
            p.unlink()
        os.rmdir(self._dir)
