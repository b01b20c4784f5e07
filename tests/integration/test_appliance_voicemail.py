"""Voicemail on the appliance, end to end: mock pins, the ALSA test rig (the phone's headset is
rig headset ``a``), the real exchange recording. A call to the phone that nobody answers is
recorded by the exchange; the phone's message-waiting LED lights; the VOICEMAIL key plays the
message in the earpiece (the caller's tone, checked); played to the end it is heard and the
cue goes out; `piphone voicemail` lists it; played again, 7 deletes it."""

from __future__ import annotations

import asyncio

import pytest

from piphone import cli
from piphone.appliance.control import ControlServer
from piphone.panel.leds import Pattern

from ..conftest import until
from .appliance_rig import led_lines, load_phone_config, press, running_service
from .helpers import Events
from .test_appliance_hold import plays, silent

pytestmark = pytest.mark.net

HOOK, REJECT, VOICEMAIL, KEY_7 = 17, 22, 23, 24
LEDS = {"ring": 5, "call": 6, "voicemail": 20}
ALICE = 440  # what alice's microphone plays into her message


def config(tmp_path, exchange):
    return load_phone_config(
        tmp_path, exchange, identity="bob", audio='headset = "piphone_a_cap,piphone_a_play"',
        phone='call_log = ""', rest=f"""
[pins.inputs]
hook = {HOOK}
reject = {REJECT}
voicemail = {VOICEMAIL}
key_7 = {KEY_7}
[pins.leds]
{led_lines(LEDS)}
""")


async def leave_message(alice, seconds: float) -> None:
    call = await alice.device.connect({"To": "bob"})
    events = Events(call)
    await events.wait("accept", timeout=10)  # voicemail answered her
    await asyncio.sleep(0.6 + seconds)  # the beep, then her tone
    call.disconnect()
    await events.wait("disconnect")


@pytest.mark.parametrize("exchange_cfg", [{"voicemail": {"enabled": True, "ring_timeout": 1}}],
                         indirect=True)
async def test_a_call_bob_does_not_answer_is_recorded_lit_played_and_deleted(
        tmp_path, exchange, alsa_rig, make_phone, monkeypatch, capsys):
    alice = await make_phone("alice", tone=ALICE)
    alsa_rig["a"].silence()
    sock = tmp_path / "control.sock"
    monkeypatch.setenv("PIPHONE_CONTROL_SOCKET", str(sock))
    async with running_service(config(tmp_path, exchange)) as service:
        control = ControlServer(sock, service.control)
        await control.start()
        try:
            phone, factory = service.phone, service.factory
            await until(lambda: service.registered.is_set(), what="registered")
            assert service.leds.shown.get("voicemail") is Pattern.OFF
            ringing = asyncio.ensure_future(until(lambda: phone.state == "ringing",
                                                  timeout=10, what="bob's phone rings"))
            await leave_message(alice, 2.0)
            await ringing
            assert phone.state == "idle"  # nobody answered; the exchange took the call
            await until(lambda: service.leds.shown.get("voicemail") is Pattern.BLINK_SLOW,
                        what="the message-waiting cue")
            await until(lambda: any(s.state for s in factory.pin(LEDS["voicemail"]).states),
                        what="the voicemail LED lights")
            status = service.status()
            assert (status["voicemail"], status["voicemail_messages"]) == (1, 1)
            assert "1 new voicemail" in status["status"]
            await until(lambda: len(service.mailbox.listing) == 1, what="the list fetched")
            assert await asyncio.to_thread(cli.main, ["status"]) == 0
            out = capsys.readouterr().out
            assert "registered as bob, 1 new voicemail" in out and "  voicemail: 1" in out
            assert await asyncio.to_thread(cli.main, ["voicemail"]) == 0
            out = capsys.readouterr().out
            assert "1 message(s), 1 new" in out and "client:alice" in out and " 1. " in out

            # the handset up, the VOICEMAIL key: alice's message in the earpiece
            factory.pin(HOOK).drive_low()
            await until(lambda: phone.state == "dialing", what="dialing")
            await press(factory, VOICEMAIL)
            await until(lambda: phone.state == "voicemail", what="playing")
            await until(lambda: plays(alsa_rig["a"], ALICE), timeout=5,
                        what="alice's tone in the earpiece")
            # played to the end: back to the dial tone, the message heard, the cue out
            await until(lambda: phone.state == "dialing", timeout=8, what="done playing")
            await until(lambda: service.leds.shown.get("voicemail") is Pattern.OFF,
                        what="the cue goes out")
            assert service.status()["voicemail_messages"] == 1

            # again, and 7 deletes it while it plays
            await press(factory, VOICEMAIL)
            await until(lambda: plays(alsa_rig["a"], ALICE), what="playing again")
            await press(factory, KEY_7)
            await until(lambda: service.status()["voicemail_messages"] == 0, what="deleted")
            await until(lambda: phone.state == "dialing", what="nothing left to play")
            await until(lambda: silent(alsa_rig["a"], 0.2) or not plays(alsa_rig["a"], ALICE),
                        what="the message stops")
            assert await asyncio.to_thread(cli.main, ["voicemail"]) == 0
            assert "0 message(s), 0 new" in capsys.readouterr().out
            await press(factory, VOICEMAIL)  # no messages: the key does nothing
            await asyncio.sleep(0.2)
            assert phone.state == "dialing"
        finally:
            await control.close()


@pytest.mark.parametrize("exchange_cfg", [{"voicemail": {"enabled": True, "ring_timeout": 1}}],
                         indirect=True)
async def test_the_reject_button_sends_the_caller_to_voicemail_and_delete_by_number(
        tmp_path, exchange, alsa_rig, make_phone, monkeypatch, capsys):
    alice = await make_phone("alice", tone=ALICE)
    sock = tmp_path / "control.sock"
    monkeypatch.setenv("PIPHONE_CONTROL_SOCKET", str(sock))
    async with running_service(config(tmp_path, exchange)) as service:
        control = ControlServer(sock, service.control)
        await control.start()
        try:
            phone, factory = service.phone, service.factory
            await until(lambda: service.registered.is_set(), what="registered")
            call = await alice.device.connect({"To": "bob"})
            events = Events(call)
            await until(lambda: phone.state == "ringing", what="bob's phone rings")
            await press(factory, REJECT)
            await events.wait("accept", timeout=5)  # at once, not after the ring timeout
            await asyncio.sleep(1.6)
            call.disconnect()
            await until(lambda: service.status()["voicemail"] == 1, what="a message")
            await until(lambda: len(service.mailbox.listing) == 1, what="the list fetched")
            assert await asyncio.to_thread(cli.main, ["voicemail", "delete", "2"]) == 1
            assert "no message 2" in capsys.readouterr().err
            assert await asyncio.to_thread(cli.main, ["voicemail", "delete", "1"]) == 0
            assert "message 1 deleted" in capsys.readouterr().out
            await until(lambda: service.status()["voicemail_messages"] == 0, what="deleted")
            await until(lambda: service.leds.shown.get("voicemail") is Pattern.OFF,
                        what="the cue goes out")
        finally:
            await control.close()
