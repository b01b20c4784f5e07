"""Hold and call waiting that holds, on the appliance: mock pins, the ALSA test rig (alice's
headset is rig headset ``a``, its microphone a 700 Hz tone), real calls through the exchange.

- The hold button: bob hears the phone's hold music (not alice's microphone, not silence)
  and alice's earpiece stops playing bob; ``hold`` on the control socket takes him back.
- Call waiting that holds: bob and carol both alive through accept (bob held), swap, swap
  back (the control socket's ``swap``) with what each hears and what the earpiece plays
  checked at every step; hanging up carol with the handset down rings bob back, and lifting
  the handset takes him back.
"""

from __future__ import annotations

import pytest

from piphone.pcm import HoldMusic, dominant_frequency, rms

from ..conftest import until
from .appliance_rig import led_lines, load_phone_config, press, running_service
from .helpers import hears

pytestmark = pytest.mark.net

HOOK, ACCEPT, REJECT, HOLD, SWAP = 17, 27, 22, 23, 24
LEDS = {"ring": 5, "call": 6, "mute": 13, "warning": 19, "hold": 20}
MIC, BOB, CAROL = 700, 600, 800


def config(tmp_path, exchange, phone: str = ""):
    return load_phone_config(
        tmp_path, exchange, audio='headset = "piphone_a_cap,piphone_a_play"',
        phone=f'mute_reminder = 0\nhold_reminder = 0\ncall_log = ""\n{phone}', rest=f"""
[pins.inputs]
hook = {HOOK}
accept = {ACCEPT}
reject = {REJECT}
hold = {HOLD}
swap = {SWAP}
[pins.leds]
{led_lines(LEDS)}
""")


def near_a_note(frequency: float | None) -> bool:
    return frequency is not None and any(abs(frequency - n) < 15 for n in HoldMusic.NOTES)


async def hears_hold_music(phone, timeout: float = 8.0) -> None:
    """The phone hears the hold music: notes of it and nothing of alice's microphone."""
    def music() -> bool:
        rec = phone.recorder
        rate = rec.sample_rate or 48000
        chunks = [rec.last(1.2)[i:i + int(0.3 * rate)] for i in range(0, int(1.2 * rate),
                                                                        int(0.3 * rate))]
        return len(rec.last(1.2)) >= int(1.2 * rate) and all(
            near_a_note(dominant_frequency(c, rate)) and rms(c) > 300 for c in chunks)
    await until(music, timeout, what=f"hold music at {phone.device.identity}")


def plays(headset, frequency: float, seconds: float = 0.3) -> bool:
    recent = headset.recorded()[-int(seconds * 48_000):]
    found = dominant_frequency(recent, 48_000)
    return found is not None and abs(found - frequency) < 15


def silent(headset, seconds: float = 0.5) -> bool:
    recent = headset.recorded()[-int(seconds * 48_000):]
    return len(recent) > 0 and rms(recent) < 30


def has_lit(factory, name: str) -> bool:
    return any(s.state for s in factory.pin(LEDS[name]).states)


async def test_hold_plays_music_to_the_far_end_and_nothing_in_the_earpiece(
        tmp_path, exchange, alsa_rig, make_phone):
    alsa_rig["a"].tone(MIC)
    async with running_service(config(tmp_path, exchange)) as service:
        factory = service.factory
        bob = await make_phone("bob", tone=BOB)
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: service.phone.state == "ringing", what="alice rings")
        factory.pin(HOOK).drive_low()
        await until(lambda: service.phone.state == "talking", what="answered")
        await hears(bob, MIC, timeout=10)
        await until(lambda: plays(alsa_rig["a"], BOB), what="bob in the earpiece")
        await press(factory, HOLD)
        await until(lambda: service.phone.state == "held", what="held")
        await hears_hold_music(bob)
        await until(lambda: silent(alsa_rig["a"]), what="the earpiece silent on hold")
        assert has_lit(factory, "hold") and "on hold" in service.status_line()
        assert call.status().value == "open"
        assert service.control({"cmd": "hold"})["state"] == "talking"  # `piphone hold`
        await hears(bob, MIC, timeout=5)
        await until(lambda: plays(alsa_rig["a"], BOB), what="bob in the earpiece again")
        assert call.status().value == "open"


@pytest.mark.parametrize("exchange_cfg", [{"call_waiting": True}], indirect=True)
async def test_call_waiting_holds_swaps_and_rings_the_held_call_back(
        tmp_path, exchange, alsa_rig, make_phone):
    alsa_rig["a"].tone(MIC)
    async with running_service(config(tmp_path, exchange, "call_waiting = true")) as service:
        factory, phone = service.factory, service.phone
        bob = await make_phone("bob", tone=BOB)
        carol = await make_phone("carol", tone=CAROL)
        to_bob = await bob.device.connect({"To": "client:alice"})
        await until(lambda: phone.state == "ringing", what="alice rings")
        factory.pin(HOOK).drive_low()
        await hears(bob, MIC, timeout=10)
        to_carol = await carol.device.connect({"To": "client:alice"})
        await until(lambda: phone.waiting is not None, what="carol waits")
        # accepting carol holds bob
        await press(factory, ACCEPT)
        await until(lambda: phone.held is not None, what="bob held")
        await hears(carol, MIC, timeout=10)
        await hears_hold_music(bob)
        await until(lambda: plays(alsa_rig["a"], CAROL), what="carol in the earpiece")
        assert service.status()["held"] == "client:bob"
        # swap: bob back, carol held
        await press(factory, SWAP)
        await hears(bob, MIC, timeout=5)
        await hears_hold_music(carol)
        await until(lambda: plays(alsa_rig["a"], BOB), what="bob in the earpiece")
        # and back, with `piphone swap`
        assert service.control({"cmd": "swap"})["state"] == "talking"
        await hears(carol, MIC, timeout=5)
        await hears_hold_music(bob)
        await until(lambda: plays(alsa_rig["a"], CAROL), what="carol in the earpiece again")
        assert to_bob.status().value == to_carol.status().value == "open"
        # the handset down hangs carol up; bob, held, rings back
        factory.pin(HOOK).drive_high()
        await until(lambda: phone.state == "recall", what="bob rings back")
        await until(lambda: to_carol.status().value == "closed", what="carol hung up")
        await hears_hold_music(bob)
        assert to_bob.status().value == "open"
        factory.pin(HOOK).drive_low()
        await until(lambda: phone.state == "talking", what="bob taken back")
        await hears(bob, MIC, timeout=5)
        await until(lambda: plays(alsa_rig["a"], BOB), what="bob in the earpiece at last")
