"""Packaging guards: every package is listed, drivers/ installs only as zaas_edge.drivers, the wheel holds
what an install on a Pi needs, and constraints.txt pins exactly what the suite runs with."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _listed_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}


def _source_packages() -> set[str]:
    found = set()
    for base, prefix in ((ROOT / "zaas_edge", "zaas_edge"), (ROOT / "drivers", "zaas_edge.drivers")):
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    return found


def test_every_package_is_listed_in_setup_cfg() -> None:
    missing = _source_packages() - _listed_packages()
    assert not missing, f"add these to [options] packages in setup.cfg: {sorted(missing)}"


def test_drivers_never_install_as_a_top_level_package() -> None:
    assert not any(p == "drivers" or p.startswith("drivers.") for p in _listed_packages())
    import zaas_edge.drivers

    assert Path(zaas_edge.drivers.__file__).resolve().parent == ROOT / "drivers"


def test_builtin_drivers_are_registered_entry_points() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="zaas_edge.drivers")}
    assert names["system"] == "zaas_edge.drivers.system:SystemDriver"


# --------------------------------------------------------- the wheel

# What setup.cfg builds from: copied alone, so the build sees neither .venv nor anyone's build/ leftovers.
_BUILD_INPUTS = ("setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in", "constraints.txt", "zaas_edge",
                 "drivers", "hil", "systemd", "config", "docs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in _BUILD_INPUTS:
        (shutil.copytree(ROOT / name, src / name, ignore=junk) if (ROOT / name).is_dir()
         else shutil.copy2(ROOT / name, src / name))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", str(src), "-w", str(out)], check=True, capture_output=True,
                   timeout=240)
    (whl,) = out.glob("zaas_edge-*.whl")
    return whl


def test_the_wheel_holds_every_package_the_simulators_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in _listed_packages():
        if not pkg.startswith("zaas_edge.share."):
            assert f"{pkg.replace('.', '/')}/__init__.py" in names, f"{pkg} is missing from the wheel"
    for base, prefix in ((ROOT / "zaas_edge", "zaas_edge"), (ROOT / "drivers", "zaas_edge/drivers"),
                         (ROOT / "hil", "hil")):
        for py in base.rglob("*.py"):
            if "__pycache__" not in py.parts and (py.parent / "__init__.py").exists():
                assert f"{prefix}/{py.relative_to(base).as_posix()}" in names, f"{py} is missing from the wheel"
    assert "hil/scenario.py" in names and "hil/central/server.py" in names
    for f in (ROOT / "hil").rglob("*"):  # the simulators' data (scenario files) too: hil runs from the venv
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
            rel = f.relative_to(ROOT).as_posix()
            assert rel in names or (f.suffix == ".py" and not (f.parent / "__init__.py").exists()), (
                f"{rel} is missing from the wheel: add it to [options.package_data] hil in setup.cfg")
    others = {n.split("/")[0] for n in names} - {"zaas_edge", "hil"}
    assert len(others) == 1 and others.pop().endswith(".dist-info")  # no top-level drivers, tests or bench
    assert not any(n.startswith(("tests/", "drivers/", "bench/")) for n in names)


def test_the_wheel_ships_the_profiles_the_systemd_files_and_the_example_configuration(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    profiles = sorted((ROOT / "drivers" / "profiles").rglob("*.toml"))
    assert profiles
    for p in profiles:
        assert f"zaas_edge/drivers/profiles/{p.relative_to(ROOT / 'drivers' / 'profiles').as_posix()}" in names
    for f in ("zaas-edge.service", "zaas-edge.sysusers", "zaas-edge.tmpfiles", "README.md"):
        assert f"zaas_edge/share/systemd/{f}" in names
    for f in ("example.toml", "demo.toml"):
        assert f"zaas_edge/share/config/{f}" in names
    assert "zaas_edge/py.typed" in names


def test_an_installed_wheel_finds_its_shipped_files(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from zaas_edge.shipped import shipped_dir; import zaas_edge; "
            "print(zaas_edge.__file__); print(shipped_dir('systemd')); print(shipped_dir('config'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin"},
                         check=True, capture_output=True, text=True, timeout=60).stdout.split()
    assert Path(out[0]).is_relative_to(site)
    assert Path(out[1]) == site / "zaas_edge" / "share" / "systemd" and (Path(out[1]) / "zaas-edge.service").is_file()
    assert (Path(out[2]) / "example.toml").is_file()


def test_the_wheel_caps_every_runtime_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    reqs = [Requirement(line.split(":", 1)[1]) for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert reqs
    for r in reqs:
        assert any(s.operator in ("<", "~=", "==") for s in r.specifier), f"{r} has no upper bound"


# ------------------------------------------------------ constraints.txt

def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
            assert m, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            assert _norm(m[1]) not in pins, f"constraints.txt pins {m[1]} twice"
            pins[_norm(m[1])] = m[2]
    return pins


def _declared() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in ("test", "lint"):
        lines += cfg["options.extras_require"][extra].splitlines()
    return [Requirement(s) for s in (x.strip() for x in lines) if s and not s.startswith("#")]


def _closure(roots: list[Requirement]) -> dict[str, str]:
    """Every installed distribution the requirements pull in, with its installed version."""
    found: dict[str, str] = {}
    todo = [(r, ()) for r in roots]
    while todo:
        req, extras = todo.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        name = _norm(dist.metadata["Name"])
        key_extras = tuple(sorted(req.extras))
        if name in found and not key_extras:
            continue
        found[name] = dist.version
        todo += [(Requirement(r), key_extras) for r in dist.requires or ()]
    return found


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    for req in _declared():
        name = _norm(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside setup.cfg's {req}")


def test_the_pins_are_exactly_what_the_package_and_its_extras_install() -> None:
    pins = _pins()
    installed = _closure(_declared())
    stale = {n: (pins.get(n), v) for n, v in installed.items() if pins.get(n) != v}
    assert not stale, f"constraints.txt differs from the tested environment (pinned, installed): {stale}"
    extra = set(pins) - set(installed)
    assert not extra, f"constraints.txt pins what nothing needs: {sorted(extra)}"


def test_ci_and_the_makefile_install_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "CONSTRAINTS := constraints.txt" in makefile and "-c $(CONSTRAINTS) -e '.[test,lint]'" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_install_notes_name_only_files_the_wheel_ships(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    notes = (ROOT / "systemd" / "README.md").read_text()
    named = re.findall(r'"\$(SHARE|EXAMPLES)/([^"]+)"', notes)
    assert {f for _, f in named} >= {"zaas-edge.service", "zaas-edge.sysusers", "zaas-edge.tmpfiles",
                                     "example.toml"}
    for kind, f in named:
        assert f"zaas_edge/share/{'systemd' if kind == 'SHARE' else 'config'}/{f}" in names, f"{kind}/{f}"
    assert "python -m zaas_edge.shipped systemd" in notes and "-c /tmp/constraints.txt" in notes
    assert "site.toml" not in notes
