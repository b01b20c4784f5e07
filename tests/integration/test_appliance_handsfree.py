"""Handsfree on the appliance, on mock pins and the ALSA test rig, through a real exchange:
alice's headset is rig headset ``a``, her handsfree device (``[audio] handsfree_device``) rig
headset ``c``; bob is a Device with a recorder.

- The speaker button answers on the speaker, the handset lifted takes the call to the
  headset, the speaker button takes it back, the handset put down leaves it there: each move
  checked in audio (bob hears the microphone in use; the far end plays on its device) and the
  call never dropped.
- On a speakerphone whose microphone hears its own speaker (the rig's echo: 60 ms, -6 dB),
  the far end does not hear itself: what bob hears is measured against the echo at alice's
  microphone, with the stage and (as the control) without it; call quality's samples carry the
  stage's figures.
"""

from __future__ import annotations

import math
import time

import pytest

from piphone.pcm import PacedSource, Samples, rms

from .. import speechlike as sl
from ..conftest import until
from .appliance_rig import led_lines, load_phone_config, press, running_service
from .helpers import hears

pytestmark = pytest.mark.net

HOOK, SPEAKER = 17, 21
LEDS = {"ring": 5, "call": 6, "mute": 13, "warning": 19, "speaker": 20}
HANDSFREE = 'handsfree_device = "piphone_c_cap,piphone_c_play"'


def config(tmp_path, exchange, audio: str = ""):
    return load_phone_config(
        tmp_path, exchange,
        audio=f'headset = "piphone_a_cap,piphone_a_play"\n{HANDSFREE}\n{audio}',
        phone='mute_reminder = 0\ncall_log = ""', rest=f"""
[pins.inputs]
hook = {HOOK}
speaker = {SPEAKER}
[pins.leds]
{led_lines(LEDS)}
""")


def lit(factory, name: str) -> bool:
    return bool(factory.pin(LEDS[name]).state)


def plays(headset, frequency: float, seconds: float = 0.3) -> bool:
    """The rig headset's earpiece played a tone of about ``frequency`` Hz just now."""
    from piphone.pcm import dominant_frequency

    recent = headset.recorded()[-int(seconds * 48_000):]
    found = dominant_frequency(recent, 48_000)
    return found is not None and abs(found - frequency) < 15


async def test_speaker_button_and_handset_move_the_call_without_dropping_it(
        tmp_path, exchange, alsa_rig, make_phone):
    alsa_rig["a"].tone(700)  # the headset's microphone
    alsa_rig["c"].tone(900)  # the speakerphone's
    async with running_service(config(tmp_path, exchange,
                                      "noise_suppression = false")) as service:
        factory = service.factory
        bob = await make_phone("bob", tone=600)
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: service.phone.state == "ringing", what="alice rings")
        ended = []
        call.on("disconnect", lambda *_: ended.append(True))
        # the speaker button answers on the speaker
        await press(factory, SPEAKER)
        await until(lambda: service.phone.state == "talking", what="answered on the speaker")
        assert service.phone.handsfree and lit(factory, "speaker") and lit(factory, "call")
        await hears(bob, 900, timeout=10)  # the speakerphone's microphone
        await until(lambda: plays(alsa_rig["c"], 600), what="bob on the speaker")
        # lifting the handset takes the call to the headset
        factory.pin(HOOK).drive_low()
        await service.inputs.settled()
        await hears(bob, 700, timeout=5)
        await until(lambda: plays(alsa_rig["a"], 600), what="bob in the earpiece")
        assert not service.phone.handsfree and not lit(factory, "speaker")
        # the speaker button moves it back; the handset put down leaves it there
        await press(factory, SPEAKER)
        await hears(bob, 900, timeout=5)
        factory.pin(HOOK).drive_high()
        await service.inputs.settled()
        assert service.phone.state == "talking"
        await until(lambda: plays(alsa_rig["c"], 600), what="bob on the speaker again")
        await hears(bob, 900, timeout=5)
        assert service.phone.state == "talking" and service.phone.handsfree
        assert service.status()["handsfree"] and "on the speaker" in service.status_line()
        # and back once more through the control socket's command
        assert service.control({"cmd": "speaker", "on": False})["handsfree"] is False
        await hears(bob, 700, timeout=5)
        assert not ended and service.phone.call.status().value == "open"


class Speech(PacedSource):
    """Speech-like far-end audio, looped, paced in 20 ms frames."""

    def __init__(self, seconds: float = 8.0) -> None:
        super().__init__()
        far, _ = sl.speech(seconds, 1, level_dbfs=-20.0)
        self._samples = sl.to_int16(far)

    async def read(self) -> Samples:
        at = (await self._next_frame()) * 960 % (len(self._samples) - 960)
        return self._samples[at:at + 960]


async def far_end_hears_itself(tmp_path, exchange, alsa_rig, make_phone, audio: str
                               ) -> tuple[float, float, list]:
    """A handsfree call whose microphone hears its speaker; (echo at alice's microphone,
    what bob heard of it, alice's samples), in dB below full scale, over 4 s after 6 s."""
    alsa_rig["c"].silence()
    alsa_rig["c"].echo(60, -6)
    samples: list = []
    async with running_service(config(tmp_path, exchange, audio)) as service:
        bob = await make_phone("bob", audio_source=Speech)
        await bob.device.connect({"To": "client:alice"})
        await until(lambda: service.phone.state == "ringing", what="alice rings")
        assert service.phone.speaker_call()  # answered on the speaker
        await until(lambda: service.phone.call is not None
                    and service.phone.call.status().value == "open", timeout=10,
                    what="the call open")
        service.phone.call.on("sample", samples.append)
        await until(lambda: len(samples) >= 6, timeout=15, what="6 s of the call")
        since = time.monotonic()
        await until(lambda: len(samples) >= 10, timeout=15, what="4 s more")
        echo = alsa_rig["c"].echo_level(since)
        heard = rms(bob.recorder.last(4.0))
        stage = service.audio.stages.get("handsfree")
        if stage is not None and stage.reference is not None:
            ref = stage.reference
            print(f"\npairing: realigned {ref.realigned}, short {ref.short}, margin "
                  f"{ref.margin}; capture xruns {service.audio.handsfree.capture.xruns}, "
                  f"playback xruns {service.audio.handsfree.playback.xruns}; "
                  f"ERLE {[s.echo_return_loss_enhancement for s in samples]}")
    return _dbfs(echo), _dbfs(heard), samples


def _dbfs(value: float) -> float:
    return 20 * math.log10(max(value, 1e-3) / 32768)


async def test_the_far_end_does_not_hear_itself_on_the_speaker(tmp_path, exchange, alsa_rig,
                                                               make_phone):
    echo, heard, samples = await far_end_hears_itself(tmp_path, exchange, alsa_rig,
                                                      make_phone, "")
    removed = echo - heard
    erle = [s.echo_return_loss_enhancement for s in samples[-4:]]
    residual = [s.residual_echo_level for s in samples[-4:]]
    print(f"\nbenchmark: handsfree call on the rig: echo at the microphone {echo:.1f} dBFS, "
          f"heard by the far end {heard:.1f} dBFS: {removed:.1f} dB removed; the stage's "
          f"ERLE {erle}, residual {residual}")
    assert echo > -40  # there was an echo to cancel
    assert removed >= 25, f"only {removed:.1f} dB of echo removed"
    assert all(e is not None and e >= 20 for e in erle), erle
    assert all(r is not None and r < -50 for r in residual), residual
    assert all(s.to_dict()["echoReturnLossEnhancement"] is not None for s in samples[-4:])


async def test_without_the_canceller_the_far_end_hears_itself(tmp_path, exchange, alsa_rig,
                                                              make_phone):
    """The control: the same call with the stage off is heard by bob (so the measurement
    above can fail), and its samples say nothing of echo."""
    echo, heard, samples = await far_end_hears_itself(
        tmp_path, exchange, alsa_rig, make_phone,
        "echo_cancellation = false\nnoise_suppression = false\nauto_gain = false")
    print(f"\nbenchmark: the same call without the stage: echo {echo:.1f} dBFS, heard "
          f"{heard:.1f} dBFS")
    assert echo - heard < 6
    assert all(s.echo_return_loss_enhancement is None for s in samples)
