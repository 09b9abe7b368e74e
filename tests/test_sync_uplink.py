"""The sync service against the reference central on loopback: real TLS, real SQLite, exact effects."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hil.central import Central
from tests.sync_fixtures import GATEWAY, Gateway, alarm, enrolled_identity, event, make_config, open_writer, readings
from zaas_edge.sync import service as sync_service
from zaas_edge.sync.batches import BatchStore, compress
from zaas_edge.sync.identity import Identity
from zaas_edge.sync.uplink import Refused, Uplink
from zaas_edge.wire import codec


@pytest.fixture
async def gateway(tmp_path: Path, central: Central):
    state = tmp_path / "gw"
    state.mkdir()
    await enrolled_identity(central, state)
    cfg = make_config(state, central.url, config_pull_interval_s=0)
    w = await open_writer(state, cfg)
    gw = Gateway(state, cfg, w)
    yield gw
    await gw.stop()
    await w.close()


def seqs(central: Central, lane: str) -> list[int]:
    return [s for _e, _l, s, _r in central.rows(GATEWAY, lane)]


async def test_drains_every_lane_alarms_first_exactly_once(central: Central, gateway: Gateway) -> None:
    gateway.writer.submit(readings(500))
    for i in range(3):
        gateway.writer.event(event(f"test.e{i}"))
    gateway.writer.alarm(alarm())
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_cursor("reading", 500)
    await gateway.wait_cursor("event", 3)
    await gateway.wait_cursor("alarm", 1)
    assert seqs(central, "reading") == list(range(1, 501))
    assert seqs(central, "event") == [1, 2, 3]
    assert [r["alarm_id"] for *_x, r in central.rows(GATEWAY, "alarm")] == ["test.alarm"]
    values = [r["value"] for *_x, r in central.rows(GATEWAY, "reading")]
    assert values == [float(i) for i in range(500)]
    # Alarms first, then events, then readings.
    assert [b["lane"] for b in central.batches_seen][:2] == ["alarm", "event"]
    assert central.gaps() == []
    lanes = gateway.status["lanes"]
    assert lanes["reading"]["rows_sent"] == 500 and lanes["reading"]["bytes_sent"] > 0
    assert lanes["alarm"]["last_error"] is None
    assert list((gateway.state / "sync" / "batches").glob("*.batch")) == []


async def test_server_errors_are_retried_with_the_same_bytes_and_key(central: Central, gateway: Gateway) -> None:
    central.faults = [{"status": 500, "count": 2}, {"status": 429, "count": 1, "retry_after": 0},
                      {"status": 503, "count": 1}]
    gateway.writer.submit(readings(50))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_cursor("reading", 50)
    assert seqs(central, "reading") == list(range(1, 51))
    assert central.faults == [] or all(f["count"] == 0 for f in central.faults)
    assert central.requests["/v1/gateways/{gateway}/lanes/{lane}/batches"] >= 5
    assert gateway.status["lanes"]["reading"]["last_error"] is not None  # the last failure is remembered


async def test_frozen_batch_survives_a_restart_and_is_resent_identical(central: Central, gateway: Gateway) -> None:
    central.faults = [{"status": 503, "count": 10_000}]
    gateway.writer.submit(readings(20))
    assert await gateway.writer.flush()
    gateway.start()
    store = BatchStore(gateway.state / "sync" / "batches")
    await gateway.wait_for(lambda: store.pending("reading"), what="a frozen batch")
    frozen = store.pending("reading")[0]
    await gateway.stop()
    gateway.writer.submit(readings(20, start=20))  # more rows arrive meanwhile: not in the frozen batch
    assert await gateway.writer.flush()
    central.faults = []
    gateway.start()
    await gateway.wait_cursor("reading", 40)
    assert central.batches_seen[0]["key"] == frozen.id
    assert (central.batches_seen[0]["first_seq"], central.batches_seen[0]["last_seq"]) == (1, 20)
    assert seqs(central, "reading") == list(range(1, 41))


async def test_a_refused_batch_is_quarantined_with_an_alarm(central: Central, gateway: Gateway) -> None:
    central.faults = [{"status": 400, "count": 1, "text": "bad batch"}]
    gateway.writer.submit(readings(10))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_for(lambda: gateway.active("sync.quarantine"), what="quarantine alarm")
    await gateway.wait_cursor("reading", 10)
    a = gateway.alarms("sync.quarantine")[-1]
    assert (a.data["first_seq"], a.data["last_seq"]) == (1, 10)
    kept = BatchStore(gateway.state / "sync" / "batches").quarantined()
    assert [(b.first_seq, b.last_seq) for b in kept] == [(1, 10)]
    assert "bad batch" in Path(a.data["path"]).with_suffix(".reason").read_text()
    assert seqs(central, "reading") == []  # not resent
    gateway.writer.submit(readings(5, start=10))  # the lane goes on after it
    assert await gateway.writer.flush()
    await gateway.wait_cursor("reading", 15)
    assert seqs(central, "reading") == list(range(11, 16))
    assert central.gaps() == [("reading", 1, 10)]  # the platform records what it never got


async def test_413_splits_the_frozen_batch_and_shrinks_the_target(central: Central, gateway: Gateway) -> None:
    central.max_body_bytes = 1500
    gateway.writer.submit(readings(2000))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_cursor("reading", 2000)
    assert seqs(central, "reading") == list(range(1, 2001))
    assert all(b["bytes"] <= 1500 for b in central.batches_seen)
    assert any(isinstance(n, type(event())) and n.kind == "sync.batch_split" for n in gateway.notices)
    assert central.gaps() == []


@pytest.mark.parametrize("zstd_from, last", [(1, "zstd"), (sync_service.ZSTD_FROM_BYTES, "gzip")])
async def test_zstd_once_the_platform_offers_it_for_a_large_enough_batch(
        central: Central, gateway: Gateway, monkeypatch: pytest.MonkeyPatch, zstd_from: int, last: str) -> None:
    """The first batch goes as gzip (nothing offered yet); once zstd is offered, only batches of
    ``ZSTD_FROM_BYTES`` and more use it: a steady minute's small batch gains next to nothing from
    zstd, which would cost the daemon its memory."""
    monkeypatch.setattr(sync_service, "ZSTD_FROM_BYTES", zstd_from)
    gateway.writer.submit(readings(10))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_cursor("reading", 10)
    gateway.writer.submit(readings(10, start=10))
    assert await gateway.writer.flush()
    await gateway.wait_cursor("reading", 20)
    encodings = [b["encoding"] for b in central.batches_seen if b["lane"] == "reading"]
    assert len(encodings) >= 2 and encodings[0] == "gzip" and encodings[-1] == last
    assert seqs(central, "reading") == list(range(1, 21))


async def test_sync_now_command_and_status(central: Central, gateway: Gateway) -> None:
    gateway.config = make_config(gateway.state, central.url, idle_interval_s=3600, config_pull_interval_s=0)
    gateway.start()
    await gateway.wait_for(lambda: gateway.status.get("state") == "idle", what="idle")
    gateway.writer.submit(readings(3))
    assert await gateway.writer.flush()
    answer = await gateway.commands["sync.now"]({})
    assert answer["woken"] is True
    await gateway.wait_cursor("reading", 3, timeout=10)
    assert json.dumps(gateway.status)  # the status is plain JSON for the control socket


async def test_415_on_zstd_sends_the_same_batch_once_more_as_gzip(central: Central, gateway: Gateway) -> None:
    central.offer_zstd = False  # a platform that refuses zstd bodies with 415
    gateway.config = make_config(gateway.state, central.url, compression="zstd", config_pull_interval_s=0)
    gateway.writer.submit(readings(10))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_cursor("reading", 10)
    sent = [b for b in central.batches_seen if b["lane"] == "reading"]
    assert [(b["first_seq"], b["last_seq"], b["encoding"]) for b in sent] == [(1, 10, "gzip")]
    assert not gateway.active("sync.quarantine")
    assert BatchStore(gateway.state / "sync" / "batches").quarantined() == []
    gateway.writer.submit(readings(5, start=10))  # later batches go as gzip straight away
    assert await gateway.writer.flush()
    await gateway.wait_cursor("reading", 15)
    assert [b["encoding"] for b in central.batches_seen if b["lane"] == "reading"] == ["gzip", "gzip"]
    assert seqs(central, "reading") == list(range(1, 16))
    assert central.requests.get("/v1/gateways/{gateway}/lanes/{lane}/batches", 0) == 3  # one 415, two 200
    assert gateway.status["encoding"] == "gzip"


async def test_the_idempotency_key_covers_the_body_before_compression(central: Central, gateway: Gateway) -> None:
    gateway.writer.submit(readings(10))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_cursor("reading", 10)
    await gateway.stop()
    sent = [b for b in central.batches_seen if b["lane"] == "reading"][0]
    epoch = central.rows(GATEWAY, "reading")[0][0]
    rows = await gateway.writer.read("reading", 0, 10)
    body = codec.encode_batch("reading", rows, epoch=epoch)
    store = BatchStore(gateway.state / "sync" / "batches")
    async with Uplink(central.url, GATEWAY, Identity(gateway.state / "identity").context()) as up:
        for enc in ("zstd", "gzip"):  # the same rows under the same key, compressed either way: a replay
            b = replace(store.freeze("reading", 1, 10, 10, epoch, enc, codec.CONTENT_TYPE, body), id=sent["key"])
            answer = await up.post_batch(b)
            assert (answer.acked_through, answer.body["replayed"]) == (10, True)
        other = replace(b, body=compress(codec.encode_batch("reading", rows[:9], epoch=epoch), "gzip"))
        with pytest.raises(Refused) as refused:
            await up.post_batch(other)  # the same key, another uncompressed body
        assert refused.value.status == 422
    assert seqs(central, "reading") == list(range(1, 11))


async def test_an_alarm_goes_before_the_reading_batch_frozen_ahead(central: Central, gateway: Gateway) -> None:
    gateway.config = make_config(gateway.state, central.url, batch_initial_bytes=512, batch_max_bytes=1024,
                                 config_pull_interval_s=0)
    central.faults = [{"status": 503, "count": 2, "retry_after": 1}]  # the first reading batch waits ~2 s
    gateway.writer.submit(readings(3000))
    assert await gateway.writer.flush()
    gateway.start()
    await gateway.wait_for(lambda: central.requests.get("/v1/gateways/{gateway}/lanes/{lane}/batches", 0) >= 1,
                           what="a first reading batch")
    frozen = BatchStore(gateway.state / "sync" / "batches")
    await gateway.wait_for(lambda: len(frozen.pending("reading")) == 2, what="the next batch frozen ahead")
    gateway.writer.alarm(alarm("test.urgent"))
    assert await gateway.writer.flush()
    await gateway.wait_cursor("alarm", 1)
    await gateway.wait_cursor("reading", 3000)
    lanes = [b["lane"] for b in central.batches_seen]
    assert lanes[:3] == ["reading", "alarm", "reading"]  # the frozen-ahead batch waited for the alarm
    assert seqs(central, "reading") == list(range(1, 3001))
    assert central.gaps() == []
