"""The keys file: each LoRaWAN device's keys, profile and id (ABP sessions and OTAA root keys).

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

An ABP device may also carry its ``dev_eui`` (the label's): it is only its
serial, shown in Home Assistant's device block. An OTAA device has its DevEUI,
AppEUI (JoinEUI) and AppKey instead; after
each accepted join the daemon writes the session it opened (``dev_addr``,
``nwk_skey``, ``app_skey``) into the same entry::

    [[device]]
    id = "climate-b12"
    dev_eui = "24E124710B423527"
    app_eui = "24E124C0002A0001"
    app_key = "<32 hex digits>"
    profile = "milesight-am103"

Every writer (``zaas-edge lora add-device`` and the daemon after a join) goes
through ``update_keys``, which holds an exclusive lock on ``<file>.lock`` while
it reads, changes and atomically replaces the file, so neither loses the
other's change.
"""

from __future__ import annotations

__all__ = ["DeviceKeys", "KeysFile", "load_keys", "save_keys", "update_keys", "fingerprint", "parse_dev_addr",
           "parse_eui", "parse_key"]

import fcntl
import hashlib
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zaas_edge.config import validation_issues
from zaas_edge.driver import ID_PATTERN
from zaas_edge.errors import ConfigError, ConfigIssue
from zaas_edge.files import atomic_write
from zaas_edge.logsetup import register_secret
from zaas_edge.secrets import read_secret

_HEX32 = re.compile(r"^[0-9A-Fa-f]{32}$")
_HEX8 = re.compile(r"^[0-9A-Fa-f]{8}$")
_HEX16 = re.compile(r"^[0-9A-Fa-f]{16}$")
_KEY_FIELDS = ("nwk_skey", "app_skey", "app_key")
_HEADER = (
    "# zaas-edge LoRaWAN keys (ABP sessions, OTAA root keys and the sessions their joins opened):\n"
    "# keep mode 0600, owned by the service user.\n"
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


def parse_eui(text: str, name: str) -> bytes:
    """A DevEUI or AppEUI as printed on the label: 16 hex digits, MSB first."""
    if not isinstance(text, str) or not _HEX16.match(text.strip()):
        raise ValueError(f"{name} must be 16 hex digits, as printed on the device label (e.g. 24E124710B423527)")
    return bytes.fromhex(text.strip())


def parse_key(text: str, name: str) -> bytes:
    """An AES-128 session key as 32 hex digits (the message never repeats the value)."""
    if not isinstance(text, str) or not _HEX32.match(text.strip()):
        raise ValueError(f"{name} must be 32 hex digits")
    return bytes.fromhex(text.strip())


class _Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ID_PATTERN)
    dev_addr: str | None = None
    nwk_skey: str | None = Field(default=None, repr=False)
    app_skey: str | None = Field(default=None, repr=False)
    dev_eui: str | None = None
    app_eui: str | None = None
    app_key: str | None = Field(default=None, repr=False)
    profile: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")

    @field_validator("dev_addr")
    @classmethod
    def _addr(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parse_dev_addr(v)
        return v.strip().upper()

    @field_validator("dev_eui", "app_eui")
    @classmethod
    def _eui(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parse_eui(v, "EUI")
        return v.strip().upper()

    @field_validator(*_KEY_FIELDS)
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parse_key(v, "key")
        return v.strip().upper()

    @model_validator(mode="after")
    def _activation(self) -> _Device:
        # A DevEUI alone is an ABP device's serial; the AppEUI or the AppKey make an OTAA device.
        otaa = [f for f in ("app_eui", "app_key") if getattr(self, f) is not None]
        session = [f for f in ("dev_addr", "nwk_skey", "app_skey") if getattr(self, f) is not None]
        if otaa and (len(otaa) < 2 or self.dev_eui is None):
            raise ValueError("an OTAA device needs dev_eui, app_eui and app_key together")
        if session and len(session) < 3:
            raise ValueError("a session needs dev_addr, nwk_skey and app_skey together")
        if not otaa and not session:
            raise ValueError("give either dev_addr, nwk_skey and app_skey (ABP) or dev_eui, app_eui and app_key (OTAA)")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: list[_Device] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """One device: an ABP session, or OTAA root keys with the session of its last join (if any).

    ``repr`` shows fingerprints only.
    """

    id: str
    dev_addr: int | None
    nwk_skey: bytes | None
    app_skey: bytes | None
    profile: str
    dev_eui: bytes | None = None
    app_eui: bytes | None = None
    app_key: bytes | None = None

    @property
    def otaa(self) -> bool:
        return self.app_key is not None

    @property
    def has_session(self) -> bool:
        return self.dev_addr is not None and self.nwk_skey is not None and self.app_skey is not None

    @property
    def dev_addr_hex(self) -> str:
        return "" if self.dev_addr is None else f"{self.dev_addr:08X}"

    @property
    def dev_eui_hex(self) -> str:
        return "" if self.dev_eui is None else self.dev_eui.hex().upper()

    def with_session(self, dev_addr: int, nwk_skey: bytes, app_skey: bytes) -> DeviceKeys:
        return replace(self, dev_addr=dev_addr, nwk_skey=nwk_skey, app_skey=app_skey)

    def public(self) -> dict[str, str | None]:
        """What may be shown: everything but the keys, which appear as fingerprints."""
        def fp(key: bytes | None) -> str | None:
            return None if key is None else f"sha256:{fingerprint(key)}"

        out: dict[str, str | None] = {
            "id": self.id,
            "activation": "otaa" if self.otaa else "abp",
            "dev_addr": self.dev_addr_hex or None,
            "profile": self.profile,
            "nwk_skey": fp(self.nwk_skey),
            "app_skey": fp(self.app_skey),
        }
        if self.dev_eui is not None:
            out["dev_eui"] = self.dev_eui_hex
        if self.otaa:
            out.update(app_eui=(self.app_eui or b"").hex().upper(), app_key=fp(self.app_key))
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.public().items() if k != "id" and v is not None)
        return f"DeviceKeys(id={self.id!r}, {shown})"


@dataclass(frozen=True, slots=True)
class KeysFile:
    path: Path
    devices: tuple[DeviceKeys, ...]

    def by_addr(self) -> dict[int, DeviceKeys]:
        """Devices with a session (ABP, or OTAA once joined), by DevAddr."""
        return {d.dev_addr: d for d in self.devices if d.dev_addr is not None}

    def by_eui(self) -> dict[bytes, DeviceKeys]:
        """OTAA devices, by DevEUI (an ABP device's DevEUI is only its serial: it never joins)."""
        return {d.dev_eui: d for d in self.devices if d.dev_eui is not None and d.otaa}


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
    seen: dict[str, dict[str, int]] = {"id": {}, "dev_addr": {}, "dev_eui": {}}
    names = {"id": "id", "dev_addr": "DevAddr", "dev_eui": "DevEUI"}
    for i, d in enumerate(model.device):
        for attr, where in seen.items():
            value = getattr(d, attr)
            if value is None:
                continue
            if value in where:
                shown = repr(value) if attr == "id" else value
                issues.append(ConfigIssue(str(p), f"device[{i}].{attr}",
                                          f"duplicate {names[attr]} {shown} (also device[{where[value]}])"))
            where.setdefault(value, i)
    if issues:
        raise ConfigError(issues)
    devices = []
    for d in model.device:
        for k in (d.nwk_skey, d.app_skey, d.app_key):
            if k is not None:
                register_secret(k)
                register_secret(k.lower())
        devices.append(DeviceKeys(
            d.id, None if d.dev_addr is None else int(d.dev_addr, 16), _opt_hex(d.nwk_skey), _opt_hex(d.app_skey),
            d.profile, _opt_hex(d.dev_eui), _opt_hex(d.app_eui), _opt_hex(d.app_key)))
    return KeysFile(p, tuple(devices))


def _opt_hex(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def _without_values(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    # The project's wording quotes found values ("got '...'"): never for a key field.
    out = []
    for issue in issues:
        if issue.path.endswith(_KEY_FIELDS):
            out.append(ConfigIssue(issue.file, issue.path, "must be 32 hex digits (value not shown)"))
        else:
            out.append(issue)
    return out


def _render(devices: Sequence[DeviceKeys]) -> str:
    parts = [_HEADER]
    for d in devices:
        lines = ["", "[[device]]", f'id = "{d.id}"']
        if d.otaa:
            assert d.dev_eui is not None and d.app_eui is not None and d.app_key is not None
            lines += [f'dev_eui = "{d.dev_eui.hex().upper()}"', f'app_eui = "{d.app_eui.hex().upper()}"',
                      f'app_key = "{d.app_key.hex().upper()}"']
        elif d.dev_eui is not None:
            lines.append(f'dev_eui = "{d.dev_eui.hex().upper()}"')
        if d.has_session:
            assert d.nwk_skey is not None and d.app_skey is not None
            if d.otaa:
                lines.append("# session of the last accepted join, written by the daemon")
            lines += [f'dev_addr = "{d.dev_addr_hex}"', f'nwk_skey = "{d.nwk_skey.hex().upper()}"',
                      f'app_skey = "{d.app_skey.hex().upper()}"']
        lines.append(f'profile = "{d.profile}"')
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def save_keys(path: str | Path, devices: Sequence[DeviceKeys]) -> None:
    """Write the keys file atomically with mode 0600: a power cut leaves the old or the new file, whole."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    atomic_write(p, _render(devices).encode("utf-8"), 0o600)


def update_keys(path: str | Path, change: Callable[[list[DeviceKeys]], list[DeviceKeys]]) -> list[DeviceKeys]:
    """Read, change and rewrite the keys file under an exclusive lock on ``<file>.lock``; return the new list.

    Blocking (file lock, fsync): call it from a thread in async code.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd = os.open(p.with_name(p.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        devices = change(list(load_keys(p, missing_ok=True).devices))
        save_keys(p, devices)
        return devices
    finally:
        os.close(fd)  # closing releases the lock
