"""A Call's local and remote streams (voice/rtc/tracks.py StreamCopy, CallStreams): copies that
take nothing from where the audio goes, keep time across sources, and stay bounded; and the
adapters between PCM sources and sinks (pcm.py) and aiortc tracks."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from piphone.pcm import SAMPLES_PER_FRAME, EndOfStream
from piphone.voice.rtc.frames import audio_frame
from piphone.voice.rtc.tracks import (
    CallStreams,
    DrainSink,
    HeldSink,
    MuteGate,
    StreamCopy,
    as_track,
    play,
    writer_for,
)


class Counting(MediaStreamTrack):
    """A source whose n-th frame holds the value n."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self):
        self.n += 1
        return audio_frame(np.full(SAMPLES_PER_FRAME, self.n, np.int16), pts=self.n * 960)


def value(frame) -> int:
    return int(frame.to_ndarray()[0, 0])


async def test_reading_the_local_stream_takes_nothing_from_what_is_sent():
    gate = MuteGate(Counting())
    streams = CallStreams(gate)
    local = streams.local()
    assert streams.local() is local
    sent = [value(await gate.recv()) for _ in range(5)]  # what the sender reads
    copied = [value(await local.recv()) for _ in range(5)]
    assert sent == copied == [1, 2, 3, 4, 5]
    gate.muted = True
    await gate.recv()
    assert value(await local.recv()) == 0  # the copy is what is sent: silence while muted


async def test_the_remote_stream_keeps_time_across_media_sessions():
    streams = CallStreams(MuteGate(Counting()))
    remote = streams.remote()
    for pts in (0, 960, 1920):  # the first peer connection's frames
        streams.heard(audio_frame(np.ones(960, np.int16), pts))
    for pts in (0, 960):  # a new peer connection starts its own clock again
        streams.heard(audio_frame(np.ones(960, np.int16), pts))
    frames = [await remote.recv() for _ in range(5)]
    assert [f.pts for f in frames] == [0, 960, 1920, 2880, 3840]


async def test_a_copy_nobody_reads_holds_at_most_its_depth():
    copy = StreamCopy(depth=3)
    for n in range(10):
        copy.push(audio_frame(np.full(960, n, np.int16), n * 960))
    assert copy.dropped == 7
    assert [value(await copy.recv()) for _ in range(3)] == [7, 8, 9]


async def test_the_streams_end_with_the_call_once_read():
    streams = CallStreams(MuteGate(Counting()))
    remote = streams.remote()
    streams.heard(audio_frame(np.ones(960, np.int16), 0))
    waiting = asyncio.ensure_future(streams.local().recv())
    await asyncio.sleep(0)
    streams.end()
    with pytest.raises(MediaStreamError):
        await waiting
    assert value(await remote.recv()) == 1  # what was queued is still read
    with pytest.raises(MediaStreamError):
        await remote.recv()
    late = streams.remote()
    with pytest.raises(MediaStreamError):
        await late.recv()


# --- PCM sources and sinks as aiortc tracks (voice/rtc/tracks.py) ----------------------------
class Numbers:
    """A PCM source whose n-th frame holds n; it ends after ``count`` frames."""

    def __init__(self, count: int) -> None:
        self.count, self.n, self.stopped = count, 0, False

    async def read(self):
        if self.stopped or self.n == self.count:
            raise EndOfStream
        self.n += 1
        return np.full(SAMPLES_PER_FRAME, self.n, np.int16)

    def stop(self) -> None:
        self.stopped = True


async def test_a_pcm_source_is_a_track_of_timed_frames_that_ends_with_it():
    track = as_track(Numbers(3))
    frames = [await track.recv() for _ in range(3)]
    assert [value(f) for f in frames] == [1, 2, 3]
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert all(f.sample_rate == 48000 and f.layout.name == "mono" for f in frames)
    with pytest.raises(MediaStreamError):
        await track.recv()
    source = Numbers(10)
    track = as_track(source)
    track.stop()  # stopping the track stops the source
    assert source.stopped
    counting = Counting()
    assert as_track(counting) is counting  # a track is taken as it is


class PcmSinkLog:
    def __init__(self) -> None:
        self.calls: list = []

    def start(self) -> None:
        self.calls.append("start")

    def write(self, samples, sample_rate: int) -> None:
        self.calls.append((samples.tolist()[:2], len(samples), samples.dtype, sample_rate))


class Frames(MediaStreamTrack):
    kind = "audio"

    def __init__(self, frames) -> None:
        super().__init__()
        self.frames = list(frames)

    async def recv(self):
        if not self.frames:
            raise MediaStreamError
        return self.frames.pop(0)


async def test_play_hands_a_pcm_sink_mono_samples_at_the_codecs_rate():
    stereo = av.AudioFrame.from_ndarray(np.array([[100, 300, -100, -300]], np.int16),
                                        format="s16", layout="stereo")
    stereo.sample_rate = 48000
    sink = PcmSinkLog()
    await play(Frames([stereo, audio_frame(np.full(160, 7, np.int16), 0, 8000)]), sink)
    assert sink.calls == ["start", ([200, -200], 2, np.int16, 48000),
                          ([7, 7], 160, np.int16, 8000)]


async def test_play_hands_a_consume_sink_the_track_itself():
    got = []

    class Consumer:
        async def consume(self, track) -> None:
            got.append(track)

    track = Frames([])
    await play(track, Consumer())
    assert got == [track]


def test_a_pcm_sink_is_started_and_handed_each_frame_as_play_would():
    stereo = av.AudioFrame.from_ndarray(np.array([[100, 300, -100, -300]], np.int16),
                                        format="s16", layout="stereo")
    stereo.sample_rate = 48000
    sink = PcmSinkLog()
    write = writer_for(sink)
    assert write is not None and sink.calls == ["start"]
    write(stereo)
    write(audio_frame(np.full(160, 7, np.int16), 0, 8000))
    assert sink.calls == ["start", ([200, -200], 2, np.int16, 48000),
                          ([7, 7], 160, np.int16, 8000)]


def test_a_held_pcm_sink_is_handed_silence_of_the_same_length_while_held():
    held = False
    sink = PcmSinkLog()
    write = writer_for(HeldSink(sink, lambda: held))
    assert write is not None
    write(audio_frame(np.full(960, 7, np.int16), 0))
    held = True
    write(audio_frame(np.full(960, 7, np.int16), 0))
    assert sink.calls == ["start", ([7, 7], 960, np.int16, 48000),
                          ([0, 0], 960, np.int16, 48000)]


def test_a_sink_that_reads_a_track_itself_gets_no_writer():
    class Consumer:
        async def consume(self, track) -> None:
            pass

    assert writer_for(Consumer()) is None
    assert writer_for(HeldSink(Consumer(), lambda: False)) is None
    drain = writer_for(DrainSink())
    assert drain is not None and writer_for(HeldSink(DrainSink(), lambda: True)) is not None
    drain(audio_frame(np.zeros(960, np.int16), 0))  # and does nothing
