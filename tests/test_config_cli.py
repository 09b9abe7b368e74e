"""``zaas-edge config check|show``: exit codes, output, and secrets kept out of it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import zaas_edge.cli.config_cmd  # noqa: F401  (registers the group on cli)
from zaas_edge import config as config_mod
from zaas_edge.cli import cli
from zaas_edge.config import load_config
from zaas_edge.errors import ConfigError
from zaas_edge.secrets import redacted

SECRET = "hunter2-Zq9-not-for-logs"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def good(tmp_path: Path) -> Path:
    pw = tmp_path / "mqtt.pass"
    pw.write_text(SECRET + "\n")
    pw.chmod(0o600)
    p = write(tmp_path / "config.toml", f"""
        [gateway]
        id = "gw-cli"
        state_dir = "state"
        [mqtt]
        username = "edge"
        password_file = "{pw}"
        [[drivers]]
        id = "system"
        type = "system"
    """)
    write(tmp_path / "conf.d" / "10-more.toml", """
        [[drivers]]
        id = "system"
        interval_s = 3
        [[drivers]]
        id = "sys2"
        type = "system"
    """)
    return p


def test_check_ok(good: Path) -> None:
    code, out, _ = run("config", "check", str(good))
    assert (code, out) == (0, f"{good}: ok (2 drivers, 1 drop-in)\n")
    # FILE defaults to the global --config.
    code, out, _ = run("--config", str(good), "config", "check")
    assert (code, out) == (0, f"{good}: ok (2 drivers, 1 drop-in)\n")


def test_check_on_built_in_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    monkeypatch.delenv("ZAAS_EDGE_CONFIG", raising=False)
    code, out, err = run("config", "check")
    assert (code, out) == (0, "built-in defaults: ok (1 driver)\n")
    assert "running on built-in defaults" in err


def test_check_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", """
        [store]
        max_size_mb = "lots"
        [[drivers]]
        id = "system"
        type = "system"
        interval_s = 0.1
    """)
    code, out, err = run("config", "check", str(p))
    assert code == 2
    assert out.splitlines() == [
        f"{p}: store.max_size_mb: expected an integer, got 'lots'",
        f"{p}: drivers[0].interval_s: expected a value >= 1, got 0.1",
    ]
    assert err == "zaas-edge: configuration has 2 problems\n"


def test_check_refuses_a_loose_secret_file_and_never_prints_it(good: Path) -> None:
    pw = good.parent / "mqtt.pass"
    pw.chmod(0o640)
    code, out, err = run("config", "check", str(good))
    assert code == 2
    assert out == (
        f"{good}: mqtt.password_file: secret file {pw} has mode 0640, readable or writable by group or others: "
        f"run chmod 600 {pw}\n"
    )
    assert SECRET not in out + err


def test_a_loose_secret_file_is_reported_with_the_other_errors_at_once(good: Path) -> None:
    """One run of `config check` gives every problem: a loose secret file is not held back until the
    rest of the file validates."""
    pw = good.parent / "mqtt.pass"
    pw.chmod(0o644)
    good.write_text(good.read_text() + '\n[store]\nmax_size_mb = "lots"\n')
    code, out, err = run("config", "check", str(good))
    assert code == 2
    assert out.splitlines() == [
        f"{good}: store.max_size_mb: expected an integer, got 'lots'",
        f"{good}: mqtt.password_file: secret file {pw} has mode 0644, readable or writable by group or others: "
        f"run chmod 600 {pw}",
    ]
    assert SECRET not in out + err


def test_secret_typed_into_the_config_never_reaches_the_output(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", f"""
        [mqtt]
        password = "{SECRET}"
        password_file = "{SECRET}"
        [[drivers]]
        id = "system"
        type = "system"
        token = "{SECRET}"
    """)
    for args in (["config", "check", str(p)], ["--config", str(p), "config", "show"]):
        code, out, err = run(*args)
        assert code == 2
        assert len(out.splitlines()) == 3
        assert SECRET not in out + err


def test_missing_explicit_file_exits_2(tmp_path: Path) -> None:
    code, out, _ = run("config", "check", str(tmp_path / "none.toml"))
    assert (code, out) == (2, f"{tmp_path / 'none.toml'}: configuration file not found\n")


def test_show_lists_sources_and_redacts(good: Path) -> None:
    code, out, _ = run("--config", str(good), "config", "show")
    assert code == 0
    assert SECRET not in out
    lines = out.splitlines()
    assert lines[1:4] == [
        "# Files read, in merge order:",
        f"#   {good}",
        f"#   {good.parent / 'conf.d' / '10-more.toml'}",
    ]
    assert f'password_file = "{good.parent / "mqtt.pass"}"' in lines
    assert f"interval_s = 3.0  # from {good.parent / 'conf.d' / '10-more.toml'}" in lines
    assert "mode = 0o660" in lines
    assert "# socket is not set" in lines
    # What people read is TOML that loads back to the same values.
    parsed = tomllib.loads(out)
    expected = redacted(load_config(good, environ={}))

    def drop_none(v):  # TOML has no null: unset keys are comments
        if isinstance(v, dict):
            return {k: drop_none(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [drop_none(x) for x in v]
        return v

    assert parsed == drop_none(expected)
    assert parsed["gateway"]["state_dir"] == str(good.parent / "state")


def test_show_json(good: Path) -> None:
    code, out, _ = run("--config", str(good), "config", "show", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["sources"] == [str(good), str(good.parent / "conf.d" / "10-more.toml")]
    assert data["defaults_only"] is False and data["notice"] is None
    assert data["config"]["mqtt"]["password_file"] == str(good.parent / "mqtt.pass")
    assert [d["id"] for d in data["config"]["drivers"]] == ["system", "sys2"]
    assert data["config"]["control"]["socket"] is None
    assert SECRET not in out


def test_show_broken_exits_2(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", "[log]\nlevel = 'loud'\n")
    code, out, _ = run("--config", str(p), "config", "show")
    assert code == 2
    assert out == f"{p}: log.level: expected one of 'debug', 'info', 'notice', 'warning', 'error', got 'loud'\n"


def test_installed_command_exits_2_without_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "zaas-edge"
    if not exe.exists():
        pytest.skip(f"{exe} not installed (pip install -e .)")
    write(tmp_path / "broken.toml", "[store]\nmax_size_mb = 'lots'\n[gateway]\nid = 'Bad'\n")
    proc = subprocess.run(
        [str(exe), "config", "check", "broken.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout.splitlines() == [
        "broken.toml: gateway.id: expected a string matching ^[a-z0-9][a-z0-9_.-]{0,62}$, got 'Bad'",
        "broken.toml: store.max_size_mb: expected an integer, got 'lots'",
    ]
    assert "Traceback" not in proc.stdout + proc.stderr


DEEP = {
    "arrays": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "inline_tables": "x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n",
    "dotted_header": "[" + ".".join(["a"] * 3000) + "]\n",
    "just_too_deep": "[store]\nx = " + "[" * 40 + "]" * 40 + "\n",
}


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_deeply_nested_toml_is_a_configuration_error(tmp_path: Path, kind: str) -> None:
    p = write(tmp_path / "config.toml", DEEP[kind])
    code, out, _ = run("config", "check", str(p))
    assert code == 2
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{p}: ") and "nested too deeply" in lines[0]
    with pytest.raises(ConfigError):
        load_config(p)


def test_deeply_nested_dropin_is_a_configuration_error(good: Path) -> None:
    write(good.parent / "conf.d" / "20-deep.toml", DEEP["dotted_header"])
    code, out, _ = run("config", "check", str(good))
    assert code == 2 and "20-deep.toml: a.a.a.a ...: nested too deeply" in out


def test_nesting_a_configuration_uses_is_accepted(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", "[store]\nx = " + "[" * 20 + "]" * 20 + "\n")
    _, out, _ = run("config", "check", str(p))
    assert "nested too deeply" not in out and "store.x: unknown key" in out


@pytest.mark.parametrize("command", [["config", "check", "deep.toml"], ["-c", "deep.toml", "run"]])
def test_installed_command_refuses_deep_toml_in_one_line(tmp_path: Path, command: list[str]) -> None:
    exe = Path(sys.executable).parent / "zaas-edge"
    if not exe.exists():
        pytest.skip(f"{exe} not installed (pip install -e .)")
    write(tmp_path / "deep.toml", DEEP["arrays"])
    proc = subprocess.run([str(exe), *command], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr and "internal error" not in proc.stderr
    assert [line for line in (proc.stdout + proc.stderr).splitlines() if "nested too deeply" in line] != []
    if command[-1] == "run":
        assert len(proc.stderr.splitlines()) == 1
