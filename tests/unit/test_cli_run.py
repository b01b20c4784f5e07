"""`piphone run` picks what to run: the appliance with a config, else a demo that suits where
it runs (the terminal appliance on a terminal, the echo call in a pipe or a script)."""

from __future__ import annotations

import io

import pytest

from piphone import cli, paths
from piphone.appliance import service
from piphone.cli import demo
from piphone.cli import run as cli_run


class Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def ran(monkeypatch, tmp_path):
    """Records which of the three ``piphone run`` started instead of starting it."""
    chosen: list[str] = []

    async def fake_demo(**_):
        chosen.append("terminal")
        return 0

    async def fake_echo(_duration):
        chosen.append("echo")
        return 0

    def fake_service(path):
        chosen.append(f"service {path}")
        return 0

    monkeypatch.setattr(demo, "run", fake_demo)
    monkeypatch.setattr(cli_run, "run_demo", fake_echo)
    monkeypatch.setattr(service, "main", fake_service)
    monkeypatch.setattr(paths, "CONFIG", tmp_path / "absent.toml")

    def run(*argv: str, tty: bool) -> str:
        monkeypatch.setattr("sys.stdin", Terminal(tty))
        monkeypatch.setattr("sys.stdout", Terminal(tty))
        assert cli.main(["run", *argv]) == 0
        return chosen.pop()

    return run


def test_no_config_on_a_terminal_is_the_appliance_demo(ran):
    assert ran(tty=True) == "terminal"


def test_no_config_in_a_pipe_or_with_echo_is_the_echo_call(ran):
    assert ran(tty=False) == "echo"
    assert ran("--echo", tty=True) == "echo"
    assert ran("--terminal", tty=False) == "terminal"


def test_a_config_is_the_appliance(ran, tmp_path, monkeypatch):
    config = tmp_path / "piphone.toml"
    assert ran("--config", str(config), tty=True) == f"service {config}"
    installed = tmp_path / "installed.toml"
    installed.write_text("")
    monkeypatch.setattr(paths, "CONFIG", installed)
    assert ran(tty=False) == f"service {installed}"
    assert ran("--terminal", tty=True) == "terminal"  # the demo never touches the phone's config
