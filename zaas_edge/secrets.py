"""Secret files: read safely, checked for every field that names one, redacted.

A secret (an MQTT password, an API token) never sits in the configuration
file itself: the configuration holds the path of a file (``SecretFile``) that
only the service user can read. This module reads such files, refuses those
that group or others could read or change, and produces views of the
configuration with secret values replaced by ``***``. No function here puts a
secret value in an exception, a log line or an issue text: messages name the
path and what is wrong with the file, never its content.
"""

from __future__ import annotations

__all__ = [
    "REDACTED",
    "read_secret",
    "check_secret_files",
    "check_declared_secret_files",
    "secret_file_fields",
    "secret_paths",
    "is_secret_file_field",
    "is_secret_name",
    "redacted",
]

import os
import re
import stat
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from zaas_edge.config_types import SecretFileMarker
from zaas_edge.errors import ConfigError, ConfigIssue
from zaas_edge.logsetup import register_secret

REDACTED = "***"

# A secret file is a password or a key, not a document: anything larger is
# almost certainly the wrong path.
MAX_SECRET_BYTES = 64 * 1024

Loc = tuple[str | int, ...]


class _SecretProblem(Exception):
    """Why a secret file cannot be used; the text never contains the secret."""


def _load(path: Path) -> bytes:
    """Open, check and read a secret file, raising ``_SecretProblem``."""
    # O_NONBLOCK: a FIFO given by mistake must not hang the caller; the
    # checks below refuse it before any read.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _SecretProblem(
            f"secret file {path} does not exist: create it with the secret on one line, "
            f"then chmod 600 {path}"
        ) from None
    except PermissionError:
        raise _SecretProblem(
            f"secret file {path} cannot be read by this user (uid {os.getuid()}): "
            f"make the service user its owner (chown zaas-edge {path}; chmod 600 {path})"
        ) from None
    except OSError as exc:
        raise _SecretProblem(f"secret file {path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _SecretProblem(f"secret file {path} is a directory, expected a regular file")
        if not stat.S_ISREG(st.st_mode):
            raise _SecretProblem(
                f"secret file {path} is not a regular file (a device, FIFO or socket): "
                "point the key at a plain file"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise _SecretProblem(
                f"secret file {path} has mode {mode:04o}, readable or writable by group or others: "
                f"run chmod 600 {path}"
            )
        if st.st_size > MAX_SECRET_BYTES:
            raise _SecretProblem(
                f"secret file {path} is {st.st_size} bytes, more than {MAX_SECRET_BYTES}: "
                "is this the right file?"
            )
        chunks = []
        while chunk := os.read(fd, MAX_SECRET_BYTES + 1):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_SECRET_BYTES:
                raise _SecretProblem(f"secret file {path} is larger than {MAX_SECRET_BYTES} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise _SecretProblem(f"secret file {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def _decode(path: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # The codec's own message quotes the offending byte: keep it out.
        raise _SecretProblem(f"secret file {path} is not UTF-8 text") from None
    # Editors add a final newline; the secret itself never ends with one.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise _SecretProblem(f"secret file {path} is empty")
    return text


def read_secret(path: str | Path) -> str:
    """The secret held in ``path``, without its trailing newline.

    Raises ``ConfigError`` (naming the path and the fix, never the content)
    when the file is missing, not a regular file, readable or writable by
    group or others (``mode & 0o077``), empty, too large or not UTF-8.
    """
    p = Path(path)
    try:
        value = _decode(p, _load(p))
        # Every secret read is known to the log filter, so no log line can carry it.
        register_secret(value)
        return value
    except _SecretProblem as exc:
        raise ConfigError([ConfigIssue(file=str(p), path="", message=str(exc))]) from None


def _probe(path: Path) -> str | None:
    """The problem with a secret file, or None when ``read_secret`` would succeed."""
    try:
        _decode(path, _load(path))
    except _SecretProblem as exc:
        return str(exc)
    return None


def _annotation_marker(annotation: Any) -> SecretFileMarker | None:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        found = next((e for e in extras if isinstance(e, SecretFileMarker)), None)
        return found or _annotation_marker(base)
    return next((m for a in typing.get_args(annotation) if (m := _annotation_marker(a)) is not None), None)


def _marker(field: FieldInfo) -> SecretFileMarker | None:
    found = next((m for m in field.metadata if isinstance(m, SecretFileMarker)), None)
    return found or _annotation_marker(field.annotation)


def is_secret_file_field(field: FieldInfo) -> bool:
    """Whether a model field holds the path of a secret file (``SecretFile`` or ``MaybeSecretFile``)."""
    return _marker(field) is not None


def _may_be_missing(model: BaseModel, loc: Loc) -> bool:
    """Whether the secret file field at ``loc`` (relative to ``model``) is a ``MaybeSecretFile``."""
    target: Any = model
    for part in loc[:-1]:
        target = target[part] if isinstance(part, int) else getattr(target, part)
    field = type(target).model_fields.get(str(loc[-1])) if isinstance(target, BaseModel) else None
    marker = None if field is None else _marker(field)
    return marker is not None and marker.missing_ok


def secret_file_fields(model: BaseModel, loc: Loc = ()) -> Iterator[tuple[Loc, Path]]:
    """Every secret file path set in ``model`` and its sub-models, with its key path."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name, None)
        here = loc + (name,)
        if value is None:
            continue
        if is_secret_file_field(field):
            yield here, Path(value)
        elif isinstance(value, BaseModel):
            yield from secret_file_fields(value, here)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from secret_file_fields(item, here + (i,))


def secret_paths(config: Any) -> list[Path]:
    """Every secret file path set in a model, or in a ``LoadedConfig`` (its
    sections and every driver's options), for scrubbing their values from
    bundles and logs."""
    if isinstance(config, BaseModel):
        return [path for _, path in secret_file_fields(config)]
    models = [config.config, *config.drivers]
    return [path for m in models for _, path in secret_file_fields(m)]


def _format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_secret_files(config: Any) -> list[ConfigIssue]:
    """An issue for each secret file set in ``config`` that ``read_secret`` would refuse.

    ``config`` is a ``LoadedConfig`` (its sections and every driver's options
    are checked, and each issue names the file that set the key) or any model.
    """
    targets: list[tuple[Loc, BaseModel]]
    origin: Callable[[Loc], str]
    if isinstance(config, BaseModel):
        targets = [((), config)]
        origin = lambda loc: "config"  # noqa: E731
    else:
        targets = [((), config.config)]
        targets += [(("drivers", i), d) for i, d in enumerate(config.drivers)]
        origin = config.origin
    issues = []
    for base, model in targets:
        for loc, path in secret_file_fields(model, base):
            if not os.path.lexists(path) and _may_be_missing(model, loc[len(base):]):
                continue  # created by the program when first needed (checked when it exists)
            problem = _probe(path)
            if problem is not None:
                issues.append(ConfigIssue(file=origin(loc), path=_format_loc(loc), message=problem))
    return issues


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, alone, in a list, or optional; ``None`` for anything else."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_class(arg)
        if found is not None:
            return found
    return None


def declared_secret_files(model_cls: type[BaseModel], doc: Any, loc: Loc = ()) -> Iterator[tuple[Loc, Path, bool]]:
    """The secret file paths written in a raw document, by the model that will read it: found even
    when the document does not validate, so ``config check`` reports them with the other errors.
    Yields the key path, the path and whether the file may be missing (``MaybeSecretFile``)."""
    if not isinstance(doc, dict):
        return
    for name, field in model_cls.model_fields.items():
        value = doc.get(field.alias or name)
        if value is None:
            continue
        here = loc + (name,)
        marker = _marker(field)
        if marker is not None:
            if isinstance(value, str) and value:
                yield here, Path(value), marker.missing_ok
            continue
        sub = _model_class(field.annotation)
        if sub is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from declared_secret_files(sub, item, here + (i,))
        else:
            yield from declared_secret_files(sub, value, here)


def check_declared_secret_files(model_cls: type[BaseModel], doc: Any, loc: Loc,
                                origin: Callable[[Loc], str]) -> list[ConfigIssue]:
    """An issue for each secret file written in ``doc`` that ``read_secret`` would refuse."""
    issues = []
    for here, path, missing_ok in declared_secret_files(model_cls, doc, loc):
        if missing_ok and not os.path.lexists(path):
            continue
        problem = _probe(path)
        if problem is not None:
            issues.append(ConfigIssue(file=origin(here), path=_format_loc(here), message=problem))
    return issues


_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "pass", "pwd", "psk",
    "secret", "token", "credential", "credentials",
})


def is_secret_name(name: str) -> bool:
    """Whether a key named ``name`` holds a secret value (not a path to one).

    Names ending in ``_file``, ``_path`` or ``_dir`` hold paths, shown as
    they are. Others are secret when a word of the name is a secret word or
    ends in ``key``, ``password``, ``secret`` or ``token`` (``app_key``,
    ``nwkskey``, ``api_token``).
    """
    n = name.lower()
    if n.endswith(("_file", "_path", "_dir", "_files")):
        return False
    for word in re.split(r"[^a-z0-9]+", n):
        if word in _SECRET_WORDS or word.endswith(("key", "password", "secret", "token")):
            return True
    return False


def _mask(name: str, value: Any) -> Any:
    if value is None or isinstance(value, bool) or value == "":
        return value
    return REDACTED


def _redact_plain(value: Any) -> Any:
    """Redact by key name in data that has no model (tables inside driver options)."""
    if isinstance(value, dict):
        return {
            k: (_mask(k, v) if is_secret_name(str(k)) else _redact_plain(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_plain(v) for v in value]
    return to_jsonable_python(value)


def _is_path_field(field: FieldInfo) -> bool:
    def walk(a: Any) -> bool:
        if isinstance(a, type) and issubclass(a, os.PathLike):
            return True
        return any(walk(x) for x in typing.get_args(a))

    return walk(field.annotation)


def _redact_model(model: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if is_secret_file_field(field) or _is_path_field(field):
            out[name] = to_jsonable_python(value)  # a path: shown
        elif is_secret_name(name):
            out[name] = _mask(name, value)
        elif isinstance(value, BaseModel):
            out[name] = _redact_model(value)
        elif isinstance(value, (list, tuple)):
            out[name] = [_redact_model(v) if isinstance(v, BaseModel) else _redact_plain(v) for v in value]
        else:
            out[name] = _redact_plain(value)
    return out


def redacted(loaded: Any) -> dict[str, Any]:
    """The effective configuration as JSON-able data, secret values shown as ``***``.

    ``loaded`` is a ``LoadedConfig``: its ``drivers`` entry lists each
    driver's validated options (defaults filled in). Paths of secret files
    are shown; a key named like a password, token, secret or key that holds
    a value is replaced by ``***``.
    """
    data = _redact_model(loaded.config)
    data["drivers"] = [_redact_model(d) for d in loaded.drivers]
    return data
