"""Writing TOML values (tomllib only reads): one place for keys and scalars.

Used where the gateway writes configuration for people to read: ``config
show`` and the generated demo configuration.
"""

from __future__ import annotations

__all__ = ["toml_key", "toml_value"]

import json
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else json.dumps(k, ensure_ascii=False)


def toml_value(v: Any) -> str:
    """A value as inline TOML; ``None`` members are left out (TOML has no null)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, Mapping):
        inner = ", ".join(f"{toml_key(str(k))} = {toml_value(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
    return json.dumps(str(v), ensure_ascii=False)
