"""The exchange's [limits] (issue 14): the starter documents them, errors name file, key and
line; the counters behind them (exchange/limits.py)."""

from __future__ import annotations

import logging
from dataclasses import fields

import pytest

from piphone.errors import ConfigError
from piphone.exchange import config as exchange_config
from piphone.exchange.limits import PERIOD, OncePerMinute, Window

LIMITS = ("max_sessions", "max_sockets_per_address", "max_unauthenticated_per_address",
          "max_registrations_per_identity", "send_queue", "max_bad_frames", "heartbeat_timeout",
          "feedback_per_minute", "messages_per_minute")


def test_the_starter_lists_every_limit_with_its_default(tmp_path):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = path.read_text()
    cfg = exchange_config.load(path)
    defaults = {f.name: f.default for f in fields(exchange_config.Limits)}
    assert "[limits]" in text
    for key in LIMITS:
        assert f"\n{key} = " in text, key
        assert getattr(cfg.limits, key) == defaults[key], key
    assert cfg.limits.heartbeat_timeout == 15.0  # the SDK's own 15 s


def test_a_config_without_limits_gets_the_defaults(tmp_path):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = path.read_text()
    path.write_text(text[:text.index("[limits]")])
    cfg = exchange_config.load(path)
    assert cfg.limits.max_registrations_per_identity == 10 and cfg.limits.send_queue == 128


@pytest.mark.parametrize("old, new, expected", [
    ("send_queue = 128", "send_queue = 0", r"line \d+: limits.send_queue: must be greater"),
    ("max_sessions = 200", 'max_sessions = "lots"',
     r"line \d+: limits.max_sessions: must be int, not str"),
    ("heartbeat_timeout = 15", "heartbeat_timeout = 5",
     r"line \d+: limits.heartbeat_timeout: must be longer than exchange.heartbeat_interval"),
    ("max_bad_frames = 20", "max_bad_frames = 20\nmax_everything = 1",
     r"line \d+: limits.max_everything: unknown key"),
])
def test_limit_errors_name_file_key_and_line(tmp_path, old, new, expected):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=expected) as info:
        exchange_config.load(path)
    assert str(path) in str(info.value)
    line = int(str(info.value).split("line ")[1].split(":")[0])
    assert path.read_text().splitlines()[line - 1].startswith(new.splitlines()[-1].split()[0])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_once_per_minute_logs_the_first_then_one_line_a_minute_per_key(caplog):
    clock = Clock()
    log_once = OncePerMinute(logging.getLogger("test.limits"), clock=clock)
    with caplog.at_level(logging.WARNING, "test.limits"):
        assert log_once("a", "refused %s", "10.0.0.1")
        for _ in range(500):
            assert not log_once("a", "refused %s", "10.0.0.1")
        assert log_once("b", "refused %s", "10.0.0.2")  # another key logs at once
        clock.now += PERIOD
        assert log_once("a", "refused %s", "10.0.0.1")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 10.0.0.1", "refused 10.0.0.2",
        "refused 10.0.0.1 (and 500 more like it since)"]


def test_once_per_minute_remembers_a_bounded_number_of_keys():
    log_once = OncePerMinute(logging.getLogger("test.limits"), clock=Clock())
    for n in range(OncePerMinute.MAX_KEYS * 3):
        log_once(f"address{n}", "x")
    assert len(log_once._keys) == OncePerMinute.MAX_KEYS


def test_window_allows_limit_events_a_minute():
    clock = Clock()
    window = Window(3, clock=clock)
    assert [window.add() for _ in range(5)] == [True, True, True, False, False]
    clock.now += PERIOD
    assert window.add()
    assert len(window._times) <= 4  # bounded, however many events come
