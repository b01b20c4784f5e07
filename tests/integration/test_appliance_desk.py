"""The desk phone's everyday basics end to end on mock pins, through the real exchange:
settings kept across a restart (and a state file that lies), the idle panel's cues (offline,
do-not-disturb, missed calls), contacts, speed dial and call-back."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from piphone import cli
from piphone.appliance.control import ControlServer
from piphone.appliance.service import Service
from piphone.panel.leds import Pattern
from piphone.panel.pins import mock_factory
from tests.conftest import until

from .appliance_rig import load_phone_config, press, running_service

pytestmark = pytest.mark.net

HOOK, ACCEPT, REJECT, VOLUME_UP, VOLUME_DOWN, DND = 17, 27, 22, 5, 6, 26
MISSED, SPEED_1, SPEED_2 = 2, 3, 20
RING_LED, CALL_LED, MUTE_LED, WARNING_LED, DND_LED, MISSED_LED = 12, 13, 25, 4, 18, 19


def write_config(tmp_path, exchange, *, phone: str = "", rest: str = "", url: str | None = None):
    """alice on mock pins with the desk keys and LEDs; her state file and call log in
    ``tmp_path``."""
    return load_phone_config(tmp_path, exchange, url=url, phone=f"""\
call_log = "{tmp_path / 'calls.db'}"
state_file = "{tmp_path / 'state.json'}"
{phone}""", rest=f"""
[alerts]
ring_pattern = [0.1, 0.1]

[pins.inputs]
hook = {HOOK}
accept = {ACCEPT}
reject = {REJECT}
volume_up = {VOLUME_UP}
volume_down = {VOLUME_DOWN}
dnd = {DND}
missed = {MISSED}
speed_1 = {SPEED_1}
speed_2 = {SPEED_2}

[pins.leds]
ring = {RING_LED}
call = {CALL_LED}
mute = {MUTE_LED}
warning = {WARNING_LED}
dnd = {DND_LED}
missed = {MISSED_LED}
{rest}""")


def lit(factory, pin) -> bool:
    return bool(factory.pin(pin).state)


# --- 1. settings that persist ---------------------------------------------------------------
async def test_a_restart_restores_volumes_and_do_not_disturb(tmp_path, exchange, make_phone):
    cfg = write_config(tmp_path, exchange)
    bob = await make_phone("bob")
    async with running_service(cfg) as service:
        phone, factory = service.phone, service.factory
        await until(lambda: service.registered.is_set(), what="registered")
        for _ in range(3):
            await press(factory, VOLUME_DOWN)  # idle: the ringer, 7 -> 4
        await until(lambda: phone.ringer_step == 4, what="ringer softer")
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: phone.state == "ringing", what="alice rings")
        factory.pin(HOOK).drive_low()
        await until(lambda: phone.state == "talking", timeout=10, what="talking")
        await press(factory, VOLUME_UP)  # in a call: the call volume, 7 -> 8
        await until(lambda: phone.volume_step == 8, what="call louder")
        assert phone.ringer_step == 4
        factory.pin(HOOK).drive_high()
        await until(lambda: phone.state == "idle", timeout=10, what="hung up")
        await press(factory, DND)
        await until(lambda: phone.dnd, what="do not disturb")
        saved = json.loads((tmp_path / "state.json").read_text())
        assert (saved["call_volume"], saved["ringer_volume"], saved["dnd"]) == (8, 4, True)
        del call
    async with running_service(cfg) as service:  # the phone restarts
        phone = service.phone
        assert (phone.volume_step, phone.ringer_step, phone.dnd) == (8, 4, True)
        status = service.status()
        assert (status["volume"], status["ringer_volume"], status["dnd"]) == (8, 4, True)
        await until(lambda: service.registered.is_set(), what="registered")
        closed = []
        call = await bob.device.connect({"To": "client:alice"})
        call.on("status", lambda s: closed.append(s) if str(s) == "closed" else None)
        await until(lambda: closed, timeout=10, what="DND rejects bob after the restart")
        assert phone.state == "idle"


@pytest.mark.parametrize("content", [b"\x00garbage{", b'{"call_volume": 1e9, "ringer_volume"'
                                     b': 7, "dnd": false}', b'{"call_volume": 3, '
                                     b'"ringer_volume": 99, "dnd": true}'],
                         ids=["binary", "huge volume", "ringer out of range"])
async def test_a_corrupt_state_file_is_reported_and_replaced(tmp_path, exchange, caplog,
                                                             content):
    (tmp_path / "state.json").write_bytes(content)
    cfg = write_config(tmp_path, exchange, phone="dnd_at_start = true",
                       rest="")
    with caplog.at_level(logging.ERROR, logger="piphone.appliance.state_file"):
        async with running_service(cfg) as service:
            phone = service.phone
            # the configured start values, not a crash and not the file's
            assert (phone.volume_step, phone.ringer_step, phone.dnd) == (7, 7, True)
            await until(lambda: service.registered.is_set(), what="registered")
    [record] = [r for r in caplog.records if "state file" in r.getMessage()]
    assert str(tmp_path / "state.json") in record.getMessage()
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "version": 1, "call_volume": 7, "ringer_volume": 7, "dnd": True}


# --- 2. the idle panel tells the truth ---------------------------------------------------------
@pytest.mark.parametrize("url, reason", [
    ("ws://127.0.0.1:9/signal", "exchange unreachable"),  # nothing listens there
    ("ws://192.0.2.1:8089/signal", "no network"),  # no route off this namespace
], ids=["unreachable", "no network"])
async def test_an_offline_phone_blinks_and_says_why(tmp_path, exchange, url, reason):
    cfg = write_config(tmp_path, exchange, url=url)
    factory = mock_factory()
    service = Service(cfg, pin_factory=factory)
    starting = asyncio.ensure_future(service.start())
    try:
        await until(lambda: service.phone is not None and service.device is not None
                    and service.offline_now()[0] == reason, timeout=10, what=f"offline: {reason}")
        assert service.leds.shown["warning"] is Pattern.BLINK_SLOW  # not dark like idle
        await until(lambda: lit(factory, WARNING_LED), what="the warning LED blinks on")
        await until(lambda: not lit(factory, WARNING_LED), what="and off")
        status = service.status()
        assert status["registered"] is False and status["offline_reason"] == reason
        assert status["offline_detail"] and status["state"] == "idle"
        assert service.status_line() == f"not registered as alice ({reason})"
    finally:
        await service.close()
        await starting
        factory.reset()


async def test_a_refused_token_is_the_reason(tmp_path, exchange):
    cfg = write_config(tmp_path, exchange)
    (tmp_path / "secrets.toml").write_text('[account]\napi_key_secret = "' + "x" * 32 + '"\n')
    from piphone.appliance import config as appliance_config

    cfg = appliance_config.load(cfg.path)  # with a secret the exchange does not know
    async with running_service(cfg) as service:
        await until(lambda: service.offline_now()[0] == "token refused", timeout=10,
                    what="the exchange refuses the token")
        assert service.leds.shown["warning"] is Pattern.BLINK_SLOW
        assert "token refused" in service.status_line()


async def test_a_missed_call_lights_until_the_key_and_outlives_a_restart(tmp_path, exchange,
                                                                         make_phone):
    cfg = write_config(tmp_path, exchange)
    bob = await make_phone("bob")
    async with running_service(cfg) as service:
        phone, factory = service.phone, service.factory
        assert service.leds.shown == {name: Pattern.OFF for name in service.leds.shown}
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: phone.state == "ringing", what="alice rings")
        call.disconnect()  # bob gives up: a missed call
        await until(lambda: phone.missed == 1, timeout=10, what="a missed call")
        assert phone.state == "idle" and service.leds.shown["missed"] is Pattern.BLINK_SLOW
        await until(lambda: lit(factory, MISSED_LED), what="the missed LED blinks")
        assert "1 missed call" in service.status_line()
        assert service.status()["last_caller"] == "client:bob"
    async with running_service(cfg) as service:  # restarted: the log still says so
        factory = service.factory
        assert service.phone.missed == 1
        assert service.leds.shown["missed"] is Pattern.BLINK_SLOW
        await press(factory, MISSED)  # seen
        await until(lambda: service.phone.missed == 0, what="seen")
        assert service.leds.shown["missed"] is Pattern.OFF and not lit(factory, MISSED_LED)
    async with running_service(cfg) as service:
        assert service.phone.missed == 0  # seen stays seen
        assert service.phone.last_caller == "client:bob"  # call-back survives too


async def test_calls_missed_and_seen_from_the_command_line(tmp_path, exchange, make_phone,
                                                           monkeypatch, capsys):
    cfg = write_config(tmp_path, exchange)
    db = str(tmp_path / "calls.db")
    bob = await make_phone("bob")
    sock = tmp_path / "control.sock"
    monkeypatch.setenv("PIPHONE_CONTROL_SOCKET", str(sock))
    async with running_service(cfg) as service:
        control = ControlServer(sock, service.control)
        await control.start()
        try:
            call = await bob.device.connect({"To": "client:alice"})
            await until(lambda: service.phone.state == "ringing", what="alice rings")
            call.disconnect()
            await until(lambda: service.phone.missed == 1, timeout=10, what="missed")
            assert await asyncio.to_thread(cli.main, ["calls", "--db", db, "--missed"]) == 0
            out = capsys.readouterr().out
            assert "in new" in out and "client:bob" in out and "cancelled" in out
            assert await asyncio.to_thread(cli.main, ["calls", "--db", db, "--seen"]) == 0
            assert "seen" in capsys.readouterr().out
            await until(lambda: service.phone.missed == 0, what="seen through the phone")
            assert service.leds.shown["missed"] is Pattern.OFF
            assert await asyncio.to_thread(cli.main, ["calls", "--db", db, "--missed"]) == 0
            out = capsys.readouterr().out
            assert "client:bob" in out and "in new" not in out  # listed, no longer new
        finally:
            await control.close()


# --- 3. contacts and speed dial -----------------------------------------------------------------
CONTACTS = """
[contacts]
Bob = { number = "client:bob", speed = 2 }
Carol = "+15550000003"
"""


async def test_a_speed_dial_call_and_the_callers_name(tmp_path, exchange, make_phone, capsys):
    cfg = write_config(tmp_path, exchange, rest=CONTACTS)
    bob = await make_phone("bob")
    async with running_service(cfg) as service:
        phone, factory = service.phone, service.factory
        await until(lambda: service.registered.is_set(), what="registered")
        await press(factory, SPEED_2)  # handset down: Bob's key calls him at once
        incoming = await bob.next_call(timeout=10)
        assert phone.state == "calling" and phone.peer == "client:bob"
        assert service.status()["peer_name"] == "Bob"
        assert service.status_line() == "calling Bob (client:bob)"
        incoming.accept()
        await until(lambda: phone.state == "talking", timeout=10, what="talking")
        assert service.status_line().startswith("talking to Bob (client:bob)")
        ended = []
        incoming.on("disconnect", ended.append)
        await press(factory, REJECT)
        await until(lambda: ended and phone.state == "idle", timeout=10, what="hung up")
        # and Bob calls back: his name on the status
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: phone.state == "ringing", what="alice rings")
        assert service.status_line() == "ringing: call from Bob (client:bob)"
        await press(factory, REJECT)
        await until(lambda: str(call.status()) == "closed", timeout=10, what="rejected")
        await until(lambda: len(service.call_log.recent()) == 2
                    and all(r.outcome for r in service.call_log.recent()), what="logged")
    # the outgoing call answered (its answer logged: the log follows it from the invite on)
    assert cli.main(["calls", "--db", str(tmp_path / "calls.db")]) == 0
    out = capsys.readouterr().out
    assert out.count("Bob (client:bob)") == 2 and "rejected" in out and "completed" in out
    assert cli.main(["calls", "--db", str(tmp_path / "calls.db"), "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["Bob", "Bob"]


async def test_a_contact_name_dials_through_the_control_socket(tmp_path, exchange, make_phone):
    cfg = write_config(tmp_path, exchange, rest=CONTACTS)
    bob = await make_phone("bob")
    async with running_service(cfg) as service:
        await until(lambda: service.registered.is_set(), what="registered")
        assert service.control({"cmd": "call", "number": "bob"})["state"] == "calling"
        incoming = await bob.next_call(timeout=10)
        assert service.phone.peer == "client:bob"
        incoming.reject()
        await until(lambda: service.phone.state == "idle", timeout=10, what="rejected")
