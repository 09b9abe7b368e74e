"""MQTT publication: 3,000 points at 1 Hz through the real service to a real mosquitto.

A synthetic building of 100 meters x 30 points, each meter polled once a
second (polls spread over the second, one reading batch per poll, every value
moving beyond the deadband) feeds the hub; the real ``MqttService`` (publisher,
client, broker connection) turns that into device state messages. A
subscriber in a separate process measures, for each message, the delay from
the newest reading's ``wall_ns`` (the ``ts`` field) to its arrival.

Offered messages are the device state messages the publisher hands to the
broker connection (with per-device coalescing, one per meter poll: about 100
per second here, carrying 3,000 point values); delivered messages are those
the subscriber receives in the same window. CPU is the process time of the
publisher's process (the synthetic meters included) over the window.
The last line is ``ratio=<delivered msgs/s / offered msgs/s>``; targets:
ratio 1.0 and p99 under 100 ms.

    python bench/mqtt_publish.py [--seconds 30] [--devices 100] [--points 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START, STOP = "bench/control/start", "bench/control/stop"
STATE_FILTER = "zaas/v1/+/+/device/+/state"


# -- the subscriber (its own process, so its work does not count as the publisher's) -----

async def subscriber(port: int) -> None:
    import aiomqtt

    delays: list[float] = []
    counting = False
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-sub",
                              protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe(STATE_FILTER, qos=1)
        await c.subscribe("bench/control/#", qos=1)
        print("ready", flush=True)
        async for m in c.messages:
            now = time.time()
            topic = m.topic.value
            if topic == START:
                counting = True
            elif topic == STOP:
                break
            elif counting:
                delays.append(now - json.loads(m.payload)["ts"])
    print(json.dumps({"delivered": len(delays), "delays": delays}), flush=True)


class NoDrivers:
    """The service's view of the drivers: none here, the readings are synthetic."""

    def drivers_info(self) -> dict:
        return {}

    async def poll_now(self, driver_id: str) -> None: ...

    async def set_enabled(self, driver_id: str, enabled: bool) -> None: ...

    async def write(self, point: str, value: float) -> float:
        return value


# -- the publisher --------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def publisher(port: int, seconds: float, devices: int, points: int, state_dir: Path) -> dict:
    import aiomqtt

    from zaas_edge.clock import SystemClock
    from zaas_edge.config_model import Config, GatewaySection
    from zaas_edge.hub import Hub
    from zaas_edge.model import Reading
    from zaas_edge.mqtt.config import MqttSection
    from zaas_edge.mqtt.service import MqttService
    from zaas_edge.service import ServiceContext

    cfg = Config(gateway=GatewaySection(id="gw-bench", site="bench", state_dir=state_dir, runtime_dir=state_dir),
                 mqtt=MqttSection(enabled=True, host="127.0.0.1", port=port))
    hub, clock = Hub(), SystemClock(assume_synced=True)
    drivers = NoDrivers()
    ctx = ServiceContext(name="mqtt", config=lambda: cfg, hub=hub, clock=clock, outbox=None, drivers=drivers,
                         notice=lambda item: None, heartbeat=lambda: None, add_command=lambda n, h: None)
    service = MqttService(ctx)
    task = asyncio.create_task(service.run())
    while not ctx.status.get("connected"):
        await asyncio.sleep(0.01)

    rng = random.Random(1)
    values = {(d, q): rng.uniform(100, 1000) for d in range(devices) for q in range(points)}
    stop = asyncio.Event()

    async def meter(d: int) -> None:
        # Polls spread over the second, as a bus driver would read its meters one after the other.
        await asyncio.sleep(d / devices)
        period, nxt = 1.0, time.monotonic()
        while not stop.is_set():
            stamp = clock.now()
            batch = []
            for q in range(points):
                v = values[(d, q)] * (1 + rng.choice((-1, 1)) * rng.uniform(0.01, 0.03))
                values[(d, q)] = v
                batch.append(Reading.at(stamp, f"meter-{d}/q{q}", v, "W"))
            hub.readings(batch)
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    meters = [asyncio.create_task(meter(d)) for d in range(devices)]
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-ctl") as ctl:
        await asyncio.sleep(2.0)  # warm-up: discovery, first full states
        offered0, cpu0, t0 = service.publisher.offered, time.process_time(), time.monotonic()
        await ctl.publish(START, b"", qos=1)
        await asyncio.sleep(seconds)
        stop.set()
        offered1, cpu1, t1 = service.publisher.offered, time.process_time(), time.monotonic()
        for m in meters:
            m.cancel()
        # Drain: what was offered reaches the broker before the stop marker goes.
        while service.publisher._due:  # noqa: SLF001
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await ctl.publish(STOP, b"", qos=1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return {"offered": offered1 - offered0, "window_s": t1 - t0, "cpu_s": cpu1 - cpu0,
            "dropped": ctx.status["dropped"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--points", type=int, default=30)
    ap.add_argument("--subscriber", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.subscriber:
        asyncio.run(subscriber(args.subscriber))
        return 0

    from hil.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="zaas-bench-mqtt-") as d, Mosquitto(Path(d) / "broker") as broker:
        sub = subprocess.Popen([sys.executable, __file__, "--subscriber", str(broker.port)],
                               stdout=subprocess.PIPE, text=True)
        try:
            assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
            res = asyncio.run(publisher(broker.port, args.seconds, args.devices, args.points, Path(d)))
            out, _ = sub.communicate(timeout=60)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
    got = json.loads(out.strip().splitlines()[-1])
    window = res["window_s"]
    offered_rate = res["offered"] / window
    delivered_rate = got["delivered"] / window
    delays_ms = [x * 1000 for x in got["delays"]]
    points_total = args.devices * args.points
    print(f"points: {points_total} ({args.devices} devices x {args.points}) at 1 Hz for {window:.1f} s")
    print("offered = device state messages the publisher handed to the broker connection "
          "(one per device poll after coalescing)")
    print(f"offered: {res['offered']} msgs, {offered_rate:.1f} msgs/s "
          f"({offered_rate * args.points:.0f} point values/s)")
    print(f"delivered: {got['delivered']} msgs, {delivered_rate:.1f} msgs/s; dropped: {res['dropped']}")
    print(f"publisher CPU: {res['cpu_s']:.2f} s over {window:.1f} s = {100 * res['cpu_s'] / window:.1f} % of one core")
    print(f"latency reading->delivery: p50 {pct(delays_ms, 50):.1f} ms, p99 {pct(delays_ms, 99):.1f} ms, "
          f"max {max(delays_ms, default=float('nan')):.1f} ms")
    print(f"ratio={delivered_rate / offered_rate if offered_rate else 0:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
