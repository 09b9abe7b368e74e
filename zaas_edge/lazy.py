"""Names a package re-exports but imports only on first use (PEP 562 ``__getattr__``).

A package whose configuration models are read on every start (``zaas_edge.rules``)
keeps its engines out of memory until something uses them.
"""

from __future__ import annotations

__all__ = ["lazy_getattr"]

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_getattr(package: str, namespace: MutableMapping[str, Any],
                 table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` (a module path) on first use of ``name``
    and keeps the value in ``namespace`` (the package's globals), so the next lookup is a plain one."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(module), name)
        return value

    return __getattr__
