"""The reference platform's test CA: issues the server's and the gateways' certificates.

Generated on first start into the central's directory (the CA key never
leaves it). Also holds the key that signs configuration bundles. Validity is
configurable so tests can issue short-lived or already expired certificates.
"""

from __future__ import annotations

__all__ = ["TestCA", "fingerprint", "sign_bundle"]

import base64
import datetime as dt
import ipaddress
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from zaas_edge.sync.identity import atomic_write, fingerprint, key_pem


def _name(cn: str, org: str = "zaas reference platform") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TestCA:
    """A CA key and certificate in ``directory``; made once, loaded afterwards."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "zaas test platform CA") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_file, cert_file = self.dir / "ca.key", self.dir / "ca.pem"
        if key_file.exists() and cert_file.exists():
            self.key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            self.cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            now = _now()
            self.cert = (
                x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(self.key, hashes.SHA256()))
            atomic_write(key_file, key_pem(self.key), 0o600)
            atomic_write(cert_file, self.pem, 0o644)
        signing = self.dir / "config-signing.key"
        if signing.exists():
            self.signing_key = serialization.load_pem_private_key(signing.read_bytes(), None)
        else:
            self.signing_key = ec.generate_private_key(ec.SECP256R1())
            atomic_write(signing, key_pem(self.signing_key), 0o600)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def ca_path(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def signing_public_pem(self) -> bytes:
        return self.signing_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)

    def _issue(self, subject: x509.Name, public_key, *, server: bool, days: float,
               not_before: dt.datetime | None = None) -> x509.Certificate:
        start = not_before or (_now() - dt.timedelta(minutes=5))
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage(
                 [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        return b.sign(self.key, hashes.SHA256())

    def server_pair(self) -> tuple[Path, Path]:
        """The server's certificate (localhost, 127.0.0.1, ::1) and key files."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(_name("localhost"), key.public_key(), server=True, days=365)
        cert_file, key_file = self.dir / "server.pem", self.dir / "server.key"
        atomic_write(key_file, key_pem(key), 0o600)
        atomic_write(cert_file, cert.public_bytes(serialization.Encoding.PEM) + self.pem, 0o644)
        return cert_file, key_file

    def sign_csr(self, csr_pem: bytes, *, gateway: str | None = None, days: float = 90,
                 not_before: dt.datetime | None = None) -> tuple[x509.Certificate, bytes]:
        """Certify the CSR's key for ``gateway``; returns the leaf and the chain PEM (leaf, CA).

        The subject is ``CN=<gateway>`` (the CSR's CN when not given) and
        nothing else: the CSR's other attributes (O, OU, ...) and extensions
        are never copied, so a gateway cannot name itself into another
        organisation or role.
        """
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
            raise ValueError("the CSR must carry an EC key")
        if gateway is None:
            cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if len(cns) != 1:
                raise ValueError("the CSR must name exactly one CN")
            gateway = str(cns[0].value)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway)])
        cert = self._issue(subject, csr.public_key(), server=False, days=days, not_before=not_before)
        return cert, cert.public_bytes(serialization.Encoding.PEM) + self.pem


def sign_bundle(key: ec.EllipticCurvePrivateKey, document: dict) -> dict:
    """A configuration bundle: the JSON document, base64, and its ECDSA P-256 SHA-256 signature."""
    payload = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"alg": "ES256", "key_sha256": fingerprint(spki), "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(sig).decode()}
