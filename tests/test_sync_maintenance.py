"""What the sync service does besides batches: clock skew, certificate renewal, the signed configuration bundle."""

from __future__ import annotations

import json
import time
from pathlib import Path

from hil.central import Central, TestCA
from tests.sync_fixtures import GATEWAY, Gateway, enrolled_identity, make_config, open_writer, readings
from zaas_edge.clock import FakeClock
from zaas_edge.model import Event
from zaas_edge.sync.enroll import verify_bundle

DAY = 86400


async def _gateway(tmp_path: Path, central: Central, clock: FakeClock | None = None, **sync) -> Gateway:
    state = tmp_path / "gw"
    state.mkdir()
    await enrolled_identity(central, state)
    cfg = make_config(state, central.url, **sync)
    gw = Gateway(state, cfg, await open_writer(state, cfg))
    gw.clock = clock
    return gw


async def test_gross_skew_against_the_date_header_raises_an_alarm_and_leaves_the_clock(
        tmp_path: Path, central: Central) -> None:
    clock = FakeClock(wall_ns=time.time_ns() + 3600 * 10**9)  # an hour ahead
    gw = await _gateway(tmp_path, central, clock, config_pull_interval_s=0, renew=False)
    try:
        gw.writer.submit(readings(5))
        assert await gw.writer.flush()
        gw.start()
        await gw.wait_cursor("reading", 5)
        await gw.wait_for(lambda: gw.active("clock.skew"), what="skew alarm")
        a = gw.alarms("clock.skew")[-1]
        assert 3500 < a.data["skew_s"] < 3700 and "not changed" in a.text
        assert 3500 < gw.status["clock_skew_s"] < 3700
        before = clock.wall_ns
        clock.wall_ns = time.time_ns()  # NTP fixed it: the alarm clears on the next answer
        assert before - clock.wall_ns > 3500 * 10**9
        gw.writer.submit(readings(5, start=5))
        assert await gw.writer.flush()
        await gw.wait_cursor("reading", 10)
        assert not gw.active("clock.skew")
    finally:
        await gw.stop()
        await gw.writer.close()


async def test_renewal_at_two_thirds_of_the_life_then_uploads_with_the_new_pair(
        tmp_path: Path, central: Central) -> None:
    clock = FakeClock(wall_ns=time.time_ns() + 61 * DAY * 10**9)  # 90-day certificate: due after 60 days
    gw = await _gateway(tmp_path, central, clock, config_pull_interval_s=0, clock_skew_alarm_s=100 * DAY)
    ident = gw.state / "identity"
    old_cert = (ident / "cert.pem").read_bytes()
    try:
        gw.start()
        await gw.wait_for(lambda: any(isinstance(n, Event) and n.kind == "sync.renewed" for n in gw.notices),
                          what="renewal")
        assert (ident / "cert.pem").read_bytes() != old_cert
        assert (ident / "previous" / "cert.pem").read_bytes() == old_cert
        fp = json.loads((ident / "enrollment.json").read_text())["cert_sha256"]
        assert gw.service is not None and gw.service.identity.show()["certificate"]["cert_sha256"] != fp
        gw.writer.submit(readings(7))
        assert await gw.writer.flush()
        await gw.wait_cursor("reading", 7)
        assert [s for _e, _l, s, _r in central.rows(GATEWAY, "reading")] == list(range(1, 8))
    finally:
        await gw.stop()
        await gw.writer.close()


async def test_config_bundle_is_verified_and_stored_not_applied(tmp_path: Path, central: Central) -> None:
    central.config_document = {"version": 7, "settings": {"sync": {"idle_interval_s": 99}}}
    gw = await _gateway(tmp_path, central, config_pull_interval_s=3600, renew=False)
    bundle_file = gw.state / "sync" / "config-bundle.json"
    try:
        gw.start()
        await gw.wait_for(bundle_file.exists, what="bundle stored")
        doc = verify_bundle(json.loads(bundle_file.read_text()), central.ca.signing_public_pem)
        assert doc["version"] == 7 and doc["gateway"] == GATEWAY
        assert gw.config.sync.idle_interval_s == 0.2  # not applied
        assert any(isinstance(n, Event) and n.kind == "sync.config_received" for n in gw.notices)
    finally:
        await gw.stop()
    # A pinned key that is not the platform's: the bundle is refused, alarm raised, nothing stored.
    bundle_file.unlink()
    (gw.state / "identity" / "config-signing.pem").write_bytes(TestCA(tmp_path / "x").signing_public_pem)
    try:
        gw.start()
        await gw.wait_for(lambda: gw.active("sync.config"), what="config alarm")
        assert "does not verify" in gw.alarms("sync.config")[-1].text
        assert not bundle_file.exists()
    finally:
        await gw.stop()
        await gw.writer.close()
