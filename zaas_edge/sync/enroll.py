"""Enrollment, certificate renewal and the signed configuration bundle.

- Enrollment: the CSR made by ``identity init`` and a one-time token go to
  ``POST /v1/gateways/{id}/enroll`` over TLS with the platform CA pinned (the
  file given with ``--ca``, trusted out of band, never the answer's copy);
  the certificate chain comes back and is checked against our key.
- Renewal, at two-thirds of the certificate's life: a new key and CSR in
  ``next/``, sent over mTLS with the *current* pair; the new pair is tried on
  a real request before it replaces the old one, which is kept in
  ``previous/``. A failure at any step leaves the current pair in use.
- Configuration bundle: ``GET /v1/gateways/{id}/config`` returns a JSON
  document signed (ECDSA P-256, SHA-256) by the platform's signing key; it is
  verified against the pinned key and stored, not applied.

``cryptography`` is imported where a signature is checked: the daemon that
only uploads never loads it (see :mod:`zaas_edge.sync.identity`).
"""

from __future__ import annotations

__all__ = ["enroll", "renew", "verify_bundle", "store_bundle", "ENROLLMENT_FILE", "SIGNING_KEY_FILE"]

import base64
import binascii
import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zaas_edge import logsetup  # noqa: F401  (gives loggers .notice)
from zaas_edge.errors import PermanentError
from zaas_edge.files import atomic_write
from zaas_edge.sync.identity import CertInfo, Identity, client_context, load_certs
from zaas_edge.sync.uplink import Uplink, enroll_request

log = logging.getLogger("zaas_edge.sync")

ENROLLMENT_FILE = "enrollment.json"
SIGNING_KEY_FILE = "config-signing.pem"


async def enroll(identity: Identity, url: str, token: str, gateway_id: str, ca_file: Path) -> CertInfo:
    """Exchange the CSR and the one-time token for a certificate; pin ``ca_file``."""
    ca_pem = Path(ca_file).read_bytes()
    load_certs(ca_pem, str(ca_file))  # a readable CA before anything goes on the wire
    doc = await enroll_request(url, client_context(Path(ca_file)), gateway_id, token, identity.csr())
    info = identity.store_cert(doc["certificate"].encode(), ca_pem=ca_pem)
    if isinstance(doc.get("config_signing_key"), str):
        atomic_write(identity.dir / SIGNING_KEY_FILE, doc["config_signing_key"].encode(), 0o644)
    meta = {"url": url, "gateway": gateway_id, "enrolled": dt.datetime.now(dt.UTC).isoformat(),
            "accept_encoding": doc.get("accept_encoding", []), "cert_sha256": info.cert_sha256}
    atomic_write(identity.dir / ENROLLMENT_FILE, json.dumps(meta, indent=1).encode(), 0o644)
    log.notice("enrolled as %s; certificate %s valid until %s", gateway_id, info.cert_sha256,  # type: ignore[attr-defined]
               info.not_after.isoformat(), extra={"fields": {"gateway": gateway_id}})
    return info


async def renew(identity: Identity, url: str, gateway_id: str, site: str, make_uplink: Callable[..., Uplink],
                ) -> CertInfo:
    """Renew with a new key; the old pair stays current until the new one has worked once."""
    csr = identity.start_renewal(gateway_id, site)
    current = make_uplink(identity.context())
    try:
        doc = await current.renew(csr)
    finally:
        await current.close()
    if not isinstance(doc.get("certificate"), str):
        raise PermanentError("renewal answer without a certificate")
    info = identity.store_cert(doc["certificate"].encode(), directory=identity.next_dir)
    trial = make_uplink(identity.context(directory=identity.next_dir))
    try:
        await trial.server_time()  # the new pair must open a session before it replaces the old one
    finally:
        await trial.close()
    identity.promote_renewal()
    log.notice("certificate renewed: %s valid until %s", info.cert_sha256, info.not_after.isoformat())  # type: ignore[attr-defined]
    return info


def verify_bundle(bundle: Any, public_pem: bytes) -> dict[str, Any]:
    """The bundle's document if its signature verifies against the pinned key; PermanentError otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(bundle, dict) or bundle.get("alg") != "ES256":
        raise PermanentError("configuration bundle: expected {alg: ES256, payload, signature}")
    try:
        payload = base64.b64decode(bundle["payload"], validate=True)
        sig = base64.b64decode(bundle["signature"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise PermanentError("configuration bundle: payload or signature is not base64") from None
    try:
        key = serialization.load_pem_public_key(public_pem)
    except ValueError:
        raise PermanentError("the pinned configuration signing key is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PermanentError("the pinned configuration signing key is not an EC key")
    try:
        key.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PermanentError("configuration bundle: the signature does not verify against the pinned key") from None
    try:
        doc = json.loads(payload)
    except ValueError:
        raise PermanentError("configuration bundle: the signed payload is not JSON") from None
    if not isinstance(doc, dict):
        raise PermanentError("configuration bundle: the signed payload is not a JSON object")
    return doc


def store_bundle(path: Path, bundle: dict[str, Any]) -> None:
    """Keep the verified bundle as received (signature included), atomically."""
    atomic_write(path, json.dumps(bundle, indent=1).encode(), 0o600)
