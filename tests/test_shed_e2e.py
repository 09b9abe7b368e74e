"""The real daemon shedding a load: a simulated building on Modbus TCP, the relay written, the CLI and MQTT.

The building (``hil.shed_plant``) runs in this process: a meter whose power
is a base load plus a 3 kW heater while relay 1 of the simulated relay module
is closed. The daemon is a subprocess polling both; the test raises the base
load over the limit and waits for the coil to be written, then overrides the
heater through ``zaas-edge shed override`` and through ``cmd/loadshed/heater/set``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hil.daemon_harness import DaemonProcess, write_config
from hil.relay_sim import RelayCommand
from hil.shed_plant import Plant, PlantLoad
from tests.mosquitto import Collector, Mosquitto
from zaas_edge.cli import cli
from zaas_edge.cli.shed_cmd import parse_duration

BASE = "zaas/v1/test-site/gw-test"
LIMIT_W = 4000


def shed_config(port: int) -> str:
    return f"""
[[drivers]]
id = "plant"
type = "modbus"
transport = "tcp"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5
devices = [
  {{ id = "main", unit = 1, profile = "eastron-sdm630", interval_fast_s = 0.25, interval_slow_s = 60 }},
  {{ id = "rm", unit = 2, profile = "waveshare-relay-8ch", interval_fast_s = 1 }},
]
"""


SHEDDING = f"""
[shedding]
enabled = true
restore_spacing_s = 0

[[shedding.limits]]
id = "site"
points = ["main/power"]
limit_w = {LIMIT_W}

[[shedding.loads]]
id = "heater"
circuit = "site"
power_w = 3000
dwell_s = 0
min_on_s = 0
min_off_s = 0
restore_delay_s = 0
actuator = "relay-heater"

[[shedding.actuators]]
id = "relay-heater"
kind = "modbus_coil"
driver = "plant"
point = "rm/relay_1"
latency_s = 0.5
"""


@pytest.fixture
def base() -> Path:
    with tempfile.TemporaryDirectory(prefix="zaas-shed-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture
async def plant() -> AsyncIterator[tuple[Plant, int]]:
    p = Plant(base_w=500.0, loads=[PlantLoad("heater", 1, 3000.0)], on=["heater"], charger_unit=None)
    srv = await p.serve_tcp()
    try:
        yield p, srv.port
    finally:
        await srv.close()


async def landed(p: Plant, on: bool, after: float, timeout: float = 20.0) -> RelayCommand:
    """The first obeyed write of ``on`` to relay 1 since ``after``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (hit := p.relays.landed(1, on, after=after)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"relay 1 never switched {'on' if on else 'off'}; commands: {p.relays.commands}")
        await asyncio.sleep(0.05)
    return hit


async def shed_status(d: DaemonProcess, predicate: Callable[[dict[str, Any]], bool],
                      timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = await asyncio.to_thread(d.cli, "shed", "status", "--json", check=False)
        if out.returncode == 0:
            st = json.loads(out.stdout)
            if predicate(st):
                return st
        await asyncio.sleep(0.2)
    raise AssertionError(f"shed status never matched; last: {json.dumps(st, indent=1)[:3000]}\n{d.output()[-3000:]}")


async def test_power_over_the_limit_opens_the_relay_and_the_cli_overrides_it(base: Path, plant) -> None:
    p, port = plant
    cfg = write_config(base / "config.toml", base, drivers=shed_config(port), extra=SHEDDING)
    d = DaemonProcess(cfg)
    try:
        await asyncio.to_thread(d.wait_notify, "READY=1")
        st = await shed_status(d, lambda s: s["state"] == "running" and s["limits"]["site"]["value_w"])
        assert st["loads"]["heater"]["state"] == "on" and st["limits"]["site"]["stage"] in ("ok", "warn")

        t0 = time.monotonic()
        p.base_w = 2000.0  # 5 kW with the heater against 4 kW
        await landed(p, False, t0)
        st = await shed_status(d, lambda s: s["loads"]["heater"]["state"] == "off")
        assert st["loads"]["heater"]["next"]["action"] == "restore"
        text = (await asyncio.to_thread(d.cli, "shed", "status")).stdout
        assert "site" in text and "heater" in text and "last action: shed heater to level 0: instant: shed" in text

        t1 = time.monotonic()
        out = await asyncio.to_thread(d.cli, "shed", "override", "heater", "on", "--for", "2h")
        assert out.stdout.startswith("heater: forced on for 2h00m")
        await landed(p, True, t1)
        st = await shed_status(d, lambda s: s["loads"]["heater"]["override"]["mode"] == "restore")
        assert st["loads"]["heater"]["state"] == "on" and 7000 < st["loads"]["heater"]["override"]["remaining_s"]

        t2 = time.monotonic()
        out = await asyncio.to_thread(d.cli, "shed", "override", "heater", "auto")
        assert out.stdout.startswith("heater: back to automatic")
        await landed(p, False, t2)  # still over the limit: the engine sheds it again

        bad = await asyncio.to_thread(d.cli, "shed", "override", "pump", "off", check=False)
        assert bad.returncode == 1
        assert bad.stderr.strip() == "zaas-edge: error: unknown load 'pump' (known: heater)"

        services = (await asyncio.to_thread(d.status))["services"]["shed"]
        assert services["state"] == "running" and services["failures"] == 0 and services["actions"] >= 3
        assert "shed heater to level 0: instant: shed on site" in d.output()  # one log line per action
    finally:
        d.close()


async def test_an_override_over_mqtt_switches_the_load(base: Path, plant) -> None:
    p, port = plant
    with Mosquitto(base / "broker") as broker:
        mqtt = f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\nreconnect_max_s = 2.0\n'
        cfg = write_config(base / "config.toml", base, drivers=shed_config(port), extra=SHEDDING + mqtt)
        p.base_w = 2000.0
        async with Collector(broker, f"{BASE}/#") as sub:
            d = DaemonProcess(cfg)
            try:
                await asyncio.to_thread(d.wait_notify, "READY=1")
                await landed(p, False, 0.0)
                await sub.wait_for(f"{BASE}/status", lambda b: b == b"online")
                t0 = time.monotonic()
                await sub.publish(f"{BASE}/cmd/loadshed/heater/set",
                                  json.dumps({"req_id": "e2e-1", "ts": time.time(), "ttl_s": 600, "mode": "restore"}))
                ack = json.loads(await sub.wait_for(f"{BASE}/cmd/loadshed/heater/state",
                                                    lambda b: b'"e2e-1"' in b))
                assert ack["accepted"] is True
                await landed(p, True, t0)
                st = await shed_status(d, lambda s: s["loads"]["heater"]["override"]["mode"] == "restore")
                assert st["loads"]["heater"]["state"] == "on"
            finally:
                d.close()


def test_durations_read_as_a_person_writes_them() -> None:
    assert [parse_duration(t) for t in ("90s", "15m", "2h", "1d", "45", "1.5h")] == [90, 900, 7200, 86400, 45, 5400]
    for bad in ("", "2x", "-1h", "0s", "h"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_the_cli_says_in_one_line_when_no_daemon_runs(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config.toml", tmp_path)
    r = CliRunner().invoke(cli, ["-c", str(cfg), "shed", "status"])
    assert r.exit_code == 3
    assert "no daemon answers on" in r.output and "Traceback" not in r.output


async def test_the_cli_says_so_when_the_daemon_runs_without_load_shedding(base: Path) -> None:
    from zaas_edge.control import ControlServer

    cfg = write_config(base / "config.toml", base)
    server = ControlServer(base / "run" / "control.sock", {})  # a daemon whose shed service is not running
    await server.start()
    try:
        r = await asyncio.to_thread(CliRunner().invoke, cli, ["-c", str(cfg), "shed", "override", "x", "off"])
    finally:
        await server.close()
    assert r.exit_code == 1
    assert "the daemon runs without load shedding (set shedding.enabled = true and reload)" in r.output


SHELLY = """
[[shedding.loads]]
id = "dryer"
circuit = "site"
priority = -1
power_w = 2000
dwell_s = 0
min_on_s = 0
actuator = "shelly-dryer"

[[shedding.actuators]]
id = "shelly-dryer"
kind = "mqtt"
topic = "shellies/dryer/relay/0/command"
"""


async def _shelly(broker: Mosquitto, seen: list[bytes]) -> None:
    """A Shelly gen1 on the broker: obeys each command and tells its new state."""
    import aiomqtt

    async with aiomqtt.Client(broker.host, broker.port, identifier="shelly-dryer") as client:
        await client.subscribe("shellies/dryer/relay/0/command", qos=1)
        async for m in client.messages:
            payload = bytes(m.payload)  # type: ignore[arg-type]
            seen.append(payload)
            await client.publish("shellies/dryer/relay/0", payload, qos=1)


async def test_a_shelly_on_the_building_broker_is_shed_and_confirms(base: Path, plant) -> None:
    import contextlib

    p, port = plant
    with Mosquitto(base / "broker") as broker:
        mqtt = f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\nreconnect_max_s = 2.0\n'
        cfg = write_config(base / "config.toml", base, drivers=shed_config(port), extra=SHEDDING + SHELLY + mqtt)
        seen: list[bytes] = []
        shelly = asyncio.create_task(_shelly(broker, seen))
        d = DaemonProcess(cfg)
        try:
            await asyncio.to_thread(d.wait_notify, "READY=1")
            await shed_status(d, lambda s: s["state"] == "running" and s["limits"]["site"]["value_w"])
            p.base_w = 1500.0  # 4.5 kW: the dryer (priority -1, on the Shelly) goes first
            st = await shed_status(d, lambda s: s["loads"]["dryer"]["state"] == "off")
            assert seen[:1] == [b"off"]
            st = await shed_status(d, lambda s: s["counters"]["confirmed"] >= 1)
            assert st["loads"]["dryer"]["fault"] is False and st["counters"]["failures"] == 0
        finally:
            d.close()
            shelly.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await shelly


@given(st.integers(1, 10**6), st.sampled_from(["", "s", "m", "h", "d"]))
def test_a_whole_duration_reads_back_exactly(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == n * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
