"""Secrets on disk (issue 14): exchange.toml and secrets.toml are read only when private (a
regular file, not a link, owned by this user or root, mode 0600), checked on the file that is
read; no secret reaches a repr or an error message (the journal keeps what a service prints)."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import pytest

from piphone.appliance import config as appliance_config
from piphone.errors import ConfigError
from piphone.exchange import config as exchange_config

from .test_appliance_config import GOOD, SECRET, write

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
STRANGER = 4242  # an ordinary login user's uid, not a system account's


@pytest.fixture
def exchange_toml(tmp_path) -> Path:
    return exchange_config.write_starter(tmp_path / "exchange.toml")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_signing_secret_others_can_read_is_refused(exchange_toml, mode):
    exchange_toml.chmod(mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o} lets others read the secrets"):
        exchange_config.load(exchange_toml)


def test_the_signing_secret_is_not_in_the_repr(exchange_toml):
    cfg = exchange_config.load(exchange_toml)
    assert cfg.api_key_secret and cfg.api_key_secret not in repr(cfg)
    assert cfg.api_key_secret not in str(cfg)


def test_a_signing_secret_of_the_wrong_type_is_not_echoed(exchange_toml):
    text = exchange_toml.read_text()
    line = next(x for x in text.splitlines() if x.startswith("api_key_secret"))
    exchange_toml.write_text(text.replace(line, "api_key_secret = 918273645546372819"))
    with pytest.raises(ConfigError) as info:
        exchange_config.load(exchange_toml)
    message = str(info.value)
    assert "exchange.api_key_secret: must be str, not int" in message, message
    assert "918273645546372819" not in message


@pytest.mark.parametrize("value", ["918273645546372819", "['hunter2hunter2hunter2']",
                                   "{ s = 'hunter2hunter2hunter2' }"])
def test_a_phone_secret_of_the_wrong_type_is_not_echoed(tmp_path, value):
    path = write(tmp_path, GOOD, secrets=f"[account]\napi_key_secret = {value}\n")
    with pytest.raises(ConfigError) as info:
        appliance_config.load(path)
    message = str(info.value)
    assert "account.api_key_secret: must be str" in message, message
    assert "hunter2" not in message and "918273645546372819" not in message


def test_a_symlinked_secrets_file_is_refused(tmp_path):
    path = write(tmp_path, GOOD)
    real = tmp_path / "elsewhere.toml"
    (tmp_path / "secrets.toml").rename(real)
    (tmp_path / "secrets.toml").symlink_to(real)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        appliance_config.load(path)
    assert appliance_config.load(path, secrets_path=real).account.api_key_secret == SECRET


def test_a_symlinked_exchange_config_is_refused(exchange_toml, tmp_path):
    link = tmp_path / "link.toml"
    link.symlink_to(exchange_toml)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        exchange_config.load(link)


def test_a_fifo_planted_as_secrets_neither_hangs_nor_loads(tmp_path):
    path = write(tmp_path, GOOD, secrets=None)
    os.mkfifo(tmp_path / "secrets.toml", 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        appliance_config.load(path)


@needs_root
def test_secrets_owned_by_another_user_are_refused(tmp_path, exchange_toml):
    path = write(tmp_path, GOOD)
    os.chown(tmp_path / "secrets.toml", STRANGER, STRANGER)
    with pytest.raises(ConfigError, match=f"owned by uid {STRANGER}"):
        appliance_config.load(path)
    os.chown(exchange_toml, STRANGER, STRANGER)
    with pytest.raises(ConfigError, match=f"owned by uid {STRANGER}"):
        exchange_config.load(exchange_toml)


@needs_root
def test_root_reads_what_the_service_account_owns(tmp_path):
    """`sudo piphone check` reads /etc/piphone/secrets.toml, owned by the piphone system
    user: a system account's file is trusted by root, an ordinary user's is not."""
    path = write(tmp_path, GOOD)
    os.chown(tmp_path / "secrets.toml", 998, 998)
    assert appliance_config.load(path).account.api_key_secret == SECRET


def test_the_secrets_checked_are_the_secrets_read(tmp_path, monkeypatch):
    """A file swapped between the check and the read is never what gets loaded: the check is
    made on the open file itself."""
    path = write(tmp_path, GOOD)
    secrets = tmp_path / "secrets.toml"
    planted = tmp_path / "planted.toml"
    planted.write_text('[account]\napi_key_secret = "planted-planted-planted-planted"\n')
    planted.chmod(0o644)
    swapped = []

    def after_first_touch(function):
        def touched(file, *args, **kwargs):
            result = function(file, *args, **kwargs)
            if Path(os.fsdecode(file)) == secrets and not swapped and not isinstance(file, int):
                swapped.append(file)
                os.replace(planted, secrets)  # the attacker's move, right after the check
            return result
        return touched

    for module, name in ((os, "stat"), (os, "lstat"), (os, "open"), (io, "open"),
                         (builtins, "open")):
        monkeypatch.setattr(module, name, after_first_touch(getattr(module, name)))
    try:
        loaded = appliance_config.load(path, secrets_path=secrets).account.api_key_secret
    except ConfigError as exc:
        loaded = str(exc)
    monkeypatch.undo()
    assert swapped, "the file was never looked at"
    assert "planted" not in loaded
    assert loaded == SECRET


def test_a_token_on_the_command_line_warns_and_a_token_file_must_be_private(tmp_path,
                                                                             monkeypatch,
                                                                             capsys):
    """`piphone call --token` is visible in ps to every user: it still works, with a warning;
    --token-file reads a private file instead, refused like any secret if others can read it."""
    from piphone import cli
    from piphone.cli import call as call_cli

    placed = []

    async def place_call(token, *args, **kwargs):
        placed.append(token)
        return 0

    monkeypatch.setattr(call_cli, "place_call", place_call)
    call = ["call", "echo", "--url", "ws://127.0.0.1:9/signal", "--headset", "none"]
    assert cli.main([*call, "--token", "a.b.c"]) == 0
    assert "--token is visible to every user" in capsys.readouterr().err
    token = tmp_path / "alice.jwt"
    token.write_text("x.y.z\n")
    token.chmod(0o644)
    assert cli.main([*call, "--token-file", str(token)]) == 2
    assert "lets others read the secrets" in capsys.readouterr().err
    token.chmod(0o600)
    assert cli.main([*call, "--token-file", str(token)]) == 0
    assert "visible" not in capsys.readouterr().err
    assert placed == ["a.b.c", "x.y.z"]
    assert cli.main([*call, "--token-file", str(token), "--token", "a.b.c"]) == 2
    assert cli.main(call) == 2 and "--token-file" in capsys.readouterr().err
