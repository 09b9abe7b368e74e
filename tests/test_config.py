"""The configuration loader: real files, exact messages, every bad key named."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from zaas_edge.drivers.system import SystemOptions

from zaas_edge import config as config_mod
from zaas_edge.config import (
    DEFAULTS_LABEL,
    ENV_VAR,
    LoadedConfig,
    check_config,
    format_key_path,
    load_config,
    validation_issues,
)
from zaas_edge.driver import ID_PATTERN, available_drivers
from zaas_edge.errors import ConfigError

AVAILABLE = ", ".join(sorted(available_drivers()))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    return [str(i) for i in info.value.issues]


@pytest.fixture
def no_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default path points into tmp_path, where nothing exists yet."""
    default = tmp_path / "etc" / "config.toml"
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", default)
    return default


MINIMAL = """
    [gateway]
    id = "gw-1"
    site = "b12"
    state_dir = "/var/lib/zaas-edge"

    [[drivers]]
    id = "system"
    type = "system"
    interval_s = 5
"""


# --- choosing the file -------------------------------------------------------

def test_minimal_file_loads_with_driver_options(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", MINIMAL)
    loaded = load_config(p, environ={})
    assert isinstance(loaded, LoadedConfig)
    assert loaded.sources == [p]
    assert loaded.defaults_only is False and loaded.notice is None
    assert loaded.config.gateway.id == "gw-1"
    assert loaded.config.store.max_size_mb == 1024  # default filled in
    assert loaded.drivers == [SystemOptions(id="system", type="system", interval_s=5.0)]
    assert isinstance(loaded.drivers[0], SystemOptions)
    assert loaded.config.drivers == [{"id": "system", "type": "system", "interval_s": 5}]


def test_absent_default_file_runs_on_defaults_and_says_so(no_default: Path) -> None:
    loaded = load_config(environ={})
    assert loaded.defaults_only is True
    assert loaded.sources == []
    assert loaded.config.gateway == config_mod.Config().gateway
    assert [(d.id, d.type) for d in loaded.drivers] == [("system", "system")]
    assert loaded.notice is not None and str(no_default) in loaded.notice
    assert "built-in defaults" in loaded.notice
    assert loaded.origin("drivers[0].id") == DEFAULTS_LABEL


def test_absent_default_file_still_takes_drop_ins(no_default: Path) -> None:
    d = write(no_default.parent / "conf.d" / "10-log.toml", '[log]\nlevel = "debug"\n')
    loaded = load_config(environ={})
    assert loaded.defaults_only is True
    assert loaded.sources == [d]
    assert loaded.config.log.level == "debug"
    assert [d.id for d in loaded.drivers] == ["system"]
    assert "1 drop-in" in (loaded.notice or "")


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert issues_of(missing) == [f"{missing}: configuration file not found"]
    assert [str(i) for i in check_config(missing, environ={})] == [f"{missing}: configuration file not found"]


def test_env_var_names_the_file_and_explicit_path_wins(tmp_path: Path, no_default: Path) -> None:
    a = write(tmp_path / "a.toml", '[gateway]\nid = "gw-a"\n')
    b = write(tmp_path / "b" / "b.toml", '[gateway]\nid = "gw-b"\n')
    assert load_config(environ={ENV_VAR: str(a)}).config.gateway.id == "gw-a"
    assert load_config(b, environ={ENV_VAR: str(a)}).config.gateway.id == "gw-b"
    # An empty variable is no choice at all: the (absent) default applies.
    assert load_config(environ={ENV_VAR: ""}).defaults_only is True
    # A variable naming a missing file is an explicit choice: an error.
    with pytest.raises(ConfigError) as info:
        load_config(environ={ENV_VAR: str(tmp_path / "gone.toml")})
    assert str(info.value) == f"{tmp_path / 'gone.toml'}: configuration file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    assert issues_of(tmp_path / "cfg") == [f"{tmp_path / 'cfg'}: is a directory, expected a TOML file"]


# --- messages ------------------------------------------------------------------

CASES = [
    ("[store]\nmax_sise_mb = 100\n", "store.max_sise_mb", "unknown key (did you mean 'max_size_mb'?)"),
    ("[stroe]\nmax_size_mb = 100\n", "stroe", "unknown key (did you mean 'store'?)"),
    ("[clock]\nzzz = 1\n", "clock.zzz", "unknown key (known keys: assume_synced)"),
    ('[log]\nlevel = "verbose"\n', "log.level",
     "expected one of 'debug', 'info', 'notice', 'warning', 'error', got 'verbose'"),
    ('[store]\nmax_size_mb = "abc"\n', "store.max_size_mb", "expected an integer, got 'abc'"),
    ("[store]\nmax_size_mb = 10.5\n", "store.max_size_mb", "expected an integer, got 10.5"),
    ('[runtime]\nstop_timeout_s = "soon"\n', "runtime.stop_timeout_s", "expected a number, got 'soon'"),
    ('[mqtt]\nenabled = "yes please"\n', "mqtt.enabled", "expected true or false, got 'yes please'"),
    ("[mqtt]\nhost = 5\n", "mqtt.host", "expected a string, got 5"),
    ("[store]\nmax_size_mb = 4\n", "store.max_size_mb", "expected a value >= 8, got 4"),
    ("[mqtt]\nport = 70000\n", "mqtt.port", "expected a value <= 65535, got 70000"),
    ("[store]\nretry_interval_s = 0\n", "store.retry_interval_s", "expected a value > 0, got 0"),
    ('[gateway]\nid = "GW 1"\n', "gateway.id", f"expected a string matching {ID_PATTERN}, got 'GW 1'"),
    ('log = "info"\n', "log", "expected a table, got 'info'"),
    ("[drivers]\nid = 'x'\n", "drivers", "expected an array, got a table"),
    ("drivers = [1]\n", "drivers[0]", "expected a table, got 1"),
    ('[gateway]\nstate_dir = 7\n', "gateway.state_dir", "expected a path (a string), got 7"),
    ('[[drivers]]\ntype = "system"\n', "drivers[0].id", "required key missing"),
    ('[[drivers]]\nid = "x"\n', "drivers[0].type", f"required key missing (a driver type: {AVAILABLE})"),
    ('[[drivers]]\nid = "x"\ntype = "sytem"\n', "drivers[0].type",
     f"unknown driver type 'sytem' (did you mean 'system'? available: {AVAILABLE})"),
    ('[[drivers]]\nid = "x"\ntype = 3\n', "drivers[0].type",
     f"expected a driver type (a string: {AVAILABLE}), got 3"),
    ('[[drivers]]\nid = "x"\ntype = "system"\ninterval_s = 0.5\n', "drivers[0].interval_s",
     "expected a value >= 1, got 0.5"),
    ('[[drivers]]\nid = "x"\ntype = "system"\nintreval_s = 5\n', "drivers[0].intreval_s",
     "unknown key (did you mean 'interval_s'?)"),
]


@pytest.mark.parametrize("body,key,message", CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES])
def test_each_kind_of_error_has_an_exact_message(tmp_path: Path, body: str, key: str, message: str) -> None:
    p = write(tmp_path / "config.toml", body)
    assert issues_of(p) == [f"{p}: {key}: {message}"]


def test_unknown_type_still_checks_the_common_keys(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", '[[drivers]]\nid = "Bad Id"\ntype = "nosuch"\nenabled = "maybe"\n')
    assert issues_of(p) == [
        f"{p}: drivers[0].type: unknown driver type 'nosuch' (available: {AVAILABLE})",
        f"{p}: drivers[0].id: expected a string matching {ID_PATTERN}, got 'Bad Id'",
        f"{p}: drivers[0].enabled: expected true or false, got 'maybe'",
    ]


def test_every_bad_key_is_named_across_sections_and_drivers(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", """
        [gateway]
        id = "UPPER"
        [log]
        level = "loud"
        [store]
        max_size_mb = "lots"
        flush_rows = 0
        [mqtt]
        port = 0
        colour = "blue"
        [[drivers]]
        id = "system"
        type = "system"
        interval_s = 0
        [[drivers]]
        id = "other"
        type = "system"
        interval_s = "often"
        [[drivers]]
        id = "system"
        type = "system"
    """)
    issues = check_config(p, environ={})
    assert all(i.file == str(p) for i in issues)
    assert [i.path for i in issues] == [
        "gateway.id", "log.level", "store.max_size_mb", "store.flush_rows", "mqtt.port", "mqtt.colour",
        "drivers[0].interval_s", "drivers[1].interval_s", "drivers[2].id",
    ]
    assert issues[-1].message == (
        f"duplicate driver id 'system': drivers[0] ({p}) already uses it; ids must be unique"
    )
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    assert info.value.issues == issues


def test_int_literal_choices_are_listed(tmp_path: Path) -> None:
    class Serial(BaseModel):
        model_config = ConfigDict(extra="forbid")
        baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400] = 9600
        parity: Literal["N", "E", "O"] = "E"

    with pytest.raises(ValidationError) as info:
        Serial.model_validate({"baudrate": 9601, "parity": "X", "stopbits": 1})
    got = [str(i) for i in validation_issues(info.value, Serial, file="config.toml", prefix=("drivers", 3))]
    assert got == [
        "config.toml: drivers[3].baudrate: expected one of 1200, 2400, 4800, 9600, 19200, 38400, got 9601",
        "config.toml: drivers[3].parity: expected one of 'N', 'E', 'O', got 'X'",
        "config.toml: drivers[3].stopbits: unknown key (known keys: baudrate, parity)",
    ]


def test_union_fields_say_every_accepted_type() -> None:
    class Limit(BaseModel):
        value: int | Literal["auto"] = Field(default="auto")

    with pytest.raises(ValidationError) as info:
        Limit.model_validate({"value": "many"})
    assert [i.message for i in validation_issues(info.value, Limit)] == [
        "expected an integer or one of 'auto', got 'many'"
    ]


def test_toml_syntax_errors_give_line_and_column_in_every_file(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", '[log]\nlevel = \n')
    d1 = write(tmp_path / "conf.d" / "10-a.toml", "[x]\n[x]\n")
    d2 = write(tmp_path / "conf.d" / "20-b.toml", "a = [1,")
    assert issues_of(p) == [
        f"{p}:2:9: invalid TOML: Invalid value",
        f"{d1}:2:3: invalid TOML: Cannot declare ('x',) twice",
        f"{d2}:1:8: invalid TOML: Invalid value (at end of file)",
    ]


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_bytes(b'[gateway]\nid = "\xff"\n')
    assert issues_of(p) == [f"{p}: not UTF-8 text (byte offset 16)"]


# --- drop-ins --------------------------------------------------------------------

def test_drop_ins_merge_in_name_order_and_errors_name_their_file(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", """
        [log]
        level = "info"
        format = "text"
        [store]
        max_size_mb = 100
        [[drivers]]
        id = "system"
        type = "system"
        interval_s = 5
    """)
    # Written out of order: merged by name, not by creation.
    b = write(tmp_path / "conf.d" / "20-b.toml", """
        [log]
        level = "warning"
        [[drivers]]
        id = "system"
        critical = true
    """)
    a = write(tmp_path / "conf.d" / "10-a.toml", """
        [log]
        level = "debug"
        [[drivers]]
        id = "sys2"
        type = "system"
        [[drivers]]
        id = "system"
        interval_s = 30
    """)
    write(tmp_path / "conf.d" / ".hidden.toml", "garbage = [")
    write(tmp_path / "conf.d" / "notes.txt", "garbage = [")
    loaded = load_config(p, environ={})
    assert loaded.sources == [p, a, b]
    assert loaded.config.log.level == "warning"  # 20-b is merged last
    assert loaded.config.log.format == "text"  # tables merge key by key
    assert loaded.config.store.max_size_mb == 100
    assert [(d.id, d.interval_s, d.critical) for d in loaded.drivers] == [
        ("system", 30.0, True), ("sys2", 10.0, False),
    ]
    assert loaded.origin("log.level") == str(b)
    assert loaded.origin("log.format") == str(p)
    assert loaded.origin(("drivers", 0, "interval_s")) == str(a)
    assert loaded.origin("drivers[0].id") == str(p)  # the merge key keeps its origin
    assert loaded.origin("drivers[1].type") == str(a)
    # Held for as long as the daemon runs: only where a key's file differs from its table's.
    assert loaded.origins[()] == str(p) and ("log", "format") not in loaded.origins
    assert ("log", "level") in loaded.origins and ("drivers", 1) in loaded.origins
    every = load_config(p, environ={}, every_origin=True).origins
    assert every[("log", "format")] == str(p) and len(every) > len(loaded.origins)
    assert all(loaded.origin(loc) == label for loc, label in every.items())


def test_error_in_a_drop_in_names_the_drop_in_and_merged_index(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", '[[drivers]]\nid = "system"\ntype = "system"\n[store]\nflush_rows = 0\n')
    d = write(tmp_path / "conf.d" / "20-meters.toml", """
        [[drivers]]
        id = "system"
        interval_s = 0.1
        [[drivers]]
        id = "extra"
        type = "system"
        disk_pth = "/"
    """)
    assert issues_of(p) == [
        f"{p}: store.flush_rows: expected a value >= 1, got 0",
        f"{d}: drivers[0].interval_s: expected a value >= 1, got 0.1",
        f"{d}: drivers[1].disk_pth: unknown key (did you mean 'disk_path'?)",
    ]


def test_duplicate_id_within_one_drop_in_is_reported(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", '[[drivers]]\nid = "system"\ntype = "system"\n')
    d = write(tmp_path / "conf.d" / "10.toml", """
        [[drivers]]
        id = "x"
        type = "system"
        [[drivers]]
        id = "x"
        type = "system"
    """)
    assert issues_of(p) == [
        f"{d}: drivers[2].id: duplicate driver id 'x': drivers[1] ({d}) already uses it; ids must be unique"
    ]


def test_drop_in_replaces_a_value_of_another_type(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", '[control]\nmode = 0o600\n')
    d = write(tmp_path / "conf.d" / "10.toml", '[control]\nmode = "rw"\n')
    assert issues_of(p) == [f"{d}: control.mode: expected an integer, got 'rw'"]


# --- relative paths ---------------------------------------------------------------

def test_relative_paths_resolve_against_the_file_that_set_them(tmp_path: Path) -> None:
    p = write(tmp_path / "etc" / "config.toml", """
        [gateway]
        state_dir = "../state"
        [control]
        socket = "run/ctl.sock"
        [[drivers]]
        id = "system"
        type = "system"
    """)
    write(tmp_path / "etc" / "conf.d" / "10.toml", """
        [gateway]
        runtime_dir = "../../run"
        [[drivers]]
        id = "system"
        disk_path = "data"
    """)
    loaded = load_config(p, environ={})
    assert loaded.config.gateway.state_dir == tmp_path / "state"
    assert loaded.config.gateway.runtime_dir == tmp_path / "run"
    assert loaded.config.control_socket == tmp_path / "etc" / "run" / "ctl.sock"
    assert loaded.drivers[0].disk_path == tmp_path / "etc" / "conf.d" / "data"


def test_relative_path_given_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "cfg" / "config.toml", '[gateway]\nstate_dir = "state"\n')
    monkeypatch.chdir(tmp_path)
    loaded = load_config("cfg/config.toml", environ={})
    assert loaded.sources == [Path("cfg/config.toml")]
    assert loaded.config.gateway.state_dir == tmp_path / "cfg" / "state"


def test_relative_secret_path_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = "correct-horse-battery"
    p = write(tmp_path / "config.toml", f'[mqtt]\npassword_file = "{secret}"\npassword = "{secret}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    assert [str(i) for i in info.value.issues] == [
        f"{p}: mqtt.password_file: expected the absolute path of a file holding the secret "
        "(the value is not shown, in case it is the secret itself)",
        f"{p}: mqtt.password: unknown key (did you mean 'password_file'?)",
    ]
    assert secret not in str(info.value)


def test_secret_named_values_are_masked_in_messages() -> None:
    class Opts(BaseModel):
        api_token: int = 0

    with pytest.raises(ValidationError) as info:
        Opts.model_validate({"api_token": "tok-abcdef"})
    [issue] = validation_issues(info.value, Opts)
    assert issue.message == "expected an integer, got '***'"
    assert "tok-abcdef" not in str(issue)


# --- check_config -----------------------------------------------------------------

def test_check_config_never_raises_and_includes_secret_files(tmp_path: Path) -> None:
    pw = tmp_path / "mqtt.pass"
    pw.write_text("s3cret\n")
    pw.chmod(0o644)
    p = write(tmp_path / "config.toml", f'[mqtt]\npassword_file = "{pw}"\n')
    assert [str(i) for i in check_config(p, environ={})] == [
        f"{p}: mqtt.password_file: secret file {pw} has mode 0644, readable or writable by group or others: "
        f"run chmod 600 {pw}"
    ]
    assert check_config(p, environ={}, secrets=False) == []
    pw.chmod(0o600)
    assert check_config(p, environ={}) == []
    # load_config does not read secrets: a 0644 file is the reader's business.
    pw.chmod(0o644)
    assert load_config(p, environ={}).config.mqtt.password_file == pw


def test_check_config_reports_syntax_errors_as_issues(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", "[log\n")
    issues = check_config(p, environ={})
    assert len(issues) == 1 and issues[0].file.startswith(f"{p}:1:")
    assert "invalid TOML" in issues[0].message


def test_format_key_path() -> None:
    assert format_key_path(("drivers", 2, "port")) == "drivers[2].port"
    assert format_key_path(("store", "max_size_mb")) == "store.max_size_mb"
    assert format_key_path(("log", "a key")) == 'log."a key"'


def test_loaded_config_is_frozen(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path / "c.toml", MINIMAL), environ={})
    with pytest.raises(AttributeError):
        loaded.defaults_only = True  # type: ignore[misc]
    assert loaded.defaults_only is False


def test_drop_in_update_of_an_unknown_id_says_so(tmp_path: Path) -> None:
    p = write(tmp_path / "config.toml", '[[drivers]]\nid = "system"\ntype = "system"\n')
    d = write(tmp_path / "conf.d" / "10.toml", '[[drivers]]\nid = "sytsem"\ninterval_s = 3\n')
    assert issues_of(p) == [
        f"{d}: drivers[1].type: required key missing (a driver type: {AVAILABLE}); "
        "no earlier file defines a driver with id 'sytsem' to update"
    ]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_bytes(b'\xef\xbb\xbf[log]\nlevel = "debug"\n')
    assert load_config(p, environ={}).config.log.level == "debug"
