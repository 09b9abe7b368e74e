"""A redacted bundle for field support: everything a maintainer asks for first.

The bundle is a .tar.gz of small text and JSON files. Secrets never enter
it: the configuration is redacted, and the value of every secret file the
configuration references is scrubbed from every file of the bundle (the
journal included) before it is written.
"""

from __future__ import annotations

__all__ = ["build_bundle", "collect"]

import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
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
    files["journal.txt"] = _run(["journalctl", "-u", "zaas-edge", "-n", str(JOURNAL_LINES), "--no-pager",
                                 "-o", "short-iso"])
    return files


def _secret_values(loaded: Any) -> list[str]:
    """Values of the secret files the configuration references, where readable."""
    from zaas_edge.config import secret_paths

    values = []
    for path in secret_paths(loaded):
        try:
            v = Path(path).read_text().strip()
        except OSError:
            continue
        if len(v) >= 4:
            values.append(v)
    return values


def build_bundle(loaded: Any, output: Path, status: Callable[[], dict[str, Any]]) -> Path:
    files = collect(loaded, status)
    secrets = _secret_values(loaded)
    with tarfile.open(output, "w:gz") as tar:
        for name, text in sorted(files.items()):
            for s in secrets:
                text = text.replace(s, "***")
            data = text.encode()
            info = tarfile.TarInfo(f"zaas-edge-diagnostics/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    os.chmod(output, 0o600)
    return output
