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


def _package_of(module: str) -> str | None:
    """The subpackage a module name belongs to (``zaas_edge.sync``, ``zaas_edge.drivers.modbus``), or None
    for a module of the package's root (the model, the errors, the daemon), which every package may use."""
    parts = module.split(".")
    if parts[0] != "zaas_edge" or len(parts) < 2:
        return None
    if parts[1] == "drivers":
        return ".".join(parts[:3]) if len(parts) >= 3 and (ROOT / "drivers" / parts[2]).is_dir() else None
    return ".".join(parts[:2]) if (ROOT / "zaas_edge" / parts[1]).is_dir() else None


def _package_edges() -> dict[str, set[str]]:
    """Which subpackage imports which, lazy imports included (a lazy import is a cycle put off, not gone)."""
    edges: dict[str, set[str]] = {}
    sources = [(p, "zaas_edge." + ".".join(p.relative_to(ROOT / "zaas_edge").with_suffix("").parts))
               for p in (ROOT / "zaas_edge").rglob("*.py")]
    sources += [(p, "zaas_edge.drivers." + ".".join(p.relative_to(ROOT / "drivers").with_suffix("").parts))
                for p in (ROOT / "drivers").rglob("*.py")]
    for path, name in sources:
        own = _package_of(name)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                pkg = _package_of(t)
                if pkg and pkg != own:
                    edges.setdefault(own, set()).add(pkg)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs (a, b) where a reaches b and b reaches a."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    closure = {a: reach(a) for a in edges}
    return sorted((a, b) for a in closure for b in closure[a] if a < b and a in closure.get(b, set()))


def test_no_package_imports_one_that_imports_it_back() -> None:
    edges = _package_edges()
    assert "zaas_edge.wire" in edges.get("zaas_edge.store", set())  # the walk sees the store's use of the wire codec
    assert _cycles(edges) == []
    assert "zaas_edge.sync" not in edges.get("zaas_edge.store", set()), "the store knows nothing of sync"


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert _cycles({"a": {"b"}, "b": set()}) == []
