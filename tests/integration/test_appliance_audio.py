"""The appliance with sound, on mock pins and the ALSA test rig, through a real exchange:
alice's headset is rig headset ``a`` and her ringer rig headset ``b``; bob is a Device with a
600 Hz tone and a recorder. An incoming call blinks the ring LED and rings the ringer (440+480
Hz); lifting the hook answers and audio flows both ways; mute lights the mute LED and bob hears
silence; hanging up leaves all LEDs off and the ringer quiet; off hook with no call there is
dial tone (350+440 Hz) in the earpiece."""

from __future__ import annotations

import numpy as np
import pytest

from piphone.appliance import config as appliance_config
from piphone.pcm import dominant_frequency, rms

from ..conftest import until
from .appliance_rig import led_lines, load_phone_config, press, running_service
from .helpers import hears, level
from .test_alsa_path import RATE, band_level, recorded_seconds

pytestmark = pytest.mark.net

HOOK, MUTE, VOLUME_DOWN = 17, 24, 26
LEDS = {"ring": 5, "call": 6, "mute": 13, "warning": 19}


def write_config(tmp_path, exchange) -> appliance_config.ApplianceConfig:
    return load_phone_config(
        tmp_path, exchange,
        audio='headset = "piphone_a_cap,piphone_a_play"\nring_device = "piphone_b_play"',
        phone='mute_reminder = 0\ncall_log = ""', rest=f"""
[alerts]
ring_pattern = [0.5, 0.5]

[pins.inputs]
hook = {HOOK}
mute = {MUTE}
volume_down = {VOLUME_DOWN}
[pins.leds]
{led_lines(LEDS)}
""")


def lit(factory, name: str) -> bool:
    return bool(factory.pin(LEDS[name]).state)


@pytest.fixture
async def service(tmp_path, exchange, alsa_rig):
    alsa_rig["a"].tone(700)  # alice's microphone
    async with running_service(write_config(tmp_path, exchange)) as svc:
        yield svc


async def test_ring_answer_talk_mute_hang_up(service, make_phone, alsa_rig):
    factory = service.factory
    bob = await make_phone("bob", tone=600)
    call = await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="alice rings")
    # the ring LED blinks and the ringer plays the ring
    await until(lambda: lit(factory, "ring"), what="ring LED on")
    await until(lambda: not lit(factory, "ring"), what="ring LED blinking")
    ring = alsa_rig["b"]
    await until(lambda: np.abs(ring.recorded()).max(initial=0) > 1000, what="the ringer")
    audio = await recorded_seconds(ring, 1.5)  # 1.5 cycles of 0.5 s on, 0.5 s off
    periods = (np.abs(audio.astype(np.int32)) > 500)[:len(audio) // 960 * 960]
    on = periods.reshape(-1, 960).any(axis=1)
    rise = next(i for i in range(1, len(on)) if on[i] and not on[i - 1])  # a ring starts
    burst = audio[rise * 960:rise * 960 + 3 * RATE // 10]
    assert band_level(burst, 440) > 20 * band_level(burst, 1000)
    assert band_level(burst, 480) > 20 * band_level(burst, 1000)
    assert 23 <= on[rise:rise + 50].sum() <= 27  # 0.5 s on (25 periods) of each second
    # lift: answered, the ringer stops, audio flows both ways
    accepted = []
    call.on("accept", accepted.append)
    factory.pin(HOOK).drive_low()
    await until(lambda: accepted, timeout=10, what="bob's call accepted")
    assert lit(factory, "call") and not lit(factory, "ring")
    await until(lambda: rms(ring.recorded()[-RATE // 5:]) < 30, what="the ringer stops")
    await hears(bob, 700, timeout=10)  # alice's microphone at bob's
    ear = alsa_rig["a"]

    def alice_hears_600() -> bool:
        f = dominant_frequency(ear.recorded()[-RATE // 2:], RATE)
        return f is not None and abs(f - 600) < 10

    await until(alice_hears_600, timeout=10, what="bob's tone in alice's earpiece")
    # mute: the LED, and bob hears silence
    await press(factory, MUTE)
    await until(lambda: lit(factory, "mute"), what="mute LED on")
    assert service.phone.call.is_muted()
    await until(lambda: level(bob) < 30, timeout=5, what="silence at bob's")
    await press(factory, MUTE)
    await until(lambda: not lit(factory, "mute"), what="mute LED off")
    await hears(bob, 700, timeout=10)
    # hang up: bob's call ends, everything is off
    ended = []
    call.on("disconnect", ended.append)
    factory.pin(HOOK).drive_high()
    await until(lambda: ended, timeout=10, what="bob hears the hang-up")
    assert service.phone.state == "idle"
    assert not any(lit(factory, name) for name in LEDS)


async def test_volume_keys_change_the_ring_going_on(service, make_phone, alsa_rig):
    """A desk phone's volume keys while it rings: the ring in progress gets softer at once,
    about 3 dB a step, in its cadence; at step 0 it is silent though the call still rings."""
    bob = await make_phone("bob", tone=600)
    await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="alice rings")
    ring = alsa_rig["b"]
    await until(lambda: np.abs(ring.recorded()).max(initial=0) > 1000, what="the ringer")
    before = np.abs((await recorded_seconds(ring, 1.0)).astype(np.int32)).max()
    start = service.phone.ringer_step
    for _ in range(2):
        await press(service.factory, VOLUME_DOWN)
    await until(lambda: service.phone.ringer_step == start - 2, what="two steps down")
    await recorded_seconds(ring, 0.1)  # what the device buffered at the old level
    after = np.abs((await recorded_seconds(ring, 1.0)).astype(np.int32)).max()
    assert 0.4 < after / before < 0.6, (before, after)  # 6 dB down: x0.5
    for _ in range(start - 2):
        await press(service.factory, VOLUME_DOWN)
    await until(lambda: service.phone.ringer_step == 0, what="step 0")
    await until(lambda: rms(ring.recorded()[-RATE:]) < 30, what="the ringer silenced")
    assert service.phone.state == "ringing"


async def test_dial_tone_off_hook(service, alsa_rig):
    ear = alsa_rig["a"]
    service.factory.pin(HOOK).drive_low()
    await until(lambda: service.phone.state == "dialing", what="dialing")
    await until(lambda: np.abs(ear.recorded()).max(initial=0) > 1000, what="dial tone")
    audio = await recorded_seconds(ear, 0.5)
    assert band_level(audio, 350) > 20 * band_level(audio, 1000)
    assert band_level(audio, 440) > 20 * band_level(audio, 1000)
    service.factory.pin(HOOK).drive_high()
    await until(lambda: service.phone.state == "idle", what="idle")
    await until(lambda: rms(ear.recorded()[-RATE // 5:]) < 30, what="the dial tone stops")


async def test_pulled_headset_warns_and_recovers(service, make_phone, alsa_rig):
    """Unplugged mid-call: the call's audio-device-lost warning blinks the warning LED and
    chirps; plugged back, the warning clears and the call goes on."""
    factory = service.factory
    bob = await make_phone("bob", tone=600)
    call = await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="alice rings")
    factory.pin(HOOK).drive_low()
    await until(lambda: str(call.status()) == "open", timeout=10, what="answered")
    await hears(bob, 700, timeout=10)
    chirps = []
    beep = service.sounds.beep
    service.sounds.beep = lambda name: (chirps.append(name), beep(name))
    alsa_rig.unplug("a")
    await until(lambda: "audio-device-lost" in service.phone.warnings, timeout=10,
                what="the warning")
    await until(lambda: lit(factory, "warning"), what="warning LED on")
    await until(lambda: not lit(factory, "warning"), what="warning LED blinking")
    assert chirps == ["warning"] and service.phone.state == "talking"
    alsa_rig.replug("a")
    await until(lambda: not service.phone.warnings, timeout=10, what="the warning cleared")
    await until(lambda: not lit(factory, "warning"), what="warning LED off")
    await hears(bob, 700, timeout=10)  # the microphone is back in the call
    factory.pin(HOOK).drive_high()


async def test_a_headset_plugged_in_after_start_is_picked_up(alsa_rig, tmp_path, monkeypatch,
                                                             caplog):
    """``audio.headset = "USB"`` with no such card at start: the phone runs without sound and
    says so; the card plugged in, the headset comes in (no restart) and its lost condition
    clears."""
    from piphone.appliance.audio import ApplianceAudio
    from piphone.appliance.config import AlertsConfig, AudioConfig
    from piphone.audio import devices

    from .test_headset_hotplug import OTHER_CARD, USB_CARD, route_usb_card_to

    cards = tmp_path / "cards"
    cards.write_text(OTHER_CARD)
    monkeypatch.setattr(devices, "PROC_CARDS", cards)  # the card list the appliance reads
    route_usb_card_to(monkeypatch, alsa_rig, "c")
    alsa_rig["c"].tone(800)
    caplog.set_level("WARNING")
    changes: list[bool] = []
    audio = ApplianceAudio(AudioConfig(headset="USB"), AlertsConfig(), changes.append)
    try:
        assert audio.headset is not None and not audio.present
        assert "the phone runs without sound until one matching 'USB' is plugged in" \
            in caplog.text
        cards.write_text(USB_CARD + OTHER_CARD)
        await until(lambda: audio.present, 3, what="the headset picked up")
        assert changes == [False]  # the appliance's audio-device-lost cleared
        audio.sounds.tone("dial")

        def dial_tone() -> bool:
            heard = alsa_rig["c"].recorded()[-RATE // 4:]
            return len(heard) == RATE // 4 and band_level(heard, 350) > 1e5

        await until(dial_tone, 3, what="dial tone in the plugged-in earpiece")
    finally:
        await audio.close()
