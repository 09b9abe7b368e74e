"""The reference central as an attacker meets it: over real HTTPS on 127.0.0.1, against the real server.

It is the contract the platform copies, so each rule of docs/sync-api.md's
"Platform security requirements" has its attack here: taking an enrolled id
over, using a certificate that is not the pinned one, naming oneself into
the certificate, minting tokens, bodies too large on the wire or once
inflated, and an idempotent answer replayed for another stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import sqlite3
import ssl
import subprocess
import sys
import tracemalloc
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import aiohttp
import pytest
import zstandard
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from hil.central import Central
from hil.central.bodies import STEP, BodyTooLarge, inflate
from tests.sync_fixtures import GATEWAY, enrolled_identity, event
from zaas_edge.errors import PermanentError, ProtocolError
from zaas_edge.model import Lane
from zaas_edge.store import Stored
from zaas_edge.sync.enroll import enroll, renew
from zaas_edge.sync.identity import Identity, new_key
from zaas_edge.sync.uplink import Uplink
from zaas_edge.wire import codec

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
WAIT_S = 20  # a guard against a hang (the old central waited for the whole body), not a timing


def _batch(first: int, last: int, lane: str = "event") -> bytes:
    rows = [Stored(Lane(lane), seq, event()) for seq in range(first, last + 1)]
    return gzip.compress(codec.encode_batch(Lane(lane), rows, epoch="e1"), mtime=0)


async def _post(ctx: ssl.SSLContext, central: Central, key: str, body: bytes, *, lane: str = "event",
                epoch: str = "e1", encoding: str = "gzip") -> tuple[int, dict | str]:
    headers = {"Idempotency-Key": key, "Content-Type": codec.CONTENT_TYPE, "Content-Encoding": encoding,
               "Zaas-Stream-Epoch": epoch}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s, \
            s.post(f"{central.url}/v1/gateways/{GATEWAY}/lanes/{lane}/batches", data=body, headers=headers) as r:
        return r.status, (await r.json() if r.status == 200 else await r.text())


async def _get(ctx: ssl.SSLContext, central: Central, path: str) -> int:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s, \
            s.get(f"{central.url}{path}") as r:
        return r.status


def _ca_only(central: Central) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(central.ca.ca_path))


def _fresh_identity(directory: Path, gateway: str = GATEWAY) -> Identity:
    ident = Identity(directory)
    ident.init(gateway, "test-site")
    return ident


# ------------------------------------------------------------------ enrollment and the pinned certificate

async def test_an_unbound_token_cannot_take_an_enrolled_id_over(tmp_path: Path, central: Central) -> None:
    owner = await enrolled_identity(central, tmp_path / "owner")
    thief = _fresh_identity(tmp_path / "thief")
    with pytest.raises(PermanentError, match="already enrolled"):
        await enroll(thief, central.url, central.new_token(), GATEWAY, central.ca.ca_path)
    assert not thief.enrolled()
    # The owner's certificate still works, and the refused token was not spent.
    assert (await _post(owner.context(), central, "k1", _batch(1, 2)))[0] == 200
    newcomer = _fresh_identity(tmp_path / "newcomer", "gw-new")
    token = central.new_token()  # unbound tokens still enroll ids nobody holds yet
    await enroll(newcomer, central.url, token, "gw-new", central.ca.ca_path)
    assert newcomer.enrolled()


async def test_reenrollment_with_a_token_bound_to_the_id_revokes_the_old_certificate(
        tmp_path: Path, central: Central) -> None:
    old = await enrolled_identity(central, tmp_path / "old")
    old_ctx = old.context()
    assert (await _post(old_ctx, central, "k1", _batch(1, 2)))[0] == 200
    replacement = _fresh_identity(tmp_path / "replacement")  # the box was replaced: a new key
    await enroll(replacement, central.url, central.new_token(GATEWAY), GATEWAY, central.ca.ca_path)
    status, text = await _post(old_ctx, central, "k2", _batch(3, 4))
    assert status == 403 and "not the one enrolled" in text
    assert await _get(old_ctx, central, "/v1/time") == 403
    assert await _get(old_ctx, central, f"/v1/gateways/{GATEWAY}/config") == 403
    assert (await _post(replacement.context(), central, "k2", _batch(3, 4)))[0] == 200
    assert [seq for _e, _l, seq, _r in central.rows(GATEWAY, "event")] == [1, 2, 3, 4]


async def test_a_certificate_with_the_right_subject_but_not_the_pinned_one_is_refused(
        tmp_path: Path, central: Central) -> None:
    owner = await enrolled_identity(central, tmp_path / "owner")
    # Signed by the platform CA, CN=gw-test, valid: but never enrolled (a leaked CA, a cloned box).
    forged = _fresh_identity(tmp_path / "forged")
    _cert, chain = central.ca.sign_csr(forged.csr(), gateway=GATEWAY)
    forged.store_cert(chain, ca_pem=central.ca.pem)
    ctx = forged.context()
    status, text = await _post(ctx, central, "k1", _batch(1, 1))
    assert status == 403 and "not the one enrolled" in text
    assert await _get(ctx, central, "/v1/time") == 403
    assert await _get(ctx, central, f"/v1/gateways/{GATEWAY}/config") == 403
    up = Uplink(central.url, GATEWAY, ctx, request_timeout_s=5)
    try:
        with pytest.raises(PermanentError):  # nor can it renew itself into the pinned place
            await up.renew(_fresh_identity(tmp_path / "next").csr())
    finally:
        await up.close()
    assert central.rows() == []
    assert (await _post(owner.context(), central, "k1", _batch(1, 1)))[0] == 200


async def test_renewal_keeps_the_old_certificate_until_the_new_one_is_used(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    old_ctx = ident.context()
    await renew(ident, central.url, GATEWAY, "test-site",
                lambda ctx: Uplink(central.url, GATEWAY, ctx, request_timeout_s=5))
    # A gateway that crashed between the trial and its own promotion still gets in with the old pair.
    assert (await _post(old_ctx, central, "k1", _batch(1, 1)))[0] == 200
    assert (await _post(ident.context(), central, "k2", _batch(2, 2)))[0] == 200
    status, text = await _post(old_ctx, central, "k3", _batch(3, 3))
    assert status == 403 and "not the one enrolled" in text


def _csr_naming(key: ec.EllipticCurvePrivateKey, *attributes: tuple[x509.ObjectIdentifier, str]) -> str:
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def test_the_certificate_subject_is_the_id_alone_whatever_the_csr_says(central: Central) -> None:
    csr = _csr_naming(new_key(), (NameOID.ORGANIZATION_NAME, "zaas reference platform"),
                      (NameOID.ORGANIZATIONAL_UNIT_NAME, "platform-admins"), (NameOID.COMMON_NAME, GATEWAY))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ca_only(central))) as s:
        async with s.post(f"{central.url}/v1/gateways/{GATEWAY}/enroll",
                          json={"csr": csr, "token": central.new_token(GATEWAY)}) as r:
            assert r.status == 201
            doc = await r.json()
        twice = _csr_naming(new_key(), (NameOID.COMMON_NAME, GATEWAY), (NameOID.COMMON_NAME, "gw-other"))
        async with s.post(f"{central.url}/v1/gateways/{GATEWAY}/enroll",
                          json={"csr": twice, "token": central.new_token(GATEWAY)}) as r:
            assert r.status == 400
    cert = x509.load_pem_x509_certificate(doc["certificate"].encode())
    assert cert.subject.rfc4514_string() == f"CN={GATEWAY}"


# ------------------------------------------------------------------ test-only endpoints

async def test_test_endpoints_exist_only_in_test_mode(tmp_path: Path, central: Central) -> None:
    ctx = _ca_only(central)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.post(f"{central.url}/test/tokens", json={"gateway": GATEWAY}) as r:
            assert r.status == 404
        for path in ("/test/rows", "/test/stats", "/test/gaps", "/test/streams"):
            async with s.get(central.url + path) as r:
                assert r.status == 404, path
        async with s.post(f"{central.url}/test/faults", json={"max_body_bytes": 1}) as r:
            assert r.status == 404
    assert central.max_body_bytes > 1
    testing = Central(tmp_path / "testing", test_mode=True)
    await testing.start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ca_only(testing))) as s, \
                s.post(f"{testing.url}/test/tokens", json={"gateway": GATEWAY}) as r:
            assert r.status == 200 and (await r.json())["token"]
    finally:
        await testing.stop()


def test_the_central_started_by_hand_has_no_token_minting(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "hil.central", "--dir", str(tmp_path / "c"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        req = urllib.request.Request(info["url"] + "/test/tokens", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, context=ssl.create_default_context(cafile=info["ca"]), timeout=WAIT_S)
        assert err.value.code == 404
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------------ body limits

async def _raw_exchange(central: Central, ctx: ssl.SSLContext, head: str, parts: list[bytes]
                        ) -> tuple[int, dict[str, str], str]:
    """Send a request head and body parts as given, then read the answer: (status, headers, text)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", central.port, ssl=ctx)
    try:
        writer.write(head.encode())
        for part in parts:
            writer.write(part)
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), WAIT_S)
        headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), WAIT_S)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        text = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), WAIT_S)
        return int(status_line.split()[1]), headers, text.decode()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _head(central: Central, framing: str) -> str:
    return (f"POST /v1/gateways/{GATEWAY}/lanes/event/batches HTTP/1.1\r\nHost: 127.0.0.1:{central.port}\r\n"
            f"Idempotency-Key: big\r\nContent-Type: {codec.CONTENT_TYPE}\r\nContent-Encoding: gzip\r\n"
            f"Zaas-Stream-Epoch: e1\r\n{framing}\r\n\r\n")


async def test_a_chunked_body_over_the_limit_is_refused_before_its_end(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    piece = b"\x1f\x8b" + bytes(64 * 1024 - 2)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    # 1.5 MiB sent and the body left open (no last chunk): only a central that stops at its cap can answer.
    status, headers, text = await _raw_exchange(central, ident.context(), _head(central, "Transfer-Encoding: chunked"),
                                                [chunk] * 24)
    assert status == 413 and "on the wire" in text
    assert headers.get("connection", "").lower() == "close"
    assert central.rows() == []


async def test_a_declared_length_over_the_limit_is_refused_without_reading(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    status, _headers, text = await _raw_exchange(central, ident.context(),
                                                 _head(central, f"Content-Length: {60 * MiB}"), [bytes(4096)])
    assert status == 413 and "on the wire" in text


def _gzip_bomb(inflated: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join(c.compress(bytes(MiB)) for _ in range(inflated // MiB)) + c.flush()


async def test_a_gzip_bomb_is_refused_once_past_the_inflated_cap(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    bomb = _gzip_bomb(256 * MiB)
    assert len(bomb) < central.max_body_bytes  # small on the wire: only the inflated size gives it away
    status, text = await _post(ident.context(), central, "bomb", bomb)
    assert status == 413 and "once inflated" in text
    zbomb = zstandard.ZstdCompressor(level=3).compress(bytes(64 * MiB))
    status, text = await _post(ident.context(), central, "zbomb", zbomb, encoding="zstd")
    assert status == 413 and "once inflated" in text
    assert (await _post(ident.context(), central, "k1", _batch(1, 3)))[0] == 200  # honest batches still go in


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_inflating_a_bomb_costs_the_cap_not_its_size(encoding: str) -> None:
    bomb = (_gzip_bomb(256 * MiB) if encoding == "gzip"
            else zstandard.ZstdCompressor(level=3).compress(bytes(256 * MiB)))
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="once inflated"):
            inflate(bomb, encoding, MiB)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * MiB + 2 * STEP


@given(st.binary(max_size=4096), st.sampled_from(["gzip", "zstd"]))
def test_inflate_round_trips_and_caps(data: bytes, encoding: str) -> None:
    packed = (gzip.compress(data, mtime=0) if encoding == "gzip"
              else zstandard.ZstdCompressor().compress(data))
    assert inflate(packed, encoding, 4096) == data
    if data:
        with pytest.raises(BodyTooLarge):
            inflate(packed, encoding, len(data) - 1)


@given(st.binary(max_size=2048), st.sampled_from(["gzip", "zstd", "identity", "br"]))
def test_inflate_refuses_garbage_with_a_reason(data: bytes, encoding: str) -> None:
    try:
        out = inflate(data, encoding, 4096)
    except (ProtocolError, BodyTooLarge) as exc:
        assert str(exc)
    else:
        assert len(out) <= 4096


# ------------------------------------------------------------------ idempotency

async def test_an_idempotent_answer_is_not_replayed_for_another_lane_or_epoch(tmp_path: Path,
                                                                              central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    ctx = ident.context()
    body = _batch(1, 3)
    assert (await _post(ctx, central, "k1", body))[1]["acked_through"] == 3
    status, answer = await _post(ctx, central, "k1", body)
    assert status == 200 and answer["replayed"] is True  # the same request: the cached answer
    status, text = await _post(ctx, central, "k1", body, epoch="e2")
    assert status == 422 and "epoch" in text
    status, text = await _post(ctx, central, "k1", body, lane="alarm")
    assert status == 422 and "lane" in text
    assert [(e, seq) for e, _l, seq, _r in central.rows(GATEWAY)] == [("e1", 1), ("e1", 2), ("e1", 3)]


def test_a_directory_of_an_older_central_gets_the_new_columns(tmp_path: Path) -> None:
    directory = tmp_path / "central"
    directory.mkdir()
    db = sqlite3.connect(directory / "central.sqlite")
    db.executescript("CREATE TABLE gateway (id TEXT PRIMARY KEY, cert_sha256 TEXT, enrolled_ns INTEGER);"
                     "CREATE TABLE batch (gateway TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL,"
                     " answer TEXT NOT NULL, PRIMARY KEY (gateway, key)); PRAGMA user_version = 2;")
    db.execute("INSERT INTO gateway VALUES ('gw-old', 'AB:CD', 1)")
    db.commit()
    db.close()
    central = Central(directory)
    try:
        cols = {t: [r[1] for r in central.db.execute(f"PRAGMA table_info({t})")] for t in ("gateway", "batch")}
        assert cols == {"gateway": ["id", "cert_sha256", "enrolled_ns", "next_sha256"],
                        "batch": ["gateway", "key", "body_sha256", "answer", "lane", "epoch"]}
        assert central.db.execute("SELECT cert_sha256 FROM gateway WHERE id = 'gw-old'").fetchone() == ("AB:CD",)
    finally:
        central.db.close()
