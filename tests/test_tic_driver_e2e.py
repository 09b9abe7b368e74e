"""End to end: the real daemon reads a simulated Linky on a pty (hil/linky_sim.py): readings, the
tariff state and its events, and a trip seen as one alarm, in status and in the store."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from zaas_edge.drivers.tic import Mode
from zaas_edge.drivers.tic.state_points import STATE_POINTS

from hil.daemon_harness import DaemonProcess, write_config
from hil.linky_sim import LinkyMeter, LinkySimulator, MeterConfig, Tariff, constant, ticking
from hil.linky_tariff import Colour, Contract

T0 = 1_767_261_600  # 2026-01-01 11:00 +01:00, HP on Tempo
DEVICE = "linky-031762120855"
STATES = {p.quantity: p.states for p in STATE_POINTS}


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-tic-", dir="/tmp") as d:
        yield Path(d)


@pytest.mark.timeout(120)
def test_a_simulated_linky_becomes_readings_tariff_state_and_one_trip_alarm(base: Path) -> None:
    meter = LinkyMeter(MeterConfig(Mode.STANDARD, contract=Contract.TEMPO),
                       tariff=Tariff(tempo_today=Colour.BLUE), curve=constant(1500), start=T0, clock=ticking(T0))
    with LinkySimulator(meter, fast=True, interval=0.05) as sim:
        drivers = (f'[[drivers]]\nid = "linky"\ntype = "tic"\nport = "{sim.path}"\nmode = "auto"\n'
                   'offline_after_s = 5\nstore_interval_s = 600\n')
        cfg = write_config(base / "config.toml", base, drivers=drivers)
        d = DaemonProcess(cfg)
        try:
            d.wait_notify("READY=1")

            def points() -> dict:
                return d.status("--points")["points"]

            def state(quantity: str, pts: dict) -> str | None:
                p = pts.get(f"{DEVICE}/{quantity}")
                return None if p is None else STATES[quantity][int(p["value"])]

            d.wait_status(lambda s: s["drivers"]["linky"]["counters"].get("frames", 0) >= 5, timeout=30)
            pts = points()
            assert pts[f"{DEVICE}/apparent_power"]["value"] == 1500.0
            assert pts[f"{DEVICE}/reference_power"]["value"] == 6.0
            assert (state("tariff_contract", pts), state("tempo_today", pts), state("breaker", pts)) == (
                "tempo", "blue", "closed")
            st = d.status()
            assert st["drivers"]["linky"]["devices"][DEVICE]["online"] is True

            meter.set_tempo(Colour.BLUE, Colour.RED)  # RTE announces a red day tomorrow
            d.wait_status(lambda s: state("tempo_tomorrow", points()) == "red")

            meter.set_power(30000)  # 5 x PCOUP: the meter's breaking filter trips in about 9 of its seconds
            st = d.wait_status(lambda s: f"device.{DEVICE}.breaker_open" in s["alarms"])
            assert "over-power" in st["alarms"][f"device.{DEVICE}.breaker_open"]["text"]
            d.wait_status(lambda s: state("breaker", points()) == "open_over_power"
                          and points()[f"{DEVICE}/apparent_power"]["value"] == 0.0)
            frames = d.status()["drivers"]["linky"]["counters"]["frames"]
            d.wait_status(lambda s: s["drivers"]["linky"]["counters"]["frames"] >= frames + 20)
            assert d.stop() == 0
        finally:
            d.close()

    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        alarms = db.execute("select alarm_id, active from alarm where alarm_id like 'device.linky-%' "
                            "order by seq").fetchall()
        events = [(kind, json.loads(data)) for kind, data in
                  db.execute("select kind, data from event where kind like 'tariff.%' order by seq")]
        stored = db.execute("select count(*) from reading r join point p on p.id = r.point_id "
                            "where p.key = ?", (f"{DEVICE}/tariff_contract",)).fetchone()[0]
    finally:
        db.close()
    trip = [a for a in alarms if a[0] == f"device.{DEVICE}.breaker_open"]
    assert trip == [(f"device.{DEVICE}.breaker_open", 1)]  # one trip, one alarm
    assert (f"device.{DEVICE}.over_power", 1) in alarms
    assert [(k, e["new"]) for k, e in events if k == "tariff.tempo_tomorrow"] == [("tariff.tempo_tomorrow", "red")]
    assert stored == 1  # one frame a second was heard; a state that never changed was stored once
