"""The ABP keys file: each LoRaWAN device's DevAddr, session keys, profile and id.

Session keys are secrets: the file must be mode 0600 (checked like every
secret file, by ``zaas_edge.secrets``), is rewritten atomically with mode 0600,
and no key ever reaches a log line, an error text or a listing: people see a
fingerprint (the first 8 hex digits of SHA-256 of the key), enough to tell two
keys apart and to match a provisioning sheet.

Format (TOML)::

    [[device]]
    id = "water-b12"
    dev_addr = "26011BDA"
    nwk_skey = "<32 hex digits>"
    app_skey = "<32 hex digits>"
    profile = "milesight-em300-di"
"""

from __future__ import annotations

__all__ = ["DeviceKeys", "KeysFile", "load_keys", "save_keys", "fingerprint", "parse_dev_addr", "parse_key"]

import hashlib
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zaas_edge.config import validation_issues
from zaas_edge.driver import ID_PATTERN
from zaas_edge.errors import ConfigError, ConfigIssue
from zaas_edge.logsetup import register_secret
from zaas_edge.secrets import read_secret

_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_HEX8 = re.compile(r"^[0-9A-Fa-f]{8}$")
_HEADER = (
    "# zaas-edge LoRaWAN ABP session keys: keep mode 0600, owned by the service user.\n"
    "# Managed with `zaas-edge lora add-device`; `zaas-edge lora devices` lists them without keys.\n"
)


def fingerprint(key: bytes) -> str:
    """A short, non-reversible name for a key, safe to show."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_dev_addr(text: str) -> int:
    """DevAddr as printed (8 hex digits, MSB first)."""
    if not isinstance(text, str) or not _HEX8.match(text.strip()):
        raise ValueError("DevAddr must be 8 hex digits, as printed on the device sheet (e.g. 26011BDA)")
    return int(text.strip(), 16)


def parse_key(text: str, name: str) -> bytes:
    """An AES-128 session key as 32 hex digits (the message never repeats the value)."""
    if not isinstance(text, str) or not _HEX32.match(text.strip()):
        raise ValueError(f"{name} must be 32 hex digits")
    return bytes.fromhex(text.strip())


class _Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    dev_addr: str
    nwk_skey: str = Field(repr=False)
    app_skey: str = Field(repr=False)
    profile: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")

    @field_validator("dev_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        parse_dev_addr(v)
        return v.strip().upper()

    @field_validator("nwk_skey", "app_skey")
    @classmethod
    def _key(cls, v: str) -> str:
        parse_key(v, "session key")
        return v.strip().upper()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: list[_Device] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """One ABP device. ``repr`` shows fingerprints only."""

    id: str
    dev_addr: int
    nwk_skey: bytes
    app_skey: bytes
    profile: str

    @property
    def dev_addr_hex(self) -> str:
        return f"{self.dev_addr:08X}"

    def public(self) -> dict[str, str]:
        """What may be shown: everything but the keys, which appear as fingerprints."""
        return {
            "id": self.id,
            "dev_addr": self.dev_addr_hex,
            "profile": self.profile,
            "nwk_skey": f"sha256:{fingerprint(self.nwk_skey)}",
            "app_skey": f"sha256:{fingerprint(self.app_skey)}",
        }

    def __repr__(self) -> str:
        p = self.public()
        return (f"DeviceKeys(id={self.id!r}, dev_addr={p['dev_addr']}, "
                f"nwk_skey={p['nwk_skey']}, app_skey={p['app_skey']})")


@dataclass(frozen=True, slots=True)
class KeysFile:
    path: Path
    devices: tuple[DeviceKeys, ...]

    def by_addr(self) -> dict[int, DeviceKeys]:
        return {d.dev_addr: d for d in self.devices}


def load_keys(path: str | Path, *, missing_ok: bool = False) -> KeysFile:
    """Read and check the keys file; raise ``ConfigError`` naming the file and the fix."""
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return KeysFile(p, ())
        raise ConfigError([ConfigIssue(str(p), "", (
            "LoRaWAN keys file does not exist: add a device with "
            f"`zaas-edge lora add-device` (it creates {p} with mode 0600)"))])
    text = read_secret(p)  # the 0600 / regular file / size checks every secret file gets
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message names line and column, never the key material around it.
        raise ConfigError([ConfigIssue(str(p), "", f"not valid TOML: {exc}")]) from None
    try:
        model = _File.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_without_values(validation_issues(exc, _File, file=str(p)))) from None
    issues: list[ConfigIssue] = []
    seen_ids: dict[str, int] = {}
    seen_addr: dict[str, int] = {}
    for i, d in enumerate(model.device):
        if d.id in seen_ids:
            issues.append(ConfigIssue(str(p), f"device[{i}].id",
                                      f"duplicate id {d.id!r} (also device[{seen_ids[d.id]}])"))
        if d.dev_addr in seen_addr:
            issues.append(ConfigIssue(str(p), f"device[{i}].dev_addr",
                                      f"duplicate DevAddr {d.dev_addr} (also device[{seen_addr[d.dev_addr]}])"))
        seen_ids.setdefault(d.id, i)
        seen_addr.setdefault(d.dev_addr, i)
    if issues:
        raise ConfigError(issues)
    devices = []
    for d in model.device:
        for k in (d.nwk_skey, d.app_skey):
            register_secret(k)
            register_secret(k.lower())
        devices.append(DeviceKeys(d.id, int(d.dev_addr, 16), bytes.fromhex(d.nwk_skey),
                                  bytes.fromhex(d.app_skey), d.profile))
    return KeysFile(p, tuple(devices))


def _without_values(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    # The project's wording quotes found values ("got '...'"): never for a key field.
    out = []
    for issue in issues:
        if issue.path.endswith(("nwk_skey", "app_skey")):
            out.append(ConfigIssue(issue.file, issue.path, "must be 32 hex digits (value not shown)"))
        else:
            out.append(issue)
    return out


def _render(devices: tuple[DeviceKeys, ...] | list[DeviceKeys]) -> str:
    parts = [_HEADER]
    for d in devices:
        parts.append(
            "\n[[device]]\n"
            f'id = "{d.id}"\n'
            f'dev_addr = "{d.dev_addr_hex}"\n'
            f'nwk_skey = "{d.nwk_skey.hex().upper()}"\n'
            f'app_skey = "{d.app_skey.hex().upper()}"\n'
            f'profile = "{d.profile}"\n'
        )
    return "".join(parts)


def save_keys(path: str | Path, devices: tuple[DeviceKeys, ...] | list[DeviceKeys]) -> None:
    """Write the keys file atomically with mode 0600: a power cut leaves the old or the new file, whole."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    data = _render(devices).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)  # mkstemp creates 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dirfd = os.open(p.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
