"""The aggregator is a supervised service: a failing pass shows in status and raises the failing alarm.

The fault is a real one: the aggregator's saved state in the store is
corrupt (its cursor position is not a number), so every start of the
aggregator fails. The daemon must keep running, restart the service with
backoff, record ``task.crashed``, raise ``task.service.aggregate.failing``
after repeated failures, and show the service in ``zaas-edge status``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from hil.daemon_harness import DaemonProcess, write_config
from zaas_edge.model import Lane
from zaas_edge.runtime import FAILING_AFTER
from zaas_edge.store import Store
from zaas_edge.sync.aggregate import CONSUMER, STATE_VERSION

FAILING_ALARM = "task.service.aggregate.failing"


@pytest.fixture
def base():
    with tempfile.TemporaryDirectory(prefix="zaas-aggsvc-", dir="/tmp") as d:
        yield Path(d)


def _corrupt_aggregator_state(base: Path) -> None:
    (base / "state").mkdir(parents=True)
    with Store(base / "state" / "store.sqlite") as store:
        store.register(CONSUMER, [Lane.READING])
        store.save_uploads([], CONSUMER, 0, json.dumps({"v": STATE_VERSION, "last_seq": "not a number"}))


def test_a_failing_aggregator_is_a_crashed_restarting_service_with_its_alarm(base: Path) -> None:
    _corrupt_aggregator_state(base)
    extra = """
[runtime]
restart_backoff_initial_s = 0.05
restart_backoff_max_s = 0.2

[sync]
enabled = true
url = "https://127.0.0.1:9/"
idle_interval_s = 0.2
aggregate_interval_s = 0.2
"""
    daemon = DaemonProcess(write_config(base / "config.toml", base, extra=extra))
    try:
        daemon.wait_notify("READY=1")
        st = daemon.wait_status(lambda s: FAILING_ALARM in (s.get("alarms") or {}), timeout=30)
        task = st["tasks"]["service.aggregate"]
        assert task["kind"] == "service"
        assert task["restarts"] >= FAILING_AFTER - 1
        assert task["consecutive_failures"] >= FAILING_AFTER
        assert "not a number" in task["last_error"]
        # The other services and the drivers keep running.
        assert st["tasks"]["service.sync"]["state"] == "running"
        assert st["drivers"]["system"]["state"] == "running"

        r = daemon.cli("status", check=False)
        assert r.returncode == 4  # a service failing over and over is an error-level alarm: monitoring sees it
        text = r.stdout
        line = next(ln for ln in text.splitlines() if ln.startswith("aggregate "))
        assert "not a number" in line
        assert line.split()[1] in ("running", "backoff,")
    finally:
        daemon.close()

    with Store(base / "state" / "store.sqlite", readonly=True) as store:
        kinds = [e.item.kind for e in store.read(Lane.EVENT, 0, 10_000)]
        alarms = [a.item for a in store.read(Lane.ALARM, 0, 10_000)]
    assert kinds.count("task.crashed") >= FAILING_AFTER
    assert any(a.alarm_id == FAILING_ALARM and a.active for a in alarms)
