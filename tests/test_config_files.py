"""The shipped configuration files load, and example.toml documents every key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel
from zaas_edge.drivers.system import SystemOptions

from zaas_edge.config import check_config, load_config
from zaas_edge.config_model import Config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example.toml"
DEMO = ROOT / "config" / "demo.toml"

# "# key = value" lines show a setting and its default; other comments are prose.
SETTING = re.compile(r"^#\s?([A-Za-z_][A-Za-z0-9_]*\s*=.*)$")


def uncommented(text: str) -> tuple[str, set[tuple[str, str]]]:
    """The example with every commented setting switched on, and which ones were."""
    out, switched, section = [], set(), ""
    for line in text.splitlines():
        header = re.match(r"^\[+([^\]]+)\]+", line)
        if header:
            section = header.group(1)
        m = SETTING.match(line)
        if m:
            out.append(m.group(1))
            switched.add((section, m.group(1).split("=")[0].strip()))
        else:
            out.append(line)
    return "\n".join(out) + "\n", switched


def sections() -> dict[str, type[BaseModel]]:
    return {
        name: f.annotation for name, f in Config.model_fields.items()
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
    }


@pytest.mark.parametrize("path", [EXAMPLE, DEMO], ids=["example", "demo"])
def test_shipped_files_load_without_issues(path: Path) -> None:
    assert check_config(path, environ={}) == []
    loaded = load_config(path, environ={})
    assert loaded.sources[0] == path
    assert [d.type for d in loaded.drivers] == ["system"]


def test_demo_settings_and_paths_relative_to_the_file() -> None:
    loaded = load_config(DEMO, environ={})
    c = loaded.config
    assert (c.gateway.id, c.gateway.site, c.log.level) == ("gw-demo", "demo-park", "info")
    assert c.gateway.state_dir == ROOT / ".demo" / "state"
    assert c.gateway.runtime_dir == ROOT / ".demo" / "run"
    assert c.control_socket == ROOT / ".demo" / "run" / "control.sock"
    assert c.clock.assume_synced is None
    assert loaded.drivers[0].interval_s == 2.0


def test_example_documents_every_key_of_every_section() -> None:
    text, _ = uncommented(EXAMPLE.read_text())
    doc = tomllib.loads(text)
    for name, model in sections().items():
        assert name in doc, f"example.toml has no [{name}] section"
        missing = set(model.model_fields) - set(doc[name])
        assert not missing, f"example.toml does not document {name}.{sorted(missing)}"
        extra = set(doc[name]) - set(model.model_fields)
        assert not extra, f"example.toml documents unknown keys {name}.{sorted(extra)}"
    assert set(doc) == set(sections()) | {"drivers"}
    [system] = doc["drivers"]
    assert set(system) == set(SystemOptions.model_fields)


def test_example_shows_the_real_defaults() -> None:
    text, switched = uncommented(EXAMPLE.read_text())
    doc = tomllib.loads(text)
    models = {**sections(), "drivers": SystemOptions}
    checked = 0
    for section, key in switched:
        field = models[section].model_fields[key]
        if field.default is None:
            continue  # unset by default: the example shows a typical value
        value = doc[section][0][key] if section == "drivers" else doc[section][key]
        default = field.default
        assert (str(value) if isinstance(default, Path) else value) == (
            str(default) if isinstance(default, Path) else default
        ), f"example.toml shows {section}.{key} = {value!r}, the default is {default!r}"
        checked += 1
    assert checked >= 20


def test_example_with_every_setting_switched_on_is_valid(tmp_path: Path) -> None:
    text, _ = uncommented(EXAMPLE.read_text())
    p = tmp_path / "config.toml"
    p.write_text(text)
    loaded = load_config(p, environ={})
    assert loaded.config.mqtt.password_file == Path("/etc/zaas-edge/mqtt.password")
    assert loaded.config.clock.assume_synced is True
