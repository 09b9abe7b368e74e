"""The human form of `zaas-edge status`: what the maintainer reads first."""

from __future__ import annotations

from zaas_edge.cli.daemon_cmd import _driver_state, _mqtt_line, critical_alarms


def test_a_driver_whose_bus_is_down_says_so_with_the_reason() -> None:
    v = {"state": "running", "devices": {"m1": {"online": False, "bus_down": "connection refused\ntrace"},
                                         "m2": {"online": False, "bus_down": "connection refused"}}}
    assert _driver_state(v) == "running, BUS DOWN: connection refused"
    assert _driver_state({"state": "running", "devices": {"m1": {"online": True, "bus_down": None}}}) == "running"


def test_mqtt_line_says_whom_or_why_not_and_when_next() -> None:
    assert _mqtt_line(None) == "mqtt: not configured"
    assert _mqtt_line({"connected": True, "broker": "127.0.0.1:1883", "published": 12}) == \
        "mqtt: connected to 127.0.0.1:1883  published 12"
    line = _mqtt_line({"connected": False, "broker": "broker.local:8883", "last_error": "not authorised",
                       "retry_in_s": 30})
    assert line.startswith("mqtt: NOT connected (broker.local:8883); not authorised; next try in ")


def test_only_error_and_critical_alarms_make_status_exit_4() -> None:
    st = {"alarms": {"a": {"severity": "warning"}, "b": {"severity": "error"}, "c": {"severity": "critical"}}}
    assert critical_alarms(st) == ["b", "c"]
    assert critical_alarms({"alarms": {"a": {"severity": "warning"}}}) == []
