"""The configuration's base types: the frozen section model, absolute paths
and secret-file paths.

A leaf module (it imports nothing of the project's) so every section, the
core's and each service's, builds on it without an import cycle.
"""

from __future__ import annotations

__all__ = ["Section", "AbsPath", "SecretFile", "MaybeSecretFile", "SECRET_FILE", "SecretFileMarker"]

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _absolute(p: Path) -> Path:
    # The loader (zaas_edge.config) resolves a relative path against the
    # directory of the file that set it before validation, so only a model
    # built by hand with a relative path ends up here.
    if not p.is_absolute():
        raise ValueError(
            f"expected an absolute path (or one relative to the configuration file), got {str(p)!r}"
        )
    return p


AbsPath = Annotated[Path, AfterValidator(_absolute)]


class SecretFileMarker:
    """Marks a field as the path of a secret file, so tools find every such
    field by walking the models (``zaas_edge.secrets``) without a list to keep.

    ``missing_ok``: the file may not exist yet (the program creates it, like the
    LoRa keys file after the first ``lora add-device``); when it exists it is
    checked like any secret file."""

    def __init__(self, *, missing_ok: bool = False) -> None:
        self.missing_ok = missing_ok

    def __repr__(self) -> str:
        return "MAYBE_SECRET_FILE" if self.missing_ok else "SECRET_FILE"


SECRET_FILE = SecretFileMarker()
_MAYBE_SECRET_FILE = SecretFileMarker(missing_ok=True)

# A path to a file holding a secret (mode 0600 or stricter). The path is
# configuration; the content is read only where used, never shown or logged.
SecretFile = Annotated[Path, AfterValidator(_absolute), SECRET_FILE]

# A secret file the program itself creates and may not have created yet: when
# present, the same checks as ``SecretFile``.
MaybeSecretFile = Annotated[Path, AfterValidator(_absolute), _MAYBE_SECRET_FILE]
