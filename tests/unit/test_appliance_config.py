"""appliance/config.py: good files load into frozen settings; each kind of bad input gives an
error naming the file, the key and the line."""

from __future__ import annotations

import dataclasses
import os
import re

import pytest

from piphone.appliance import config
from piphone.errors import ConfigError
from piphone.panel.pins import DEFAULT_PINS, InputPin
from piphone.voice import tokens

AC = "AC" + "0" * 32
SK = "SK" + "1" * 32
SECRET = "s" * 32

GOOD = f"""\
[account]
identity = "alice"
signaling_url = "ws://127.0.0.1:8089/signal"
account_sid = "{AC}"
api_key_sid = "{SK}"

[audio]
headset = "none"

[phone]
dial_timeout = 2
auto_answer_rings = 3
dnd = "ignore"
mute_reminder = 0

[alerts]
ring_pattern = [0.5, 0.5]

[pins]
pwm_leds = false
[pins.inputs]
hook = {{ pin = 17, pull_up = false, active_low = false }}
accept = "GPIO27"
key_1 = 5
[pins.leds]
ring = 6
"""


def write(tmp_path, text: str, secrets: str | None = f'[account]\napi_key_secret = "{SECRET}"\n',
          mode: int = 0o600):
    path = tmp_path / "piphone.toml"
    path.write_text(text)
    if secrets is not None:
        spath = tmp_path / "secrets.toml"
        spath.write_text(secrets)
        os.chmod(spath, mode)
    return path


def error_of(tmp_path, text: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text, **kwargs))
    return str(info.value)


def test_good_config_loads_frozen(tmp_path):
    cfg = config.load(write(tmp_path, GOOD))
    assert cfg.account.identity == "alice"
    assert cfg.account.signaling_url == "ws://127.0.0.1:8089/signal"
    assert cfg.audio.headset == "none" and cfg.audio.ring_device is None
    assert cfg.phone.dial_timeout == 2.0 and cfg.phone.auto_answer_rings == 3
    assert cfg.phone.dnd == "ignore" and cfg.phone.mute_reminder == 0
    assert cfg.phone.call_log == "/var/lib/piphone/calls.db"  # the default
    cfg = config.load(write(tmp_path, GOOD.replace("mute_reminder = 0", 'call_log = ""')))
    assert cfg.phone.call_log is None
    assert cfg.alerts.ring.pattern == (0.5, 0.5) and cfg.alerts.ring_period == 1.0
    assert cfg.pins.inputs["hook"] == InputPin(17, pull_up=False, active_low=False)
    assert cfg.pins.inputs["accept"] == InputPin("GPIO27")
    assert cfg.pins.leds == {"ring": 6} and cfg.pins.pwm_leds is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.phone.dial_timeout = 3  # type: ignore[misc]
    # The secret is used but never shown.
    assert SECRET not in repr(cfg)
    info = tokens.read(cfg.account.access_token())
    assert info.identity == "alice" and info.issuer == SK


def test_defaults_and_fixed_token(tmp_path):
    token = tokens.mint(account_sid=AC, api_key_sid=SK, api_key_secret=SECRET, identity="bob")
    cfg = config.load(write(tmp_path, '[account]\nidentity = "bob"\n',
                            secrets=f'[account]\ntoken = "{token}"\n'))
    assert cfg.pins == DEFAULT_PINS
    assert cfg.phone == config.PhoneConfig() and cfg.alerts == config.AlertsConfig()
    assert cfg.account.signaling_url is None and cfg.account.edge == ("roaming",)
    assert cfg.account.access_token() == token and token not in repr(cfg)


def expect(message: str, *, file: str = "piphone.toml", line: int | None = None,
           key: str | None = None, says: str = "") -> None:
    assert file in message, message
    if line is not None:
        assert f"line {line}:" in message, message
    if key is not None:
        assert f" {key}:" in message, message
    assert re.search(says, message), message


def test_missing_key(tmp_path):
    expect(error_of(tmp_path, GOOD.replace('identity = "alice"\n', "")), line=1,
           key="account", says="missing key 'identity'")


def test_missing_section(tmp_path):
    expect(error_of(tmp_path, "[audio]\nheadset = 'none'\n"), says=r"missing section \[account\]")


def test_wrong_type(tmp_path):
    expect(error_of(tmp_path, GOOD.replace("dial_timeout = 2", 'dial_timeout = "2"')), line=11,
           key="phone.dial_timeout", says="must be int or float, not str")
    expect(error_of(tmp_path, GOOD.replace("mute_reminder = 0", "mute_reminder = true")),
           line=14, key="phone.mute_reminder", says="not bool")


def test_out_of_range_and_bad_choice(tmp_path):
    expect(error_of(tmp_path, GOOD.replace('dnd = "ignore"', 'dnd = "silence"')), line=13,
           key="phone.dnd", says="must be reject or ignore")
    expect(error_of(tmp_path, GOOD.replace("auto_answer_rings = 3", "auto_answer_rings = -1")),
           line=12, key="phone.auto_answer_rings", says="0 \\(off\\) to 20")
    expect(error_of(tmp_path, GOOD.replace("ring_pattern = [0.5, 0.5]", "ring_pattern = [1]")),
           line=17, key="alerts.ring_pattern", says="pairs of on/off")
    expect(error_of(tmp_path, GOOD.replace("ws://127", "http://127")), line=3,
           key="account.signaling_url", says="ws:// or wss://")


def test_unknown_section_and_key(tmp_path):
    expect(error_of(tmp_path, GOOD + "[speaker]\nx = 1\n"), line=27, key="speaker",
           says="unknown section")
    expect(error_of(tmp_path, GOOD.replace("[audio]\n", "[audio]\nvolume = 3\n")), line=8,
           key="audio.volume", says="unknown key")


def test_unknown_pin(tmp_path):
    expect(error_of(tmp_path, GOOD.replace('accept = "GPIO27"', "accept = 40")), line=23,
           key="pins.inputs.accept", says="unknown pin 40")
    expect(error_of(tmp_path, GOOD.replace('accept = "GPIO27"', 'accept = "PIN7"')), line=23,
           key="pins.inputs.accept", says="unknown pin 'PIN7'")
    expect(error_of(tmp_path, GOOD.replace("key_1 = 5", "key_10 = 5")), line=24,
           key="pins.inputs.key_10", says="unknown input")
    expect(error_of(tmp_path, GOOD.replace("ring = 6", "record = 6")), line=26,
           key="pins.leds.record", says="unknown led 'record'")


def test_pin_used_twice(tmp_path):
    expect(error_of(tmp_path, GOOD.replace('accept = "GPIO27"', 'accept = "BCM17"')), line=23,
           key="pins.inputs.accept", says=r"pin GPIO17 is used twice \(also inputs.hook\)")
    expect(error_of(tmp_path, GOOD.replace("ring = 6", "ring = 5")), line=26,
           key="pins.leds.ring", says=r"pin GPIO5 is used twice \(also inputs.key_1\)")


def test_hook_is_required_in_a_pin_map(tmp_path):
    text = GOOD.replace("hook = { pin = 17, pull_up = false, active_low = false }\n", "")
    expect(error_of(tmp_path, text), line=21, key="pins.inputs", says="missing key 'hook'")


def test_bad_pin_table(tmp_path):
    expect(error_of(tmp_path, GOOD.replace("pull_up = false", 'pull_up = "no"')), line=22,
           key="pins.inputs.hook", says="pull_up must be true or false")
    expect(error_of(tmp_path, GOOD.replace("pin = 17, ", "")), line=22,
           key="pins.inputs.hook", says="missing key 'pin'")


def test_toml_syntax_error(tmp_path):
    expect(error_of(tmp_path, GOOD.replace('identity = "alice"', "identity = alice")),
           says="line 2")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_world_or_group_readable_secrets_are_refused(tmp_path, mode):
    message = error_of(tmp_path, GOOD, mode=mode)
    expect(message, file="secrets.toml", says=f"mode {mode:04o} lets others read the secrets; "
           "it must be 0600")


def test_secret_in_the_public_file_is_refused(tmp_path):
    text = GOOD.replace('[account]\n', f'[account]\napi_key_secret = "{SECRET}"\n')
    message = error_of(tmp_path, text)
    expect(message, line=2, key="account.api_key_secret", says="put it in secrets.toml")
    assert SECRET not in message


def test_missing_secret(tmp_path):
    expect(error_of(tmp_path, GOOD, secrets=None), file="secrets.toml",
           says="account.api_key_secret: missing")
    expect(error_of(tmp_path, GOOD, secrets="[account]\n"), file="secrets.toml",
           says="account.api_key_secret: missing")


def test_bad_secrets_file(tmp_path):
    expect(error_of(tmp_path, GOOD, secrets='[account]\ntoken = "x"\n'), file="secrets.toml",
           line=2, key="account.token", says="must be a JWT")
    expect(error_of(tmp_path, GOOD, secrets='[account]\npassword = "x"\n'), file="secrets.toml",
           line=2, key="account.password", says="unknown key")


def test_no_token_source(tmp_path):
    text = GOOD.replace(f'account_sid = "{AC}"\n', "")
    expect(error_of(tmp_path, text), line=1, key="account", says="missing key 'account_sid'")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: cannot read"):
        config.load(tmp_path / "nope.toml")


def test_piphone_check_validates_an_appliance_config(tmp_path, capsys):
    from piphone import cli

    path = write(tmp_path, GOOD)
    assert cli.main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"config: {path} is valid (identity alice, 3 inputs, 1 LEDs)" in out
    assert "headset: none (configured)" in out
    path = write(tmp_path, GOOD.replace("auto_answer_rings = 3", "auto_answer_rings = 99"))
    assert cli.main(["check", "--config", str(path)]) == 2
    assert f"{path}, line 12: phone.auto_answer_rings: must be 0 (off) to 20 rings" in (
        capsys.readouterr().err)


def test_led_patterns(tmp_path):
    cfg = config.load(write(tmp_path, GOOD + '[leds]\nringing = "blink_slow"\nmuted = "off"\n'))
    assert cfg.leds.ringing == "blink_slow" and cfg.leds.muted == "off"
    assert cfg.leds.talking == "on"  # the rest keep their defaults
    expect(error_of(tmp_path, GOOD + '[leds]\nringing = "disco"\n'), line=28,
           key="leds.ringing", says="unknown pattern 'disco'")
    expect(error_of(tmp_path, GOOD + '[leds]\nhold = "on"\n'), line=28, key="leds.hold",
           says="unknown key")


def test_one_gpio_under_two_names_and_power_pins(tmp_path):
    expect(error_of(tmp_path, GOOD.replace('accept = "GPIO27"', 'accept = "BOARD11"')),
           line=23, key="pins.inputs.accept", says="pin GPIO17 is used twice")
    expect(error_of(tmp_path, GOOD.replace('accept = "GPIO27"', 'accept = "BOARD1"')),
           line=23, key="pins.inputs.accept", says="not a GPIO pin")
    expect(error_of(tmp_path, GOOD.replace("key_1 = 5", "key_1 = 5.5")), line=24,
           key="pins.inputs.key_1", says="not float")


def test_tables_left_out_keep_the_default_map(tmp_path):
    text = GOOD[:GOOD.index("[pins.leds]")]
    cfg = config.load(write(tmp_path, text))
    assert cfg.pins.leds == DEFAULT_PINS.leds and cfg.pins.inputs["hook"].pin == 17


def test_keypad_matrix(tmp_path):
    keypad = "[pins.keypad]\nrows = [7, 8, 9, 10]\ncols = [11, 14, 15]\n"
    expect(error_of(tmp_path, GOOD + keypad), line=24, key="pins.inputs.key_1",
           says="this key is also on the keypad matrix")
    good = GOOD.replace("key_1 = 5\n", "")
    cfg = config.load(write(tmp_path, good + keypad))
    assert cfg.pins.keypad.rows == (7, 8, 9, 10) and cfg.pins.keypad.layout[3] == "*0#"
    expect(error_of(tmp_path, good + keypad.replace("11, 14, 15", "11, 14")), line=28,
           key="pins.keypad.cols", says="2 columns for layout row '123'")
    expect(error_of(tmp_path, good + keypad.replace("7, 8, 9", "17, 8, 9")), line=27,
           key="pins.keypad.rows", says="pin GPIO17 is used twice")
    expect(error_of(tmp_path, good + keypad.replace("cols", "columns")), line=28,
           key="pins.keypad.columns", says="unknown key")
    expect(error_of(tmp_path, good + keypad + 'layout = ["123", "456", "789", "*0A"]\n'),
           line=29, key="pins.keypad.layout", says="unknown key 'A'")


AP = "AP" + "2" * 32
TWILIO_KIND = f"""\
[account]
identity = "alice"
account_sid = "{AC}"
api_key_sid = "{SK}"

[audio]
headset = "none"
"""


def test_minted_tokens_carry_the_twiml_app_and_incoming_allow(tmp_path):
    import jwt

    cfg = config.load(write(tmp_path, TWILIO_KIND.replace(
        "[audio]", f'twiml_app_sid = "{AP}"\nincoming_allow = false\n\n[audio]')))
    assert cfg.account.twiml_app_sid == AP and cfg.account.incoming_allow is False
    voice = jwt.decode(cfg.account.access_token(), options={"verify_signature": False}
                       )["grants"]["voice"]
    assert voice == {"outgoing": {"application_sid": AP}}  # the helper leaves out allow: false
    voice = jwt.decode(config.load(write(tmp_path, TWILIO_KIND)).account.access_token(),
                       options={"verify_signature": False})["grants"]["voice"]
    assert voice == {"incoming": {"allow": True}}  # the defaults: rings, no TwiML App


def test_twiml_app_sid_and_incoming_allow_are_checked(tmp_path):
    text = TWILIO_KIND.replace("[audio]", 'twiml_app_sid = "SK{}"\n\n[audio]'.format("2" * 32))
    expect(error_of(tmp_path, text), line=6, key="account.twiml_app_sid",
           says="must be AP and 32 hex digits")
    text = TWILIO_KIND.replace("[audio]", 'incoming_allow = "yes"\n\n[audio]')
    expect(error_of(tmp_path, text), line=6, key="account.incoming_allow", says="must be bool")
    token = tokens.mint(account_sid=AC, api_key_sid=SK, api_key_secret=SECRET, identity="alice")
    text = TWILIO_KIND.replace("[audio]", f'twiml_app_sid = "{AP}"\n\n[audio]')
    expect(error_of(tmp_path, text, secrets=f'[account]\ntoken = "{token}"\n'), line=6,
           key="account.twiml_app_sid", says="applies to minted tokens only.*fixed token")


def test_piphone_check_says_outgoing_calls_need_a_twiml_app_on_twilio(tmp_path, capsys):
    from piphone import cli

    assert cli.main(["check", "--config", str(write(tmp_path, TWILIO_KIND))]) == 0
    out = capsys.readouterr().out
    assert re.search(r"outgoing calls: Twilio will refuse them: \[account\] has no "
                     r"twiml_app_sid.*TwiML App", out), out
    path = write(tmp_path, TWILIO_KIND.replace(
        "[audio]", f'twiml_app_sid = "{AP}"\nincoming_allow = false\n\n[audio]'))
    assert cli.main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"outgoing calls: routed by TwiML App {AP}" in out and "refuse them" not in out
    assert "incoming calls: refused (incoming_allow = false" in out
    # Not the Twilio kind: a local exchange (signaling_url), or a fixed token: nothing to say.
    assert cli.main(["check", "--config", str(write(tmp_path, GOOD))]) == 0
    assert "outgoing calls" not in capsys.readouterr().out
    token = tokens.mint(account_sid=AC, api_key_sid=SK, api_key_secret=SECRET, identity="alice")
    path = write(tmp_path, '[account]\nidentity = "alice"\n[audio]\nheadset = "none"\n',
                 secrets=f'[account]\ntoken = "{token}"\n')
    assert cli.main(["check", "--config", str(path)]) == 0
    assert "outgoing calls" not in capsys.readouterr().out


def test_piphone_token_grants(tmp_path, capsys):
    import jwt

    from piphone import cli
    from piphone.exchange import config as exchange_config

    def grant(argv: list[str]) -> tuple[dict, dict]:
        assert cli.main(argv) == 0
        claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
        return claims["grants"], claims

    exchange = exchange_config.write_starter(tmp_path / "exchange.toml")
    grants, _ = grant(["token", "--config", str(exchange), "--identity", "bob",
                       "--twiml-app-sid", AP, "--no-incoming"])
    assert grants == {"identity": "bob", "voice": {"outgoing": {"application_sid": AP}}}
    grants, _ = grant(["token", "--config", str(exchange), "--identity", "bob"])
    assert grants["voice"] == {"incoming": {"allow": True}}
    # A phone's piphone.toml: its Twilio account and key, its identity and TwiML App.
    phone = write(tmp_path, TWILIO_KIND.replace("[audio]", f'twiml_app_sid = "{AP}"\n[audio]'))
    grants, claims = grant(["token", "--config", str(phone)])
    assert claims["iss"] == SK and claims["sub"] == AC
    assert grants == {"identity": "alice", "voice": {"incoming": {"allow": True},
                                                     "outgoing": {"application_sid": AP}}}
    assert cli.main(["token", "--config", str(exchange), "--twiml-app-sid", "AP12"]) == 2
    assert "--twiml-app-sid must be AP and 32 hex digits" in capsys.readouterr().err
    assert cli.main(["token", "--config", str(exchange)]) == 2
    assert "needs --identity" in capsys.readouterr().err


@pytest.mark.parametrize("value", ['["g729"]', "[]", '["opus", "speex"]'])
def test_a_codec_list_must_name_codecs_piphone_speaks(tmp_path, value):
    text = GOOD.replace('api_key_sid = "', f'codec_preferences = {value}\napi_key_sid = "', 1)
    message = error_of(tmp_path, text)
    expect(message, line=5, key="account.codec_preferences", says="must list some of opus, pcmu")
