"""Nothing outside tests/ stands on the tests: the daemon, the drivers, the demo (hil/) and the
benchmarks run in an install without the test extras, so none of them may import ``tests``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_TESTS = ("zaas_edge", "drivers", "hil", "bench")


def _imports_of_tests(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line`` of every ``import tests...`` / ``from tests... import`` in ``path``, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n == "tests" or n.startswith("tests.") for n in names):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_nothing_outside_tests_imports_from_tests() -> None:
    files = [p for d in NOT_TESTS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50  # the walk found the tree
    offenders = [hit for p in files for hit in _imports_of_tests(p)]
    assert not offenders, f"move what these need out of tests/ (into hil/ or the package): {offenders}"


def test_the_guard_sees_a_nested_import(tmp_path: Path) -> None:
    probe = ROOT / "hil" / "__init__.py"
    assert _imports_of_tests(probe) == []
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from tests.mosquitto import Mosquitto\n    import tests.daemon_harness\n")
    assert _imports_of_tests(sample, tmp_path) == ["x.py:2", "x.py:3"]
