"""The driver context's journal lines: one line an incident, and every driver line names its driver."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from zaas_edge.clock import FakeClock
from zaas_edge.context import GatewayDriverContext
from zaas_edge.health import Transition
from zaas_edge.hub import Hub
from zaas_edge.logsetup import log_notice


def _context(driver_id: str = "bus-1") -> GatewayDriverContext:
    hub = Hub()
    hub.on_notice("log", log_notice)
    return GatewayDriverContext(driver_id, hub=hub, clock=FakeClock(), heartbeat=lambda: None, counters={},
                                backlog=dict, state_dir=Path("/tmp"))


def test_a_device_going_offline_and_back_is_one_journal_line_each(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _context()
    with caplog.at_level(logging.DEBUG, logger="zaas_edge"):
        ctx.availability(Transition("m1", False, True, "no answer", 3))
        ctx.availability(Transition("m1", True, False, "answers again", 3))
    lines = [r for r in caplog.records if "m1" in r.getMessage()]
    assert [r.getMessage() for r in lines] == ["alarm device.m1.offline raised: m1 offline: no answer",
                                               "alarm device.m1.offline cleared: m1 back online (answers again)"]


def test_a_first_answer_after_start_is_logged_once_as_the_event(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _context()
    with caplog.at_level(logging.DEBUG, logger="zaas_edge"):
        ctx.availability(Transition("m1", True, None, "first answer", 0))
    assert [r.getMessage() for r in caplog.records if "m1" in r.getMessage()] == ["m1 online"]


def test_every_line_a_driver_logs_carries_its_id(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _context("tic-1")
    _context("tic-1")  # a restarted driver gets a new context: the field is still added once
    with caplog.at_level(logging.INFO, logger="zaas_edge"):
        ctx.log.info("port open")
        ctx.log.warning("meter silent", extra={"fields": {"meter": "x"}})
    assert [r.fields for r in caplog.records] == [{"driver": "tic-1"}, {"meter": "x", "driver": "tic-1"}]
    assert len(ctx.log.filters) == 1
