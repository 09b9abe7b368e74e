"""`make install` / `make uninstall` (systemd/install.sh) laid out in a scratch root.

systemd does not run here and the tests are not root on a Pi, so the install
runs with ``DESTDIR=`` a temporary root: the real script, a real venv under
``<root>/opt/zaas-edge/venv`` holding the wheel the packaging test builds,
the unit files, ``/etc/zaas-edge/config.toml`` from the example and the
service enabled in that root. To stay fast and offline the venv gets the
package without its libraries (``PIP_ARGS="--no-deps --no-index"``); the
libraries and their pins are tests/test_packaging.py's business. The layout
is checked by paths and modes (owners depend on who runs the tests), and the
installed unit with the offline systemd tools.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.test_packaging import wheel  # noqa: F401  (the fixture: the wheel built from this checkout)
from tests.test_unit_security import _ENV, MAX_EXPOSURE, _tool, exposure

ROOT = Path(__file__).resolve().parent.parent
UNIT = "zaas-edge.service"
_SETTINGS = ("DESTDIR", "WHEEL", "PIP_ARGS", "PURGE", "CONSTRAINTS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")


def run_make(target: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`make <target> NAME=value ...` from the checkout, as a technician would type it."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    args = [f"{k}={v}" for k, v in settings.items()]
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(ROOT), target, *args],
                          capture_output=True, text=True, env=env, timeout=240)


def install(root: Path, whl: Path) -> subprocess.CompletedProcess[str]:
    proc = run_make("install", DESTDIR=str(root), WHEEL=str(whl), PIP_ARGS="--no-deps --no-index")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def layout(root: Path) -> dict[str, str]:
    """Every path under root (the venv as one entry) -> its type and permission bits, or a symlink's target."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("opt/zaas-edge/venv/") or rel.startswith("usr/"):
            continue
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            found[rel] = "-> " + os.readlink(path)
        else:
            found[rel] = ("d" if stat.S_ISDIR(st.st_mode) else "f") + f" {stat.S_IMODE(st.st_mode):04o}"
    return found


INSTALLED = {
    "etc": "d 0755",
    "etc/systemd": "d 0755",
    "etc/systemd/system": "d 0755",
    f"etc/systemd/system/{UNIT}": "f 0644",
    "etc/sysusers.d": "d 0755",
    "etc/sysusers.d/zaas-edge.conf": "f 0644",
    "etc/tmpfiles.d": "d 0755",
    "etc/tmpfiles.d/zaas-edge.conf": "f 0644",
    "etc/zaas-edge": "d 0750",
    "etc/zaas-edge/config.toml": "f 0640",
    "opt": "d 0755",
    "opt/zaas-edge": "d 0755",
    "opt/zaas-edge/systemd": "d 0755",
    "opt/zaas-edge/systemd/README.md": "f 0644",
    "opt/zaas-edge/venv": "d 0755",
}
ENABLED = {
    "etc/systemd/system/multi-user.target.wants": "d 0755",
    f"etc/systemd/system/multi-user.target.wants/{UNIT}": f"-> /etc/systemd/system/{UNIT}",
}


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:  # noqa: F811
    root = tmp_path_factory.mktemp("root")
    proc = install(root, wheel)
    return root, proc.stdout


def copy_of(root: Path, tmp_path: Path) -> Path:
    """A scratch root of its own for a test that changes it."""
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    return copy


def test_install_lays_out_the_service(installed: tuple[Path, str]) -> None:
    root, out = installed
    expected = dict(INSTALLED)
    if shutil.which("systemctl"):
        expected |= ENABLED
        assert "enabled in" in out
    assert layout(root) == expected
    assert os.access(root / "opt/zaas-edge/venv/bin/zaas-edge", os.X_OK)
    assert "come at that root's first boot (systemd-sysusers, systemd-tmpfiles)" in out


def test_the_first_boot_of_the_root_makes_the_configuration_readable_by_the_service(
        installed: tuple[Path, str], tmp_path: Path) -> None:
    """What systemd-sysusers and systemd-tmpfiles do at boot, run on the scratch root: the daemon can read."""
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root needs root to chown")
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    root = copy_of(installed[0], tmp_path)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    for cmd in ([sysusers, f"--root={root}"], [tmpfiles, f"--root={root}", "--create"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_ENV, timeout=60)
        assert proc.returncode == 0, proc.stderr
    gid = next(int(line.split(":")[2]) for line in (root / "etc/group").read_text().splitlines()
               if line.startswith("zaas-edge:"))
    for path, mode in (("etc/zaas-edge", 0o750), ("etc/zaas-edge/config.toml", 0o640)):
        st = (root / path).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, 0, gid), path


def test_installed_files_are_the_shipped_ones(installed: tuple[Path, str]) -> None:
    root, _ = installed
    pairs = {
        f"etc/systemd/system/{UNIT}": f"systemd/{UNIT}",
        "etc/sysusers.d/zaas-edge.conf": "systemd/zaas-edge.sysusers",
        "etc/tmpfiles.d/zaas-edge.conf": "systemd/zaas-edge.tmpfiles",
        "opt/zaas-edge/systemd/README.md": "systemd/README.md",
        "etc/zaas-edge/config.toml": "config/example.toml",
    }
    for target, source in pairs.items():
        assert (root / target).read_text() == (ROOT / source).read_text(), target


def test_the_venv_runs_the_installed_package(installed: tuple[Path, str]) -> None:
    root, _ = installed
    python = root / "opt/zaas-edge/venv/bin/python"
    out = subprocess.run([str(python), "-m", "zaas_edge.shipped", "systemd"], capture_output=True, text=True,
                         check=True, cwd=root, timeout=60).stdout.strip()
    assert Path(out).is_relative_to(root / "opt/zaas-edge/venv") and (Path(out) / UNIT).is_file()


def test_the_installed_unit_verifies(installed: tuple[Path, str], tmp_path: Path) -> None:
    """`systemd-analyze verify --root`: the unit parses and its ExecStart= exists inside the root."""
    analyze = _tool("systemd-analyze")
    host_units = Path("/usr/lib/systemd/system")
    if not (host_units / "sysinit.target").is_file():
        pytest.skip("no systemd units on this host (/usr/lib/systemd/system): the unit's dependencies cannot resolve")
    root = copy_of(installed[0], tmp_path)
    # The root's distribution: the host's own units (sysinit.target, network.target, ...).
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run([analyze, "verify", "--man=no", f"--root={root}", UNIT],
                              capture_output=True, text=True, env=_ENV, timeout=120)

    proc = verify()
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if UNIT in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr
    # Not vacuous: without the program in the venv the same check fails.
    (root / "opt/zaas-edge/venv/bin/zaas-edge").unlink()
    assert "/opt/zaas-edge/venv/bin/zaas-edge is not executable" in (lambda p: p.stdout + p.stderr)(verify())


def test_the_installed_unit_keeps_its_hardening(installed: tuple[Path, str]) -> None:
    score = exposure(installed[0] / "etc/systemd/system" / UNIT)
    assert score <= MAX_EXPOSURE


def test_an_install_over_an_existing_one_keeps_the_configuration(
        installed: tuple[Path, str], wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    root = copy_of(installed[0], tmp_path)
    config = root / "etc/zaas-edge/config.toml"
    config.write_text('[gateway]\nid = "gw-site-7"\nsite = "park-7"\n')
    out = install(root, wheel).stdout
    assert config.read_text() == '[gateway]\nid = "gw-site-7"\nsite = "park-7"\n'
    assert f"kept the existing {root}/etc/zaas-edge/config.toml" in out
    assert "upgrading the venv" in out
    assert layout(root) == layout(installed[0])


def test_uninstall_keeps_the_configuration_and_the_store(installed: tuple[Path, str], tmp_path: Path) -> None:
    root = copy_of(installed[0], tmp_path)
    (root / "var/lib/zaas-edge").mkdir(parents=True)
    (root / "var/lib/zaas-edge/store.sqlite").write_bytes(b"SQLite format 3\x00")
    proc = run_make("uninstall", DESTDIR=str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {k for k, v in layout(root).items() if not v.startswith("d")}
    assert files == {"etc/zaas-edge/config.toml", "var/lib/zaas-edge/store.sqlite"}
    assert not (root / "opt/zaas-edge").exists()
    assert "PURGE=1 removes them" in proc.stdout


def test_purge_removes_everything(installed: tuple[Path, str], tmp_path: Path) -> None:
    root = copy_of(installed[0], tmp_path)
    (root / "var/lib/zaas-edge").mkdir(parents=True)
    (root / "var/lib/zaas-edge/store.sqlite").write_bytes(b"SQLite format 3\x00")
    proc = run_make("uninstall", DESTDIR=str(root), PURGE="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {k for k, v in layout(root).items() if not v.startswith("d")} == set()
    assert not (root / "etc/zaas-edge").exists() and not (root / "var/lib/zaas-edge").exists()
    assert "PURGE=1: removed" in proc.stdout


@pytest.mark.parametrize("args", [[], ["reinstall"], ["install", "now"]])
def test_the_script_names_its_commands(args: list[str]) -> None:
    proc = subprocess.run(["sh", str(ROOT / "systemd/install.sh"), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage:") and " install" in proc.stderr and " uninstall" in proc.stderr


def test_a_missing_wheel_is_one_clear_line(tmp_path: Path) -> None:
    proc = subprocess.run(["sh", str(ROOT / "systemd/install.sh"), "install"], capture_output=True, text=True,
                          env={**os.environ, "DESTDIR": str(tmp_path / "root"), "WHEEL": str(tmp_path / "no.whl"),
                               "PIP_ARGS": "--no-deps --no-index"}, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"zaas-edge install: no wheel at {tmp_path / 'no.whl'}"
