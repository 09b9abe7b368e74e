"""A redacted bundle for field support: everything a maintainer asks for first.

The bundle is a .tar.gz of small text and JSON files. Secrets never enter
it: the configuration is redacted, and the value of every secret file the
configuration references is scrubbed from every file of the bundle (the
journal included) before it is written. A secret file that is a document
(the LoRa keys file: NwkSKey, AppSKey and AppKey of every device) gives each
of its secret values, in either case of hex digits, not just its whole text
(the bundle lists secret files with their modes, never their content);
and anything written as a token (``--token X``, ``token=X``,
``ZAAS_ENROLL_TOKEN=X``, ``Authorization: Bearer X``), as the enrollment
token would be in a pasted command line, is masked wherever it appears.
"""

from __future__ import annotations

__all__ = ["build_bundle", "collect", "scrub"]

import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from zaas_edge import __version__

PACKAGES = ("pydantic", "click", "aiohttp", "aiomqtt", "pymodbus", "pyserial", "bleak", "bthome-ble",
            "cryptography", "tenacity")
JOURNAL_LINES = 2000


def _versions() -> dict[str, str]:
    out = {"zaas-edge": __version__, "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _run(cmd: list[str], timeout: float = 10.0) -> str:
    if shutil.which(cmd[0]) is None:
        return f"{cmd[0]}: not available on this system\n"
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.stdout + (f"\n[exit {p.returncode}] {p.stderr}" if p.returncode else "")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)}: {exc}\n"


def _system(state_dir: Path) -> dict[str, Any]:
    info: dict[str, Any] = {
        "uname": platform.uname()._asdict(),
        "load": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    for name, path in (("os_release", "/etc/os-release"), ("uptime", "/proc/uptime"), ("meminfo", "/proc/meminfo")):
        try:
            info[name] = Path(path).read_text()[:8192]
        except OSError as exc:
            info[name] = f"unreadable: {exc}"
    try:
        du = shutil.disk_usage(state_dir)
        info["state_dir_disk"] = {"path": str(state_dir), "total": du.total, "used": du.used, "free": du.free}
    except OSError as exc:
        info["state_dir_disk"] = f"unreadable: {exc}"
    return info


def collect(loaded: Any, status: Callable[[], dict[str, Any]]) -> dict[str, str]:
    """The bundle's files as name -> text, before scrubbing."""
    from zaas_edge.config import redacted
    from zaas_edge.driver import available_drivers

    cfg = loaded.config
    files: dict[str, str] = {}

    def put_json(name: str, make: Callable[[], Any]) -> None:
        try:
            files[name] = json.dumps(make(), indent=2, sort_keys=True, default=str) + "\n"
        except Exception as exc:  # one broken part must not cost the whole bundle
            files[name] = json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n"

    put_json("manifest.json", lambda: {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gateway": cfg.gateway.id, "site": cfg.gateway.site, "versions": _versions()})
    put_json("config.json", lambda: redacted(loaded))
    put_json("status.json", status)
    put_json("drivers.json", available_drivers)
    put_json("system.json", lambda: _system(cfg.gateway.state_dir))
    put_json("secret_files.json", lambda: _secret_modes(loaded))
    put_json("serial.json", _serial_ports)
    files["journal.txt"] = _run(["journalctl", "-u", "zaas-edge", "-n", str(JOURNAL_LINES), "--no-pager",
                                 "-o", "short-iso"])
    files["usb.txt"] = _run(["lsusb"])
    files["kernel_serial.txt"] = _kernel_serial()
    files["clock.txt"] = _run(["timedatectl", "show"]) + _run(["timedatectl", "timesync-status"])
    files["unit.txt"] = _run(["systemctl", "cat", "zaas-edge"])
    return files


SERIAL_WORDS = re.compile(r"tty(USB|ACM|AMA|S)|usb|cp210|ch34|ftdi|pl2303|serial", re.IGNORECASE)


def _kernel_serial(limit: int = 300) -> str:
    """The kernel's recent lines about USB and serial adapters (plugged, unplugged, reset, overrun)."""
    tool = ["journalctl", "-k", "-b", "--no-pager", "-o", "short-iso"] if shutil.which("journalctl") else ["dmesg"]
    text = _run(tool)
    lines = [ln for ln in text.splitlines() if SERIAL_WORDS.search(ln)]
    return "\n".join(lines[-limit:]) + "\n"


def _serial_ports() -> dict[str, Any]:
    """The serial devices a technician names in the configuration, and what /dev/serial/by-id points them at."""
    out: dict[str, Any] = {}
    by_id = Path("/dev/serial/by-id")
    try:
        out["by_id"] = {p.name: os.path.realpath(p) for p in sorted(by_id.iterdir())}
    except OSError as exc:
        out["by_id"] = f"unreadable: {exc.strerror}"
    dev = Path("/dev")
    out["ttys"] = sorted(p.name for p in dev.glob("tty*") if re.match(r"tty(USB|ACM|AMA|S0)", p.name))
    return out


def _secret_modes(loaded: Any) -> dict[str, Any]:
    """Each secret file the configuration names: its mode and owner, never its content (the daemon
    refuses one that group or others can read)."""
    from zaas_edge.config import secret_paths

    out: dict[str, Any] = {}
    for path in secret_paths(loaded):
        try:
            st = Path(path).stat()
        except OSError as exc:
            out[str(path)] = f"unreadable: {exc.strerror}"
            continue
        out[str(path)] = {"mode": f"{st.st_mode & 0o7777:04o}", "uid": st.st_uid, "gid": st.st_gid,
                          "ok": st.st_mode & 0o077 == 0}
    return out


def _secret_values(loaded: Any) -> list[str]:
    """Values of the secret files the configuration references, where readable, and of those files' secret keys."""
    from zaas_edge.config import secret_paths

    values = []
    for path in secret_paths(loaded):
        try:
            v = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if len(v) >= 4:
            values.append(v)
        values += _document_secrets(v)
    token = os.environ.get("ZAAS_ENROLL_TOKEN", "").strip()
    if len(token) >= 4:
        values.append(token)
    return values


def _document_secrets(text: str) -> list[str]:
    """The values a TOML secret file holds under secret names (``nwk_skey``, ``app_key``, ``token``...)."""
    from zaas_edge.secrets import is_secret_name

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and is_secret_name(str(key)) and len(value) >= 4:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return found


# A token as people and programs write one: the value after the word is masked, the word kept.
_TOKEN = re.compile(
    r"(?i)(--token[= ]|\b[a-z_]*token[\"']?\s*[:=]\s*[\"']?|authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic)\s+)"
    r"(?!\*\*\*)[^\s\"',;}&]{4,}")


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value (case-insensitively) and every written-out token replaced by ``***``."""
    for value in sorted(set(secrets), key=len, reverse=True):
        text = re.sub(re.escape(value), "***", text, flags=re.IGNORECASE)
    return _TOKEN.sub(lambda m: m.group(1) + "***", text)


def build_bundle(loaded: Any, output: Path, status: Callable[[], dict[str, Any]]) -> Path:
    files = collect(loaded, status)
    secrets = _secret_values(loaded)
    with tarfile.open(output, "w:gz") as tar:
        for name, text in sorted(files.items()):
            data = scrub(text, secrets).encode()
            info = tarfile.TarInfo(f"zaas-edge-diagnostics/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    os.chmod(output, 0o600)
    return output
