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
    """Worth retrying: a timeout, a dropped link, a busy device."""


class PermanentError(ZaasError):
    """Not worth retrying as is: a refused request, a missing device, bad credentials."""


class ProtocolError(ZaasError):
    """Bytes that do not follow the protocol: bad length, checksum, framing or field."""


class StoreUnavailable(TransientError):
    """The SQLite store cannot be written (disk full, read-only file system, I/O error)."""
