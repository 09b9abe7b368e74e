"""Sync through a fault-injecting proxy and with broken identities: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from hil.central import Central, TestCA
from hil.faultproxy import FaultProxy
from tests.sync_fixtures import GATEWAY, Gateway, enrolled_identity, make_config, open_writer, readings
from zaas_edge.sync.batches import BatchStore


@pytest.fixture
async def proxy(central: Central):
    p = FaultProxy("127.0.0.1", central.port)
    await p.start()
    yield p
    await p.stop()


async def _gateway(tmp_path: Path, central: Central, url: str, **sync) -> Gateway:
    state = tmp_path / "gw"
    state.mkdir(exist_ok=True)
    if not (state / "identity" / "cert.pem").exists():
        await enrolled_identity(central, state)
    cfg = make_config(state, url, config_pull_interval_s=0, **sync)
    return Gateway(state, cfg, await open_writer(state, cfg))


def exactly_once(central: Central, n: int) -> None:
    got = [s for _e, _l, s, _r in central.rows(GATEWAY, "reading")]
    assert got == list(range(1, n + 1))
    assert central.gaps() == []


async def test_long_outage_then_recovery(tmp_path: Path, central: Central, proxy: FaultProxy) -> None:
    proxy.set(mode="drop")
    gw = await _gateway(tmp_path, central, f"https://{proxy.address}")
    try:
        gw.start()
        n = 0
        for _ in range(10):  # the backlog grows while the link is down
            gw.writer.submit(readings(3000, start=n))
            n += 3000
            assert await gw.writer.flush()
        await gw.wait_for(lambda: gw.status.get("lanes", {}).get("reading", {}).get("last_error"), what="an error")
        assert "cannot connect" in gw.status["lanes"]["reading"]["last_error"] or \
            "connection lost" in gw.status["lanes"]["reading"]["last_error"]
        assert await gw.cursor("reading") == 0 and central.rows(GATEWAY, "reading") == []
        proxy.set(mode="pass")
        await gw.commands["sync.now"]({})
        await gw.wait_cursor("reading", n, timeout=60)
        exactly_once(central, n)
        assert gw.status["lanes"]["reading"]["batch_target_bytes"] > 16 * 1024  # grew on success
    finally:
        await gw.stop()
        await gw.writer.close()


async def test_flapping_link(tmp_path: Path, central: Central, proxy: FaultProxy) -> None:
    gw = await _gateway(tmp_path, central, f"https://{proxy.address}", batch_initial_bytes=512,
                        batch_max_bytes=1024)
    try:
        gw.writer.submit(readings(20_000))
        assert await gw.writer.flush()
        gw.start()
        flaps = 0
        while await gw.cursor("reading") < 20_000 and flaps < 400:
            await asyncio.sleep(0.03)
            proxy.reset_all()  # every open connection dies, mid-request or between requests
            flaps += 1
            if flaps % 5 == 0:
                proxy.set(reset_after_bytes=3000 if proxy.reset_after_bytes is None else None)
        proxy.set(reset_after_bytes=None)
        await gw.wait_cursor("reading", 20_000, timeout=60)
        assert proxy.resets >= 3
        exactly_once(central, 20_000)
    finally:
        await gw.stop()
        await gw.writer.close()


async def test_slow_link_and_timeouts_halve_the_batch(tmp_path: Path, central: Central, proxy: FaultProxy) -> None:
    proxy.set(mode="blackhole")
    gw = await _gateway(tmp_path, central, f"https://{proxy.address}", request_timeout_s=0.3,
                        batch_initial_bytes=16384)
    try:
        gw.writer.submit(readings(5000))
        assert await gw.writer.flush()
        gw.start()
        await gw.wait_for(lambda: gw.status.get("lanes", {}).get("reading", {}).get("batch_target_bytes", 16384)
                          < 16384, what="the batch target to shrink")
        assert "no answer in time" in gw.status["lanes"]["reading"]["last_error"]
        # A slow link now: paced and delayed, but it answers.
        proxy.set(mode="pass", bandwidth_bps=400_000, delay_s=0.005)
        gw.config = make_config(gw.state, f"https://{proxy.address}", config_pull_interval_s=0, request_timeout_s=20)
        await gw.stop()
        gw.start()
        await gw.wait_cursor("reading", 5000, timeout=60)
        exactly_once(central, 5000)
    finally:
        await gw.stop()
        await gw.writer.close()


async def test_expired_certificate_alarms_and_keeps_everything(tmp_path: Path, central: Central) -> None:
    gw = await _gateway(tmp_path, central, central.url)
    ident_dir = gw.state / "identity"
    csr = (ident_dir / "csr.pem").read_bytes()
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    chain = central.certify(GATEWAY, csr, days=1, not_before=long_ago)  # pinned, as a re-enrollment does
    (ident_dir / "cert.pem").write_bytes(chain)
    try:
        gw.writer.submit(readings(300))
        assert await gw.writer.flush()
        gw.start()
        await gw.wait_for(lambda: gw.active("sync.identity"), what="identity alarm")
        assert "expired" in gw.alarms("sync.identity")[-1].text and "enroll" in gw.alarms("sync.identity")[-1].text
        # The platform refuses the handshake (TLS 1.3 shows it as a reset): errors, no data moved.
        await gw.wait_for(lambda: gw.status["lanes"]["reading"]["last_error"], what="a refused upload")
        assert await gw.cursor("reading") == 0
        assert central.rows(GATEWAY, "reading") == []
        assert len(BatchStore(gw.state / "sync" / "batches").pending("reading")) == 1  # kept, not dropped
        # A new certificate (re-enrollment) and the same batch goes through.
        chain = central.certify(GATEWAY, csr, days=90)
        (ident_dir / "cert.pem").write_bytes(chain)
        await gw.commands["sync.now"]({})
        await gw.wait_cursor("reading", 300, timeout=30)
        exactly_once(central, 300)
        assert not gw.active("sync.tls") and not gw.active("sync.identity")
    finally:
        await gw.stop()
        await gw.writer.close()


async def test_wrong_ca_alarms_and_keeps_everything(tmp_path: Path, central: Central) -> None:
    gw = await _gateway(tmp_path, central, central.url)
    ca_file = gw.state / "identity" / "ca.pem"
    good = ca_file.read_bytes()
    ca_file.write_bytes(TestCA(tmp_path / "impostor").pem)
    try:
        gw.writer.submit(readings(100))
        assert await gw.writer.flush()
        gw.start()
        await gw.wait_for(lambda: gw.active("sync.tls"), what="TLS alarm")
        assert "not trusted by the pinned platform CA" in gw.alarms("sync.tls")[-1].text
        assert await gw.cursor("reading") == 0 and central.rows(GATEWAY, "reading") == []
        ca_file.write_bytes(good)
        await gw.commands["sync.now"]({})
        await gw.wait_cursor("reading", 100, timeout=30)
        exactly_once(central, 100)
        assert not gw.active("sync.tls")
    finally:
        await gw.stop()
        await gw.writer.close()
