"""sd_notify over a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from zaas_edge.systemd import Notifier


class Listener:
    """A bound datagram socket, like the one systemd passes in NOTIFY_SOCKET."""

    def __init__(self, address: str | bytes, env_value: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5)
        self.env_value = env_value

    def receive(self) -> str:
        return self.sock.recv(65536).decode()

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536)
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(5)
        return True


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    # sun_path holds 108 bytes: fall back to a short directory when tmp_path is long.
    base = tmp_path if len(str(tmp_path)) < 80 else Path(tempfile.mkdtemp(prefix="zn"))
    path = str(base / "notify")
    listener = Listener(path, path)
    yield listener
    listener.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"zaas-edge-test-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode(), "@" + name)
    yield listener
    listener.sock.close()


def test_ready_with_status_is_one_datagram(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    assert n.enabled
    assert n.ready(status="3 drivers running") is True
    assert path_listener.receive() == "READY=1\nSTATUS=3 drivers running\n"
    assert n.sent == 1 and n.send_failures == 0


def test_ready_without_status(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    n.ready()
    assert path_listener.receive() == "READY=1\n"


def test_watchdog_stopping_status(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    n.watchdog()
    n.status("uplink down, buffering")
    n.stopping()
    assert path_listener.receive() == "WATCHDOG=1\n"
    assert path_listener.receive() == "STATUS=uplink down, buffering\n"
    assert path_listener.receive() == "STOPPING=1\n"


def test_reloading_carries_monotonic_usec(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = path_listener.receive().splitlines()
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2


def test_abstract_namespace_socket(abstract_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": abstract_listener.env_value})
    assert n.ready(status="up")
    assert abstract_listener.receive() == "READY=1\nSTATUS=up\n"
    assert n.watchdog()
    assert abstract_listener.receive() == "WATCHDOG=1\n"


def test_status_newlines_cannot_inject_fields(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    n.status("bad\nREADY=1")
    assert path_listener.receive() == "STATUS=bad READY=1\n"


def test_notify_fields_in_order_and_booleans(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    n.notify(STATUS="x", ERRNO=5, READY=True)
    assert path_listener.receive() == "STATUS=x\nERRNO=5\nREADY=1\n"
    with pytest.raises(ValueError, match="upper-case"):
        n.notify(status="lower")


def test_unset_socket_is_a_noop() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready(status="x") is False
    assert n.watchdog() is False
    assert n.stopping() is False
    assert n.reloading() is False
    assert (n.sent, n.send_failures) == (0, 0)
    assert n.watchdog_interval_s is None


def test_non_unix_address_disables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="zaas_edge.systemd"):
        n = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not n.enabled
    assert n.ready() is False
    assert "not an AF_UNIX address" in caplog.text


def test_send_failure_is_counted_and_warned_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "gone")
    n = Notifier({"NOTIFY_SOCKET": missing})
    with caplog.at_level(logging.WARNING, logger="zaas_edge.systemd"):
        assert n.watchdog() is False
        assert n.watchdog() is False
        assert n.ready() is False
    assert n.send_failures == 3
    assert n.sent == 0
    warnings = [r for r in caplog.records if r.name == "zaas_edge.systemd"]
    assert len(warnings) == 1
    assert "cannot notify the service manager" in warnings[0].getMessage()
    assert warnings[0].fields == {"socket": missing}


def test_recovers_when_the_socket_comes_back(tmp_path: Path) -> None:
    base = tmp_path if len(str(tmp_path)) < 80 else Path(tempfile.mkdtemp(prefix="zn"))
    path = str(base / "late")
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.watchdog() is False
    listener = Listener(path, path)
    try:
        assert n.watchdog() is True
        assert listener.receive() == "WATCHDOG=1\n"
        assert (n.sent, n.send_failures) == (1, 1)
    finally:
        listener.sock.close()


def test_watchdog_interval_for_this_pid() -> None:
    pid = os.getpid()
    n = Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)})
    assert n.watchdog_interval_s == 30.0
    assert Notifier({"WATCHDOG_USEC": "1500000"}).watchdog_interval_s == 1.5


def test_watchdog_pid_mismatch_means_no_watchdog() -> None:
    n = Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "12"}, pid=12).watchdog_interval_s == 30.0


@pytest.mark.parametrize("value", ["", "0", "-5", "soon"])
def test_watchdog_usec_invalid_means_none(value: str) -> None:
    assert Notifier({"WATCHDOG_USEC": value}).watchdog_interval_s is None


def test_close_then_send_reopens(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    n.watchdog()
    n.close()
    n.watchdog()
    assert path_listener.receive() == "WATCHDOG=1\n"
    assert path_listener.receive() == "WATCHDOG=1\n"
    assert not path_listener.pending()
