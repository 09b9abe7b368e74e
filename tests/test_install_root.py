"""`make install` / `make uninstall` on the real root, as on a Pi, inside a private mount namespace.

tests/test_install.py lays the files out under DESTDIR; this runs the other
branch, the one a technician runs with sudo: no DESTDIR, `systemd-sysusers`
creating the user, `systemd-tmpfiles` giving /etc/zaas-edge its group,
config.toml chgrp'ed, `zaas-edge config check` run by the installed program.
Nothing on this machine changes: in a private mount namespace /etc and
/var/lib are overlays whose writes land in a temporary directory, /opt is a
temporary directory and /run an empty tmpfs (so systemd, if it runs here,
is neither seen nor told anything: the script takes the "systemd is not
PID 1" branch). Needs root, unshare(1) and overlayfs; skipped otherwise.

The venv the script upgrades is made beforehand, with a .pth line giving it
this test environment's libraries, so the installed program runs without a
package index (the wheel itself goes in with --no-deps).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_packaging import wheel  # noqa: F401  (the fixture: the wheel built from this checkout)

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("/etc/systemd/system/zaas-edge.service", "/etc/sysusers.d/zaas-edge.conf", "/etc/tmpfiles.d/zaas-edge.conf",
         "/etc/zaas-edge", "/etc/zaas-edge/config.toml", "/opt/zaas-edge/systemd/README.md",
         "/opt/zaas-edge/venv/bin/zaas-edge", "/var/lib/zaas-edge")
_PROBE = r"""
import grp, json, os, pwd, sys
def stat(p):
    try:
        s = os.stat(p)
    except FileNotFoundError:
        return None
    return [oct(s.st_mode & 0o7777), s.st_uid, s.st_gid]
def entry(db, name):
    try:
        return db(name)
    except KeyError:
        return None
u = entry(pwd.getpwnam, "zaas-edge")
print(json.dumps({
    "paths": {p: stat(p) for p in sys.argv[1:]},
    "user": None if u is None else {"uid": u.pw_uid, "gid": u.pw_gid, "home": u.pw_dir, "shell": u.pw_shell},
    "group": None if entry(grp.getgrnam, "zaas-edge") is None else grp.getgrnam("zaas-edge").gr_gid,
    "in": sorted(g.gr_name for g in grp.getgrall() if "zaas-edge" in g.gr_mem),
}))
"""


@dataclass(frozen=True)
class Sandbox:
    base: Path

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """Run a shell command with /etc, /var/lib, /opt and /run replaced as the module says."""
        b = self.base
        setup = [
            "set -e",
            "mount --make-rprivate /",
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={b}/etc-up,workdir={b}/etc-work /etc",
            f"mount -t overlay overlay -o lowerdir=/var/lib,upperdir={b}/var-up,workdir={b}/var-work /var/lib",
            f"mount --bind {b}/opt /opt",
            "mount -t tmpfs tmpfs /run",
            command,
        ]
        env = {k: v for k, v in os.environ.items()
               if k not in ("DESTDIR", "WHEEL", "PIP_ARGS", "PURGE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(setup)],
                              capture_output=True, text=True, env=env, timeout=240)

    def make(self, target: str, **settings: str) -> subprocess.CompletedProcess[str]:
        args = " ".join(shlex.quote(f"{k}={v}") for k, v in settings.items())
        proc = self.run(f"make -s --no-print-directory -C {shlex.quote(str(ROOT))} {target} {args}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def state(self) -> dict[str, object]:
        proc = self.run(f"{shlex.quote(sys.executable)} -c {shlex.quote(_PROBE)} {' '.join(PATHS)}")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


def _can_sandbox(base: Path) -> str | None:
    if os.geteuid() != 0:
        return "needs root (mount namespaces and overlay mounts)"
    if not shutil.which("unshare"):
        return "unshare(1) not installed (Debian package util-linux)"
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if not shutil.which(tool):
            return f"{tool} not installed (Debian package systemd)"
    for d in ("etc-up", "etc-work", "var-up", "var-work", "opt"):
        (base / d).mkdir()
    probe = Sandbox(base).run("true")
    if probe.returncode != 0:
        return f"cannot make a private mount namespace with overlays here: {probe.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    base = tmp_path_factory.mktemp("rootfs")
    reason = _can_sandbox(base)
    if reason:
        pytest.skip(reason)
    venv = base / "opt/zaas-edge/venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin/python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # pip for the script (it runs `python -m pip`) and the libraries, from this environment.
    (Path(site) / "zz-test-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return Sandbox(base)


@pytest.fixture(scope="module")
def first_install(sandbox: Sandbox, wheel: Path) -> tuple[str, dict[str, object]]:  # noqa: F811
    out = sandbox.make("install", WHEEL=str(wheel), PIP_ARGS="--no-deps --no-index").stdout
    return out, sandbox.state()


def test_install_creates_the_user_the_directory_and_the_configuration(
        first_install: tuple[str, dict[str, object]]) -> None:
    out, state = first_install
    user, gid = state["user"], state["group"]
    assert isinstance(user, dict) and user["home"] == "/var/lib/zaas-edge" and user["shell"] == "/usr/sbin/nologin"
    assert 0 < user["uid"] < 1000 and user["gid"] == gid
    assert {"dialout", "bluetooth"} <= set(state["in"])  # type: ignore[arg-type]
    paths = state["paths"]
    assert isinstance(paths, dict)
    assert paths["/etc/zaas-edge"] == ["0o750", 0, gid]
    assert paths["/etc/zaas-edge/config.toml"] == ["0o640", 0, gid]
    for unit_file in ("/etc/systemd/system/zaas-edge.service", "/etc/sysusers.d/zaas-edge.conf",
                      "/etc/tmpfiles.d/zaas-edge.conf", "/opt/zaas-edge/systemd/README.md"):
        assert paths[unit_file] == ["0o644", 0, 0], unit_file
    assert paths["/opt/zaas-edge/venv/bin/zaas-edge"][0] == "0o755"
    assert paths["/var/lib/zaas-edge"] is None, "the state directory is systemd's (StateDirectory=)"
    # The installed program checked the configuration it was given.
    assert "/etc/zaas-edge/config.toml: ok" in out
    assert "systemd is not running here (not PID 1): not enabled, not started" in out


def test_the_machine_itself_is_untouched(first_install: tuple[str, dict[str, object]]) -> None:
    for path in PATHS:
        if path.startswith(("/etc/systemd", "/etc/sysusers.d", "/etc/tmpfiles.d", "/etc/zaas-edge", "/opt/zaas-edge")):
            assert not Path(path).exists(), f"{path} leaked out of the sandbox"


def test_a_second_install_keeps_the_configuration(sandbox: Sandbox, wheel: Path,  # noqa: F811
                                                   first_install: tuple[str, dict[str, object]]) -> None:
    edit = sandbox.run("printf '\\n# edited on site\\n' >> /etc/zaas-edge/config.toml")
    assert edit.returncode == 0, edit.stderr
    out = sandbox.make("install", WHEEL=str(wheel), PIP_ARGS="--no-deps --no-index").stdout
    assert "kept the existing /etc/zaas-edge/config.toml" in out
    assert "upgrading the venv /opt/zaas-edge/venv" in out
    kept = sandbox.run("tail -n 1 /etc/zaas-edge/config.toml")
    assert kept.stdout == "# edited on site\n"
    assert sandbox.state()["paths"]["/etc/zaas-edge/config.toml"] == first_install[1]["paths"][  # type: ignore[index]
        "/etc/zaas-edge/config.toml"]


def test_uninstall_then_purge(sandbox: Sandbox, first_install: tuple[str, dict[str, object]]) -> None:
    seeded = sandbox.run("mkdir -p /var/lib/zaas-edge && : > /var/lib/zaas-edge/store.sqlite")
    assert seeded.returncode == 0, seeded.stderr

    out = sandbox.make("uninstall").stdout
    assert "PURGE=1 removes them" in out
    state = sandbox.state()
    paths = state["paths"]
    assert isinstance(paths, dict)
    gone = [p for p in PATHS if not p.startswith(("/etc/zaas-edge", "/var/lib/zaas-edge"))]
    assert [p for p in gone if paths[p] is not None] == []
    assert paths["/etc/zaas-edge/config.toml"] is not None and paths["/var/lib/zaas-edge"] is not None
    assert state["user"] is not None, "the user stays without PURGE=1"

    out = sandbox.make("uninstall", PURGE="1").stdout
    assert "PURGE=1: removed /etc/zaas-edge" in out and "removed the zaas-edge user" in out
    state = sandbox.state()
    assert all(v is None for v in state["paths"].values())  # type: ignore[union-attr]
    assert state["user"] is None and state["group"] is None and state["in"] == []
