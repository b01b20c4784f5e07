"""twilio_setup's parts that need no Twilio: the Function's call routing (run in Node, as
Twilio's runtime runs it), the names it gives, the config files it edits, the credentials."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from piphone.twilio_setup import files, function
from piphone.twilio_setup.rest import Credentials, SetupError, read_credentials

ROOT = Path(__file__).resolve().parents[2]
AC = "AC" + "0" * 32

# Twilio's runtime gives a Function the global Twilio (the `twilio` npm package). This stands
# in for the part of twilio.twiml.VoiceResponse the Function uses, recording what it is told.
RUNNER = """
class Dial {
  constructor(attrs) { this.attrs = attrs; this.nouns = []; }
  client(name) { this.nouns.push({ client: name }); }
  number(number) { this.nouns.push({ number: number }); }
}
class VoiceResponse {
  constructor() { this.verbs = []; }
  dial(attrs) { const d = new Dial(attrs || {}); this.verbs.push({ dial: d }); return d; }
  say(text) { this.verbs.push({ say: text }); }
  echo() { this.verbs.push({ echo: true }); }
  record(attrs) { this.verbs.push({ record: attrs }); }
  hangup() { this.verbs.push({ hangup: true }); }
}
globalThis.Twilio = { twiml: { VoiceResponse } };
const fn = require(process.argv[2]);
const out = [];
for (const event of JSON.parse(process.argv[3])) {
  fn.handler({}, event, (err, twiml) => out.push(err ? { error: String(err) } : twiml.verbs));
}
console.log(JSON.stringify(out));
"""


def run_function(tmp_path: Path, code: str, events: list[dict]) -> list:
    node = shutil.which("node")
    assert node, "node is needed (scripts/install.sh --test installs it)"
    (tmp_path / "call.js").write_text(code)
    (tmp_path / "runner.js").write_text(RUNNER)
    done = subprocess.run([node, str(tmp_path / "runner.js"), str(tmp_path / "call.js"),
                           json.dumps(events)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def dial(nouns: list[dict], **attrs) -> list[dict]:
    return [{"dial": {"attrs": {"answerOnBridge": True, **attrs}, "nouns": nouns}}]


RINGS = {"timeout": function.VOICEMAIL_AFTER, "action": "/call"}  # then voicemail


def test_the_function_rings_the_phone_and_dials_what_it_calls(tmp_path):
    phone = "client:alice"
    events = [
        {"From": "+15557654321", "To": "+15551230001"},  # a call to the number
        {"From": phone, "To": "+15557654321"},
        {"From": phone, "To": "0044201234567"},  # a keypad has no +
        {"From": phone, "To": "5557654321"},  # as Twilio reads it (a US number)
        {"From": phone, "To": "client:bob"},
        {"From": phone, "To": "bob.smith"},
        {"From": phone, "To": "12#"},
        {"From": phone, "To": "<Play>http://x</Play>"},
        {"From": "client:mallory", "To": "+15557654321"},  # not this phone: it rings it
        {"From": phone},  # the SDK's preflight test call names no one: it hears itself
        {"From": phone, "To": " "},
        {"From": "client:mallory"},  # not this phone: it rings it
    ]
    out = run_function(tmp_path, function.function_code("alice", "+15551230001"), events)
    caller_id = "+15551230001"
    assert out == [
        dial([{"client": "alice"}], **RINGS),
        dial([{"number": "+15557654321"}], callerId=caller_id),
        dial([{"number": "+44201234567"}], callerId=caller_id),
        dial([{"number": "5557654321"}], callerId=caller_id),
        dial([{"client": "bob"}]),
        dial([{"client": "bob.smith"}]),
        [{"say": "The number 12# cannot be dialled."}],
        [{"say": "The number <Play>http://x</Play> cannot be dialled."}],
        dial([{"client": "alice"}], **RINGS),
        [{"echo": True}],
        [{"echo": True}],
        dial([{"client": "alice"}], **RINGS),
    ]
    out = run_function(tmp_path, function.function_code("alice", None), [
        {"From": phone, "To": "+15557654321"}, {"From": phone, "To": "client:bob"}])
    assert out == [[{"say": "This phone has no number to call out from."}],
                   dial([{"client": "bob"}])]


def test_an_unanswered_call_to_the_number_is_recorded(tmp_path):
    events = [
        {"From": "+15557654321", "To": "+15551230001", "DialCallStatus": status}
        for status in ("no-answer", "busy", "failed", "completed", "canceled")
    ] + [
        {"From": "client:alice", "To": "client:bob", "DialCallStatus": "no-answer"},
        {"From": "+15557654321", "RecordingSid": "RE" + "1" * 32, "RecordingUrl": "x"},
    ]
    out = run_function(tmp_path, function.function_code("alice", "+15551230001"), events)
    message = [{"say": "Please leave a message after the tone."}, {"record": {
        "maxLength": function.MAX_MESSAGE, "playBeep": True, "timeout": 10, "action": "/call",
        "recordingStatusCallback": "/call", "recordingStatusCallbackEvent": "completed"}}]
    hangup = [{"hangup": True}]
    # unanswered, rejected (Twilio: busy), offline: a message; answered or given up: done;
    # the phone's own call is never recorded; the recording's callbacks end the call
    assert out == [message, message, message, hangup, hangup, hangup, hangup]


def test_names():
    assert function.service_name("alice") == "piphone-alice"
    assert function.service_name("Alice") != function.service_name("alice")
    assert function.service_name("Alice").startswith("piphone-alice-")
    assert function.service_name("desk.1@home") .startswith("piphone-desk-1-home-")
    long = function.service_name("x" * 121)
    assert len(long) <= 50 and long.startswith("piphone-xxx")
    assert function.resource_name("alice") == "piphone alice"
    assert len(function.resource_name("y" * 121)) == 64
    assert function.function_code("a", "+1555") == function.function_code("a", "+1555")


def test_the_default_identity_is_the_host_name(monkeypatch):
    import socket

    from piphone import twilio_setup

    monkeypatch.setattr(socket, "gethostname", lambda: "Kitchen Pi.local")
    assert twilio_setup.default_identity() == "Kitchen-Pi"


def test_the_starter_is_the_example_install_sh_installs():
    example = tomllib.loads((ROOT / "systemd" / "piphone.toml.example").read_text())
    assert example["account"] == files.STARTER_ACCOUNT


def local(tmp_path: Path, text: str | None) -> files.LocalFiles:
    config = tmp_path / "piphone.toml"
    if text is not None:
        config.write_text(text)
    return files.inspect(config, force=True)


ACCOUNT = {"identity": "alice", "account_sid": AC, "api_key_sid": "SK" + "1" * 32,
           "twiml_app_sid": "AP" + "2" * 32}


def test_config_edit_sets_the_account_and_keeps_everything_else(tmp_path):
    starter = (ROOT / "systemd" / "piphone.toml.example").read_text()
    edited = files.config_text(local(tmp_path, starter), ACCOUNT)
    data = tomllib.loads(edited)
    assert data["account"] == ACCOUNT  # signaling_url gone
    assert {k: v for k, v in data.items() if k != "account"} == {
        k: v for k, v in tomllib.loads(starter).items() if k != "account"}
    assert edited.startswith(files.MARKER)
    assert "# ice_addresses = " in edited and "# [pins.keypad]" in edited  # comments kept
    assert "# twiml_app_sid" not in edited and "# places (without one" not in edited
    # Setting it again changes nothing; a changed value changes only its line.
    assert files.config_text(local(tmp_path, edited), ACCOUNT) == edited
    again = files.config_text(local(tmp_path, edited), {**ACCOUNT, "identity": "bob"})
    assert [line for line in again.splitlines() if line not in edited.splitlines()] == [
        'identity = "bob"']
    # A user's [account] keys that setup does not own stay; no [account] at all gets one.
    user = '[account]\nidentity = "x"\nedge = "dublin"  # near\n\n[phone]\ndial_timeout = 2\n'
    data = tomllib.loads(files.config_text(local(tmp_path, user), ACCOUNT))
    assert data["account"] == {**ACCOUNT, "edge": "dublin"} and data["phone"]["dial_timeout"] == 2
    data = tomllib.loads(files.config_text(local(tmp_path, "[phone]\ndial_timeout = 2\n"),
                                           ACCOUNT))
    assert data == {"phone": {"dial_timeout": 2}, "account": ACCOUNT}
    assert tomllib.loads(files.config_text(local(tmp_path / "new", None), ACCOUNT)) == {
        "account": ACCOUNT}


def test_files_setup_did_not_write_are_refused_without_force(tmp_path):
    config = tmp_path / "piphone.toml"
    config.write_text('[account]\nidentity = "mine"\n')
    with pytest.raises(SetupError, match="did not write it.*--force"):
        files.inspect(config, force=False)
    config.write_text(files.MARKER + '\n[account]\nidentity = "mine"\n')
    assert files.inspect(config, force=False).identity == "mine"
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[account]\ntoken = "a.b.c"\n')
    with pytest.raises(SetupError, match="secrets.toml exists.*--force"):
        files.inspect(config, force=False)
    secrets.write_text("[account]\n# nothing in it yet\n")  # the starter: nothing to lose
    assert files.inspect(config, force=False).api_key_secret is None
    secrets.write_text(files.secrets_text("s3cr3t-" * 4))
    held = files.inspect(config, force=False)
    assert held.api_key_secret == "s3cr3t-" * 4 and "s3cr3t" not in repr(held)
    config.write_text("[account\n")
    with pytest.raises(SetupError, match=r"piphone.toml: .*\(fix or remove it"):
        files.inspect(config, force=True)


def test_credentials_from_the_environment_or_asked(monkeypatch):
    token = "f" * 32
    creds = read_credentials({"TWILIO_ACCOUNT_SID": AC, "TWILIO_AUTH_TOKEN": token},
                             interactive=False)
    assert creds == Credentials(AC, token) and token not in repr(creds)
    asked = []
    creds = read_credentials({}, ask=lambda p: asked.append(p) or AC,
                             ask_secret=lambda p: asked.append(p) or token, interactive=True)
    assert creds.auth_token == token and asked == ["Twilio Account SID (AC...): ",
                                                   "Twilio auth token (not shown): "]
    with pytest.raises(SetupError, match="set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        read_credentials({"TWILIO_ACCOUNT_SID": AC}, interactive=False)
    with pytest.raises(SetupError) as info:  # a token pasted as the SID is not echoed
        read_credentials({"TWILIO_ACCOUNT_SID": token, "TWILIO_AUTH_TOKEN": token},
                         interactive=False)
    assert token not in str(info.value) and "32 characters given" in str(info.value)

    def ctrl_d(prompt: str) -> str:
        raise EOFError

    with pytest.raises(SetupError, match="no credentials given"):
        read_credentials({}, ask=ctrl_d, interactive=True)
