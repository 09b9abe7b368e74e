"""The gateway's identity: its EC P-256 key, CSR, certificate and the pinned platform CA.

Files live in one directory (``sync.identity_dir``, default
``<state_dir>/identity``), each written atomically (a temporary file created
with its final mode, fsync, rename, fsync of the directory) so a power cut
leaves either the old file or the new one, never half of one:

- ``key.pem``: the private key, mode 0600, never logged, never printed;
- ``csr.pem``: the signing request made with it;
- ``cert.pem``: the certificate chain the platform issued (leaf first);
- ``ca.pem``: the platform CA, pinned: the only trust anchor TLS uses;
- ``next/``: a renewal in progress (new key and certificate) until it has
  worked once; ``previous/``: the pair it replaced, kept for one renewal.

What is shown of a key or certificate is its SHA-256 fingerprint only.

``cryptography`` is imported by the functions that need it (making a key or a
CSR, checking a received certificate, ``identity show``), never by the
running daemon's sync path: TLS loads the PEM files itself, and the dates the
service needs (expiry, renewal) are kept beside the certificate in
``cert.dates.json`` when it is stored, keyed by the certificate's digest. A
missing or stale side file (a certificate copied in by hand) is rebuilt from
the certificate once. On a Pi that keeps 7 MB of the daemon's memory free.
"""

from __future__ import annotations

__all__ = [
    "Identity",
    "CertInfo",
    "IDENTITY_FILES",
    "new_key",
    "make_csr",
    "cert_info",
    "load_certs",
    "client_context",
    "renewal_due",
    "fingerprint",
    "CertDates",
]

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zaas_edge.errors import ConfigError, ConfigIssue, PermanentError
from zaas_edge.files import atomic_write

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

IDENTITY_FILES = ("key.pem", "csr.pem", "cert.pem", "ca.pem")
RENEW_AT_FRACTION = 2 / 3
DATES_FILE = "cert.dates.json"  # the certificate's validity, for the daemon (no cryptography import)


def new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr(key: ec.EllipticCurvePrivateKey, gateway_id: str, site: str) -> bytes:
    """A CSR naming the gateway (CN) and its site (OU), signed with ``key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, gateway_id),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
    ])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def fingerprint(der: bytes) -> str:
    """SHA-256 as colon-separated hex, the form openssl prints."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    serial: int
    cert_sha256: str
    pubkey_sha256: str

    def as_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "issuer": self.issuer, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "serial": f"{self.serial:x}",
                "cert_sha256": self.cert_sha256, "pubkey_sha256": self.pubkey_sha256}


@dataclass(frozen=True, slots=True)
class CertDates:
    """A certificate's validity: what the running daemon needs of it (expiry, renewal)."""

    not_before: dt.datetime
    not_after: dt.datetime

    def renewal_due(self) -> dt.datetime:
        """When renewal starts: two-thirds of the way through the certificate's life."""
        return self.not_before + (self.not_after - self.not_before) * RENEW_AT_FRACTION


def load_certs(pem: bytes, what: str) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise PermanentError(f"{what}: not a PEM certificate chain ({exc})") from None
    if not certs:
        raise PermanentError(f"{what}: no certificate in the file")
    return certs


def cert_info(cert: x509.Certificate) -> CertInfo:
    from cryptography.hazmat.primitives import serialization

    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return CertInfo(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_before_utc,
                    cert.not_valid_after_utc, cert.serial_number,
                    fingerprint(cert.public_bytes(serialization.Encoding.DER)), fingerprint(spki))


def renewal_due(cert: x509.Certificate) -> dt.datetime:
    """When renewal starts: two-thirds of the way through the certificate's life."""
    return CertDates(cert.not_valid_before_utc, cert.not_valid_after_utc).renewal_due()


def client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """TLS for talking to the platform: its CA pinned, our pair presented when we have one.

    Only ``ca`` is trusted (never the system store), verification is never
    turned off, and TLS 1.2 is the floor.
    """
    if not ca.is_file():
        raise ConfigError([ConfigIssue(str(ca), "", "the platform CA file is missing: pass --ca FILE to "
                                       "'zaas-edge enroll' or set sync.ca_file")])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cafile=str(ca))
        if cert is not None and key is not None:
            ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        # The message names the files, never their content.
        raise PermanentError(f"cannot load the TLS identity ({ca}, {cert}, {key}): {exc}") from None
    return ctx


class Identity:
    """The identity directory: what exists, what it says, and its atomic updates."""

    def __init__(self, directory: Path, ca_file: Path | None = None) -> None:
        self.dir = Path(directory)
        self.ca_override = ca_file

    # -- paths
    @property
    def key_path(self) -> Path:
        return self.dir / "key.pem"

    @property
    def csr_path(self) -> Path:
        return self.dir / "csr.pem"

    @property
    def cert_path(self) -> Path:
        return self.dir / "cert.pem"

    @property
    def ca_path(self) -> Path:
        return self.ca_override or self.dir / "ca.pem"

    @property
    def next_dir(self) -> Path:
        return self.dir / "next"

    @property
    def previous_dir(self) -> Path:
        return self.dir / "previous"

    def _ensure_dir(self, d: Path | None = None) -> None:
        (d or self.dir).mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- creation
    def init(self, gateway_id: str, site: str, *, force: bool = False) -> CertInfo | None:
        """Make a new key and CSR; refuses to replace an enrolled identity unless ``force``."""
        if self.key_path.exists() and not force:
            raise PermanentError(f"{self.key_path} exists already; pass --force to replace the identity "
                                 "(the gateway must then enroll again)")
        self._ensure_dir()
        key = new_key()
        atomic_write(self.key_path, key_pem(key), 0o600)
        atomic_write(self.csr_path, make_csr(key, gateway_id, site), 0o644)
        self.cert_path.unlink(missing_ok=True)  # it certified the old key
        return None

    def csr(self) -> bytes:
        if not self.csr_path.is_file():
            raise PermanentError(f"no CSR at {self.csr_path}: run 'zaas-edge identity init' first")
        return self.csr_path.read_bytes()

    def store_cert(self, chain_pem: bytes, ca_pem: bytes | None = None, directory: Path | None = None) -> CertInfo:
        """Keep the chain the platform issued, after checking it certifies our key."""
        from cryptography.hazmat.primitives import serialization

        d = directory or self.dir
        certs = load_certs(chain_pem, "the certificate received")
        key = self._load_key(d / "key.pem")
        ours = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = certs[0].public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        if ours != theirs:
            raise PermanentError("the certificate received does not certify this gateway's key "
                                 "(was the identity re-initialised after the CSR was sent?)")
        atomic_write(d / "cert.pem", chain_pem, 0o644)
        _write_dates(d, chain_pem, CertDates(certs[0].not_valid_before_utc, certs[0].not_valid_after_utc))
        if ca_pem is not None and self.ca_override is None:
            atomic_write(self.dir / "ca.pem", ca_pem, 0o644)
        return cert_info(certs[0])

    @staticmethod
    def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        except FileNotFoundError:
            raise PermanentError(f"no key at {path}: run 'zaas-edge identity init' first") from None
        except (ValueError, TypeError):
            raise PermanentError(f"{path} is not a readable unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PermanentError(f"{path} is not an EC key")
        return key

    # -- reading
    def certificate(self) -> x509.Certificate | None:
        if not self.cert_path.is_file():
            return None
        return load_certs(self.cert_path.read_bytes(), str(self.cert_path))[0]

    def cert_dates(self) -> CertDates | None:
        """The current certificate's validity, from its side file (cryptography only when that is stale)."""
        try:
            pem = self.cert_path.read_bytes()
        except FileNotFoundError:
            return None
        dates = _read_dates(self.dir, pem)
        if dates is None:
            cert = load_certs(pem, str(self.cert_path))[0]
            dates = CertDates(cert.not_valid_before_utc, cert.not_valid_after_utc)
            try:
                _write_dates(self.dir, pem, dates)
            except OSError:
                pass  # a read-only identity directory: computed again next time
        return dates

    def enrolled(self) -> bool:
        return self.key_path.is_file() and self.cert_path.is_file()

    def show(self) -> dict[str, object]:
        """What `identity show` prints: names, dates and fingerprints only."""
        out: dict[str, object] = {"dir": str(self.dir), "key": self.key_path.is_file(),
                                  "enrolled": self.enrolled(), "ca_file": str(self.ca_path)}
        if self.key_path.is_file():
            from cryptography.hazmat.primitives import serialization

            pub = self._load_key(self.key_path).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            out["key_pubkey_sha256"] = fingerprint(pub)
        cert = self.certificate()
        if cert is not None:
            info = cert_info(cert)
            out["certificate"] = info.as_dict()
            out["renew_after"] = renewal_due(cert).isoformat()
        if self.ca_path.is_file():
            out["ca"] = cert_info(load_certs(self.ca_path.read_bytes(), str(self.ca_path))[0]).as_dict()
        if (self.next_dir / "cert.pem").is_file():
            out["renewal_pending"] = True
        return out

    def context(self, *, client: bool = True, directory: Path | None = None) -> ssl.SSLContext:
        d = directory or self.dir
        if d == self.dir:
            self.repair()
        if client and not (d / "cert.pem").is_file():
            raise PermanentError(f"not enrolled: no certificate at {d / 'cert.pem'}; "
                                 "run 'zaas-edge enroll --url URL --token TOKEN'")
        return client_context(self.ca_path, d / "cert.pem" if client else None, d / "key.pem" if client else None)

    # -- renewal: next/ holds the new pair until it has worked once
    def start_renewal(self, gateway_id: str, site: str) -> bytes:
        """A fresh key and CSR in ``next/``; the current pair stays in use."""
        if self.next_dir.exists():
            shutil.rmtree(self.next_dir)
        self._ensure_dir(self.next_dir)
        key = new_key()
        atomic_write(self.next_dir / "key.pem", key_pem(key), 0o600)
        csr = make_csr(key, gateway_id, site)
        atomic_write(self.next_dir / "csr.pem", csr, 0o644)
        return csr

    def promote_renewal(self) -> None:
        """The new pair worked: it becomes current, the old one goes to ``previous/``."""
        if self.previous_dir.exists():
            shutil.rmtree(self.previous_dir)
        self._ensure_dir(self.previous_dir)
        for name in ("key.pem", "csr.pem", "cert.pem"):
            if (self.dir / name).exists():
                os.link(self.dir / name, self.previous_dir / name)
        # Certificate first, key last: a crash in between leaves the new
        # certificate with the new key still in next/, which repair() finishes.
        for name in ("cert.pem", "csr.pem", "key.pem"):
            os.replace(self.next_dir / name, self.dir / name)  # each rename is atomic
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.next_dir / DATES_FILE, self.dir / DATES_FILE)  # else rebuilt on first use
        shutil.rmtree(self.next_dir, ignore_errors=True)

    def repair(self) -> bool:
        """Finish a promotion cut short by a crash (the certificate moved, its key not yet)."""
        nkey = self.next_dir / "key.pem"
        if not nkey.is_file():
            return False
        cert = self.certificate()
        if cert is None:
            return False
        from cryptography.hazmat.primitives import serialization

        der = serialization.Encoding.DER
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if self._load_key(nkey).public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
            return False
        os.replace(nkey, self.key_path)
        shutil.rmtree(self.next_dir, ignore_errors=True)
        return True


def _digest(pem: bytes) -> str:
    return hashlib.sha256(pem).hexdigest()


def _read_dates(directory: Path, pem: bytes) -> CertDates | None:
    """The side file's dates if it describes exactly this certificate file."""
    try:
        doc = json.loads((directory / DATES_FILE).read_bytes())
        if doc.get("cert_sha256") != _digest(pem):
            return None
        return CertDates(dt.datetime.fromisoformat(doc["not_before"]), dt.datetime.fromisoformat(doc["not_after"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_dates(directory: Path, pem: bytes, dates: CertDates) -> None:
    doc = {"cert_sha256": _digest(pem), "not_before": dates.not_before.isoformat(),
           "not_after": dates.not_after.isoformat()}
    atomic_write(directory / DATES_FILE, json.dumps(doc).encode(), 0o644)
