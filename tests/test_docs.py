"""Every CLI command has help and is documented in the README (the front door stays true)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from zaas_edge.cli import cli
from zaas_edge.cli.group import register

ROOT = Path(__file__).resolve().parent.parent


def _commands(group: click.Group, prefix: str = "zaas-edge") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, path))
    return out


register()
COMMANDS = _commands(cli)


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_command_is_documented_in_readme(path: str, cmd: click.Command) -> None:
    readme = (ROOT / "README.md").read_text()
    assert path in readme, f"README.md does not mention '{path}'"
    assert (cmd.help or "").strip(), f"'{path}' has no --help text"


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_the_daemon_loads_only_the_commands_it_needs() -> None:
    """``run`` must not import every driver's CLI: that memory stays resident for the daemon's life."""
    import subprocess
    import sys

    code = ("import sys; from zaas_edge.cli import cli; from zaas_edge.cli.group import register; "
            "register(['-c', 'x.toml', 'run']); "
            "print(sorted(cli.commands)); print('zaas_edge.drivers.modbus.cli' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert "run" in out[0] and "scan" not in out[0]
    assert out[1] == "False"


def test_the_daemon_starts_without_click() -> None:
    """``zaas-edge [-c FILE] run`` goes straight to the daemon: click and the command modules would
    stay in its memory for its whole life. The daemon is stood in for by one that reports what is loaded."""
    import subprocess
    import sys

    code = ("import sys, zaas_edge.daemon as d; "
            "d.run_daemon = lambda path: print(path, 'click' in sys.modules, "
            "any(m.startswith('zaas_edge.cli.') for m in sys.modules)) or 7; "
            "from zaas_edge.cli import main; main(sys.argv[1:])")
    for args, path in ((["-c", "x.toml", "run"], "x.toml"), (["--config=y.toml", "run"], "y.toml"), (["run"], "None")):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert done.stdout.split() == [path, "False", "False"], done.stderr
        assert done.returncode == 7


def test_only_the_daemon_alone_skips_click() -> None:
    from zaas_edge.cli import daemon_invocation

    assert daemon_invocation(["-c", "a.toml", "run"]) == (True, "a.toml")
    assert daemon_invocation(["run"]) == (True, None)
    assert daemon_invocation(["run", "--help"])[0] is False
    assert daemon_invocation(["-c", "a.toml", "status"])[0] is False
    assert daemon_invocation(["run", "-c", "a.toml"])[0] is False  # click says what is wrong
    assert daemon_invocation([])[0] is False


def test_the_load_shedding_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """The README's worked example of [shedding] loads as it is written."""
    from zaas_edge.config import load_config

    text = (ROOT / "README.md").read_text()
    at = text.index("### A worked example")
    start = text.index("```toml\n", at) + len("```toml\n")
    block = text[start:text.index("```", start)]
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n\n{block}')
    shedding = load_config(cfg, environ={}).config.shedding
    assert shedding.enabled and [ld.id for ld in shedding.loads] == ["car", "water-heater", "office-heaters"]
    assert shedding.limit("site").tariff[0].limit_w == 9000


def test_the_scenario_example_runs_as_the_readme_says() -> None:
    """The README's scenario file parses, and its run sheds the water heater without a trip."""
    from zaas_edge.rules.scenario import parse_scenario
    from zaas_edge.rules.simulate import simulate

    text = (ROOT / "README.md").read_text()
    start = text.index('```toml\nname = "Linky at 1.5 x PCOUP"') + len("```toml\n")
    scenario, base = parse_scenario(text[start:text.index("```", start)], "README.md")
    figures = simulate(scenario, base).figures
    assert figures.trips == 0 and figures.sheds >= 1


def test_the_alarms_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """The README's [alarms] example loads as it is written."""
    from zaas_edge.config import load_config

    text = (ROOT / "README.md").read_text()
    at = text.index("## Alarms\n")
    start = text.index("```toml\n", at) + len("```toml\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[gateway]\nid = "gw"\nstate_dir = "{tmp_path}"\n\n{text[start:text.index("```", start)]}')
    alarms = load_config(cfg, environ={}).config.alarms
    assert alarms.enabled and alarms.rules[0].id == "freezer-warm"
