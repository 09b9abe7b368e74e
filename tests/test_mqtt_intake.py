"""What the MQTT service reads at all, pure: the intake budget before parsing, the bounded
rate-limit table, which acknowledgements are retained, the client library's queue-full line,
and what is said at start about TLS and passwords."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_mqtt_units import body, handler, run
from zaas_edge.mqtt.client import BrokerSettings, _QueueFullLog, security_warnings
from zaas_edge.mqtt.intake import CommandIntake


def test_the_intake_admits_a_burst_then_the_rate_and_counts_the_rest() -> None:
    intake = CommandIntake(rate_per_s=10, burst=50)
    admitted = sum(intake.admit(100.0) for _ in range(1000))
    assert (admitted, intake.dropped) == (50, 950)
    assert sum(intake.admit(100.5) for _ in range(10)) == 5  # ten a second come back
    assert intake.dropped == 955


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), max_size=400))
def test_never_more_than_the_burst_plus_the_rate(gaps: list[float]) -> None:
    intake = CommandIntake(rate_per_s=10, burst=50)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        admitted += intake.admit(now)
    assert admitted <= 50 + 10 * now + 1e-6
    assert admitted + intake.dropped == len(gaps)


def test_drops_are_reported_at_once_then_once_a_minute_with_the_count() -> None:
    intake = CommandIntake(rate_per_s=1, burst=1, report_every_s=60)
    assert intake.report(0.0) == 0  # nothing dropped, nothing to say
    intake.admit(0.0)
    for _ in range(5):
        intake.admit(0.0)
    assert intake.report(0.0) == 5
    for _ in range(7):
        intake.admit(0.5)
    assert intake.report(30.0) == 0  # within the minute: held
    assert intake.report(60.0) == 7
    assert intake.report(200.0) == 0 and intake.dropped == 12


async def test_made_up_targets_get_no_rate_limit_bucket_and_no_retained_ack() -> None:
    h = handler(loads={"boiler"})
    for i in range(1000):
        ack = await run(h, f"driver/fake-{i}", body(req_id=f"r{i}", action="poll"))
        assert ack.code == "unknown_target"
        ack = await run(h, f"loadshed/fake-{i}", body(req_id=f"s{i}", mode="shed"))
        assert ack.code == "unknown_target"
    assert len(h._buckets) == 0  # the table is bounded by the configuration, not by the sender
    assert (await run(h, "driver/meter", body(action="poll"))).accepted
    assert (await run(h, "loadshed/boiler", body(mode="shed"))).accepted
    assert set(h._buckets) == {"driver/meter", "loadshed/boiler"}
    assert [h.known(t) for t in ("driver/meter", "loadshed/boiler", "driver/fake-1", "loadshed/x",
                                 "reactor/core", "driver", "driver/meter/x")] == \
        [True, True, False, False, False, False, False]


def test_queue_full_lines_are_counted_and_let_through_once_a_minute() -> None:
    now = [0.0]
    f = _QueueFullLog(every_s=60, clock=lambda: now[0])
    logger = logging.Logger("test.queue_full")
    logger.addFilter(f)
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger.addHandler(Keep())
    for _ in range(20_000):
        logger.warning(_QueueFullLog.TEXT)
    now[0] = 61.0
    for _ in range(3):
        logger.warning(_QueueFullLog.TEXT)
    logger.warning("There are %d pending publish calls.", 12)  # other lines pass untouched
    assert f.dropped == 20_003
    assert seen == [
        "the incoming message queue is full (a flood of commands?): 1 messages discarded unread and "
        "unacknowledged since the last report, 1 in all",
        "the incoming message queue is full (a flood of commands?): 20000 messages discarded unread and "
        "unacknowledged since the last report, 20001 in all",
        "There are 12 pending publish calls.",
    ]


def test_tls_without_a_ca_file_and_a_clear_password_beyond_this_box_are_said() -> None:
    ca = Path("/etc/zaas-edge/broker-ca.pem")
    assert security_warnings(BrokerSettings()) == []
    assert security_warnings(BrokerSettings(password="pw")) == []  # loopback
    assert security_warnings(BrokerSettings(host="localhost", password="pw")) == []
    assert security_warnings(BrokerSettings(host="::1", password="pw")) == []
    assert security_warnings(BrokerSettings(host="10.0.0.5", socket=Path("/run/m.sock"), password="pw")) == []
    assert security_warnings(BrokerSettings(host="broker.lan", tls=True, ca_file=ca, password="pw")) == []
    [tls] = security_warnings(BrokerSettings(host="broker.lan", tls=True))
    assert "trusts every CA in the system's store" in tls and "ca_file" in tls
    [clear] = security_warnings(BrokerSettings(host="192.168.1.20", password="pw"))
    assert "password goes in clear to mqtt://192.168.1.20:1883" in clear
    assert "pw" not in clear.replace("password", "")
    assert security_warnings(BrokerSettings(host="192.168.1.20", username="u")) == []  # no password, nothing sent



async def test_the_tls_warning_is_said_once_at_start_not_per_reconnection(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.mosquitto import Mosquitto
    from tests.test_mqtt_service import Harness

    with Mosquitto(tmp_path / "broker") as broker:  # a plain listener: every TLS attempt fails
        h = Harness(tmp_path, broker, tls=True)
        with caplog.at_level(logging.WARNING):
            h.task = asyncio.create_task(h.service.run())
            try:
                await h.until(lambda: h.ctx.status["failures"] >= 3)
            finally:
                await h.stop()
    said = [r for r in caplog.records if "trusts every CA in the system's store" in r.getMessage()]
    assert len(said) == 1
