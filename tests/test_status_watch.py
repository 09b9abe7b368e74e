"""``zaas-edge status --watch``: the live view of the real daemon, into a pipe, as NDJSON and on a
pseudo-terminal; waiting through a daemon restart; the pure screen on made-up and garbage statuses."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.daemon_harness import CLI, ROOT, DaemonProcess, write_config
from zaas_edge.cli.watch import ERASE_BELOW, HOME, RateMeter, Rates, down_screen, fit, screen

# A dead Modbus TCP port (discard, refused on loopback): two devices offline, the shedding meter missing,
# so the view has offline devices, a limit without a measure, a load sent to its safe state, alarms.
SHEDDING = """
[shedding]
enabled = true

[[shedding.limits]]
id = "site"
points = ["board/power"]
kind = "instant"
limit_w = 20000

[[shedding.loads]]
id = "dryer"
circuit = "site"
priority = 1
power_w = 2500
dwell_s = 5
actuator = "relay-dryer"

[[shedding.actuators]]
id = "relay-dryer"
kind = "modbus_coil"
driver = "bus"
point = "relays/relay_4"
"""

DRIVERS = """
[[drivers]]
id = "system"
type = "system"
interval_s = 1

[[drivers]]
id = "bus"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = 9
timeout_s = 0.5
retry_initial_s = 1.0
devices = [{ id = "board", unit = 1, profile = "eastron-sdm630" },
           { id = "relays", unit = 2, profile = "waveshare-relay-8ch" }]
"""


class Watch:
    """``zaas-edge status --watch`` as a subprocess; its output read by a thread into a queue."""

    def __init__(self, config: Path, *args: str, pty: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # the pty's size decides
        env.update(PYTHONUNBUFFERED="1", TERM="xterm")
        self.text = ""
        self._q: queue.Queue[str | None] = queue.Queue()
        if pty:
            master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
            self.proc = subprocess.Popen([*CLI, "-c", str(config), "status", "--watch", *args], stdout=slave,
                                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
            os.close(slave)
            reader: IO[bytes] = os.fdopen(master, "rb", buffering=0)
        else:
            self.proc = subprocess.Popen([*CLI, "-c", str(config), "status", "--watch", *args],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                         cwd=ROOT, env=env)
            assert self.proc.stdout is not None
            reader = self.proc.stdout
        self._thread = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self._thread.start()

    def _read(self, reader: IO[bytes]) -> None:
        try:
            while chunk := reader.read1(65536) if hasattr(reader, "read1") else reader.read(65536):
                self._q.put(chunk.decode(errors="replace"))
        except OSError:  # the pty's other end closed (EIO)
            pass
        finally:
            self._q.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The output so far once ``predicate`` holds on it (awaited, not slept for)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.text):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the view never showed what was awaited; it showed:\n{self.text[-4000:]}")
            try:
                chunk = self._q.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if chunk is None:
                raise AssertionError(f"the view ended (exit {self.proc.wait(5)}):\n{self.text[-4000:]}"
                                     f"{self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            self.text += chunk
        return self.text

    def interrupt(self) -> int:
        """Ctrl-C, and its exit status."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(20)
        finally:
            self._thread.join(5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path):
    cfg = write_config(tmp_path / "config.toml", tmp_path, drivers=DRIVERS, extra=SHEDDING)
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        # Both devices have failed their polls (offline, with an alarm each) before the view starts.
        d.wait_status(lambda s: all(h.get("online") is False for h in s["drivers"]["bus"]["devices"].values())
                      and len(s["drivers"]["bus"]["devices"]) == 2)
        yield d
    finally:
        d.close()


def _complete_blocks(text: str) -> list[str]:
    """The blocks a pipe received whole (another began after each): a block's sections are apart by one
    blank line, blocks by a blank line before the next header."""
    parts = text.split("\n\nzaas-edge")
    return [parts[0], *("zaas-edge" + p for p in parts[1:])][:-1] if text.startswith("zaas-edge") else []


def _frames(text: str) -> list[str]:
    parts = text.split(HOME)
    return list(parts[1:-1]) + ([parts[-1]] if parts[-1].endswith(ERASE_BELOW) else [])


def test_into_a_pipe_one_block_per_interval_with_the_whole_picture(daemon: DaemonProcess) -> None:
    w = Watch(daemon.config, "--interval", "0.5")
    try:
        text = w.wait_for(lambda t: len(b := _complete_blocks(t)) >= 2 and "FAULT" in b[-1], timeout=60)
        assert w.proc.poll() is None  # a view runs until Ctrl-C
        assert w.interrupt() == 0
    finally:
        w.close()
    assert "\033[" not in text  # no terminal codes into a pipe
    block = _complete_blocks(text)[-1]
    pid = daemon.proc.pid
    assert f"daemon pid {pid}" in block and "gw-test at test-site" in block
    assert "clock synchronised" in block and "drivers 2/2 running" in block and "devices 0/2 online" in block
    lines = block.splitlines()
    system = next(line for line in lines if line.startswith("system "))
    assert "running" in system and float(system.split()[4]) > 0  # readings/s of a driver read every second
    assert next(line for line in lines if line.startswith("bus ")).split()[3] == "0/2"
    assert any(line.startswith("  OFFLINE bus/board: last seen never, cannot connect to 127.0.0.1:9") for line in lines)
    assert any(line.startswith("  OFFLINE bus/relays:") for line in lines)
    assert any(line.startswith("backlog: reading ") and "store ok" in line for line in lines)
    assert "mqtt: not configured" in lines and "sync: not configured" in lines
    assert any(line.startswith("shedding: ") for line in lines)
    assert "  limit site: - of 20000 W" in block  # no measure from the dead meter
    # Sent to its safe state, which its dead actuator could not carry out:
    assert re.search(r"^  shed: dryer \w+ [\d.]+/1 FAULT$", block, re.MULTILINE), block
    assert "  last error: actuator relay-dryer: writing 0 to relays/relay_4 failed" in block
    alarms = [line for line in lines if line.startswith("  WARNING") or line.startswith("  ERROR")]
    assert any("device.board.offline" in a for a in alarms) and any("device.relays.offline" in a for a in alarms)
    assert any(line.startswith("alarms: ") and line.endswith(" active") for line in lines)


def test_with_json_one_status_object_per_line(daemon: DaemonProcess) -> None:
    w = Watch(daemon.config, "--json", "--interval", "0.3")
    try:
        text = w.wait_for(lambda t: t.count("\n") >= 3)
        assert w.interrupt() == 0
    finally:
        w.close()
    objects = [json.loads(line) for line in text.splitlines()[:3]]
    for o in objects:
        assert o["running"] is True and o["daemon"]["pid"] == daemon.proc.pid
        assert set(o["drivers"]) == {"system", "bus"}
        assert o["watch"]["shed"]["limits"]["site"]["limit_w"] == 20000
        assert isinstance(o["watch"]["time"], float)
    rate = objects[-1]["watch"]["readings_per_s"]
    assert rate is not None and rate > 0
    assert objects[-1]["watch"]["driver_readings_per_s"]["bus"] == 0
    assert [o["watch"]["time"] for o in objects] == sorted(o["watch"]["time"] for o in objects)


def test_on_a_terminal_the_screen_is_redrawn_in_place(daemon: DaemonProcess) -> None:
    w = Watch(daemon.config, "--interval", "0.3", pty=True)
    try:
        text = w.wait_for(lambda t: len(_frames(t)) >= 3)
        assert w.interrupt() == 0
    finally:
        w.close()
    frames = _frames(text)
    assert text.startswith(HOME)
    for frame in frames[:3]:
        assert frame.startswith("zaas-edge gw-test at test-site") and frame.endswith(ERASE_BELOW)
        lines = frame[:-len(ERASE_BELOW)].replace("\r\n", "\n").split("\n")
        assert all(line.endswith("\033[K") for line in lines if line)  # each line clears what it overwrites
        assert len(lines) <= 40 and all(len(line) <= 150 + 3 for line in lines)  # the pty's 150 x 40
        assert "devices 0/2 online" in frame and "shedding: " in frame and "alarms: " in frame


def test_it_waits_for_a_daemon_that_is_not_answering_and_follows_a_restart(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", tmp_path)
    w = Watch(cfg, "--interval", "0.3")
    d: DaemonProcess | None = None
    try:
        text = w.wait_for(lambda t: t.count("daemon not answering since") >= 2)
        first = text.split("\n\n")[0]
        assert "no daemon answers on" in first and str(tmp_path / "run" / "control.sock") in first
        assert "waiting for it to answer (Ctrl-C quits)" in first
        assert w.proc.poll() is None  # it did not give up
        d = DaemonProcess(cfg)
        d.wait_notify("READY=1")
        w.wait_for(lambda t: f"daemon pid {d.proc.pid}" in t, timeout=30)
        assert d.stop() == 0
        seen = len(w.text)
        after = w.wait_for(lambda t: "daemon not answering since" in t[seen:])[seen:]
        assert "; last answered at " in after  # it says when it last heard from the daemon
        assert w.proc.poll() is None
        assert w.interrupt() == 0
    finally:
        w.close()
        if d is not None:
            d.close()


def test_json_while_no_daemon_answers(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", tmp_path)
    w = Watch(cfg, "--json", "--interval", "0.3")
    try:
        text = w.wait_for(lambda t: t.count("\n") >= 2)
        assert w.interrupt() == 0
    finally:
        w.close()
    first, second = (json.loads(line) for line in text.splitlines()[:2])
    assert first["running"] is False and "no daemon answers" in first["reason"]
    assert first["watch"]["not_answering_since"] == second["watch"]["not_answering_since"]
    assert first["watch"]["last_answered"] is None


def test_interval_needs_watch(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", tmp_path)
    p = subprocess.run([*CLI, "-c", str(cfg), "status", "--interval", "1"], capture_output=True, text=True, cwd=ROOT,
                       timeout=30)
    assert p.returncode == 2 and "--interval goes with --watch" in p.stderr


# --- the pure screen ---------------------------------------------------------------------------


def _status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "running": True, "readings_total": 1000,
        "daemon": {"pid": 42, "version": "0.1.0", "gateway": "gw-1", "site": "office", "uptime_s": 100.0,
                   "clock_synced": False},
        "drivers": {"mbus": {"type": "mbus", "state": "running", "readings": 400, "last_reading_age_s": 2.0,
                             "last_error": None,
                             "devices": {"heat": {"online": True}, "water": {"online": False, "last_seen_s": 700.0,
                                                                             "last_error": "timeout\nmore"}}},
                    "system": {"type": "system", "state": "restarting", "readings": 600, "devices": {},
                               "last_error": "boom"}},
        "backlog": {"reading": 12, "upload": 3, "event": 0, "alarm": 1},
        "store": {"file_bytes": 2 * 1048576, "cap_bytes": 1024 * 1048576, "degraded": False},
        "mqtt": {"connected": False, "broker": "mqtt://127.0.0.1:1883", "last_error": "refused", "retry_in_s": 5},
        "sync": {"state": "backoff", "url": "https://central", "lanes": {
            "event": {"last_success": 900.0, "last_error": "HTTP 503", "last_error_at": 990.0},
            "reading": {"last_success": 950.0, "last_error": None}}},
        "alarms": {"b.warn": {"severity": "warning", "since": 0.0, "text": "w"},
                   "a.crit": {"severity": "critical", "since": 0.0, "text": "c"}},
        "services": {"shed": {"state": "running", "stages": {"site": "shed"}, "shed": ["ev"]}},
    }
    st.update(over)
    return st


SHED = {"state": "running", "dry_run": True,
        "limits": {"site": {"value_w": 21000.4, "limit_w": 20000.0, "stage": "shed", "headroom_w": -1000.4}},
        "loads": {"ev": {"state": "reduced", "level": 10.0, "full_level": 16.0, "fault": False},
                  "dryer": {"state": "on", "level": 1.0, "full_level": 1.0, "fault": False},
                  "pump": {"state": "on", "level": 1.0, "full_level": 1.0, "fault": True}}}


def test_the_screen_of_a_made_up_status() -> None:
    lines = screen(_status(), SHED, Rates(25.0, {"mbus": 4.0}), 1000.0)
    text = "\n".join(lines)
    assert lines[0].startswith("zaas-edge gw-1 at office") and "daemon pid 42, up 1m40s, version 0.1.0" in lines[0]
    assert "clock NOT synchronised   drivers 1/2 running   devices 1/2 online   25.0 readings/s" in lines[1]
    assert "  OFFLINE mbus/water: last seen 11m40s ago, timeout" in lines
    assert any(line.startswith("system ") and "restarting" in line and "boom" in line for line in lines)
    assert "backlog: reading 12  upload 3  event 0  alarm 1   store ok, 2.0 MB of 1.0 GB" in lines
    assert "mqtt: NOT connected (mqtt://127.0.0.1:1883); refused; next try in 5.0s" in lines
    assert "sync: backoff  https://central  last success 50s ago; last error: HTTP 503" in lines
    assert "shedding: running  (dry run: nothing is switched)" in lines
    assert "  limit site: 21000 W of 20000 W (shed), headroom -1000 W" in lines
    assert "  shed: ev reduced 10/16, pump on 1/1 FAULT" in lines
    alarms = lines[lines.index("alarms: 2 active") + 1:]
    assert alarms[0].startswith("  CRITICAL a.crit") and alarms[1].startswith("  WARNING  b.warn")
    assert "gw-1" in text
    # Without shed.status, the summary in status stands in.
    summary = screen(_status(), None, Rates(), 1000.0)
    assert "  limit site: shed" in summary and "  shed: ev" in summary
    bare = screen(_status(services={}), None, Rates(), 1000.0)
    assert "shedding: not configured" in bare and "- readings/s" in bare[1]


def test_long_lists_end_with_how_many_more() -> None:
    devices = {f"m{i:02d}": {"online": False} for i in range(20)}
    st = _status(drivers={"bus": {"type": "modbus", "state": "running", "devices": devices}})
    lines = screen(st, None, Rates(), 0.0)
    assert sum(line.startswith("  OFFLINE") for line in lines) == 5 and "  ... and 15 more" in lines


def test_the_rate_is_a_difference_over_the_last_seconds_and_restarts_over() -> None:
    meter = RateMeter(window_s=10)
    first = meter.update(0.0, _status())
    assert first.total == pytest.approx(10.0) and first.drivers["mbus"] == pytest.approx(4.0)  # since start
    assert meter.update(5.0, _status(readings_total=1500)).total == pytest.approx(100.0)
    assert meter.update(10.0, _status(readings_total=2500)).total == pytest.approx(150.0)
    assert meter.update(20.0, _status(readings_total=3500)).total == pytest.approx(100.0)  # 10 s back
    restarted = _status(readings_total=50, daemon={"pid": 43, "uptime_s": 5.0})
    assert meter.update(21.0, restarted).total == pytest.approx(10.0)
    assert meter.update(22.0, {"readings_total": "x"}).total is None


def test_not_answering_says_since_when_and_why() -> None:
    lines = down_screen(100.0, "no daemon answers on /run/zaas-edge/control.sock\ntrace", 160.0, 95.0)
    assert "daemon not answering since " in lines[0] and "(1m00s): no daemon answers on /run" in lines[0]
    assert "trace" not in lines[0] and "; last answered at " in lines[0]
    assert lines[1] == "waiting for it to answer (Ctrl-C quits)"


def test_fit_keeps_one_screen() -> None:
    lines = [f"line {i} " + "x" * 200 for i in range(100)]
    out = fit(lines, 80, 24)
    assert len(out) == 23 and all(len(line) <= 80 for line in out)
    assert out[-1].startswith("... 78 more lines")
    assert fit(["short"], 80, 24) == ["short"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=30)
status_keys = st.sampled_from(["daemon", "drivers", "backlog", "store", "mqtt", "sync", "alarms", "services",
                               "readings_total", "running"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(status_keys, json_values, max_size=10), st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["state", "limits", "loads", "dry_run", "last_error"]), json_values, max_size=5)))
def test_any_status_draws_without_crashing(status: dict[str, Any], shed: dict[str, Any] | None) -> None:
    meter = RateMeter()
    rates = meter.update(1.0, status)
    lines = screen(status, shed, rates, 1000.0)
    assert all(isinstance(line, str) for line in lines)
    meter.update(2.0, status)
    fit(lines, 80, 24)


def test_the_view_module_is_pure() -> None:
    """The screen is drawn from values alone: the module opens no socket and imports nothing of the daemon."""
    p = subprocess.run([sys.executable, "-c", "import sys, zaas_edge.cli.watch; "
                        "print(sorted(m for m in sys.modules if m.startswith('zaas_edge.') and 'cli' not in m))"],
                       capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "zaas_edge.control" not in p.stdout and "zaas_edge.daemon" not in p.stdout
