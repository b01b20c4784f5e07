import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError

from piphone.pcm import Recorder, Tone, dominant_frequency
from piphone.voice import CallStatus
from piphone.voice.rtc.frames import audio_frame, frame_to_mono
from piphone.voice.rtc.tracks import PacedAudioTrack

from ..conftest import record_events, until

CALL_EVENTS = ("accept", "cancel", "disconnect", "error", "mute", "reject", "ringing")


def heard(phone, seconds: float = 0.5) -> float | None:
    rec = phone.recorder
    return dominant_frequency(rec.last(seconds), rec.sample_rate or 48000)


async def test_call_rings_answers_and_carries_audio_both_ways(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    out_events: list = []
    call = await alice.device.connect({"To": "bob"})
    record_events(call, CALL_EVENTS, out_events)
    incoming = await bob.next_call()
    assert incoming.status() is CallStatus.PENDING
    assert incoming.parameters["From"] == "client:alice"
    assert incoming.parameters["To"] == "client:bob"
    assert incoming.parameters["CallSid"].startswith("CA")
    in_events: list = []
    record_events(incoming, CALL_EVENTS, in_events)
    await until(lambda: call.status() is CallStatus.RINGING, what="ringing")
    await incoming.accept()
    await until(lambda: call.status() is CallStatus.OPEN, what="caller open")
    assert incoming.status() is CallStatus.OPEN
    await bob.recorder.wait_for_frames(40)
    await alice.recorder.wait_for_frames(40)
    assert heard(bob) == pytest.approx(440, abs=10)
    assert heard(alice) == pytest.approx(880, abs=10)
    incoming.disconnect()
    await asyncio.wait_for(call.wait_closed(), 5)
    assert [e[0] for e in out_events] == ["ringing", "accept", "disconnect"]
    assert [e[0] for e in in_events] == ["accept", "disconnect"]


class ToneTrack(PacedAudioTrack):
    """A source of the API's first shape: an aiortc audio track of its own (README)."""

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.tone = Tone(frequency)

    async def recv(self):
        pts = await self._next_pts()
        return audio_frame(await self.tone.read(), pts)


class TrackRecorder:
    """A sink of the API's first shape: ``async consume(track)`` reads the far end's track."""

    def __init__(self) -> None:
        self.recorder = Recorder(seconds=5)

    async def consume(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                self.recorder.write(frame_to_mono(frame), frame.sample_rate)
        except MediaStreamError:
            pass


async def test_aiortc_tracks_and_consume_sinks_still_plug_in(make_phone):
    """Device(audio_source=..., audio_sink=...) takes aiortc tracks and ``consume`` sinks as
    the README documents, beside the PCM sources and sinks the phone and the CLI pass."""
    sinks: list[TrackRecorder] = []
    alice = await make_phone("alice", audio_source=lambda: ToneTrack(520),
                             audio_sink=lambda: sinks.append(TrackRecorder()) or sinks[-1])
    bob = await make_phone("bob", tone=880)  # PCM: pcm.Tone and pcm.Recorder
    call = await alice.device.connect({"To": "bob"})
    incoming = await bob.next_call()
    await incoming.accept()
    await until(lambda: call.status() is CallStatus.OPEN, what="caller open")
    await bob.recorder.wait_for_frames(40)
    assert heard(bob) == pytest.approx(520, abs=10)
    recorder = sinks[-1].recorder
    await asyncio.wait_for(recorder.wait_for_frames(40), 5)
    assert dominant_frequency(recorder.last(0.5), recorder.sample_rate) == pytest.approx(
        880, abs=10)
    call.disconnect()
    await asyncio.wait_for(incoming.wait_closed(), 5)
