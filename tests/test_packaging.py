"""Packaging guards: every package is listed, drivers/ installs only as zaas_edge.drivers."""

from __future__ import annotations

import configparser
from importlib.metadata import entry_points
from pathlib import Path

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
