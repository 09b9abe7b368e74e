"""Where the third-party acceptance corpora live.

They are never copied into the project: tests read them from ``$ZAAS_CORPORA``
or from ``shared/corpora`` beside the checkout, and skip when neither exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["corpus_dir"]

_REPO = Path(__file__).resolve().parents[1]


def corpus_dir(name: str) -> Path:
    root = os.environ.get("ZAAS_CORPORA")
    path = Path(root) / name if root else _REPO.parent / "shared" / "corpora" / name
    if not path.is_dir():
        pytest.skip(f"corpus {name!r} not found: set ZAAS_CORPORA or place shared/corpora beside the checkout")
    return path
