"""[voicemail] in exchange.toml: the starter's values, each bound checked with file, key and
line; the mailboxes' limits on disk (exchange/mailbox.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from piphone.errors import ConfigError
from piphone.exchange import config as exchange_config
from piphone.exchange.mailbox import MIN_SECONDS, RATE, Mailboxes
from piphone.exchange.voicemail_settings import VoicemailSettings


def test_the_starter_turns_voicemail_on_with_its_documented_values(tmp_path, monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    cfg = exchange_config.load(exchange_config.write_starter(tmp_path / "exchange.toml"))
    assert cfg.voicemail == VoicemailSettings(enabled=True,
                                              directory=str(tmp_path / "voicemail"))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))  # under systemd
    cfg = exchange_config.load(tmp_path / "exchange.toml")
    assert cfg.voicemail.directory == str(tmp_path / "state" / "voicemail")


@pytest.mark.parametrize("old, new, expected", [
    ("max_seconds = 120 ", "max_seconds = 0 ", "voicemail.max_seconds: must be 1-600 seconds"),
    ("max_messages = 20 ", "max_messages = 5000 ", "voicemail.max_messages: must be 1-1000"),
    ("max_mailboxes = 64 ", "max_mailboxes = 0 ", "voicemail.max_mailboxes: must be 1-10000"),
    ("max_megabytes = 256 ", "max_megabytes = 0 ", "voicemail.max_megabytes: must be 1-100000"),
    ("ring_timeout = 20 ", "ring_timeout = -3 ", "voicemail.ring_timeout: must be greater"),
    ("enabled = true", 'enabled = "yes"', "voicemail.enabled: must be bool, not str"),
    ('directory = "voicemail"', 'directory = ""', "voicemail.directory: must not be empty"),
    ("when_busy = true ", "when_busy = true\ngreeting = 1 ", "voicemail.greeting: unknown key"),
])
def test_voicemail_errors_name_file_key_and_line(tmp_path, old, new, expected):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = path.read_text()
    assert old in text
    line = text[:text.index(old)].count("\n") + 1 + new.count("\n")
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=rf"{path}, line {line}: {expected}"):
        exchange_config.load(path)


def record(mailboxes: Mailboxes, identity: str, seconds: float) -> None:
    recording = mailboxes.record(identity)
    for _ in range(int(seconds * 50)):
        recording.push(np.full(960, 1000, np.int16))
    mailboxes.keep(identity, recording, "client:alice")


def test_a_mailbox_keeps_what_its_limits_allow(tmp_path):
    mailboxes = Mailboxes(replace(VoicemailSettings(enabled=True), directory=str(tmp_path),
                                  max_seconds=1.0, max_messages=2, max_mailboxes=2))
    record(mailboxes, "bob", 3.0)
    (message,) = mailboxes.messages("bob")
    assert message.seconds == 1.0  # cut at max_seconds
    assert mailboxes.audio_path("bob", message).stat().st_size == 44 + 2 * RATE
    record(mailboxes, "bob", MIN_SECONDS / 2)  # hung up at the beep: nothing kept
    assert mailboxes.counts("bob") == (1, 1)
    record(mailboxes, "bob", 0.6)
    assert mailboxes.counts("bob") == (2, 2) and not mailboxes.can_take("bob")  # full
    assert [p.suffix for p in tmp_path.rglob("*") if p.is_file()].count(".part") == 0
    record(mailboxes, "carol", 0.6)  # a second mailbox
    assert not mailboxes.can_take("dave")  # max_mailboxes
    assert mailboxes.find("bob", "../carol") is None and mailboxes.find("carol",
                                                                        message.sid) is None
    mailboxes.mark_heard("bob", message)
    assert mailboxes.counts("bob") == (2, 1)
    for m in mailboxes.messages("carol"):
        mailboxes.delete("carol", m)
    assert mailboxes.can_take("dave")  # carol's empty mailbox is gone


def test_all_mailboxes_together_keep_within_max_megabytes(tmp_path):
    mailboxes = Mailboxes(replace(VoicemailSettings(enabled=True), directory=str(tmp_path),
                                  max_seconds=20.0, max_megabytes=1))  # 20 s: 640 KB
    assert mailboxes.can_take("bob") and not mailboxes.can_take("bob", recording=1)
    record(mailboxes, "bob", 14.0)  # 448 KB: no room for another at its longest
    assert not mailboxes.can_take("carol")
    mailboxes.delete("bob", mailboxes.messages("bob")[0])
    assert mailboxes.can_take("carol")


def test_a_message_cut_off_by_a_stop_is_cleared_at_the_next_start(tmp_path):
    settings = replace(VoicemailSettings(enabled=True), directory=str(tmp_path))
    recording = Mailboxes(settings).record("bob")
    recording.push(np.full(960, 1000, np.int16))  # the exchange stops here
    assert recording.path.exists()
    Mailboxes(settings)  # the next start
    assert not recording.path.exists() and Mailboxes(settings).messages("bob") == []
