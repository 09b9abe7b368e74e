"""Loading the configuration: TOML files into validated models.

One main file (``/etc/zaas-edge/config.toml`` unless a path or
``ZAAS_EDGE_CONFIG`` says otherwise) plus drop-ins ``conf.d/*.toml`` beside
it, merged in name order: tables merge key by key, ``[[drivers]]`` entries
merge by ``id`` (an existing id is updated, a new one appended), any other
value is replaced. The loader remembers which file set each key, so every
error names the file to edit, the key path, what was expected and what was
found. Every problem is reported at once, never just the first.

Relative paths (state and runtime directories, the control socket, path
options of drivers) are resolved against the directory of the file that set
them, so a configuration can be moved with the tree it points into.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_VAR",
    "DROPIN_DIR",
    "DEFAULTS_LABEL",
    "LoadedConfig",
    "load_config",
    "check_config",
    "format_key_path",
    "validation_issues",
    # Re-exported from zaas_edge.secrets for the daemon, the CLI and diagnostics.
    "redacted",
    "secret_paths",
]

import copy
import difflib
import os
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from zaas_edge.config_model import Config
from zaas_edge.driver import DriverOptions, available_drivers, driver_class
from zaas_edge.errors import ConfigError, ConfigIssue
from zaas_edge.secrets import (
    REDACTED,
    check_declared_secret_files,
    check_secret_files,
    is_secret_file_field,
    is_secret_name,
    redacted,
    secret_paths,
)

DEFAULT_CONFIG_PATH = Path("/etc/zaas-edge/config.toml")
ENV_VAR = "ZAAS_EDGE_CONFIG"
DROPIN_DIR = "conf.d"
DEFAULTS_LABEL = "<built-in defaults>"
# What a gateway with no configuration file runs: its own health.
DEFAULT_DRIVERS: tuple[Mapping[str, Any], ...] = ({"id": "system", "type": "system"},)

Loc = tuple[str | int, ...]
Origins = dict[Loc, str]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where it came from.

    ``drivers`` holds each ``config.drivers`` entry validated against its
    driver's own ``Options`` model, in the same order. ``notice`` is a line
    for the log when the built-in defaults were used.
    """

    config: Config
    sources: list[Path]
    defaults_only: bool
    drivers: list[DriverOptions]
    notice: str | None = None
    origins: Mapping[Loc, str] = field(default_factory=dict, repr=False)

    def origin(self, loc: Sequence[str | int] | str) -> str:
        """The file that set the key at ``loc`` (or its closest enclosing table)."""
        if isinstance(loc, str):
            loc = _parse_key_path(loc)
        return _origin(self.origins, tuple(loc))


def format_key_path(loc: Sequence[str | int]) -> str:
    """``("drivers", 2, "port")`` as ``drivers[2].port``; odd keys are quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else '"' + part.replace('"', '\\"') + '"'
            out += f".{name}" if out else name
    return out


def _parse_key_path(text: str) -> Loc:
    loc: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", text):
        loc.append(int(index) if index else name)
    return tuple(loc)


def _origin(origins: Mapping[Loc, str], loc: Loc) -> str:
    for n in range(len(loc), -1, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    return DEFAULTS_LABEL


def _pruned(origins: Mapping[Loc, str]) -> dict[Loc, str]:
    """Only the locations whose file differs from their enclosing table's: ``_origin`` finds the
    same file for every key, and a building of 300 meters in one file keeps one entry, not one per
    key of every device (the daemon holds its configuration for as long as it runs)."""
    out: dict[Loc, str] = {}
    for loc in sorted(origins, key=len):
        label = origins[loc]
        if _origin(out, loc) != label or (not loc and label == DEFAULTS_LABEL):
            out[loc] = label
    return out


# --- reading and merging files -------------------------------------------

def _read_toml(path: Path) -> tuple[dict[str, Any] | None, list[ConfigIssue]]:
    label = str(path)
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")  # editors on Windows add a BOM
    except UnicodeDecodeError as exc:
        return None, [ConfigIssue(label, "", f"not UTF-8 text (byte offset {exc.start})")]
    except IsADirectoryError:
        return None, [ConfigIssue(label, "", "is a directory, expected a TOML file")]
    except OSError as exc:
        return None, [ConfigIssue(label, "", f"cannot be read: {exc.strerror}")]
    try:
        data = tomllib.loads(text)
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        return None, [ConfigIssue(label, "", f"invalid TOML: {_TOO_DEEP}")]
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.S)
        if m:
            message, line, col = m.group(1), int(m.group(2)), int(m.group(3))
        else:
            message = re.sub(r" \(at end of document\)$", "", message)
            line = text.count("\n") + 1
            col = len(text.rsplit("\n", 1)[-1]) + 1
            message += " (at end of file)"
        return None, [ConfigIssue(f"{label}:{line}:{col}", "", f"invalid TOML: {message}")]
    # Merging, path resolution and validation all recurse: refuse a document
    # too deep for them here rather than fail later with a RecursionError.
    deep = _too_deep(data)
    if deep is not None:
        shown = format_key_path(deep[:4]) + (" ..." if len(deep) > 4 else "")
        return None, [ConfigIssue(label, shown, _TOO_DEEP)]
    return data, []


MAX_DEPTH = 32  # levels of tables and arrays; a real configuration uses fewer than 8
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels of tables and arrays)"


def _too_deep(doc: Any) -> Loc | None:
    """The location of a value nested deeper than ``MAX_DEPTH``, or None (iterative)."""
    pending: list[tuple[Loc, Any]] = [((), doc)]
    while pending:
        loc, value = pending.pop()
        if isinstance(value, dict):
            children: Any = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        else:
            continue
        if len(loc) >= MAX_DEPTH:
            return loc
        pending.extend((loc + (k,), v) for k, v in children)
    return None


def _dropins(main: Path) -> list[Path]:
    folder = main.parent / DROPIN_DIR
    if not folder.is_dir():
        return []
    # Hidden files are editor leftovers (.x.toml.swp is not matched, .x.toml is).
    return sorted(
        (p for p in folder.glob("*.toml") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _mark(origins: Origins, loc: Loc, value: Any, label: str) -> None:
    origins[loc] = label
    if isinstance(value, dict):
        for k, v in value.items():
            _mark(origins, loc + (k,), v, label)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _mark(origins, loc + (i,), v, label)


def _forget(origins: Origins, loc: Loc) -> None:
    n = len(loc)
    for key in [k for k in origins if k[:n] == loc]:
        del origins[key]


def _merge(into: dict[str, Any], new: Mapping[str, Any], loc: Loc, label: str, origins: Origins) -> None:
    for key, value in new.items():
        here = loc + (key,)
        old = into.get(key)
        if here == ("drivers",) and isinstance(old, list) and isinstance(value, list):
            _merge_drivers(old, value, label, origins)
        elif isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value, here, label, origins)
        else:
            _forget(origins, here)
            into[key] = copy.deepcopy(value)
            _mark(origins, here, value, label)


def _merge_drivers(old: list[Any], new: list[Any], label: str, origins: Origins) -> None:
    known: dict[str, int] = {}
    for i, entry in enumerate(old):
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            known.setdefault(entry["id"], i)
    seen_here: set[str] = set()
    for entry in new:
        eid = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(eid, str) and eid in known and eid not in seen_here:
            index = known[eid]
            id_loc = ("drivers", index, "id")
            defined_by = origins.get(id_loc)
            _merge(old[index], entry, ("drivers", index), label, origins)
            if defined_by is not None:
                origins[id_loc] = defined_by  # the id is the merge key, not a change
        else:
            # A new id, or an id repeated within one file: appended, so the
            # duplicate check reports it instead of silently merging.
            old.append(copy.deepcopy(entry))
            _mark(origins, ("drivers", len(old) - 1), entry, label)
        if isinstance(eid, str):
            seen_here.add(eid)


# --- model introspection ---------------------------------------------------

def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model type inside an annotation (``Model``, ``Model | None``, ``list[Model]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping) or annotation is dict:
        return True
    return any(_is_mapping(a) for a in typing.get_args(annotation))


def _is_path(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, os.PathLike):
        return True
    return any(_is_path(a) for a in typing.get_args(annotation))


def _literals(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    return [v for a in typing.get_args(annotation) for v in _literals(a)]


def _resolve_paths(model: type[BaseModel], data: dict[str, Any], loc: Loc, origins: Origins) -> None:
    """Turn relative path values into absolute ones, against the file that set each."""
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, here = data[name], loc + (name,)
        sub = _model_in(info.annotation)
        if sub is not None and isinstance(value, dict):
            _resolve_paths(sub, value, here, origins)
        elif sub is not None and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _resolve_paths(sub, item, here + (i,), origins)
        elif (
            _is_path(info.annotation)
            # Secret file paths stay absolute: a relative one is more often
            # the secret itself typed in the wrong place.
            and not is_secret_file_field(info)
            and isinstance(value, str)
            and value
            and not os.path.isabs(value)
        ):
            source = _origin(origins, here)
            if source != DEFAULTS_LABEL:
                base = os.path.abspath(os.path.dirname(source))
                data[name] = os.path.normpath(os.path.join(base, value))


# --- validation errors as messages ----------------------------------------

_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "finite_number": "a finite number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string", "string_unicode": "a string", "path_type": "a path (a string)",
    "list_type": "an array", "tuple_type": "an array", "set_type": "an array",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}
_BOUNDS = {
    "greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"), "less_than_equal": ("<=", "le"),
}


def _num(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _show(value: Any, secret: bool = False) -> str:
    """A found value as a technician would type it in TOML."""
    if secret:
        return repr(REDACTED)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (int, float)):
        return _num(value)
    if isinstance(value, str):
        return repr(value)
    return repr(str(value))


@dataclass
class _Node:
    """What is known about the place a pydantic error points at."""

    loc: Loc
    field: FieldInfo | None
    owner: type[BaseModel] | None  # the model holding the last key


def _locate(root: type[BaseModel], raw: Sequence[str | int], extra: bool) -> _Node:
    """Strip pydantic's union tags from a location and find the field it names."""
    loc: list[str | int] = []
    model: type[BaseModel] | None = root
    info: FieldInfo | None = None
    owner: type[BaseModel] | None = None
    free = False  # inside a plain table (dict[str, Any]): any key is real
    keyed = False  # inside dict[str, Model]: the next string part is a key, not a tag
    for i, part in enumerate(raw):
        last = i == len(raw) - 1
        if isinstance(part, int):
            loc.append(part)
        elif model is not None and part in model.model_fields:
            owner, info = model, model.model_fields[part]
            loc.append(part)
            model = _model_in(info.annotation)
            free = model is None and _is_mapping(info.annotation)
            keyed = model is not None and _is_mapping(info.annotation)
        elif keyed:
            loc.append(part)
            keyed = False
        elif free or (last and extra):
            if model is not None:
                owner = model
            loc.append(part)
            info = None
        # else: a union member tag such as 'int' or 'function-after[...]'
    return _Node(tuple(loc), info, owner)


def _describe(err: Mapping[str, Any], node: _Node) -> tuple[str | None, str]:
    """``(expected, message)``: expected is set for "expected X, got Y" errors."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    key = next((p for p in reversed(node.loc) if isinstance(p, str)), "")
    secret = is_secret_name(key) or (node.field is not None and is_secret_file_field(node.field))
    got = _show(value, secret)
    if kind == "extra_forbidden":
        known = sorted(node.owner.model_fields) if node.owner is not None else []
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if close:
            return None, f"unknown key (did you mean {close[0]!r}?)"
        return None, "unknown key" + (f" (known keys: {', '.join(known)})" if known else "")
    if kind == "missing":
        return None, "required key missing"
    if kind in ("literal_error", "enum"):
        options = _literals(node.field.annotation) if node.field is not None else []
        if options:
            listed = ", ".join(_show(o) for o in options)
        else:
            listed = str(ctx.get("expected", "?")).replace(" or ", ", ")
        return f"one of {listed}", f"expected one of {listed}, got {got}"
    if kind in _EXPECTED:
        return _EXPECTED[kind], f"expected {_EXPECTED[kind]}, got {got}"
    if kind in _BOUNDS:
        op, name = _BOUNDS[kind]
        expected = f"a value {op} {_num(ctx.get(name))}"
        return expected, f"expected {expected}, got {got}"
    if kind == "multiple_of":
        expected = f"a multiple of {_num(ctx.get('multiple_of'))}"
        return expected, f"expected {expected}, got {got}"
    if kind == "string_pattern_mismatch":
        expected = f"a string matching {ctx.get('pattern')}"
        return expected, f"expected {expected}, got {got}"
    if kind in ("string_too_short", "string_too_long", "too_short", "too_long"):
        bound = "at least" if kind.endswith("short") else "at most"
        n = ctx.get("min_length") if kind.endswith("short") else ctx.get("max_length")
        unit = "characters" if kind.startswith("string") else "items"
        return f"{bound} {n} {unit}", f"expected {bound} {n} {unit}, got {got}"
    if kind in ("value_error", "assertion_error"):
        if node.field is not None and is_secret_file_field(node.field):
            return None, (
                "expected the absolute path of a file holding the secret "
                "(the value is not shown, in case it is the secret itself)"
            )
        if secret:
            # The validator's message may quote the value: keep it out.
            return None, "invalid value (not shown: the key holds a secret or the path of one)"
        return None, str(ctx.get("error", err.get("msg", "invalid value")))
    msg = str(err.get("msg", kind))
    m = re.match(r"Input should be (.*)", msg)
    if m:
        return m.group(1), f"expected {m.group(1)}, got {got}"
    return None, f"{msg}, got {got}"


def validation_issues(
    exc: ValidationError, model: type[BaseModel], *, file: str = "config", prefix: Loc = ()
) -> list[ConfigIssue]:
    """Turn a pydantic error on ``model`` into one issue per bad key, worded for
    people (unknown keys with a suggestion, expected versus found values).

    For any TOML data validated outside ``load_config`` (device profiles,
    rule files): ``file`` is named in each issue, ``prefix`` is prepended to
    key paths.
    """
    return _issues_from(exc, model, prefix, {(): file})


def _issues_from(
    exc: ValidationError, root: type[BaseModel], prefix: Loc, origins: Origins
) -> list[ConfigIssue]:
    # Group by location: a union field fails once per member; one line says
    # "expected X or Y".
    grouped: dict[Loc, list[tuple[str | None, str]]] = {}
    for err in exc.errors():
        node = _locate(root, err["loc"], err["type"] == "extra_forbidden")
        grouped.setdefault(prefix + node.loc, []).append(_describe(err, node))
    issues = []
    for loc, found in grouped.items():
        file, path = _origin(origins, loc), format_key_path(loc)
        typed = [(e, m) for e, m in found if e is not None]
        if len(typed) > 1:
            got = typed[0][1].rsplit(", got ", 1)[-1]
            expected = " or ".join(dict.fromkeys(e for e, _ in typed))
            issues.append(ConfigIssue(file, path, f"expected {expected}, got {got}"))
            found = [(e, m) for e, m in found if e is None]
        for message in dict.fromkeys(m for _, m in found):
            issues.append(ConfigIssue(file, path, message))
    return issues


# --- drivers ---------------------------------------------------------------

def _validate_drivers(
    entries: list[Any], origins: Origins
) -> tuple[list[DriverOptions], list[ConfigIssue]]:
    result: list[DriverOptions] = []
    issues: list[ConfigIssue] = []
    first_index: dict[str, int] = {}
    for i, entry in enumerate(entries):
        loc: Loc = ("drivers", i)
        if not isinstance(entry, dict):
            continue  # reported by the Config model as "expected a table"
        eid = entry.get("id")
        if isinstance(eid, str):
            if eid in first_index:
                j = first_index[eid]
                issues.append(ConfigIssue(
                    _origin(origins, loc + ("id",)), format_key_path(loc + ("id",)),
                    f"duplicate driver id {eid!r}: drivers[{j}] ({_origin(origins, ('drivers', j))}) "
                    f"already uses it; ids must be unique",
                ))
            else:
                first_index[eid] = i
        options_cls, problem = _options_class(entry.get("type"))
        if options_cls is None:
            if problem is not None and "type" not in entry and _origin(origins, loc) != origins.get(()):
                # A drop-in entry meant to update a driver whose id matches none.
                problem += f"; no earlier file defines a driver with id {eid!r} to update"
            if problem is not None:
                issues.append(ConfigIssue(_origin(origins, loc + ("type",)), format_key_path(loc + ("type",)), problem))
            # Still check the keys every driver has, so a bad id is not hidden.
            common = {k: v for k, v in entry.items() if k in DriverOptions.model_fields}
            common["type"] = "unknown"
            try:
                DriverOptions.model_validate(common)
            except ValidationError as exc:
                issues.extend(_issues_from(exc, DriverOptions, loc, origins))
            continue
        data = copy.deepcopy(entry)
        _resolve_paths(options_cls, data, loc, origins)
        try:
            result.append(options_cls.model_validate(data))
        except ValidationError as exc:
            issues.extend(_issues_from(exc, options_cls, loc, origins))
    return result, issues


def _options_class(kind: Any) -> tuple[type[DriverOptions] | None, str | None]:
    available = sorted(available_drivers())
    listed = ", ".join(available) or "none installed"
    if kind is None:
        return None, f"required key missing (a driver type: {listed})"
    if not isinstance(kind, str):
        return None, f"expected a driver type (a string: {listed}), got {_show(kind)}"
    if kind not in available:
        close = difflib.get_close_matches(kind, available, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return None, f"unknown driver type {kind!r} ({hint}available: {listed})"
    try:
        cls = driver_class(kind)
    except Exception as exc:  # a broken driver package must not hide the other issues
        return None, f"driver type {kind!r} cannot be loaded: {type(exc).__name__}: {exc}"
    return cls.Options, None


# --- entry points --------------------------------------------------------

def _choose(path: str | Path | None, environ: Mapping[str, str]) -> tuple[Path, bool]:
    if path is not None and str(path) != "":
        return Path(path), True
    from_env = environ.get(ENV_VAR)
    if from_env:
        return Path(from_env), True
    return DEFAULT_CONFIG_PATH, False


def _inspect(
    path: str | Path | None, environ: Mapping[str, str], raw: dict[str, Any] | None = None,
    every_origin: bool = False,
) -> tuple[LoadedConfig | None, list[ConfigIssue]]:
    """Load and validate; ``raw``, when given, receives the merged document and its origins
    (``check_config`` looks for secret files in a document that does not validate)."""
    main, explicit = _choose(path, environ)
    doc: dict[str, Any] = {}
    origins: Origins = {}
    notice = None
    defaults_only = False
    if main.exists():
        files = [main, *_dropins(main)]
        origins[()] = str(main)
    elif explicit:
        return None, [ConfigIssue(str(main), "", "configuration file not found")]
    else:
        # A fresh box: run on the built-in defaults (plus drop-ins if any).
        defaults_only = True
        files = _dropins(main)
        doc = {"drivers": [dict(d) for d in DEFAULT_DRIVERS]}
        _mark(origins, (), doc, DEFAULTS_LABEL)
        notice = f"no configuration file at {main}: running on built-in defaults (driver 'system' only)"
        if files:
            notice += f", with {len(files)} drop-in file(s) from {main.parent / DROPIN_DIR}"

    issues: list[ConfigIssue] = []
    for file in files:
        data, problems = _read_toml(file)
        issues.extend(problems)
        if data is not None and not issues:
            _merge(doc, data, (), str(file), origins)
    if issues:
        return None, issues  # validating a partial merge would mislead

    _resolve_paths(Config, doc, (), origins)
    if raw is not None:
        raw.update(doc=doc, origins=origins)
    config: Config | None = None
    try:
        config = Config.model_validate(doc)
    except ValidationError as exc:
        issues.extend(_issues_from(exc, Config, (), origins))
    drivers: list[DriverOptions] = []
    raw = doc.get("drivers", [])
    if isinstance(raw, list):
        drivers, problems = _validate_drivers(raw, origins)
        issues.extend(problems)
    if issues or config is None:
        return None, issues
    return LoadedConfig(
        config=config, sources=files, defaults_only=defaults_only, drivers=drivers,
        notice=notice, origins=dict(origins) if every_origin else _pruned(origins),
    ), []


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] = os.environ,
                every_origin: bool = False) -> LoadedConfig:
    """Read, merge and validate the configuration.

    ``path`` wins over ``ZAAS_EDGE_CONFIG`` in ``environ``, which wins over
    ``/etc/zaas-edge/config.toml``. A missing default file means the
    built-in defaults (``defaults_only`` and ``notice`` say so); a missing
    explicit file is an error. Raises ``ConfigError`` carrying every issue.
    Secret files are not read here (see ``check_config``). ``origins`` keeps only where a key's
    file differs from its table's (``LoadedConfig.origin`` answers for every key); with
    ``every_origin`` it holds every key that a file set (``config show`` marks them).
    """
    loaded, issues = _inspect(path, environ, every_origin=every_origin)
    if loaded is None:
        raise ConfigError(issues)
    return loaded


def check_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] = os.environ, secrets: bool = True
) -> list[ConfigIssue]:
    """Every issue ``load_config`` would raise, plus (with ``secrets``) every
    secret file that ``read_secret`` would refuse. Never raises for them."""
    raw: dict[str, Any] = {}
    loaded, issues = _inspect(path, environ, raw)
    if not secrets:
        return issues
    if loaded is not None:
        return check_secret_files(loaded)
    if "doc" not in raw:
        return issues  # unreadable TOML: there is no document to look in
    # Every error at once: the secret files the document names, though it does not validate.
    doc, origins = raw["doc"], raw["origins"]
    origin = lambda loc: _origin(origins, loc)  # noqa: E731
    reported = {i.path for i in issues}
    found = check_declared_secret_files(Config, {k: v for k, v in doc.items() if k != "drivers"}, (), origin)
    entries = doc.get("drivers")
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        options_cls, _ = _options_class(entry.get("type")) if isinstance(entry, dict) else (None, None)
        if options_cls is not None:
            found += check_declared_secret_files(options_cls, entry, ("drivers", i), origin)
    return issues + [i for i in found if i.path not in reported]
