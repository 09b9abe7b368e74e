"""Where the third-party acceptance corpora live.

They are never copied into the project: tests read them from ``$ZAAS_CORPORA``
or from ``shared/corpora`` beside the checkout, and skip when neither exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["corpus_dir", "corpus_cases"]

_REPO = Path(__file__).resolve().parents[1]


def corpus_dir(name: str) -> Path:
    root = os.environ.get("ZAAS_CORPORA")
    path = Path(root) / name if root else _REPO.parent / "shared" / "corpora" / name
    if not path.is_dir():
        pytest.skip(f"corpus {name!r} not found: set ZAAS_CORPORA or place shared/corpora beside the checkout")
    return path


def corpus_cases(name: str, key: str, *, where: Callable[[dict], bool] = lambda case: True,
                 ident: Callable[[dict], str] = lambda case: str(case["file"])) -> list:
    """The cases listed under ``key`` in a corpus's ``index.json`` (those ``where`` keeps), as pytest
    parameters named by ``ident``.

    With the corpus absent, one skipped parameter that says why, so collection never fails.
    """
    try:
        root = corpus_dir(name)
    except pytest.skip.Exception as exc:
        return [pytest.param(None, marks=pytest.mark.skip(reason=str(exc)), id="corpus-missing")]
    index = json.loads((root / "index.json").read_text())
    return [pytest.param(c, id=ident(c)) for c in index[key] if where(c)]
