"""appliance/phone.py: every row of the transition table, driven by fake Call/Device emitters,
fake LEDs and sounds; plus random presses in random states."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from pathlib import Path

import pytest

from piphone.appliance import phone as phone_mod
from piphone.appliance import table
from piphone.appliance.config import AlertsConfig, PhoneConfig
from piphone.appliance.phone import Phone
from piphone.appliance.state_file import Settings, settings_of
from piphone.audio import tones
from piphone.panel.inputs import PanelEvent, PanelInput
from piphone.voice.errors import TwilioError
from tests.appliance_doubles import FakeDevice, FakeLeds, FakeRoute, FakeSounds

FAST_RING = AlertsConfig(ring=tones.ring_spec(pattern=(0.02, 0.03)))  # a ring every 50 ms


class Rig:
    def __init__(self, settings: PhoneConfig | None = None, alerts: AlertsConfig | None = None,
                 route: FakeRoute | None = None):
        self.device = FakeDevice()
        self.leds = FakeLeds()
        self.sounds = FakeSounds()
        self.route = route or FakeRoute()
        self.hook = False
        self.phone = Phone(self.device, self.leds, self.sounds, settings or PhoneConfig(),
                           alerts or AlertsConfig(), off_hook=lambda: self.hook,
                           route=self.route)

    def press(self, event: str, digit: str | None = None) -> None:
        if event == "OFF_HOOK":
            self.hook = True
        elif event == "ON_HOOK":
            self.hook = False
        self.phone.handle(PanelInput(PanelEvent[event], digit))

    @property
    def state(self) -> str:
        return self.phone.state

    async def until(self, predicate, timeout: float = 5.0) -> None:
        """Wait (bounded) for a condition that timers or connect() tasks bring about."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.005)

    async def settle(self) -> None:
        """Let deferred triggers and connect() tasks run (a few loop turns, no timing)."""
        for _ in range(5):
            await asyncio.sleep(0)

    async def ringing_call(self, frm: str = "+15550001"):
        call = self.device.ring(frm)
        await self.settle()
        return call

    async def talking_call(self):
        call = await self.ringing_call()
        self.press("OFF_HOOK")
        call.far_open()
        await self.settle()
        assert self.state == "talking"
        return call

    async def outgoing(self, number: str = "100"):
        self.press("OFF_HOOK")
        for digit in number + "#":
            self.press("DIGIT", digit)
        await self.until(lambda: self.device.placed and self.phone.call is not None)
        return self.device.placed[-1]


@pytest.fixture
async def rig():
    rig = Rig()
    yield rig
    assert rig.phone.failures == 0
    rig.phone.close()


# --- the handset ----------------------------------------------------------------------------
async def test_off_hook_in_idle_dials_with_dial_tone(rig):
    assert rig.state == "idle" and rig.leds.now == {}
    rig.press("OFF_HOOK")
    assert rig.state == "dialing" and rig.sounds.playing == "dial"


async def test_off_hook_while_ringing_answers(rig):
    call = await rig.ringing_call()
    assert rig.state == "ringing" and rig.leds.now["ring"] == "blink_fast" and rig.sounds.ringing
    rig.press("OFF_HOOK")
    assert call.actions == ["accept"] and rig.state == "talking"
    assert not rig.sounds.ringing and "ring" not in rig.leds.now
    call.far_open()  # media up: the accept event changes nothing more
    await rig.settle()
    assert rig.state == "talking" and rig.leds.now["call"] == "on"


async def test_on_hook_while_dialing_goes_idle(rig):
    rig.press("OFF_HOOK")
    rig.press("ON_HOOK")
    assert rig.state == "idle" and rig.sounds.playing is None


@pytest.mark.parametrize("where", ["calling", "talking", "reconnecting"])
async def test_on_hook_hangs_up_an_active_call(rig, where):
    if where == "calling":
        call = await rig.outgoing()
    else:
        call = await rig.talking_call()
        if where == "reconnecting":
            call.net_reconnecting()
            await rig.settle()
    assert rig.state == where
    rig.press("ON_HOOK")
    assert call.actions[-1] == "disconnect" and rig.state == "idle"
    await rig.settle()
    assert rig.state == "idle" and rig.leds.now == {} and rig.sounds.playing is None


async def test_on_hook_while_the_invite_goes_out_cancels_it(rig):
    rig.press("OFF_HOOK")
    rig.press("DIGIT", "7")
    rig.press("DIGIT", "#")
    await asyncio.sleep(0)  # dial runs; connect() has not returned yet
    rig.press("ON_HOOK")
    await rig.until(lambda: rig.device.placed)
    await rig.settle()
    assert rig.device.placed[0].actions == ["disconnect"] and rig.state == "idle"


# --- buttons -------------------------------------------------------------------------------
async def test_accept_button_answers(rig):
    call = await rig.ringing_call()
    rig.press("ACCEPT")
    assert call.actions == ["accept"] and rig.state == "talking"
    rig.press("ACCEPT")  # a second press is not a second accept
    assert call.actions == ["accept"]


async def test_reject_button_rejects(rig):
    call = await rig.ringing_call()
    rig.press("REJECT")
    await rig.settle()
    assert call.actions == ["reject"] and rig.state == "idle" and not rig.sounds.ringing


async def test_ignore_button_stops_ringing_here(rig):
    call = await rig.ringing_call()
    rig.press("IGNORE")
    await rig.settle()
    assert call.actions == ["ignore"] and rig.state == "idle" and rig.leds.now == {}


@pytest.mark.parametrize("hook,after", [(True, "dialing"), (False, "idle")])
async def test_reject_button_hangs_up_a_call(rig, hook, after):
    call = await rig.talking_call()
    rig.hook = hook
    rig.press("REJECT")
    await rig.settle()
    assert call.actions[-1] == "disconnect" and rig.state == after


async def test_mute_toggles_with_led_and_reminder():
    rig = Rig(replace(PhoneConfig(), mute_reminder=0.05))
    await rig.talking_call()
    rig.press("MUTE")
    assert rig.phone.muted and rig.leds.now["mute"] == "on"
    await rig.until(lambda: rig.sounds.beeps("mute") >= 2)
    rig.press("MUTE")
    assert not rig.phone.muted and "mute" not in rig.leds.now
    beeps = rig.sounds.beeps("mute")
    await asyncio.sleep(0.2)  # the reminder has stopped: no beep in four periods
    assert rig.sounds.beeps("mute") == beeps
    rig.phone.close()


async def test_mute_does_nothing_when_idle(rig):
    rig.press("MUTE")
    assert rig.state == "idle" and not rig.phone.muted


async def test_redial_calls_the_last_number(rig):
    rig.press("REDIAL")  # no last number yet: nothing
    assert rig.state == "idle" and not rig.device.placed
    call = await rig.outgoing("123")
    call.far_hangup()
    await rig.settle()
    rig.press("ON_HOOK")
    rig.press("REDIAL")
    await rig.until(lambda: len(rig.device.placed) == 2)
    assert rig.state == "calling" and rig.device.placed[1].parameters["To"] == "123"


@pytest.mark.parametrize("mode", ["reject", "ignore"])
async def test_dnd_refuses_calls(mode):
    rig = Rig(replace(PhoneConfig(), dnd=mode))
    rig.press("DND")
    call = await rig.ringing_call()
    assert call.actions == [mode] and rig.state == "idle" and not rig.sounds.ringing
    rig.press("DND")
    call = await rig.ringing_call()
    assert call.actions == [] and rig.state == "ringing"
    rig.phone.close()


async def test_volume_steps_are_bounded(rig):
    await rig.talking_call()
    for _ in range(20):
        rig.press("VOLUME_UP")
    assert rig.sounds.level == 10
    for _ in range(20):
        rig.press("VOLUME_DOWN")
    assert rig.sounds.level == 0 and rig.state == "talking"
    assert rig.sounds.ringer_level == 7  # in a call the keys leave the ringer alone


async def test_volume_keys_set_the_ringer_when_idle_or_ringing(rig):
    rig.press("VOLUME_DOWN")
    assert (rig.sounds.ringer_level, rig.sounds.level) == (6, 7) and rig.state == "idle"
    for _ in range(20):
        rig.press("VOLUME_UP")
    assert rig.sounds.ringer_level == 10
    await rig.ringing_call()
    for _ in range(20):
        rig.press("VOLUME_DOWN")
    assert rig.sounds.ringer_level == 0 and rig.sounds.level == 7
    assert settings_of(rig.phone) == Settings(call_volume=7, ringer_volume=0, dnd=False)


async def test_saved_settings_win_over_the_configured_start():
    rig = Rig.__new__(Rig)
    rig.device, rig.leds, rig.sounds, rig.hook = FakeDevice(), FakeLeds(), FakeSounds(), False
    rig.phone = Phone(rig.device, rig.leds, rig.sounds, replace(PhoneConfig(), dnd_at_start=False),
                      AlertsConfig(), saved=Settings(call_volume=3, ringer_volume=9, dnd=True))
    assert (rig.sounds.level, rig.sounds.ringer_level, rig.phone.dnd) == (3, 9, True)
    call = await rig.ringing_call()
    assert call.actions == ["reject"]  # do-not-disturb came back on
    rig.phone.close()


# --- keypad -------------------------------------------------------------------------------
async def test_digits_dial_on_hash(rig):
    rig.press("OFF_HOOK")
    for digit in "1*2":
        rig.press("DIGIT", digit)
    assert rig.sounds.playing is None  # the dial tone stops at the first digit
    assert [e for e in rig.sounds.log if e[0] == "dtmf"] == [("dtmf", "1"), ("dtmf", "*"),
                                                            ("dtmf", "2")]
    rig.press("DIGIT", "#")
    await rig.until(lambda: rig.device.placed)
    assert rig.device.placed[0].parameters["To"] == "1*2" and rig.state == "calling"
    assert rig.sounds.playing == "ringback" and rig.leds.now["call"] == "on"


async def test_digits_dial_after_the_timeout():
    rig = Rig(replace(PhoneConfig(), dial_timeout=0.1))
    rig.press("OFF_HOOK")
    rig.press("DIGIT", "4")
    rig.press("DIGIT", "2")
    await rig.until(lambda: rig.device.placed)
    assert rig.device.placed[0].parameters["To"] == "42"
    rig.phone.close()


async def test_hash_alone_dials_nothing(rig):
    rig.press("OFF_HOOK")
    rig.press("DIGIT", "#")
    await rig.settle()
    assert rig.state == "dialing" and not rig.device.placed


async def test_digits_while_talking_send_dtmf(rig):
    call = await rig.talking_call()
    rig.press("DIGIT", "5")
    assert call.actions[-1] == ("digits", "5") and rig.sounds.log[-1] == ("dtmf", "5")


async def test_place_call_from_the_control_socket(rig):
    assert rig.phone.call_number("+15551234")
    await rig.until(lambda: rig.phone.call is not None)
    call = rig.device.placed[0]
    call.far_open()
    await rig.settle()
    assert rig.state == "talking" and rig.phone.status()["peer"] == "+15551234"
    assert rig.phone.hangup_call() and call.actions == ["disconnect"]


async def test_failed_connect_ends_the_attempt(rig):
    rig.device.fail_next = RuntimeError("no signaling")
    rig.press("OFF_HOOK")
    rig.press("DIGIT", "9")
    rig.press("DIGIT", "#")
    await rig.until(lambda: rig.state == "dialing" and rig.phone.last_error is not None)


# --- calls ---------------------------------------------------------------------------------
async def test_incoming_while_busy_is_rejected(rig):
    first = await rig.talking_call()
    second = await rig.ringing_call("+15550002")
    assert second.actions == ["reject"] and first.actions == ["accept"]
    assert rig.state == "talking"
    rig.press("OFF_HOOK")  # dialing counts as busy too
    rig.press("ON_HOOK")


async def test_incoming_while_dialing_is_rejected(rig):
    rig.press("OFF_HOOK")
    call = await rig.ringing_call()
    assert call.actions == ["reject"] and rig.state == "dialing"


async def test_call_waiting_accept_holds_the_first_call():
    rig = Rig(replace(PhoneConfig(), call_waiting=True))
    first = await rig.talking_call()
    second = await rig.ringing_call("+15550002")
    assert second.actions == [] and rig.sounds.beeps("waiting") == 1
    third = await rig.ringing_call("+15550003")  # only one waits
    assert third.actions == ["reject"]
    rig.press("ACCEPT")
    assert first.actions[-1] == ("hold", True) and "disconnect" not in first.actions
    assert second.actions == ["accept"] and first.is_on_hold()
    second.far_open()
    await rig.settle()
    assert rig.state == "talking" and rig.phone.call is second and rig.phone.held is first
    assert rig.phone.status()["peer"] == "+15550002"
    assert rig.phone.status()["held"] == "+15550001"
    assert rig.leds.now["hold"] == "blink_slow" and rig.leds.now["call"] == "on"
    fourth = await rig.ringing_call("+15550004")  # a call on hold and one up: busy
    assert fourth.actions == ["reject"]
    rig.phone.close()
    assert first.actions[-1] == "disconnect" and second.actions[-1] == "disconnect"


async def with_one_held(rig):
    """The rig talking on a second call, the first on hold."""
    rig.phone.settings = replace(rig.phone.settings, call_waiting=True)
    first = await rig.talking_call()
    second = await rig.ringing_call("+15550002")
    rig.press("ACCEPT")
    second.far_open()
    await rig.settle()
    return first, second


async def test_hold_button_holds_and_takes_back(rig):
    call = await rig.talking_call()
    rig.press("HOLD")
    assert rig.state == "held" and call.is_on_hold() and call.actions[-1] == ("hold", True)
    assert rig.leds.now == {"call": "blink_slow", "hold": "blink_slow"}
    rig.press("OFF_HOOK")  # lifting the handset (it was up) takes nothing back
    rig.press("HOLD")
    assert rig.state == "talking" and not call.is_on_hold() and call.actions[-1] == ("hold", False)
    assert "hold" not in rig.leds.now and rig.phone.hold_call() and rig.state == "held"


async def test_a_held_call_stays_when_the_handset_goes_down_and_reminds():
    rig = Rig(replace(PhoneConfig(), hold_reminder=0.05))
    call = await rig.talking_call()
    rig.press("HOLD")
    await asyncio.sleep(0.12)
    assert rig.sounds.beeps("hold") == 0  # the handset is up: no reminder
    rig.press("ON_HOOK")
    assert rig.state == "held" and "disconnect" not in call.actions
    await rig.until(lambda: rig.sounds.beeps("hold") >= 2)
    rig.press("OFF_HOOK")
    beeps = rig.sounds.beeps("hold")
    await asyncio.sleep(0.12)
    assert rig.sounds.beeps("hold") == beeps and rig.state == "held"
    rig.press("REJECT")  # hangs the held call up
    assert call.actions[-1] == "disconnect" and rig.state == "dialing"
    rig.phone.close()


async def test_hold_does_nothing_with_a_call_already_held_and_swap_alternates(rig):
    first, second = await with_one_held(rig)
    assert not rig.phone.hold_call() and rig.state == "talking"
    rig.press("SWAP")
    assert rig.phone.call is first and rig.phone.held is second and rig.state == "talking"
    assert second.is_on_hold() and not first.is_on_hold()
    assert rig.phone.status()["peer"] == "+15550001"
    assert rig.phone.swap_call()
    assert rig.phone.call is second and not second.is_on_hold() and first.is_on_hold()


async def test_a_restart_that_keeps_the_call_leaves_the_held_one_alone_too(rig):
    first, second = await with_one_held(rig)
    rig.phone.close(hang_up=False)  # SIGUSR1 (service.py): the next run resumes the call
    assert "disconnect" not in first.actions and "disconnect" not in second.actions


@pytest.mark.parametrize("how", ["REJECT", "far_hangup"])
async def test_hanging_up_the_active_call_offers_the_held_one(rig, how):
    first, second = await with_one_held(rig)
    if how == "REJECT":
        rig.press("REJECT")
        assert second.actions[-1] == "disconnect"
    else:
        second.far_hangup()
        await rig.settle()
    assert rig.state == "held" and rig.phone.call is first and first.is_on_hold()
    assert rig.phone.held is None and rig.phone.status()["peer"] == "+15550001"
    rig.press("HOLD")
    assert rig.state == "talking" and not first.is_on_hold()


@pytest.mark.parametrize("how", ["ON_HOOK", "far_hangup"])
async def test_the_held_call_rings_back_when_the_handset_is_down(rig, how):
    first, second = await with_one_held(rig)
    if how == "ON_HOOK":
        rig.press("ON_HOOK")
    else:
        rig.hook = False  # talking on the speaker, the handset down
        second.far_hangup()
        await rig.settle()
    assert rig.state == "recall" and rig.sounds.ringing and rig.phone.call is first
    assert rig.leds.now["ring"] == "blink_fast" and rig.leds.now["hold"] == "blink_slow"
    rig.press("OFF_HOOK")
    assert rig.state == "talking" and not first.is_on_hold() and not rig.sounds.ringing


async def test_recall_accept_takes_back_and_reject_hangs_up(rig):
    first, second = await with_one_held(rig)
    rig.hook = False
    rig.press("REJECT")  # the handset is down: the held call rings back
    assert rig.state == "recall"
    rig.press("ACCEPT")
    assert rig.state == "talking" and not first.is_on_hold()
    rig.press("HOLD")
    rig.press("REJECT")
    assert rig.state == "idle" and first.actions[-1] == "disconnect"


async def test_a_call_waits_while_the_only_call_is_held(rig):
    rig.phone.settings = replace(rig.phone.settings, call_waiting=True)
    first = await rig.talking_call()
    rig.press("HOLD")
    second = await rig.ringing_call("+15550002")
    assert rig.phone.waiting is second and rig.state == "held"
    rig.press("ACCEPT")
    assert second.actions == ["accept"] and rig.phone.held is first and rig.state == "talking"
    assert first.is_on_hold()


async def test_the_held_call_held_hangs_up(rig):
    first, second = await with_one_held(rig)
    first.far_hangup()  # the held party gives up: held_ended
    await rig.settle()
    assert rig.phone.held is None and rig.phone.call is second and rig.state == "talking"
    assert "hold" not in rig.leds.now
    rig.press("REJECT")
    assert rig.state == "dialing"


@pytest.mark.parametrize("button,action", [("REJECT", "reject"), ("IGNORE", "ignore")])
async def test_call_waiting_reject_or_ignore_the_waiting_call(button, action):
    rig = Rig(replace(PhoneConfig(), call_waiting=True))
    first = await rig.talking_call()
    second = await rig.ringing_call("+15550002")
    rig.press(button)
    await rig.settle()
    assert second.actions == [action] and rig.phone.waiting is None
    assert rig.state == "talking" and first.actions == ["accept"]
    rig.phone.close()


@pytest.mark.parametrize("how", ["far_hangup", "ON_HOOK"])
async def test_waiting_call_rings_when_the_first_ends(how):
    rig = Rig(replace(PhoneConfig(), call_waiting=True))
    first = await rig.talking_call()
    second = await rig.ringing_call("+15550002")
    if how == "far_hangup":
        rig.hook = False
        first.far_hangup()
    else:
        rig.press("ON_HOOK")
    await rig.settle()
    assert rig.state == "ringing" and rig.phone.call is second and rig.sounds.ringing
    rig.press("OFF_HOOK")
    assert second.actions == ["accept"] and rig.state == "talking"
    rig.phone.close()


async def test_waiting_caller_gives_up(rig):
    rig.phone.settings = replace(rig.phone.settings, call_waiting=True)
    await rig.talking_call()
    second = await rig.ringing_call("+15550002")
    second.far_cancel()
    await rig.settle()
    assert rig.phone.waiting is None and rig.state == "talking"


async def test_auto_answer_after_rings():
    rig = Rig(replace(PhoneConfig(), auto_answer_rings=3), FAST_RING)
    call = await rig.ringing_call()
    await rig.until(lambda: rig.state == "talking")
    assert call.actions == ["accept"] and rig.phone.rings == 3
    rig.phone.close()


async def test_no_auto_answer_when_off():
    rig = Rig(PhoneConfig(), FAST_RING)
    call = await rig.ringing_call()
    await rig.until(lambda: rig.phone.rings >= 4)
    assert rig.state == "ringing" and call.actions == []
    rig.phone.close()


async def test_outgoing_answered_goes_talking(rig):
    call = await rig.outgoing()
    assert rig.state == "calling"
    call.far_open()
    await rig.settle()
    assert rig.state == "talking" and rig.sounds.playing is None


async def test_caller_cancels_while_ringing(rig):
    call = await rig.ringing_call()
    call.far_cancel()
    await rig.settle()
    assert rig.state == "idle" and not rig.sounds.ringing and rig.leds.now == {}


@pytest.mark.parametrize("hook,after", [(True, "dialing"), (False, "idle")])
async def test_far_end_hangs_up(rig, hook, after):
    call = await rig.talking_call()
    rig.hook = hook
    call.far_hangup()
    await rig.settle()
    assert rig.state == after and rig.phone.call is None


async def test_reconnecting_and_reconnected(rig):
    call = await rig.talking_call()
    call.net_reconnecting()
    await rig.settle()
    assert rig.state == "reconnecting" and rig.leds.now["call"] == "pulse"
    assert rig.sounds.playing == "reconnecting"
    call.net_reconnected()
    await rig.settle()
    assert rig.state == "talking" and rig.leds.now["call"] == "on" and rig.sounds.playing is None


async def test_a_call_that_reconnects_before_it_shows_as_answered(rig):
    """A fault while our outgoing call is being answered: the call reports reconnecting
    before the phone saw it open; the panel must say so, then show the call once it is back."""
    call = await rig.outgoing()
    assert rig.state == "calling"
    call.net_reconnecting()
    await rig.settle()
    assert rig.state == "reconnecting" and rig.leds.now["call"] == "pulse"
    call.net_reconnected()
    await rig.settle()
    assert rig.state == "talking" and rig.leds.now["call"] == "on"


async def test_warning_chirps_once_and_lights(rig):
    call = await rig.talking_call()
    call.emit("warning", "high-rtt", {"value": 500})
    await rig.settle()
    assert rig.leds.now["warning"] == "on" and rig.sounds.beeps("warning") == 1
    call.emit("warning", "high-rtt", {"value": 600})  # the same warning again: no chirp
    call.emit("warning", "audio-device-lost", {})
    await rig.settle()
    assert rig.sounds.beeps("warning") == 2 and rig.leds.now["warning"] == "blink_fast"
    call.emit("warning-cleared", "audio-device-lost")
    call.emit("warning-cleared", "high-rtt")
    await rig.settle()
    assert "warning" not in rig.leds.now and rig.phone.warnings == set()


async def test_error_is_noted(rig):
    call = await rig.talking_call()
    call.emit("error", RuntimeError("31005"))
    await rig.settle()
    assert str(rig.phone.last_error) == "31005" and rig.state == "talking"


# --- the idle panel: offline, do-not-disturb, missed calls --------------------------------
async def test_the_idle_panel_shows_offline_dnd_and_missed_calls(rig):
    assert rig.leds.now == {}  # registered, nothing waiting: dark
    rig.phone.set_online(False)
    assert rig.leds.now == {"warning": "blink_slow"}
    rig.press("DND")
    rig.phone.set_missed(2)
    assert rig.leds.now == {"warning": "blink_slow", "dnd": "on", "missed": "blink_slow"}
    rig.phone.set_online(True)
    rig.press("DND")
    assert rig.leds.now == {"missed": "blink_slow"}


async def test_the_missed_key_marks_the_missed_calls_seen(rig):
    seen = []
    rig.phone.on_seen = lambda: seen.append(True)
    rig.phone.set_missed(3)
    rig.press("MISSED")
    assert rig.phone.missed == 0 and seen == [True] and rig.leds.now == {}
    rig.phone.set_missed(1)
    assert rig.phone.fire("seen") and rig.phone.missed == 0 and len(seen) == 2


async def test_the_missed_key_off_hook_calls_the_last_caller_back(rig):
    rig.press("OFF_HOOK")
    rig.press("MISSED")  # nobody called yet: it only marks them seen
    assert rig.state == "dialing" and not rig.device.placed
    rig.press("ON_HOOK")
    call = await rig.ringing_call("+15550042")
    call.far_cancel()  # the caller gives up: a missed call
    await rig.settle()
    assert rig.state == "idle" and rig.phone.last_caller == "+15550042"
    rig.phone.set_missed(1)
    rig.press("OFF_HOOK")
    rig.press("MISSED")
    await rig.until(lambda: rig.device.placed)
    assert rig.device.placed[0].parameters["To"] == "+15550042" and rig.state == "calling"
    assert rig.phone.missed == 0


async def test_speed_dial_keys_call_their_numbers(rig):
    rig.phone.speed_numbers = {"1": "client:bob", "3": "+15550003"}
    rig.press("SPEED", "2")  # no contact on key 2: nothing
    assert rig.state == "idle" and not rig.device.placed
    rig.press("SPEED", "3")  # handset down: it calls at once
    await rig.until(lambda: rig.device.placed)
    assert rig.device.placed[0].parameters["To"] == "+15550003" and rig.state == "calling"
    rig.press("REJECT")
    await rig.settle()
    rig.press("OFF_HOOK")
    rig.press("SPEED", "1")
    await rig.until(lambda: len(rig.device.placed) == 2)
    assert rig.device.placed[1].parameters["To"] == "client:bob"
    assert rig.phone.last_number == "client:bob"


async def test_events_of_a_call_no_longer_ours_are_ignored(rig):
    call = await rig.ringing_call()
    rig.press("IGNORE")
    call.far_open()  # whatever the old call does now
    await rig.settle()
    assert rig.state == "idle"


# --- a call the last run kept (kept_call.py; service.py resumes it at start) ---------------

async def test_the_phone_resumes_a_kept_call():
    rig = Rig()
    assert rig.phone.fire("resume_call", token="KEPT-TOKEN", peer="client:bob")
    assert rig.state == "reconnecting" and rig.phone.peer == "client:bob"
    await rig.until(lambda: rig.device.placed)
    (call,) = rig.device.placed
    assert call.parameters["To"] == "resumed:KEPT-TOKEN"  # connect(connect_token=...)
    await rig.settle()
    call.far_open()
    await rig.settle()
    assert rig.state == "talking" and rig.phone.call is call


async def test_a_resume_that_fails_ends_in_idle():
    rig = Rig()
    rig.device.fail_next = TwilioError(31005, "there is no call to resume")
    rig.phone.fire("resume_call", token="KEPT-TOKEN", peer="client:bob")
    await rig.until(lambda: rig.state == "idle")
    assert rig.phone.call is None and rig.phone.peer is None


async def test_the_phone_resumes_a_kept_call_on_hold():
    rig = Rig()
    rig.phone.fire("resume_call", token="KEPT-TOKEN", peer="client:bob", held=True)
    await rig.until(lambda: rig.device.placed)
    (call,) = rig.device.placed
    assert call.is_on_hold()  # at once: the far party hears the hold music again
    call.far_open()
    await rig.settle()
    assert rig.state == "held" and rig.phone.call is call  # not talking
    rig.press("HOLD")
    assert rig.state == "talking" and not call.is_on_hold()


async def test_a_second_kept_call_comes_back_on_hold_behind_the_first():
    rig = Rig(replace(PhoneConfig(), call_waiting=True))
    rig.phone.fire("resume_call", token="ACTIVE", peer="client:bob")
    rig.phone.fire("resume_held", token="HELD", peer="client:carol")
    await rig.until(lambda: len(rig.device.placed) == 2)
    active, held = rig.device.placed
    assert active.parameters["To"] == "resumed:ACTIVE"  # the active one first
    assert held.parameters["To"] == "resumed:HELD" and held.is_on_hold()
    active.far_open()
    await rig.settle()
    assert rig.state == "talking" and rig.phone.held is held
    assert rig.phone.status()["held"] == "client:carol"
    rig.press("SWAP")
    assert rig.phone.call is held and not held.is_on_hold() and active.is_on_hold()


async def test_a_kept_held_call_alone_comes_back_when_the_first_does_not():
    rig = Rig(replace(PhoneConfig(), call_waiting=True))
    rig.device.fail_next = TwilioError(31005, "there is no call to resume")
    rig.phone.fire("resume_call", token="ACTIVE", peer="client:bob")
    rig.phone.fire("resume_held", token="HELD", peer="client:carol")
    await rig.until(lambda: rig.state == "recall")  # handset down: it rings back (held_back)
    (held,) = rig.device.placed
    assert rig.phone.call is held and held.is_on_hold() and rig.phone.peer == "client:carol"
    rig.press("OFF_HOOK")
    assert rig.state == "talking" and not held.is_on_hold()


async def test_every_row_has_a_test():
    """Each trigger of the table appears in this file's tests, or test_appliance_transfer's
    (a row without one fails)."""
    here = Path(__file__)
    source = here.read_text() + here.with_name("test_appliance_transfer.py").read_text()
    spoken = {"press_transfer": '"TRANSFER"', "transfer_to": "transfer_call(",
              "press_conference": '"CONFERENCE"',
              "off_hook": "OFF_HOOK", "on_hook": "ON_HOOK", "press_accept": '"ACCEPT"',
              "press_reject": '"REJECT"', "press_ignore": '"IGNORE"', "press_mute": '"MUTE"',
              "press_redial": '"REDIAL"', "press_dnd": '"DND"', "volume_up": "VOLUME_UP",
              "volume_down": "VOLUME_DOWN", "key": '"DIGIT"', "dial": "dial_timeout",
              "place_call": "call_number", "incoming": "ringing_call", "ring":
              "auto_answer_rings", "answered": "far_open", "ended": "far_hangup",
              "waiting_ended": "far_cancel", "reconnecting": "net_reconnecting",
              "reconnected": "net_reconnected", "warning": '"warning"',
              "warning_cleared": '"warning-cleared"', "failed": '"error"',
              "resume_call": '"resume_call"', "resume_held": '"resume_held"',
              "held_back": "test_a_kept_held_call_alone_comes_back",
              "press_speaker": '"SPEAKER"', "press_hold": '"HOLD"', "press_swap": '"SWAP"',
              "held_ended": "held_hangs_up",
              "press_missed": '"MISSED"', "seen": 'fire("seen")', "press_speed": '"SPEED"'}
    # voicemail's rows are tested in test_appliance_voicemail.py
    voicemail = open(__file__.replace("_phone.py", "_voicemail.py")).read()
    spoken_there = {"press_voicemail": '"VOICEMAIL"', "messages_done": '"dialing"'}
    for trigger, words in spoken_there.items():
        assert words in voicemail, trigger
    triggers = {row[0] for row in table.TRANSITIONS} - set(spoken_there)
    assert triggers == set(spoken)
    for trigger, words in spoken.items():
        assert words in source, trigger


# --- random presses ------------------------------------------------------------------------
class NoTransfer:
    """A transferer whose transfers the server never carries out (the calls go on)."""

    conferences = True

    async def blind(self, call, to: str) -> None: ...

    async def join(self, call, held, peer) -> None: ...

    async def conference(self, call, held) -> None: ...


async def test_random_presses_in_random_states():
    """1,000 random presses and call events: no exception, no stuck state, no double action."""
    rng = random.Random(9)
    rig = Rig(replace(PhoneConfig(), call_waiting=True, dial_timeout=0.5,
                      mute_reminder=0.5), FAST_RING)
    rig.phone.last_number = "100"  # so that redial reaches "calling" too
    rig.phone.transferer = NoTransfer()  # so that TRANSFER and CONFERENCE do something
    presses = [e.name for e in PanelEvent]
    calls = []
    for _ in range(1000):
        roll = rng.random()
        if roll < 0.6:
            name = rng.choice(presses)
            rig.press(name, rng.choice("0123456789*#") if name == "DIGIT" else None)
        elif roll < 0.75:
            calls.append(rig.device.ring(f"+1555{rng.randrange(10000):04d}"))
        else:
            live = [c for c in calls + rig.device.placed if c.status() != "closed"]
            if live:
                call = rng.choice(live)
                far = rng.choice(["far_open", "far_hangup", "far_cancel", "net_reconnecting",
                                  "net_reconnected"])
                ok = {"far_open": ("connecting", "ringing"), "far_hangup": ("open",),
                      "far_cancel": ("pending",), "net_reconnecting": ("open",),
                      "net_reconnected": ("reconnecting",)}[far]
                if call.status() in ok:
                    getattr(call, far)()
        await rig.settle()
        phone = rig.phone
        assert phone.state in phone_mod.STATES
        # the phone's call is live whenever it is in a call state, and only then
        if phone.state in ("ringing", "talking", "reconnecting", "held", "recall", "transfer"):
            assert phone.call is not None and phone.call.status() != "closed", phone.state
        if phone.state in ("idle", "dialing"):
            assert phone.call is None and not phone.muted and not rig.sounds.ringing
        assert rig.sounds.ringing == (phone.state in ("ringing", "recall"))
        # a call on hold is on hold, and one the phone talks on is not
        held = phone.held
        assert held is None or (held.is_on_hold() and held.status() != "closed")
        if phone.call is not None and phone.state == "talking":
            assert not phone.call.is_on_hold()
        # the audio is where the phone says, and a phone at rest is back on the headset
        assert rig.route.handsfree == phone.handsfree
        assert not (phone.state == "idle" and phone.handsfree)
        if rig.hook and phone.state != "idle":  # a handset in the hand takes the call
            assert not phone.handsfree or rig.route.moves[-1] is True
    assert rig.phone.failures == 0
    for call in calls + rig.device.placed:
        for action in ("accept", "reject", "ignore"):
            assert call.actions.count(action) <= 1, call.actions
        assert call.actions.count("disconnect") <= 1, call.actions
    # and it still works: hang up whatever is up, then a fresh call rings and is answered
    rig.press("ON_HOOK")
    rig.press("REJECT")
    await rig.settle()
    if rig.phone.dnd:  # left on by the random presses: a call would be refused
        rig.press("DND")
    if rig.phone.handsfree:  # dialing on the speaker: the handset down does not end it
        rig.press("SPEAKER")
    if rig.state in ("idle", "dialing"):
        rig.press("ON_HOOK")
        if rig.phone.dnd:  # the random presses left do-not-disturb on
            rig.press("DND")
        call = await rig.ringing_call()
        rig.press("OFF_HOOK")
        assert call.actions == ["accept"] and rig.state == "talking"
    rig.phone.close()


async def test_a_trigger_fired_during_an_event_runs_after_it(rig):
    """Listeners run inside an event: what they fire (with arguments) is queued, not lost."""
    await rig.talking_call()
    fired = []

    def listener(phone):
        if not fired:
            fired.append(phone.fire("warning", name="high-jitter"))

    rig.phone.listeners.append(listener)
    rig.press("VOLUME_UP")
    assert fired == [True] and rig.phone.warnings == set()  # not yet: queued
    await rig.settle()
    assert rig.phone.warnings == {"high-jitter"} and rig.leds.now["warning"] == "on"


async def test_lost_headset_warns_on_the_call(rig, tmp_path):
    from piphone.appliance.service import Service
    from tests.unit.test_appliance_config import GOOD, write

    service = Service(__import__("piphone.appliance.config", fromlist=["load"]).load(
        write(tmp_path, GOOD)))
    service.phone = rig.phone
    service._audio_condition(True)  # no call: nothing to warn
    call = await rig.talking_call()
    service._audio_condition(True)
    await rig.settle()
    assert ("condition", "audio-device-lost", True) in call.actions  # the Call's own warning
    assert rig.phone.warnings == {"audio-device-lost"}
    assert rig.leds.now["warning"] == "blink_fast" and rig.sounds.beeps("warning") == 1
    service._audio_condition(False)
    await rig.settle()
    assert rig.phone.warnings == set()


async def test_configured_led_patterns_are_shown():
    import functools

    from piphone.appliance.display import DisplayPatterns, display

    rig = Rig()
    rig.phone._display = functools.partial(display, patterns=DisplayPatterns(ringing="on"))
    await rig.ringing_call()
    assert rig.leds.now["ring"] == "on"
    rig.phone.close()


# --- the speaker button (handsfree) ---------------------------------------------------------
async def test_speaker_moves_a_talking_call_to_the_handsfree_device_and_back(rig):
    call = await rig.talking_call()
    rig.press("SPEAKER")
    assert rig.phone.handsfree and rig.route.moves == [True] and rig.state == "talking"
    assert rig.leds.now["speaker"] == "on" and rig.leds.now["call"] == "on"
    rig.press("SPEAKER")
    assert not rig.phone.handsfree and rig.route.moves == [True, False]
    assert "speaker" not in rig.leds.now and rig.state == "talking"
    assert call.actions == ["accept"]  # never dropped


async def test_hanging_up_the_handset_during_a_handsfree_call_keeps_the_call(rig):
    call = await rig.talking_call()
    rig.press("SPEAKER")
    rig.press("ON_HOOK")
    assert rig.state == "talking" and rig.phone.handsfree and call.actions == ["accept"]


async def test_lifting_the_handset_during_a_handsfree_call_takes_it_to_the_headset(rig):
    call = await rig.ringing_call()
    rig.press("SPEAKER")  # answers on the speaker
    assert call.actions == ["accept"] and rig.state == "talking" and rig.phone.handsfree
    call.far_open()
    await rig.settle()
    rig.press("OFF_HOOK")
    assert rig.state == "talking" and not rig.phone.handsfree and rig.route.moves == [True, False]
    rig.press("ON_HOOK")  # on the headset now: the handset down hangs up
    assert call.actions[-1] == "disconnect" and rig.state == "idle"


async def test_speaker_on_an_idle_phone_dials_on_the_speaker(rig):
    rig.press("SPEAKER")
    assert rig.state == "dialing" and rig.phone.handsfree and rig.sounds.playing == "dial"
    rig.press("SPEAKER")  # the handset is down: the speaker off ends dialing
    assert rig.state == "idle" and not rig.phone.handsfree and rig.sounds.playing is None
    assert rig.route.moves == [True, False]


async def test_speaker_while_dialing_with_the_handset_up_moves_the_dial_tone(rig):
    rig.press("OFF_HOOK")
    rig.press("SPEAKER")
    assert rig.state == "dialing" and rig.phone.handsfree
    assert rig.sounds.log[-1] == ("tone", "dial")  # the tone again, on the device now in use
    rig.press("SPEAKER")
    assert rig.state == "dialing" and not rig.phone.handsfree


async def test_a_handsfree_call_that_ends_leaves_the_phone_on_the_headset(rig):
    call = await rig.talking_call()
    rig.press("SPEAKER")
    rig.press("ON_HOOK")
    call.far_hangup()
    await rig.settle()
    assert rig.state == "idle" and not rig.phone.handsfree and rig.route.moves == [True, False]
    assert rig.leds.now == {}


async def test_a_handsfree_call_ended_with_the_handset_up_dials_on_the_headset(rig):
    call = await rig.talking_call()
    rig.press("SPEAKER")  # handset still in the hand
    call.far_hangup()
    await rig.settle()
    assert rig.state == "dialing" and not rig.phone.handsfree


async def test_speaker_does_nothing_without_a_handsfree_device():
    rig = Rig(route=FakeRoute(available=False))
    rig.press("SPEAKER")
    assert rig.state == "idle"
    call = await rig.talking_call()
    rig.press("SPEAKER")
    assert not rig.phone.handsfree and rig.route.moves == [] and call.actions == ["accept"]
    assert not rig.phone.speaker_call()
    rig.phone.close()


async def test_speaker_call_asks_for_a_side(rig):
    await rig.talking_call()
    assert rig.phone.speaker_call(True) and rig.phone.handsfree
    assert rig.phone.speaker_call(True) and rig.phone.handsfree  # already there
    assert rig.phone.speaker_call(False) and not rig.phone.handsfree
    assert rig.phone.speaker_call() and rig.phone.handsfree  # the button
    assert rig.phone.status()["handsfree"] is True
