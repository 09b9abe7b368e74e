"""The reference central API: its documented routes, mTLS on gateway routes, idempotency, bodies it refuses."""

from __future__ import annotations

import gzip
import re
import ssl
from pathlib import Path

import aiohttp

from hil.central import Central
from tests.sync_fixtures import GATEWAY, enrolled_identity, event
from zaas_edge.model import Lane, Reading
from zaas_edge.store import Stored
from zaas_edge.wire import codec

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000_000_000_000  # a fixed time: the same rows give the same body


def test_every_platform_route_is_in_the_openapi_document(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "sync-api.yaml").read_text()
    documented = set(re.findall(r"^  (/v1/\S+):$", doc, re.M))
    central = Central(tmp_path)
    try:
        served = {r.resource.canonical.replace("{gateway}", "{id}") for r in central.app().router.routes()
                  if r.resource is not None and r.resource.canonical.startswith("/v1/")}
    finally:
        central.db.close()
    assert documented == served
    assert "openapi: 3.1.0" in doc


def _body(first: int, last: int, lane: str = "reading") -> bytes:
    """A gzip-compressed batch in the gateway's codec: readings valued as their seq, or events."""
    n = last - first + 1
    items = ([Reading("meter-1/power", float(first + i), "W", T0 + i * 1000, i, "boot-1", True) for i in range(n)]
             if lane == "reading" else [event() for _ in range(n)])
    rows = [Stored(Lane(lane), first + i, item) for i, item in enumerate(items)]
    return gzip.compress(codec.encode_batch(Lane(lane), rows, epoch="e1"), mtime=0)


async def _post(session: aiohttp.ClientSession, central: Central, key: str, body: bytes, lane: str = "reading",
                **headers: str) -> tuple[int, dict | str]:
    h = {"Idempotency-Key": key, "Content-Type": codec.CONTENT_TYPE, "Content-Encoding": "gzip",
         "Zaas-Stream-Epoch": "e1", **headers}
    async with session.post(f"{central.url}/v1/gateways/{GATEWAY}/lanes/{lane}/batches", data=body,
                            headers=h) as r:
        return r.status, (await r.json() if r.status == 200 else await r.text())


async def test_batches_are_stored_once_with_gaps_and_replays(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ident.context())) as s:
        assert await _post(s, central, "k1", _body(1, 5)) == (200, {"acked_through": 5, "stored": 5,
                                                                      "duplicates": 0, "gap": None})
        status, answer = await _post(s, central, "k1", _body(1, 5))  # a replay: nothing new
        assert status == 200 and answer["replayed"] is True and answer["acked_through"] == 5
        status, answer = await _post(s, central, "k2", _body(3, 8))  # overlapping: only the new rows
        assert (status, answer["stored"], answer["duplicates"], answer["acked_through"]) == (200, 3, 3, 8)
        status, answer = await _post(s, central, "k3", _body(12, 13))
        assert answer["gap"] == [9, 11]
        status, text = await _post(s, central, "k3", _body(14, 15))
        assert status == 422 and "different body" in text
        status, text = await _post(s, central, "k4", b"not gzip")
        assert status == 400
        status, text = await _post(s, central, "k5", _body(1, 1), **{"Content-Type": "text/plain"})
        assert status == 415
        status, text = await _post(s, central, "k6", _body(1, 1, lane="event"))  # posted to the wrong lane
        assert status == 400 and "posted to lane" in text
    held = central.rows(GATEWAY, "reading")
    assert [s for _e, _l, s, _r in held] == [1, 2, 3, 4, 5, 6, 7, 8, 12, 13]
    assert [r["value"] for _e, _l, _s, r in held] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 12.0, 13.0]
    assert {r["point"] for _e, _l, _s, r in held} == {"meter-1/power"}
    assert central.gaps() == [("reading", 9, 11)]


async def test_gateway_routes_require_the_gateways_own_certificate(tmp_path: Path, central: Central) -> None:
    ctx = ssl.create_default_context(cafile=str(central.ca.ca_path))  # no client certificate
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        status, text = await _post(s, central, "k1", _body(1, 1))
        assert status == 401 and "client certificate" in text
    other = await enrolled_identity(central, tmp_path / "other", gateway="gw-other")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=other.context())) as s:
        status, text = await _post(s, central, "k1", _body(1, 1))
        assert status == 403 and "gw-other" in text
    assert central.rows() == []
