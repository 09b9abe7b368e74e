"""The systemd unit: its hardening score, its key directives, users and directories.

systemd cannot run here, so the unit is checked with the tools that work
offline (``systemd-analyze security --offline``, ``systemd-analyze verify``,
``systemd-sysusers --root``, ``systemd-tmpfiles --root``) and by parsing it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT_DIR = REPO / "systemd"
UNIT = UNIT_DIR / "zaas-edge.service"
SYSUSERS = UNIT_DIR / "zaas-edge.sysusers"
TMPFILES = UNIT_DIR / "zaas-edge.tmpfiles"
MAX_EXPOSURE = 2.0
_ENV = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C"}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given (repeated keys accumulate, as systemd does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"{path}: not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(service: dict[str, list[str]], key: str) -> str:
    values = service.get(key)
    assert values, f"{key}= missing from {UNIT.name}"
    return values[-1]


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/bin/{name}", f"/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        pytest.skip(f"{name} not installed (Debian package systemd): cannot check the unit offline")
    return path


# -- the exposure score --------------------------------------------------------------


def exposure(unit: Path) -> float:
    analyze = _tool("systemd-analyze")
    proc = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, env=_ENV, timeout=120,
    )
    output = proc.stdout + proc.stderr
    if "--offline" in output and ("unrecognized" in output or "Unknown option" in output):
        pytest.skip("systemd-analyze here does not support --offline (needs systemd 250 or newer)")
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, f"no exposure level in systemd-analyze output (exit {proc.returncode}):\n{output}"
    return float(match.group(1))


def test_exposure_score_is_low() -> None:
    score = exposure(UNIT)
    assert score <= MAX_EXPOSURE, f"{UNIT.name} exposure {score} > {MAX_EXPOSURE}: a hardening directive was lost"


def test_score_reacts_to_the_hardening(tmp_path: Path) -> None:
    """The check is not vacuous: the same unit stripped of hardening scores far worse."""
    keep = ("Type", "ExecStart", "User", "Group", "Description", "WantedBy")
    lines = [
        line for line in UNIT.read_text().splitlines()
        if line.startswith("[") or line.split("=", 1)[0] in keep
    ]
    bare = tmp_path / "zaas-edge.service"
    bare.write_text("\n".join(lines) + "\n")
    assert exposure(bare) >= exposure(UNIT) + 4.0


def test_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing but the binary missing on this machine."""
    analyze = _tool("systemd-analyze")
    copy = tmp_path / UNIT.name
    text = UNIT.read_text()
    assert "ExecStart=/opt/zaas-edge/venv/bin/zaas-edge run" in text
    copy.write_text(text.replace("/opt/zaas-edge/venv/bin/zaas-edge", "/bin/true"))
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, env=_ENV, timeout=120
    )
    # verify exits 0 even when it ignores a directive it cannot parse: any
    # message naming the unit is a mistake in it.
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if UNIT.name in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr


# -- the directives ------------------------------------------------------------------


def test_key_directives() -> None:
    unit = parse_unit(UNIT)
    service = unit["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30s",
        "Restart": "always",
        "User": "zaas-edge",
        "StateDirectory": "zaas-edge",
        "ConfigurationDirectory": "zaas-edge",
        "RuntimeDirectory": "zaas-edge",
        "RuntimeDirectoryMode": "0750",
        "ExecStart": "/opt/zaas-edge/venv/bin/zaas-edge run",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "TimeoutStopSec": "10s",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "SystemCallArchitectures": "native",
        "MemoryDenyWriteExecute": "yes",
    }
    actual = {key: _one(service, key) for key in expected}
    assert actual == expected
    assert _one(service, "RestartSec")
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_device_access_is_the_serial_ports_only() -> None:
    service = parse_unit(UNIT)["Service"]
    # PrivateDevices=yes would hide /dev/ttyUSB0 and friends.
    assert service.get("PrivateDevices", ["no"])[-1] == "no"
    assert sorted(service["DeviceAllow"]) == ["char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw", "char-ttyUSB rw"]


def test_clock_and_proc_relaxations_are_the_needed_ones() -> None:
    service = parse_unit(UNIT)["Service"]
    # adjtimex(modes=0) tells whether NTP synchronised the clock: ProtectClock=yes
    # would deny it, and @system-service does not contain it.
    assert service["ProtectClock"] == ["no"]
    allow = service["SystemCallFilter"][0].split()
    assert allow == ["@system-service", "adjtimex"]
    assert service["SystemCallFilter"][1].startswith("~")
    assert _one(service, "SystemCallErrorNumber") == "EPERM"
    # ProcSubset=pid would hide /proc/sys/kernel/random/boot_id.
    assert "ProcSubset" not in service
    families = set(_one(service, "RestrictAddressFamilies").split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}


# -- the user and the directories ----------------------------------------------------


def test_sysusers_creates_the_user_in_dialout(tmp_path: Path) -> None:
    sysusers = _tool("systemd-sysusers")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    proc = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(SYSUSERS)], capture_output=True, text=True, env=_ENV, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (etc / "passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (etc / "group").read_text().splitlines()}
    user = passwd["zaas-edge"]
    assert user[5:] == ["/var/lib/zaas-edge", "/usr/sbin/nologin"]
    assert 0 < int(user[2]) < 1000, "a system user"
    assert groups["dialout"][3].split(",") == ["zaas-edge"]
    assert groups["dialout"][2] == "20", "the existing group is reused, not recreated"
    assert "zaas-edge" in groups["bluetooth"][3].split(",")
    assert groups["zaas-edge"][2] == user[3]


def test_tmpfiles_makes_config_dir_readable_by_the_service(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to chown")
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    subprocess.run([sysusers, f"--root={tmp_path}", str(SYSUSERS)], check=True, capture_output=True, env=_ENV)
    proc = subprocess.run(
        [tmpfiles, f"--root={tmp_path}", "--create", str(TMPFILES)], capture_output=True, text=True, env=_ENV
    )
    assert proc.returncode == 0, proc.stderr
    gid = next(int(line.split(":")[2]) for line in (etc / "group").read_text().splitlines()
               if line.startswith("zaas-edge:"))
    st = (etc / "zaas-edge").stat()
    assert stat.S_ISDIR(st.st_mode)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 0, gid)


def test_readme_documents_the_install() -> None:
    readme = (UNIT_DIR / "README.md").read_text()
    for needle in ("/opt/zaas-edge/venv", "systemd-sysusers", "systemd-tmpfiles", "systemctl enable",
                   "systemctl reload", "journalctl -u zaas-edge"):
        assert needle in readme, f"systemd/README.md does not mention {needle}"


if __name__ == "__main__":  # print the score, for tuning the unit by hand
    print(exposure(UNIT))
    sys.exit(0)
