"""Identity: key and CSR on disk, enrollment over pinned TLS, fingerprints only, renewal, signed bundles."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hil.central import Central, TestCA, sign_bundle
from tests.sync_fixtures import GATEWAY, enrolled_identity
from zaas_edge.errors import PermanentError
from zaas_edge.sync.enroll import renew, verify_bundle
from zaas_edge.sync.identity import Identity, atomic_write
from zaas_edge.sync.uplink import Uplink

ROOT = Path(__file__).resolve().parent.parent


def test_atomic_write_gives_the_mode_from_creation_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    old = os.umask(0)
    try:
        atomic_write(target, b"secret", 0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"secret"
    atomic_write(target, b"new", 0o600)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


def test_init_makes_a_p256_key_0600_and_a_csr_naming_the_gateway(tmp_path: Path) -> None:
    ident = Identity(tmp_path / "id")
    ident.init("gw-7", "site-a")
    assert stat.S_IMODE(ident.key_path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(ident.key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    csr = x509.load_pem_x509_csr(ident.csr_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "OU=site-a,CN=gw-7"
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    with pytest.raises(PermanentError, match="--force"):
        ident.init("gw-7", "site-a")
    before = ident.key_path.read_bytes()
    ident.init("gw-7", "site-a", force=True)
    assert ident.key_path.read_bytes() != before


def _cli(config: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zaas_edge", "-c", str(config), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture
def central_process(tmp_path: Path):
    p = subprocess.Popen([sys.executable, "-m", "hil.central", "--dir", str(tmp_path / "central"), "--port", "0",
                          "--gateway", GATEWAY, "--tokens", "2"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        info = json.loads(p.stdout.readline())
        yield info
    finally:
        p.terminate()
        p.wait(10)


def test_cli_init_enroll_show_end_to_end(tmp_path: Path, central_process: dict) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[gateway]\nid = "{GATEWAY}"\nsite = "s1"\nstate_dir = "{tmp_path / "state"}"\n'
                   f'runtime_dir = "{tmp_path / "run"}"\n[sync]\nurl = "{central_process["url"]}"\n')
    (tmp_path / "state").mkdir()
    init = _cli(cfg, "identity", "init")
    assert init.returncode == 0, init.stderr
    key_text = (tmp_path / "state" / "identity" / "key.pem").read_text()
    assert "PRIVATE KEY" in key_text

    # A token that is not the platform's: refused, one line, no certificate.
    bad = _cli(cfg, "enroll", "--token", "not-a-token", "--ca", central_process["ca"])
    assert bad.returncode != 0 and "unknown, used or foreign enrollment token" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "state" / "identity" / "cert.pem").exists()

    # The wrong CA pinned: the platform's server certificate is not trusted.
    other = TestCA(tmp_path / "other-ca")
    wrong = _cli(cfg, "enroll", "--token", central_process["tokens"][0], "--ca", str(other.ca_path))
    assert wrong.returncode != 0 and "not trusted by the pinned platform CA" in wrong.stderr

    ok = _cli(cfg, "enroll", "--token", central_process["tokens"][0], "--ca", central_process["ca"], "--json")
    assert ok.returncode == 0, ok.stderr
    enrolled = json.loads(ok.stdout)
    assert enrolled["subject"] == f"CN={GATEWAY}"  # the platform names the certificate from the id alone
    again = _cli(cfg, "enroll", "--token", central_process["tokens"][0])  # one-time: used already
    assert again.returncode != 0 and "used" in again.stderr

    show = _cli(cfg, "identity", "show")
    assert show.returncode == 0, show.stderr
    assert enrolled["cert_sha256"] in show.stdout and enrolled["pubkey_sha256"] in show.stdout
    assert f"CN={GATEWAY}" in show.stdout and "zaas test platform CA" in show.stdout
    for out in (init.stdout, init.stderr, ok.stdout, show.stdout, show.stderr):
        assert "PRIVATE KEY" not in out and key_text.splitlines()[1] not in out
    data = json.loads(_cli(cfg, "identity", "show", "--json").stdout)
    assert data["enrolled"] is True and data["certificate"]["cert_sha256"] == enrolled["cert_sha256"]
    assert stat.S_IMODE((tmp_path / "state" / "identity" / "key.pem").stat().st_mode) == 0o600


def _uplink_for(central: Central):
    return lambda ctx: Uplink(central.url, GATEWAY, ctx, request_timeout_s=5)


async def test_renewal_uses_a_new_key_and_keeps_the_old_pair(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    old_key, old_cert = ident.key_path.read_bytes(), ident.cert_path.read_bytes()
    info = await renew(ident, central.url, GATEWAY, "test-site", _uplink_for(central))
    assert ident.key_path.read_bytes() != old_key
    assert ident.cert_path.read_bytes() != old_cert
    assert (ident.previous_dir / "key.pem").read_bytes() == old_key
    assert (ident.previous_dir / "cert.pem").read_bytes() == old_cert
    assert not ident.next_dir.exists()
    assert ident.show()["certificate"]["cert_sha256"] == info.cert_sha256
    assert stat.S_IMODE(ident.key_path.stat().st_mode) == 0o600
    up = Uplink(central.url, GATEWAY, ident.context())
    try:
        date, body = await up.server_time()
    finally:
        await up.close()
    assert date is not None and body is not None


async def test_a_failed_renewal_leaves_the_current_pair_in_use(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    old_key, old_cert = ident.key_path.read_bytes(), ident.cert_path.read_bytes()
    with pytest.raises(Exception, match="not trusted"):
        # Pointed at a platform whose CA is not the pinned one: nothing may change.
        other = Central(tmp_path / "other")
        await other.start()
        try:
            await renew(ident, other.url, GATEWAY, "test-site",
                        lambda ctx: Uplink(other.url, GATEWAY, ctx, request_timeout_s=5))
        finally:
            await other.stop()
    assert (ident.key_path.read_bytes(), ident.cert_path.read_bytes()) == (old_key, old_cert)


def test_config_bundle_signature_is_checked_against_the_pinned_key(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    bundle = sign_bundle(ca.signing_key, {"version": 3, "settings": {"a": 1}})
    assert verify_bundle(bundle, ca.signing_public_pem) == {"version": 3, "settings": {"a": 1}}
    forged = dict(bundle, payload=sign_bundle(ca.signing_key, {"version": 4})["payload"])
    with pytest.raises(PermanentError, match="does not verify"):
        verify_bundle(forged, ca.signing_public_pem)
    other = TestCA(tmp_path / "other")
    with pytest.raises(PermanentError, match="does not verify"):
        verify_bundle(bundle, other.signing_public_pem)
    with pytest.raises(PermanentError, match="base64"):
        verify_bundle(dict(bundle, signature="%%%"), ca.signing_public_pem)
    with pytest.raises(PermanentError, match="expected"):
        verify_bundle(["not", "a", "bundle"], ca.signing_public_pem)


async def test_a_promotion_cut_short_is_finished_on_next_use(tmp_path: Path, central: Central) -> None:
    ident = await enrolled_identity(central, tmp_path / "gw")
    csr = ident.start_renewal(GATEWAY, "test-site")
    chain = central.certify(GATEWAY, csr)  # the platform pins it, as it pins a renewal once used
    ident.store_cert(chain, directory=ident.next_dir)
    new_key = (ident.next_dir / "key.pem").read_bytes()
    os.replace(ident.next_dir / "cert.pem", ident.cert_path)  # the crash: certificate moved, key not
    up = Uplink(central.url, GATEWAY, ident.context())
    try:
        assert (await up.server_time())[0] is not None
    finally:
        await up.close()
    assert ident.key_path.read_bytes() == new_key and not ident.next_dir.exists()


async def test_the_daemon_reads_the_certificate_dates_from_the_side_file(tmp_path: Path, central: Central) -> None:
    """The sync path takes expiry and renewal dates from cert.dates.json, kept with every stored
    certificate; a side file that does not describe cert.pem (a certificate copied in by hand)
    is rebuilt from the certificate itself, never believed."""
    ident = await enrolled_identity(central, tmp_path / "gw")
    cert = x509.load_pem_x509_certificate(ident.cert_path.read_bytes())
    side = ident.dir / "cert.dates.json"
    assert json.loads(side.read_text())["not_after"] == cert.not_valid_after_utc.isoformat()
    dates = ident.cert_dates()
    assert dates is not None
    assert (dates.not_before, dates.not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)
    assert dates.not_before < dates.renewal_due() < dates.not_after
    side.write_text(json.dumps({"cert_sha256": "0" * 64, "not_before": "2000-01-01T00:00:00+00:00",
                                "not_after": "2001-01-01T00:00:00+00:00"}))
    assert ident.cert_dates() == dates  # stale: computed from the certificate and written again
    assert json.loads(side.read_text())["not_after"] == cert.not_valid_after_utc.isoformat()
    await renew(ident, central.url, GATEWAY, "test-site", _uplink_for(central))
    renewed = x509.load_pem_x509_certificate(ident.cert_path.read_bytes())
    # moved with the promoted certificate
    assert json.loads(side.read_text())["cert_sha256"] == hashlib.sha256(ident.cert_path.read_bytes()).hexdigest()
    assert ident.cert_dates().not_after == renewed.not_valid_after_utc
    ident.cert_path.unlink()
    assert ident.cert_dates() is None
