import random

import pytest

from piphone.errors import ConfigError, PiphoneError
from piphone.exchange import config as exchange_config
from piphone.exchange.routing import DialPlan, Registrations, Route
from piphone.voice.errors import CODES, TwilioError
from piphone.voice.signaling import Backoff

REFERENCE_CODES = [20101, 20104, 20151, 31000, 31005, 31008, 31009, 31201, 31204, 31205,
                   31402, 31208, 31480, 31486, 31603, 53000, 53001, 53405]


@pytest.mark.parametrize("code", REFERENCE_CODES)
def test_every_reference_code_has_a_catalogue_entry(code):
    error = TwilioError(code)
    assert code in CODES
    assert error.code == code and error.name and error.message and error.description
    assert error.explanation and isinstance(error.causes, list)
    assert isinstance(error, PiphoneError)


def test_unknown_code_keeps_its_number_and_message():
    error = TwilioError(39999, "odd", original_error={"x": 1})
    assert error.code == 39999 and error.message == "odd" and error.name == "UnknownError"
    assert error.original_error == {"x": 1}


def test_starter_config_loads_and_is_private(tmp_path):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = exchange_config.load(path)
    assert cfg.account_sid.startswith("AC") and cfg.api_key_sid.startswith("SK")
    assert cfg.lines == {"echo": "echo", "tone": "tone"} and cfg.numbers["100"] == "alice"
    assert cfg.call_log == str(tmp_path / "exchange-calls.db") and cfg.events_port is None
    with pytest.raises(ConfigError, match="already exists"):
        exchange_config.write_starter(path)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("port = 8089", "port = 99999", r"line 7: exchange.port: must be a port number"),
        ("port = 8089", 'port = "8089"', r"line 7: exchange.port: must be int, not str"),
        ("ring_timeout = 60 ", "ring_timeout = -1 ", r"line 8: exchange.ring_timeout: must be"),
        ('echo = "echo"', 'echo = "karaoke"', r"line 29: lines.echo: unknown line 'karaoke'"),
        ("max_calls = 12 ", "max_calls = 12\ncolour = 3 ",
         r"line 10: exchange.colour: unknown key"),
        ("port = 8089", "port = = 8089", r"Invalid value \(at line 7"),
        ('codec_preferences = ["opus", "pcmu"]', 'codec_preferences = ["g729"]',
         r"exchange.codec_preferences: must list some of opus, pcmu"),
    ],
)
def test_config_errors_name_file_key_and_line(tmp_path, old, new, expected):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=expected) as info:
        exchange_config.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_dial_plan(tmp_path):
    cfg = exchange_config.load(exchange_config.write_starter(tmp_path / "x.toml"))
    plan = DialPlan(cfg)
    assert plan.resolve("client:bob") == Route("client", "bob")
    assert plan.resolve("bob") == Route("client", "bob")
    assert plan.resolve("100") == Route("client", "alice")
    assert plan.resolve("echo") == Route("line", "echo")
    assert plan.resolve("+15550000") is None and plan.resolve("") is None
    assert plan.resolve("client:") is None
    assert Route("client", "bob").to == "client:bob"


def test_registrations_keep_order_and_forget():
    regs: Registrations[str] = Registrations()
    regs.add("alice", "s1")
    regs.add("alice", "s2")
    regs.add("alice", "s1")
    assert regs.of("alice") == ["s1", "s2"]
    regs.remove("alice", "s1")
    regs.remove("alice", "s2")
    assert regs.of("alice") == []


def test_backoff_doubles_with_jitter_and_caps():
    backoff = Backoff(first=0.1, cap=1.0, rng=random.Random(4))
    delays = [backoff.next() for _ in range(8)]
    for attempt, delay in enumerate(delays):
        base = min(1.0, 0.1 * 2**attempt)
        assert base * 0.6 <= delay <= base * 1.4
    backoff.reset()
    assert backoff.next() <= 0.14


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("media_timeout = 10 ", "media_timeout = 0 ", r"limits.media_timeout: must be greater"),
        ("max_call_length = 14400 ", "max_call_length = -1 ",
         r"limits.max_call_length: must be >= 0"),
        ("max_calls_per_identity = 4 ", 'max_calls_per_identity = "4" ',
         r"limits.max_calls_per_identity: must be int, not str"),
        ("reinvites_per_minute = 60 ", "reinvites_per_minute = 60\nreinvites = 1 ",
         r"limits.reinvites: unknown key"),
    ],
)
def test_limits_errors_name_file_key_and_line(tmp_path, old, new, expected):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = path.read_text()
    assert old in text
    line = text[:text.index(old)].count("\n") + 1 + new.count("\n")
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=rf"line {line}: {expected}") as info:
        exchange_config.load(path)
    assert str(path) in str(info.value)


def test_the_starter_config_documents_every_limit_with_its_default(tmp_path):
    text = exchange_config.write_starter(tmp_path / "exchange.toml").read_text()
    limits = exchange_config.load(tmp_path / "exchange.toml").limits
    assert limits == exchange_config.Limits()
    section = text[text.index("[limits]"):]
    for name, value in vars(limits).items():
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"\n{name} = {shown} " in section, name
