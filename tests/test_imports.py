"""Every module of the package imports alone, in an interpreter that has loaded nothing of the
project's before it: an import cycle hidden by the order the daemon happens to import things in
shows up here as the partially-initialised-module ImportError a tool or a test would hit."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

# One interpreter walks the modules; before each, every project module is forgotten, so each
# import starts from nothing of the project's (third-party modules stay loaded: they cannot
# hide a cycle of ours, and reloading them would take minutes).
_PROBE = r"""
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "zaas_edge" or m.startswith(("zaas_edge.", "drivers."))]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as exc:  # report every module, not the first failure
        failures[name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
print(json.dumps(failures))
"""


def _modules() -> list[str]:
    """Every module of the installed package. The drivers live in their own source folder,
    mapped onto ``zaas_edge.drivers``, so that package is walked from its own path."""
    import zaas_edge.drivers

    names = {"zaas_edge", "zaas_edge.drivers"}
    for path, prefix in ((zaas_edge.__path__, "zaas_edge."), (zaas_edge.drivers.__path__, "zaas_edge.drivers.")):
        names.update(info.name for info in pkgutil.walk_packages(path, prefix))
    names.discard("zaas_edge.__main__")  # running it is its job: it starts the CLI
    return sorted(names)


def test_the_walk_finds_the_drivers_and_the_services() -> None:
    names = _modules()
    for expected in ("zaas_edge.mqtt.config", "zaas_edge.sync.config", "zaas_edge.mqtt.publisher",
                     "zaas_edge.drivers.modbus", "zaas_edge.drivers.tic.codec", "zaas_edge.store.writer"):
        assert expected in names


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = _modules()
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(names)], capture_output=True, text=True, timeout=300, check=True
    )
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())


def test_the_probe_reports_a_module_that_cannot_import_alone(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "zaas_edge_probe_cycle"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from zaas_edge_probe_cycle.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from zaas_edge_probe_cycle.a import A\nB = 2\n")
    probe = _PROBE.replace('("zaas_edge.", "drivers.")', '("zaas_edge_probe_cycle.",)')
    out = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(["zaas_edge_probe_cycle.a"])],
        capture_output=True, text=True, timeout=60, check=True, cwd=tmp_path,
    )
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert "partially initialized" in failures["zaas_edge_probe_cycle.a"]


def test_reading_the_configuration_loads_no_engine() -> None:
    """The daemon and every CLI command read the configuration; the engines load only where they run."""
    import subprocess
    import sys

    code = ("import sys, zaas_edge.config_model, zaas_edge.rules\n"
            "loaded = [m for m in ('zaas_edge.rules.engine', 'zaas_edge.rules.alarms.engine') if m in sys.modules]\n"
            "assert not loaded, loaded\n"
            "assert zaas_edge.rules.step.__module__ == 'zaas_edge.rules.engine'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
