"""Call.hold (a piphone extension): what a held call sends (the phone's hold music in place of
its source, at the source's pace and format) and what it plays (silence, not the far end)."""

from __future__ import annotations

import asyncio

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from piphone.pcm import SAMPLE_RATE, HoldMusic, Recorder, Silence, Tone, dominant_frequency, rms
from piphone.voice.call import Call, CallDirection
from piphone.voice.rtc import MediaSettings
from piphone.voice.rtc.call_audio import CallAudio
from piphone.voice.rtc.frames import audio_frame, frame_to_mono
from piphone.voice.rtc.tracks import DrainSink, HeldSink, MuteGate, PcmTrack


def near_a_note(frequency: float | None) -> bool:
    return frequency is not None and any(abs(frequency - n) < 15 for n in HoldMusic.NOTES)


def test_hold_music_is_never_silent_and_plays_its_notes_in_turn():
    music = HoldMusic()
    seconds = [music.frame(SAMPLE_RATE // 10) for _ in range(40)]  # 4 s in 100 ms pieces
    assert min(rms(piece) for piece in seconds) > 300  # no silent stretch of 100 ms
    heard = {round(dominant_frequency(music.frame(int(SAMPLE_RATE * 0.3)), SAMPLE_RATE) or 0)
             for _ in range(8)}
    assert all(near_a_note(f) for f in heard) and len(heard) >= 3
    # at 8 kHz (PCMU's rate) the same notes, not a pitch-shifted copy
    assert near_a_note(dominant_frequency(HoldMusic().frame(3000, 8000), 8000))


async def test_the_gate_sends_hold_music_in_place_of_the_source_and_back():
    gate = MuteGate(PcmTrack(Tone(1000, -12)))
    async def heard() -> np.ndarray:
        return np.concatenate([frame_to_mono(await gate.recv()) for _ in range(15)])
    assert abs((dominant_frequency(await heard(), SAMPLE_RATE) or 0) - 1000) < 10
    gate.hold = HoldMusic()
    gate.muted = True  # hold wins over mute: the far end hears music, not silence
    on_hold = await heard()
    assert near_a_note(dominant_frequency(on_hold, SAMPLE_RATE)) and rms(on_hold) > 300
    gate.hold, gate.muted = None, False
    assert abs((dominant_frequency(await heard(), SAMPLE_RATE) or 0) - 1000) < 10
    gate.stop()


async def test_the_gate_keeps_a_stereo_float_source_s_format_on_hold():
    class Stereo(MediaStreamTrack):
        kind = "audio"

        async def recv(self):
            import av
            frame = av.AudioFrame(format="fltp", layout="stereo", samples=960)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate, frame.pts = 48000, 0
            return frame

    gate = MuteGate(Stereo())
    gate.hold = HoldMusic()
    frame = await gate.recv()
    assert (frame.format.name, frame.layout.name, frame.samples) == ("fltp", "stereo", 960)
    assert np.abs(frame.to_ndarray()).max() > 0.01


class Far(MediaStreamTrack):
    """The far end's audio: a 700 Hz tone at PCMU's rate, 40 frames, then the end."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.tone = Tone(700, -12)

    async def recv(self):
        if self.sent == 40:
            raise MediaStreamError
        self.sent += 1
        samples = (await self.tone.read())[::6]  # 48 kHz -> 8 kHz: 160 samples
        return audio_frame(samples, self.sent * 160, sample_rate=8000)


async def test_a_held_call_plays_silence_not_the_far_end():
    held = False
    recorder = Recorder(seconds=2)
    far = Far()
    playing = asyncio.ensure_future(HeldSink(recorder, lambda: held).consume(far))
    await asyncio.wait_for(recorder.wait_for_frames(10), 5)
    assert abs((dominant_frequency(recorder.last(0.2), 8000) or 0) - 700) < 10
    held = True
    await asyncio.wait_for(recorder.wait_for_frames(10), 5)
    assert rms(recorder.last(0.2)) == 0  # the earpiece keeps its pace, with nothing in it
    held = False
    await asyncio.wait_for(recorder.wait_for_frames(10), 5)
    assert abs((dominant_frequency(recorder.last(0.2), 8000) or 0) - 700) < 10
    await asyncio.wait_for(playing, 5)


async def test_call_hold_emits_on_change_and_reaches_the_call_s_audio():
    call = Call(direction=CallDirection.INCOMING, send=lambda t, p, **_: True,
                media_settings=MediaSettings(), source=Silence(), sink=DrainSink(),
                parameters={"CallSid": "CA1"})
    events = []
    call.on("hold", lambda on, c: events.append((on, c is call)))
    assert not call.is_on_hold()
    call.hold()
    call.hold(True)
    assert call.is_on_hold() and events == [(True, True)]
    call.hold(False)
    assert not call.is_on_hold() and events == [(True, True), (False, True)]
    audio = CallAudio(Silence(), DrainSink())
    audio.held = True
    assert audio.held and audio._gate.hold is not None
    first = audio._gate.hold
    audio.held = True  # again: the music goes on where it was
    assert audio._gate.hold is first
    audio.end()
    call.disconnect()
