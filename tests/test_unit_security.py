"""The systemd unit: its hardening score, its key directives, users and directories.

systemd cannot run here, so the unit is checked with the tools that work
offline (``systemd-analyze security --offline``, ``systemd-analyze verify``,
``systemd-sysusers --root``, ``systemd-tmpfiles --root``) and by parsing it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
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
        "ExecReload": "/opt/zaas-edge/venv/bin/zaas-edge reload",
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
    # In order: the allow-list, the deny-list, then adjtimex again (@privileged holds @clock).
    filters = service["SystemCallFilter"]
    assert filters[0] == "@system-service"
    assert filters[1].startswith("~") and "@privileged" in filters[1]
    assert filters[-1] == "adjtimex clock_adjtime clock_adjtime64"
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


# -- the sandbox, emulated -----------------------------------------------------------
#
# systemd cannot start the unit here, but the two restrictions most likely to
# break a Python daemon can be rebuilt in a child process: the system call
# allow-list (with RestrictAddressFamilies= and MemoryDenyWriteExecute= as
# systemd 252 implements them, in seccomp), and the kernel's own W^X switch
# (PR_SET_MDWE, used by newer systemd). The real daemon's code paths then run
# under them: imports of every native dependency, the clock's adjtimex query,
# sockets, SQLite, a subprocess, ctypes callbacks, sd_notify.

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_MDWE = 65
_PR_MDWE_REFUSE_EXEC_GAIN = 1

_LAUNCHER = r'''
import ctypes, ctypes.util, errno, json, os, sys
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
lib = ctypes.CDLL(cfg["libseccomp"], use_errno=True)

class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

NE, LT, LE, EQ, GE, GT, MASKED_EQ = 1, 2, 3, 4, 5, 6, 7
ALLOW = 0x7FFF0000
def ERRNO(e): return 0x00050000 | (e & 0xFFFF)

lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_rule_add_array.argtypes = [
    ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]

ctx = lib.seccomp_init(ERRNO(errno.EPERM))  # SystemCallErrorNumber=EPERM

def rule(action, name, *cmps):
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:
        return  # not a call on this architecture
    arr = (Cmp * max(1, len(cmps)))(*cmps)
    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
    if rc < 0:
        raise SystemExit(f"seccomp rule for {name} {cmps}: {os.strerror(-rc)}")

special = {"socket", "mmap", "mmap2", "mprotect", "pkey_mprotect", "shmat"}
for name in cfg["allow"]:
    if name not in special:
        rule(ALLOW, name)
# RestrictAddressFamilies=: the listed families, EAFNOSUPPORT for the rest.
fams = sorted(cfg["families"])
for fam in fams:
    rule(ALLOW, "socket", Cmp(0, EQ, fam, 0))
for fam in range(0, fams[-1]):
    if fam not in fams:
        rule(ERRNO(errno.EAFNOSUPPORT), "socket", Cmp(0, EQ, fam, 0))
rule(ERRNO(errno.EAFNOSUPPORT), "socket", Cmp(0, GT, fams[-1], 0))
# MemoryDenyWriteExecute= as seccomp: no W+X mapping, no mprotect to X, no SHM_EXEC.
W, X, SHM_EXEC = 0x2, 0x4, 0o100000
for name in ("mmap", "mmap2"):
    if name in cfg["allow"]:
        for prot in (0, W, X):
            rule(ALLOW, name, Cmp(2, MASKED_EQ, W | X, prot))
for name in ("mprotect", "pkey_mprotect"):
    if name in cfg["allow"]:
        rule(ALLOW, name, Cmp(2, MASKED_EQ, X, 0))
if "shmat" in cfg["allow"]:
    rule(ALLOW, "shmat", Cmp(2, MASKED_EQ, SHM_EXEC, 0))

if libc.prctl(cfg["pr_set_no_new_privs"], 1, 0, 0, 0) != 0:
    raise SystemExit("PR_SET_NO_NEW_PRIVS failed")
if cfg["mdwe"] and libc.prctl(cfg["pr_set_mdwe"], cfg["pr_mdwe_refuse_exec_gain"], 0, 0, 0) != 0:
    raise SystemExit("PR_SET_MDWE failed: " + os.strerror(ctypes.get_errno()))
rc = lib.seccomp_load(ctx)
if rc < 0:
    raise SystemExit("seccomp_load: " + os.strerror(-rc))
os.execv(sys.executable, [sys.executable, cfg["probe"]])
'''

_PROBE = r'''
import asyncio, ctypes, ctypes.util, errno, io, json, logging, mmap, os, socket, sqlite3, sys, tempfile
results = {}

# The sandbox is in force (otherwise this test proves nothing).
try:
    os.sched_setaffinity(0, os.sched_getaffinity(0))   # @resources: denied
    results["resources_denied"] = False
except PermissionError:
    results["resources_denied"] = True
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    results["netlink"] = "allowed"
except OSError as exc:
    results["netlink"] = errno.errorcode[exc.errno]
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    results["wx_mmap"] = "allowed"
except OSError as exc:
    results["wx_mmap"] = errno.errorcode[exc.errno]

# What the daemon does.
import aiohttp, aiomqtt, bleak, pydantic, pymodbus.client, serial, zstandard  # noqa: F401
from cryptography.hazmat.primitives.asymmetric import ec
results["p256"] = ec.generate_private_key(ec.SECP256R1()).key_size
results["zstd"] = len(zstandard.ZstdDecompressor().decompress(zstandard.ZstdCompressor().compress(b"x" * 1000)))
from zaas_edge.clock import kernel_clock_synced, read_boot_id
libc = ctypes.CDLL("libc.so.6", use_errno=True)
buf = ctypes.create_string_buffer(512)
results["adjtimex"] = libc.adjtimex(buf)
results["clock_synced_is_bool"] = isinstance(kernel_clock_synced(), bool)
results["boot_id_len"] = len(read_boot_id())
results["boot_id_from_proc"] = read_boot_id() == open("/proc/sys/kernel/random/boot_id").read().strip()
results["find_library"] = ctypes.util.find_library("c")
results["callback"] = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)(41)
results["getaddrinfo"] = sorted({a[4][0] for a in socket.getaddrinfo("localhost", 80, flags=socket.AI_ADDRCONFIG)})
results["pty"] = len(os.ttyname(os.openpty()[1])) > 0

with tempfile.TemporaryDirectory() as d:
    db = sqlite3.connect(os.path.join(d, "s.sqlite"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE r(seq INTEGER PRIMARY KEY, v REAL)")
    with db:
        db.executemany("INSERT INTO r(v) VALUES (?)", [(i,) for i in range(1000)])
    results["sqlite_rows"] = db.execute("SELECT count(*) FROM r").fetchone()[0]
    db.close()

    from zaas_edge.systemd import Notifier
    path = os.path.join(d, "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    Notifier({"NOTIFY_SOCKET": path}).ready(status="sandboxed")
    results["notify"] = listener.recv(100).decode()

from zaas_edge.logsetup import setup_logging
out = io.StringIO()
setup_logging("info", "journal", stream=out)
logging.getLogger("zaas_edge.probe").info("hello", extra={"fields": {"k": "v w"}})
results["log"] = out.getvalue()

async def network():
    async def echo(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping")
    await writer.drain()
    tcp = await reader.read(100)
    writer.close()
    server.close()
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    class Rx(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.set_result(data)
    rx, _ = await loop.create_datagram_endpoint(Rx, local_addr=("127.0.0.1", 0))
    tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=rx.get_extra_info("sockname"))
    tx.sendto(b"PUSH_DATA")
    udp = await asyncio.wait_for(got, 10)
    rx.close()
    tx.close()
    return tcp.decode(), udp.decode()

results["tcp"], results["udp"] = asyncio.run(network())
print(json.dumps(results))
'''


def _syscall_groups(analyze: str) -> dict[str, list[str]]:
    out = subprocess.run(
        [analyze, "syscall-filter", "--no-pager"], capture_output=True, text=True, env=_ENV, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def _expand(entries: list[str], groups: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for entry in entries:
        names |= _expand(groups[entry], groups) if entry.startswith("@") else {entry}
    return names


def _mdwe_supported() -> bool:
    """Whether the kernel has PR_SET_MDWE (Linux 6.3+): PR_GET_MDWE answers -1 where not."""
    probe = subprocess.run(
        [sys.executable, "-c", f"import ctypes; print(ctypes.CDLL(None).prctl({_PR_SET_MDWE + 1}, 0, 0, 0, 0))"],
        capture_output=True, text=True, timeout=60,
    )
    return probe.stdout.strip() not in ("", "-1")


def test_daemon_code_paths_work_inside_the_unit_sandbox(tmp_path: Path) -> None:
    import ctypes.util

    analyze = _tool("systemd-analyze")
    libseccomp = ctypes.util.find_library("seccomp")
    if not libseccomp:
        pytest.skip("libseccomp not found (Debian package libseccomp2): cannot rebuild the unit's filter")
    service = parse_unit(UNIT)["Service"]
    groups = _syscall_groups(analyze)
    allow: set[str] = set()
    for value in service["SystemCallFilter"]:
        if value.startswith("~"):
            allow -= _expand(value[1:].split(), groups)
        else:
            allow |= _expand(value.split(), groups)
    families = {"AF_UNIX": socket.AF_UNIX, "AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6}
    family_numbers = [int(families[f]) for f in _one(service, "RestrictAddressFamilies").split()]
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE)
    cfg = {
        "libseccomp": libseccomp, "allow": sorted(allow), "families": family_numbers,
        "probe": str(probe), "mdwe": _mdwe_supported(), "pr_set_no_new_privs": _PR_SET_NO_NEW_PRIVS,
        "pr_set_mdwe": _PR_SET_MDWE, "pr_mdwe_refuse_exec_gain": _PR_MDWE_REFUSE_EXEC_GAIN,
    }
    proc = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, json.dumps(cfg)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.returncode == 0, f"probe failed inside the sandbox:\n{proc.stdout}\n{proc.stderr}"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    # The sandbox was real.
    assert r["resources_denied"] is True
    assert r["netlink"] == "EAFNOSUPPORT"
    assert r["wx_mmap"] in ("EPERM", "EACCES")
    # And the daemon's work went through.
    assert r["adjtimex"] >= 0, "adjtimex must stay allowed: the clock reads the NTP-synchronised flag with it"
    assert r["clock_synced_is_bool"] is True
    assert r["boot_id_from_proc"] is True and r["boot_id_len"] == 36
    assert r["find_library"] == "libc.so.6"
    assert r["callback"] == 42
    assert "127.0.0.1" in r["getaddrinfo"]
    assert r["pty"] is True
    assert r["p256"] == 256
    assert r["zstd"] == 1000
    assert r["sqlite_rows"] == 1000
    assert r["notify"] == "READY=1\nSTATUS=sandboxed\n"
    assert r["log"] == '<6>probe: hello k="v w"\n'
    assert (r["tcp"], r["udp"]) == ("ping", "PUSH_DATA")
