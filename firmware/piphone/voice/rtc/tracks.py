"""Pluggable audio for calls: paced sources, the mute gate, and sinks for the far end's audio.

A call's source is any aiortc ``MediaStreamTrack`` of kind audio; its sink is any object with
``async consume(track)``. This module has the ones that need no hardware: a tone generator (the
test tone of ``piphone call`` and of the tests), silence, a recorder and a drain. ALSA-backed
ones live in audio/ and plug in the same way.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import math
import time
from typing import Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ...pcm import SAMPLE_RATE, SAMPLES_PER_FRAME
from .frames import audio_frame, frame_to_mono


class PacedAudioTrack(MediaStreamTrack):
    """Base of sources that make 20 ms frames on a real-time clock (lazy start at first recv)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._pts = 0

    async def _next_pts(self) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += SAMPLES_PER_FRAME
            wait = self._start + self._pts / SAMPLE_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._pts


class ToneTrack(PacedAudioTrack):
    """A continuous sine tone: piphone's test signal (frequency in Hz, level in dBFS)."""

    def __init__(self, frequency: float = 440.0, level_dbfs: float = -12.0) -> None:
        super().__init__()
        self.frequency = frequency
        amplitude = 32767 * 10 ** (level_dbfs / 20)
        # One second holds a whole number of cycles of a whole-Hz tone: compute it once and
        # play it in a loop (a sine per frame costs more than the rest of the source).
        seconds = 1 if float(frequency).is_integer() else 10
        n = np.arange(SAMPLE_RATE * seconds)
        self._table = (amplitude * np.sin(2 * math.pi * frequency / SAMPLE_RATE * n)).astype(
            np.int16)

    async def recv(self) -> av.AudioFrame:
        pts = await self._next_pts()
        start = pts % len(self._table)
        return audio_frame(self._table[start:start + SAMPLES_PER_FRAME], pts)


class SilenceTrack(PacedAudioTrack):
    """Digital silence, paced: the source of a call placed with no microphone."""

    async def recv(self) -> av.AudioFrame:
        pts = await self._next_pts()
        return audio_frame(np.zeros(SAMPLES_PER_FRAME, np.int16), pts)


class StreamCopy(MediaStreamTrack):
    """A copy of audio that goes elsewhere, readable as a track of its own (a Call's local and
    remote streams): reading it takes nothing from where the audio goes, and it outlives the
    tracks it copies (``push`` frames from any of them). Timestamps run on across sources.
    Bounded: a reader that falls behind loses the oldest frames (``dropped``); ``stop`` ends
    it once what is queued was read."""

    kind = "audio"

    def __init__(self, depth: int = 50) -> None:  # frames: one second of 20 ms frames
        super().__init__()
        self._frames: collections.deque[av.AudioFrame] = collections.deque(maxlen=depth)
        self._arrived = asyncio.Event()
        self._seconds = fractions.Fraction(0)  # of audio copied so far: the next frame's time
        self.dropped = 0

    def push(self, frame: av.AudioFrame) -> None:
        if self.readyState != "live":
            return
        copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name,
                                          layout=frame.layout.name)
        copy.sample_rate = frame.sample_rate
        copy.time_base = fractions.Fraction(1, frame.sample_rate)
        copy.pts = round(self._seconds * frame.sample_rate)
        self._seconds += fractions.Fraction(frame.samples, frame.sample_rate)
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self._frames.append(copy)
        self._arrived.set()

    async def recv(self) -> av.AudioFrame:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._arrived.set()  # a waiting recv() ends


class MuteGate(MediaStreamTrack):
    """Passes the source through, or silence of the same shape while muted.

    Muting sends silence rather than nothing, as Twilio's SDK does: the far end keeps
    receiving packets, so its quality monitors do not mistake mute for a dead path. What it
    passes is also pushed to every StreamCopy in ``copies`` (the call's local stream).
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        self.copies: list[StreamCopy] = []

    async def recv(self) -> av.AudioFrame:
        frame = await self.source.recv()
        if self.muted:
            frame = _silence_like(frame)
        for copy in self.copies:
            copy.push(frame)
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()


class CallStreams:
    """A call's local and remote streams (Call.get_local_stream, get_remote_stream).

    Each is a StreamCopy made on first request, so nothing is copied for a call whose streams
    nobody asked for. The local one copies what the mute gate passes; the remote one gets
    ``heard`` frames from every media session of the call (a reconnection is a new peer
    connection, whose tracks aiortc makes afresh). Both end with the call (``end``)."""

    def __init__(self, gate: MuteGate) -> None:
        self._gate = gate
        self._local: StreamCopy | None = None
        self._remote: StreamCopy | None = None
        self._ended = False

    def local(self) -> StreamCopy:
        if self._local is None:
            self._local = self._new()
            self._gate.copies.append(self._local)
        return self._local

    def remote(self) -> StreamCopy:
        if self._remote is None:
            self._remote = self._new()
        return self._remote

    def heard(self, frame: av.AudioFrame) -> None:
        if self._remote is not None:
            self._remote.push(frame)

    def end(self) -> None:
        self._ended = True
        for stream in (self._local, self._remote):
            if stream is not None:
                stream.stop()

    def _new(self) -> StreamCopy:
        stream = StreamCopy()
        if self._ended:
            stream.stop()
        return stream


def _silence_like(frame: av.AudioFrame) -> av.AudioFrame:
    silent = av.AudioFrame(format=frame.format.name, layout=frame.layout.name,
                           samples=frame.samples)
    for plane in silent.planes:
        plane.update(bytes(plane.buffer_size))
    silent.sample_rate = frame.sample_rate
    silent.pts = frame.pts
    silent.time_base = frame.time_base
    return silent


class AudioSink(Protocol):
    async def consume(self, track: MediaStreamTrack) -> None:
        """Read the track until it ends."""


class DrainSink:
    """Reads and discards: aiortc queues decoded frames without bound until someone reads."""

    async def consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            pass


class Recorder:
    """Keeps the last ``seconds`` of received audio as mono int16 (tests, `piphone call`)."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self.sample_rate: int | None = None
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._kept = 0
        self.frames = 0
        self._frame_event = asyncio.Event()

    async def consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                self.add(await track.recv())
        except MediaStreamError:
            pass

    def add(self, frame: av.AudioFrame) -> None:
        if self.sample_rate != frame.sample_rate:
            self.clear()
            self.sample_rate = frame.sample_rate
        chunk = frame_to_mono(frame)
        self._chunks.append(chunk)
        self._kept += len(chunk)
        limit = int(self.seconds * frame.sample_rate)
        while self._kept - len(self._chunks[0]) >= limit:
            self._kept -= len(self._chunks.popleft())
        self.frames += 1
        self._frame_event.set()

    def clear(self) -> None:
        self._chunks.clear()
        self._kept = 0

    def last(self, seconds: float) -> np.ndarray:
        if not self._chunks or self.sample_rate is None:
            return np.zeros(0, np.int16)
        data = np.concatenate(list(self._chunks))
        return data[-int(seconds * self.sample_rate):]

    async def wait_for_frames(self, count: int) -> None:
        target = self.frames + count
        while self.frames < target:
            self._frame_event.clear()
            await self._frame_event.wait()
