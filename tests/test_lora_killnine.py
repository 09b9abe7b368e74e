"""A LoRaWAN frame is never accepted twice across a ``kill -9``: its counter is saved before its readings leave.

The real daemon accepts FCnt 300, 301 and 302; as soon as their readings are
in the store it is killed with SIGKILL (no chance to save anything at stop),
started again, and 301 is sent once more, as an attacker with a recording
would: it is refused as a replay, and the store holds 301's reading once.
The default ``state_save_interval_s`` is kept, the setting under which the
fault was found.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from zaas_edge.drivers.lora.keys import save_keys

from hil.daemon_harness import DaemonProcess, write_config
from hil.lora_forwarder import DEMO_DEVICES, SimDevice, SimForwarder, em300_di_payload
from tests.test_lora_driver_e2e import free_udp_port


@pytest.fixture
def base() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zaas-lora-kill-", dir="/tmp") as d:
        yield Path(d)


def stored_pulses(db: Path) -> list[float]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [v for (v,) in conn.execute(
            "select r.value from reading r join point p on p.id = r.point_id "
            "where p.key = 'water-1/pulse_count' order by r.seq")]
    except sqlite3.OperationalError:  # the schema is not created yet
        return []
    finally:
        conn.close()


async def send(port: int, frames: list[bytes]) -> None:
    async with SimForwarder("127.0.0.1", port) as fwd:
        for frame in frames:
            assert await fwd.uplink(frame, timeout=10)


def test_a_frame_accepted_before_a_kill_9_is_refused_after_the_restart(base: Path) -> None:
    keys = base / "lora-keys.toml"
    save_keys(keys, DEMO_DEVICES)
    port = free_udp_port()
    drivers = f'[[drivers]]\nid = "lora"\ntype = "lora"\nport = {port}\nkeys_file = "{keys}"\ndedup_window_s = 0.05\n'
    cfg = write_config(base / "config.toml", base, drivers=drivers)
    db = base / "state" / "store.sqlite"
    water = SimDevice(DEMO_DEVICES[0], fcnt=300)
    frames = [water.uplink(em300_di_payload(7000 + n)) for n in range(3)]  # FCnt 300, 301, 302

    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        d.wait_status(lambda s: s["drivers"]["lora"]["state"] == "running")
        asyncio.run(send(port, frames))
        d.wait_status(lambda s: s["drivers"]["lora"]["counters"].get("uplinks") == 3)
        d.wait_status(lambda s: len(stored_pulses(db)) == 3)  # the readings are committed: now kill
        d.proc.send_signal(signal.SIGKILL)
        assert d.proc.wait(10) == -signal.SIGKILL
    finally:
        d.close()
    assert stored_pulses(db) == [7000.0, 7001.0, 7002.0]

    d = DaemonProcess(cfg)
    try:
        d.wait_notify("READY=1")
        d.wait_status(lambda s: s["drivers"]["lora"]["state"] == "running")
        asyncio.run(send(port, [frames[1]]))  # FCnt 301 again, recorded before the crash
        st = d.wait_status(lambda s: {"replayed", "uplinks"} & set(s["drivers"]["lora"]["counters"]))
        counters = st["drivers"]["lora"]["counters"]
        assert counters.get("replayed") == 1 and "uplinks" not in counters, counters
        assert d.stop() == 0
    finally:
        d.close()
    assert stored_pulses(db) == [7000.0, 7001.0, 7002.0]  # 301's reading once
