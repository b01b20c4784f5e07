"""A Call's local and remote streams (voice/rtc/tracks.py StreamCopy, CallStreams): copies that
take nothing from where the audio goes, keep time across sources, and stay bounded."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from piphone.pcm import SAMPLES_PER_FRAME
from piphone.voice.rtc.frames import audio_frame
from piphone.voice.rtc.tracks import CallStreams, MuteGate, StreamCopy


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
