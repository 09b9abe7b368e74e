"""MQTT over TLS against a real mosquitto with a TLS listener on 127.0.0.1.

The certificates are made here with ``cryptography``: a CA, a broker
certificate for 127.0.0.1/localhost signed by it, a client certificate, and a
second CA that signs a look-alike broker certificate. The gateway pins its CA
(``[mqtt] ca_file``) and always verifies the chain and the host name.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from tests.mosquitto import Collector, Mosquitto, TlsFiles
from tests.test_mqtt_service import BASE, Harness
from zaas_edge.config_model import GatewaySection
from zaas_edge.model import Alarm
from zaas_edge.mqtt.client import settings_from_config
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.mqtt.service import REFUSED_ALARM


@dataclass
class Issued:
    cert: Path
    key: Path
    obj: x509.Certificate
    private: ec.EllipticCurvePrivateKey


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    c, k = directory / f"{name}.pem", directory / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    k.chmod(0o600)
    return Issued(c, k, cert, key)


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:  # noqa: ANN001
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer).public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def make_ca(directory: Path, name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (_builder(name, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(directory, name, cert, key)


def issue(ca: Issued, directory: Path, name: str, *, server: bool,
          names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    b = (_builder(name, ca.obj.subject, key.public_key())
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private.public_key()), critical=False)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _write(directory, name, b.sign(ca.private, hashes.SHA256()), key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Issued]:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d, "park-ca")
    other = make_ca(d, "rogue-ca")
    return {
        "ca": ca,
        "other_ca": other,
        "broker": issue(ca, d, "broker", server=True),
        "rogue_broker": issue(other, d, "rogue-broker", server=True),
        "misnamed_broker": issue(ca, d, "misnamed-broker", server=True, names=("meters.invalid",)),
        "client": issue(ca, d, "gw-1", server=False),
    }


def tls_broker(tmp_path: Path, pki: dict[str, Issued], *, broker: str = "broker", port: int | None = None,
               require_certificate: bool = False) -> Mosquitto:
    served = pki[broker]
    # The broker's ca_file is also what the test's subscribers trust: the CA that signed this
    # broker, so they can watch even the rogue one (client certificates come from the park's CA).
    signer = pki["other_ca"] if broker == "rogue_broker" else pki["ca"]
    files = TlsFiles(ca_file=signer.cert, cert_file=served.cert, key_file=served.key,
                     require_certificate=require_certificate,
                     client_cert=pki["client"].cert if require_certificate else None,
                     client_key=pki["client"].key if require_certificate else None)
    return Mosquitto(tmp_path / f"broker-{broker}", tls=files, port=port)


async def test_pinned_ca_connects_and_publishes(tmp_path: Path, pki) -> None:
    with tls_broker(tmp_path, pki) as broker:
        h = Harness(tmp_path, broker, tls=True, ca_file=pki["ca"].cert)
        await h.start()
        try:
            assert h.ctx.status["broker"] == f"mqtts://127.0.0.1:{broker.port}"
            h.emit(1234.0)
            async with Collector(broker, "zaas/#") as sub:
                assert await sub.wait_for(f"{BASE}/status") == b"online"
                state = json.loads(await sub.wait_for(f"{BASE}/device/meter-1/state"))
                assert state["points"]["power"] == 1234
            assert h.ctx.status["last_error"] is None and h.ctx.status["failures"] == 0
            assert not any(isinstance(n, Alarm) for n in h.notices)
        finally:
            await h.stop()
    # The broker saw a TLS client: mosquitto logs the new connection on the TLS listener.
    assert "New client connected" in broker.log()


async def test_broker_signed_by_another_ca_is_refused_alarmed_and_retried(tmp_path: Path, pki) -> None:
    with tls_broker(tmp_path, pki, broker="rogue_broker") as rogue:
        h = Harness(tmp_path, rogue, tls=True, ca_file=pki["ca"].cert, reconnect_initial_s=0.05,
                    reconnect_max_s=0.4)
        h.task = asyncio.create_task(h.service.run())
        try:
            await h.until(lambda: h.ctx.status["failures"] >= 5)
            st = h.ctx.status
            assert st["connected"] is False and not h.task.done()  # no crash: still trying
            assert "TLS certificate is not trusted" in st["last_error"]
            # OpenSSL's own words for a chain that does not lead to the pinned CA.
            assert re.search(r"not trusted \((self-signed certificate in certificate chain|"
                             r"unable to get local issuer certificate)\)", st["last_error"]), st["last_error"]
            assert "ca_file" in st["last_error"] and f"mqtts://127.0.0.1:{rogue.port}" in st["last_error"]
            # Backed off: the next attempt waits longer than the first one did (values, not timing).
            assert 0.4 * 0.5 <= st["retry_in_s"] <= 0.4
            # One alarm for the problem, not one per retry.
            alarms = [n for n in h.notices if isinstance(n, Alarm)]
            assert [(a.alarm_id, a.active) for a in alarms] == [(REFUSED_ALARM, True)]
            assert alarms[0].text == st["last_error"] and alarms[0].severity.value == "error"
            # Nothing was published to the impostor.
            async with Collector(rogue, "zaas/#", "probe/#") as sub:
                await sub.publish("probe/x", b"1")
                await sub.wait_for("probe/x")  # the subscription is live: retained messages came first
                assert not [m for m in sub.messages if m[0].startswith("zaas/")]
            port = rogue.port
        except BaseException:
            await h.stop()
            raise
    # The park's own broker comes back on the same address: the gateway connects, the alarm clears.
    try:
        with tls_broker(tmp_path, pki, port=port) as good:
            await h.until(lambda: h.ctx.status["connected"])
            alarms = [n for n in h.notices if isinstance(n, Alarm)]
            assert [(a.alarm_id, a.active) for a in alarms] == [(REFUSED_ALARM, True), (REFUSED_ALARM, False)]
            assert h.ctx.status["failures"] == 0 and h.ctx.status["last_error"] is None
            async with Collector(good, f"{BASE}/status") as sub:
                assert await sub.wait_for(f"{BASE}/status") == b"online"
    finally:
        await h.stop()


async def test_host_name_is_verified(tmp_path: Path, pki) -> None:
    """Right CA, wrong name: a certificate for meters.invalid served at 127.0.0.1 is refused."""
    with tls_broker(tmp_path, pki, broker="misnamed_broker") as broker:
        h = Harness(tmp_path, broker, tls=True, ca_file=pki["ca"].cert)
        h.task = asyncio.create_task(h.service.run())
        try:
            await h.until(lambda: h.ctx.status["failures"] >= 2)
            err = h.ctx.status["last_error"]
            assert "not trusted" in err and "127.0.0.1" in err and "[mqtt] host" in err
            assert not h.ctx.status["connected"] and not h.task.done()
        finally:
            await h.stop()


async def test_client_certificate_required_by_the_broker(tmp_path: Path, pki) -> None:
    with tls_broker(tmp_path, pki, require_certificate=True) as broker:
        # Without a certificate the broker ends the handshake: refused, retried, never connected.
        bare = Harness(tmp_path, broker, tls=True, ca_file=pki["ca"].cert)
        bare.task = asyncio.create_task(bare.service.run())
        try:
            # The TLS 1.3 alert is lost inside the client library: the CONNECT goes unanswered
            # until its timeout, and the message says what to check.
            await bare.until(lambda: bare.ctx.status["failures"] >= 1, timeout=40)
            assert bare.ctx.status["connected"] is False and not bare.task.done()
            err = bare.ctx.status["last_error"]
            assert err.startswith(f"broker mqtts://127.0.0.1:{broker.port}") and "cert_file" in err
        finally:
            await bare.stop()

        h = Harness(tmp_path, broker, tls=True, ca_file=pki["ca"].cert, cert_file=pki["client"].cert,
                    key_file=pki["client"].key)
        await h.start()
        try:
            async with Collector(broker, f"{BASE}/status") as sub:
                assert await sub.wait_for(f"{BASE}/status") == b"online"
        finally:
            await h.stop()

        # A key that does not match the certificate: a clear message naming the files, not the key.
        wrong = Harness(tmp_path, broker, tls=True, ca_file=pki["ca"].cert, cert_file=pki["client"].cert,
                        key_file=pki["broker"].key)
        wrong.task = asyncio.create_task(wrong.service.run())
        try:
            await wrong.until(lambda: wrong.ctx.status["last_error"])
            err = wrong.ctx.status["last_error"]
            assert str(pki["client"].cert) in err and str(pki["broker"].key) in err and "key_file" in err
            assert "PRIVATE KEY" not in err
            assert [(a.alarm_id, a.active) for a in wrong.notices if isinstance(a, Alarm)] == [(REFUSED_ALARM, True)]
        finally:
            await wrong.stop()


def test_client_certificate_options_are_checked(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "c.key"
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        MqttSection(tls=True, cert_file=cert)
    with pytest.raises(ValidationError, match="cert_file and key_file go together"):
        MqttSection(key_file=key)
    ok = MqttSection(cert_file=cert, key_file=key)  # a client certificate implies TLS
    assert (ok.cert_file, ok.key_file) == (cert, key)
    settings = settings_from_config(SimpleNamespace(mqtt=ok, gateway=GatewaySection(id="gw-1", site="site-a")))
    assert settings.tls is True and settings.describe.startswith("mqtts://")
    assert settings.cert_file == cert and settings.key_file == key
