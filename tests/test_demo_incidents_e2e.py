"""Issue #14's demo check: the demo building's incidents reach MQTT and the central ahead of the readings backlog.

The demo building (every bus, the real daemon as a subprocess, mosquitto, the
reference central API) on a time scale of 120 scenario seconds per real
second, starting at 22:30 scenario time: a scenario night. Its two demo rules
are written for the scenario (a leak: the water meter's flow never stops for
half an hour; idle consumption: the common-areas meter using more than 5 kWh
in an idle hour of the night) and put on the scale by the runner. The uplink
is refused (503) from before the daemon starts, so readings pile up as a
backlog; once both incidents are raised and retained on ``alarm/<id>``, the
uplink is released, and the central records each alarm before any reading
of the backlog, readings taken before the alarm was raised included.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hil.buildings import DEMO
from hil.central.server import decode_body
from hil.daemon_harness import ROOT
from hil.scenario import Scenario
from hil.timescale import TimeScale
from tests.mosquitto import Collector
from tests.mosquitto import available as mosquitto_available
from zaas_edge.mqtt.topics import Topics

LEAK = "rule.hidden-leak.water-main.volume"
IDLE = "rule.idle-consumption.elec-common.energy"
RULES = [
    {"id": "hidden-leak", "kind": "leak", "mode": "flow", "points": ["water-main/volume"], "window_s": 1800,
     "sample_s": 300, "severity": "error", "action": "Water has flowed all night: look for a leak"},
    {"id": "idle-consumption", "kind": "consumption", "points": ["elec-common/energy"],
     "idle": [{"start": "22:00", "end": "06:00"}], "idle_max": 5.0, "severity": "warning",
     "action": "Consumption at night: check heating schedules and lighting"},
]


class BlockedUplink(Scenario):
    """The demo, with the central refusing every batch from before the daemon's first one."""

    def _central(self, path: str, doc: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx = ssl.create_default_context(cafile=self.central_ca)
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.central_url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def block(self, on: bool) -> None:
        faults = [{"status": 503, "count": 10**9, "retry_after": 1, "text": "the uplink is down"}] if on else []
        self._central("/test/faults", {"faults": faults})

    async def _enroll(self) -> None:
        await super()._enroll()  # enrollment is not a batch: it goes through
        await asyncio.to_thread(self.block, True)


def central_rows(directory: Path) -> list[tuple[str, int, int, dict[str, Any]]]:
    """(lane, seq, received_ns, row) of everything the central stored, read from its database."""
    db = sqlite3.connect(f"file:{directory / 'central.sqlite'}?mode=ro", uri=True)
    try:
        out = []
        bodies: dict[int, dict[int, dict[str, Any]]] = {}
        for lane, seq, received, body in db.execute(
                "SELECT s.lane, r.seq, r.received_ns, r.body FROM row r JOIN stream s ON s.id = r.stream"):
            if body not in bodies:
                ctype, data = db.execute("SELECT content_type, data FROM body WHERE id = ?", (body,)).fetchone()
                bodies[body] = {r["seq"]: r for r in decode_body(ctype, data)["rows"]}
            out.append((lane, seq, received, bodies[body][seq]))
        return out
    finally:
        db.close()


def _alarm_id(row: dict[str, Any]) -> str:
    return str(row.get("alarm_id", ""))


async def _until(what: str, predicate, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(predicate)
        if got:
            return got
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s")


@pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed (apt-get install mosquitto)")
async def test_the_demo_building_leak_and_night_consumption_reach_mqtt_and_the_central_ahead_of_the_backlog(
        tmp_path: Path) -> None:
    night = time.mktime((2026, 1, 14, 22, 30, 0, 0, 0, -1))
    extra = {"clock": {"assume_synced": True}, "alarms": {"rules": RULES},
             "sync": {"backoff_initial_s": 0.5, "backoff_max_s": 1.0}}
    out = open(tmp_path / "scenario.out", "w+")  # noqa: SIM115  (the daemon writes its log there too)
    sc = BlockedUplink(ROOT / "config" / "demo.toml", DEMO, tmp_path / "run", out=out, extra=extra,
                       scale=TimeScale.starting_now(120.0, epoch=night), central_test_mode=True, horizon_s=600)
    base = Topics("demo-park", "gw-demo").base
    started = time.time_ns()
    try:
        await sc.start()
        assert sc.broker is not None and sc.central_url, (tmp_path / "scenario.out").read_text()[-3000:]
        generated = (tmp_path / "run" / "config.toml").read_text()
        assert "window_s = 15.0" in generated  # the half-hour leak window, scaled
        async with Collector(sc.broker, f"{base}/alarm/#") as sub:
            incidents = {}
            for aid in (LEAK, IDLE):
                doc = json.loads(await sub.wait_for(f"{base}/alarm/{aid}", lambda p: b'"active": true' in p
                                                    or b'"active":true' in p, timeout=45))
                incidents[aid] = doc
        assert incidents[LEAK]["severity"] == "error" and incidents[IDLE]["severity"] == "warning"
        # Retained: a client subscribing now is told at once.
        async with Collector(sc.broker, f"{base}/alarm/{LEAK}") as late:
            await late.wait_for(f"{base}/alarm/{LEAK}", timeout=5)
            assert [r for t, _, r in late.messages if t.endswith(LEAK)] == [True]
        central = tmp_path / "run" / "central"
        assert not [r for r in central_rows(central) if r[0] == "alarm" and _alarm_id(r[3]) in (LEAK, IDLE)]
        released = time.time_ns()
        await asyncio.to_thread(sc.block, False)

        def delivered() -> list | None:
            rows = central_rows(central)
            alarms = [r for r in rows if r[0] == "alarm" and _alarm_id(r[3]) in (LEAK, IDLE)]
            backlog = [r for r in rows if r[0] == "reading" and r[2] >= released]
            return rows if {_alarm_id(r[3]) for r in alarms} == {LEAK, IDLE} and len(backlog) >= 20 else None

        rows = await _until("both alarms and the readings backlog at the central", delivered, 40)
    finally:
        await sc.stop()
        out.close()
    alarms = {_alarm_id(r[3]): r for r in rows if r[0] == "alarm" and _alarm_id(r[3]) in (LEAK, IDLE)}
    backlog = [r for r in rows if r[0] == "reading" and r[2] >= released]
    first_reading = min(r[2] for r in backlog)
    for aid, (_, _, received, row) in alarms.items():
        assert received <= first_reading, f"{aid} arrived behind the readings backlog"
        # Readings taken during the run before the alarm was raised waited behind it (the Linky's dated
        # values, stamped with its scenario-time horodate, are left out).
        older = [r for r in backlog if started <= r[3]["wall_ns"] < row["wall_ns"]]
        assert len(older) >= 10, f"no backlog of readings recorded before {aid}"
    assert alarms[LEAK][3]["data"]["point"] == "water-main/volume"
    assert alarms[IDLE][3]["data"]["point"] == "elec-common/energy"
    assert alarms[LEAK][3]["active"] is True and alarms[IDLE][3]["active"] is True
