"""One error hierarchy for the whole gateway.

Adapters translate library errors (pymodbus, aiomqtt, bleak, aiohttp, sqlite3)
into these types at their boundary, so retry policies and the CLI key on our
types only and an upgrade of a library touches one module.
"""

from __future__ import annotations

__all__ = [
    "ZaasError",
    "ConfigError",
    "ConfigIssue",
    "TransientError",
    "PermanentError",
    "ProtocolError",
    "StoreUnavailable",
]

from dataclasses import dataclass


class ZaasError(Exception):
    """Base of every error the gateway raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration: where it is and what to do about it."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(ZaasError):
    """A configuration (or secret file) that cannot be used as it is.

    Carries every issue found, not just the first, so a technician fixes a
    file in one pass.
    """

    def __init__(self, issues: list[ConfigIssue] | str) -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue(file="", path="", message=issues)]
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__("; ".join(str(i) for i in self.issues))


class TransientError(ZaasError):
    """Worth retrying quietly: a timeout, a dropped link, a busy device or server."""


class PermanentError(ZaasError):
    """Retrying alone will not fix it: a refused request, a missing device, rejected credentials,
    an untrusted certificate.

    The one rule for every loop (see :mod:`zaas_edge.backoff`): the caller
    raises its alarm saying what to fix. A one-shot command fails; a
    long-running service keeps retrying on its backoff all the same, so the
    fix (a password file, a certificate) is picked up without a restart.
    """


class ProtocolError(ZaasError):
    """Bytes that do not follow the protocol: bad length, checksum, framing or field."""


class StoreUnavailable(TransientError):
    """The SQLite store cannot be written (disk full, read-only file system, I/O error)."""
