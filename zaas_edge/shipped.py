"""Where the files shipped beside the code are: the systemd units and the example configuration.

An installed wheel carries them as package data under ``zaas_edge/share/``
(setup.cfg maps the repository's ``systemd/`` and ``config/`` there), so an
install on a Pi needs no checkout of the repository; in a source checkout
(``pip install -e``) they are the repository's own folders. Print them with
``python -m zaas_edge.shipped [systemd|config]``; systemd/README.md installs
from there.
"""

from __future__ import annotations

__all__ = ["KINDS", "shipped_dir"]

import sys
from pathlib import Path
from typing import Literal

KINDS = ("systemd", "config")
Kind = Literal["systemd", "config"]
_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(kind: Kind) -> Path:
    """The folder holding ``kind``'s files: the installed package data, else the source checkout's."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    installed = _PACKAGE / "share" / kind
    return installed if installed.is_dir() else _PACKAGE.parent / kind


def main(argv: list[str]) -> int:
    kinds = argv or list(KINDS)
    for kind in kinds:
        if kind not in KINDS:
            print(f"usage: python -m zaas_edge.shipped [{'|'.join(KINDS)}]", file=sys.stderr)
            return 2
    for kind in kinds:
        print(shipped_dir(kind) if len(kinds) == 1 else f"{kind}: {shipped_dir(kind)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
