"""Secret files: mode checks, clear refusals, generic discovery, redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from zaas_edge.config import LoadedConfig
from zaas_edge.config_model import Config, MqttSection, SecretFile
from zaas_edge.driver import DriverOptions
from zaas_edge.errors import ConfigError
from zaas_edge.secrets import (
    REDACTED,
    check_secret_files,
    is_secret_file_field,
    is_secret_name,
    read_secret,
    redacted,
    secret_file_fields,
)

SECRET = "s3cr3t-Value-42"


def secret_file(tmp_path: Path, mode: int, content: str = SECRET + "\n", name: str = "pw") -> Path:
    p = tmp_path / name
    p.write_text(content)
    p.chmod(mode)
    return p


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        read_secret(path)
    text = str(info.value)
    assert SECRET not in text
    return text


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_read_and_newline_stripped(tmp_path: Path, mode: int) -> None:
    assert read_secret(secret_file(tmp_path, mode)) == SECRET


def test_only_one_trailing_newline_is_stripped(tmp_path: Path) -> None:
    assert read_secret(secret_file(tmp_path, 0o600, "a b \r\n")) == "a b "
    assert read_secret(secret_file(tmp_path, 0o600, "x\n\n", "two")) == "x\n"
    assert read_secret(str(secret_file(tmp_path, 0o600, "plain", "str"))) == "plain"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_group_or_other_access_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    p = secret_file(tmp_path, mode)
    assert refusal(p) == (
        f"{p}: secret file {p} has mode {mode:04o}, readable or writable by group or others: run chmod 600 {p}"
    )


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "absent"
    assert refusal(p) == (
        f"{p}: secret file {p} does not exist: create it with the secret on one line, then chmod 600 {p}"
    )


def test_directory_fifo_and_device_are_refused(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    assert refusal(d) == f"{d}: secret file {d} is a directory, expected a regular file"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    # Returns at once (no writer needed): the file type is checked before reading.
    assert refusal(fifo) == (
        f"{fifo}: secret file {fifo} is not a regular file (a device, FIFO or socket): point the key at a plain file"
    )
    assert "not a regular file" in refusal(Path("/dev/null"))


def test_symlink_to_a_private_file_is_followed(tmp_path: Path) -> None:
    target = secret_file(tmp_path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert read_secret(link) == SECRET


def test_empty_and_binary_files_are_refused_without_their_bytes(tmp_path: Path) -> None:
    empty = secret_file(tmp_path, 0o600, "\n", "empty")
    assert refusal(empty) == f"{empty}: secret file {empty} is empty"
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xfe\xedsecret")
    binary.chmod(0o600)
    text = refusal(binary)
    assert text == f"{binary}: secret file {binary} is not UTF-8 text"
    assert "fe" not in text.lower().replace(str(binary).lower(), "")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = secret_file(tmp_path, 0o600, "x" * 70_000, "big")
    assert refusal(big) == f"{big}: secret file {big} is 70000 bytes, more than 65536: is this the right file?"


# --- finding secret fields -------------------------------------------------------------

class Nested(BaseModel):
    token_file: SecretFile | None = None
    note: str = ""


class Outer(BaseModel):
    inner: Nested = Nested()
    items: list[Nested] = []
    key_file: SecretFile


class TokenDriverOptions(DriverOptions):
    api_token: str = ""
    app_key: str | None = None
    token_file: SecretFile | None = None
    cache_path: Path | None = None
    registers: dict[str, dict[str, str]] = {}


def test_secret_file_fields_are_found_by_annotation() -> None:
    assert is_secret_file_field(MqttSection.model_fields["password_file"])
    assert not is_secret_file_field(MqttSection.model_fields["username"])
    model = Outer(
        key_file=Path("/k"), inner=Nested(token_file=Path("/a")), items=[Nested(), Nested(token_file=Path("/b"))]
    )
    assert list(secret_file_fields(model)) == [
        (("inner", "token_file"), Path("/a")),
        (("items", 1, "token_file"), Path("/b")),
        (("key_file",), Path("/k")),
    ]


def test_check_secret_files_walks_sections_and_drivers(tmp_path: Path) -> None:
    good = secret_file(tmp_path, 0o600, name="good")
    loose = secret_file(tmp_path, 0o640, name="loose")
    loaded = LoadedConfig(
        config=Config(mqtt=MqttSection(password_file=loose)),
        sources=[tmp_path / "config.toml"],
        defaults_only=False,
        drivers=[
            TokenDriverOptions(id="a", type="t", token_file=good),
            TokenDriverOptions(id="b", type="t", token_file=tmp_path / "gone"),
        ],
        origins={(): "config.toml", ("drivers", 1): "conf.d/10.toml"},
    )
    issues = check_secret_files(loaded)
    assert [(i.file, i.path) for i in issues] == [
        ("config.toml", "mqtt.password_file"),
        ("conf.d/10.toml", "drivers[1].token_file"),
    ]
    assert issues[0].message.startswith(f"secret file {loose} has mode 0640")
    assert issues[1].message.startswith(f"secret file {tmp_path / 'gone'} does not exist")
    # A bare model works too.
    assert [i.path for i in check_secret_files(MqttSection(password_file=loose))] == ["password_file"]
    assert check_secret_files(MqttSection(password_file=good)) == []


@pytest.mark.parametrize("name,secret", [
    ("password", True), ("api_token", True), ("app_key", True), ("nwkskey", True), ("client_secret", True),
    ("mqtt_password", True), ("psk", True),
    ("password_file", False), ("key_path", False), ("cert_dir", False), ("username", False),
    ("tokens_per_s", False), ("keepalive", False), ("relay_pin", False), ("host", False),
])
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_redacted_masks_values_and_shows_paths(tmp_path: Path) -> None:
    pw = secret_file(tmp_path, 0o600)
    loaded = LoadedConfig(
        config=Config(mqtt=MqttSection(password_file=pw, username="edge")),
        sources=[],
        defaults_only=False,
        drivers=[TokenDriverOptions(
            id="lora", type="t", api_token=SECRET, app_key=None, token_file=pw, cache_path=tmp_path,
            registers={"meter": {"password": SECRET, "unit": "kWh"}},
        )],
    )
    data = redacted(loaded)
    mqtt = {k: data["mqtt"][k] for k in ("enabled", "host", "port", "username", "password_file")}
    assert mqtt == {
        "enabled": False, "host": "127.0.0.1", "port": 1883, "username": "edge", "password_file": str(pw),
    }
    assert data["drivers"] == [{
        "id": "lora", "type": "t", "enabled": True, "critical": False,
        "api_token": REDACTED, "app_key": None, "token_file": str(pw), "cache_path": str(tmp_path),
        "registers": {"meter": {"password": REDACTED, "unit": "kWh"}},
    }]
    assert data["gateway"]["state_dir"] == "/var/lib/zaas-edge"
    assert SECRET not in repr(data)


def test_secret_paths_cover_sections_and_drivers(tmp_path: Path) -> None:
    from zaas_edge import config

    loaded = LoadedConfig(
        config=Config(mqtt=MqttSection(password_file=Path("/s/mqtt"))),
        sources=[], defaults_only=False,
        drivers=[TokenDriverOptions(id="a", type="t", token_file=Path("/s/a")), TokenDriverOptions(id="b", type="t")],
    )
    assert config.secret_paths(loaded) == [Path("/s/mqtt"), Path("/s/a")]
    assert config.secret_paths(loaded.config) == [Path("/s/mqtt")]
    assert config.redacted is redacted
