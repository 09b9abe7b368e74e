"""The daemon as a real subprocess: readiness, status, reload, watchdog, clean stop."""

from __future__ import annotations

import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config


@pytest.fixture
def base() -> Path:
    # Short: the control socket lives below it and AF_UNIX paths are limited.
    with tempfile.TemporaryDirectory(prefix="zaas-e2e-", dir="/tmp") as d:
        yield Path(d)


def test_daemon_lifecycle(base: Path) -> None:
    cfg = write_config(base / "config.toml", base)
    d = DaemonProcess(cfg)
    try:
        ready = d.wait_notify("READY=1")
        assert "STATUS=" in ready
        st = d.wait_status(lambda s: s["drivers"]["system"]["readings"] >= 24)
        assert st["running"] is True
        assert st["daemon"]["gateway"] == "gw-test"
        assert st["drivers"]["system"]["state"] == "running"
        assert st["drivers"]["system"]["type"] == "system"
        first = st["drivers"]["system"]["readings"]
        # Readings keep flowing, the writer heartbeats, so the watchdog is petted.
        d.wait_status(lambda s: s["drivers"]["system"]["readings"] > first)
        d.wait_notify("WATCHDOG=1")

        # A broken configuration is refused on SIGHUP; the old one stays in force.
        good = cfg.read_text()
        cfg.write_text(good.replace('interval_s = 1', 'interval_s = "often"'))
        d.signal(signal.SIGHUP)
        st = d.wait_status(lambda s: s["daemon"]["reload_failures"] == 1)
        assert st["drivers"]["system"]["state"] == "running"
        assert "reload refused" in d.output() and "interval_s" in d.output()

        # A good one adds a driver without touching the running one.
        cfg.write_text(good + '\n[[drivers]]\nid = "system2"\ntype = "system"\ninterval_s = 1\n')
        d.signal(signal.SIGHUP)
        st = d.wait_status(lambda s: "system2" in s["drivers"] and s["drivers"]["system2"]["readings"] > 0)
        assert st["daemon"]["reloads"] == 1
        assert st["drivers"]["system"]["restarts"] == 0

        text = d.cli("status").stdout
        assert "daemon: running" in text and "system2" in text

        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.proc.wait(10) == 0
        assert time.monotonic() - t0 < 5.0
        d.wait_notify("STOPPING=1")
    finally:
        d.close()

    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        n = db.execute("select count(*) from reading").fetchone()[0]
    finally:
        db.close()
    assert n >= first + 12, "the readings reported by the daemon must be in the store after the stop"

    # With the daemon gone, status says so, reads the store, and exits 3.
    p = DaemonProcess.__new__(DaemonProcess)
    p.config = cfg
    out = p.cli("status", check=False)
    assert out.returncode == 3
    assert "daemon: not running" in out.stdout


def test_journal_format_when_journal_stream_is_set(base: Path) -> None:
    cfg = write_config(base / "config.toml", base)
    d = DaemonProcess(cfg, env={"JOURNAL_STREAM": "8:12345"})
    try:
        d.wait_notify("READY=1")
    finally:
        d.stop()
        out = d.output()
        d.close()
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    assert all(line[0] == "<" and line[2] == ">" for line in lines), lines[:5]
    assert any(line.startswith("<6>") and "starting zaas-edge" in line for line in lines)


def test_unknown_driver_type_refuses_to_start_with_one_line(base: Path) -> None:
    cfg = write_config(base / "config.toml", base, drivers='[[drivers]]\nid = "m1"\ntype = "nosuchbus"\n')
    p = DaemonProcess.__new__(DaemonProcess)
    p.config = cfg
    out = p.cli("run", check=False)
    assert out.returncode == 2
    assert "nosuchbus" in out.stderr and "Traceback" not in out.stderr


def test_reload_command_answers_once_the_new_configuration_is_in_force(base: Path) -> None:
    """What the unit's ExecReload runs: `systemctl reload` waits for it and fails when the file is refused."""
    cfg = write_config(base / "config.toml", base)
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        good = cfg.read_text()
        cfg.write_text(good + '\n[[drivers]]\nid = "system2"\ntype = "system"\ninterval_s = 1\n')
        r = d.cli("reload")
        assert r.returncode == 0 and "configuration reloaded" in r.stdout
        st = d.status()  # no waiting: the command returned after the reload
        assert "system2" in st["drivers"] and st["daemon"]["reloads"] == 1

        cfg.write_text(good.replace("interval_s = 1", 'interval_s = "often"'))
        r = d.cli("reload", check=False)  # refused before it reaches the daemon: exit 2, the reason in one line
        assert r.returncode == 2
        assert r.stderr.strip().count("\n") == 0 and "interval_s" in r.stderr and "Traceback" not in r.stderr
        st = d.status()
        assert "system2" in st["drivers"] and st["drivers"]["system2"]["state"] == "running"
    finally:
        d.close()


def test_status_names_mqtt_and_exits_4_while_an_alarm_needs_someone(base: Path) -> None:
    """For monitoring scripts: 0 healthy, 3 not running, 4 with an error-level alarm active."""
    cfg = write_config(base / "config.toml", base)
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        r = d.cli("status")
        assert r.returncode == 0 and "mqtt: not configured" in r.stdout
        cfg.write_text(cfg.read_text() + "\n[sync]\nenabled = true\n")  # enabled, but no url: an error alarm
        assert d.cli("reload").returncode == 0
        d.wait_status(lambda s: "sync.identity" in " ".join(s["alarms"]) or any(
            a["severity"] == "error" for a in s["alarms"].values()))
        r = d.cli("status", check=False)
        assert r.returncode == 4, r.stdout
        assert "sync.url is not set" in r.stdout
        assert d.cli("status", "--json", check=False).returncode == 4
    finally:
        d.close()


def test_deeply_nested_file_on_reload_is_a_refused_reload(base: Path) -> None:
    cfg = write_config(base / "config.toml", base)
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        good = cfg.read_text()
        # Parsed by tomllib, but too deep for merging and validation.
        cfg.write_text(good + "\n[" + ".".join(["a"] * 3000) + "]\n")
        d.signal(signal.SIGHUP)
        st = d.wait_status(lambda s: s["daemon"]["reload_failures"] == 1)
        assert st["drivers"]["system"]["state"] == "running"
        assert "reload refused" in d.output() and "nested too deeply" in d.output()
        assert "RecursionError" not in d.output()
        # The reload task lives on: a good file is taken at the next SIGHUP.
        cfg.write_text(good)
        d.signal(signal.SIGHUP)
        st = d.wait_status(lambda s: s["daemon"]["reloads"] == 1)
        assert d.stop() == 0
    finally:
        d.close()


def test_a_storm_of_sighups_is_served_one_reload_at_a_time_and_the_last_file_wins(base: Path) -> None:
    extra = '\n[[drivers]]\nid = "{}"\ntype = "system"\ninterval_s = {}\n'
    cfg = write_config(base / "config.toml", base)
    good = cfg.read_text()
    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        for i in range(400):
            if i % 50 == 0:  # the file changes under the storm, between two signals
                cfg.write_text(good + extra.format(f"sys{i % 100}", 1 + i % 3))
            d.signal(signal.SIGHUP)
        cfg.write_text(good + extra.format("last", 2))
        d.signal(signal.SIGHUP)
        d.signal(signal.SIGHUP)
        st = d.wait_status(lambda s: not s["daemon"]["reloading"] and set(s["drivers"]) == {"system", "last"}
                           and s["drivers"]["last"]["state"] == "running", timeout=60)
        assert st["daemon"]["reload_failures"] == 0
        assert 1 <= st["daemon"]["reloads"] < 400  # coalesced, never overlapping
        out = d.output()
        assert "already running" not in out and "Traceback" not in out
        # Every reload ends by telling systemd it is ready again.
        states = [m for m in d.messages if "RELOADING=1" in m or "READY=1" in m]
        assert states[-1].startswith("READY=1") or "READY=1" in states[-1]
        assert sum("RELOADING=1" in m for m in states) == st["daemon"]["reloads"]
        assert d.stop() == 0
    finally:
        d.close()


def test_files_the_daemon_writes_are_owner_only_even_outside_systemd(base: Path) -> None:
    import os
    import stat

    cfg = write_config(base / "config.toml", base)
    old = os.umask(0o022)  # a technician's shell; the child inherits it
    try:
        d = DaemonProcess(cfg)
    finally:
        os.umask(old)
    try:
        d.wait_status(lambda s: s["drivers"]["system"]["readings"] > 0)
        state = base / "state"
        assert stat.S_IMODE(state.stat().st_mode) & 0o077 == 0
        written = [p for p in state.rglob("*") if p.is_file()]
        assert any(p.name == "store.sqlite" for p in written)
        for p in written:
            assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, f"{p} is {oct(p.stat().st_mode)}"
        assert d.stop() == 0
    finally:
        d.close()
