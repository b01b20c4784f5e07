"""A call's audio as aiortc tracks: the adapters between PCM sources and sinks (pcm.py) and
aiortc, the mute gate, and the copies behind Call.get_local_stream / get_remote_stream.

A call's source is a PCM source (``pcm.PcmSource``: the headset's microphone, a tone,
silence) or, as the Python API has always taken, an aiortc audio ``MediaStreamTrack``; its
sink is a PCM sink (``pcm.PcmSink``: the earpiece, a recorder) or an object with
``async consume(track)``. ``as_track`` and ``play`` make either kind work.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeAlias, runtime_checkable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

from ...pcm import SAMPLES_PER_FRAME, EndOfStream, HoldMusic, Pacer, PcmSink, PcmSource
from .frames import audio_frame, frame_to_mono


@runtime_checkable
class TrackSink(Protocol):
    """A sink of the Python API's first shape: reads the far end's track until it ends."""

    async def consume(self, track: MediaStreamTrack) -> None: ...


AudioSource: TypeAlias = PcmSource | MediaStreamTrack
AudioSink: TypeAlias = PcmSink | TrackSink
AudioStream: TypeAlias = MediaStreamTrack  # Call.get_local_stream / get_remote_stream


class PacedAudioTrack(MediaStreamTrack):
    """Base of tracks that make 20 ms frames on a real-time clock (lazy start at first recv)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pacer = Pacer()

    async def _next_pts(self) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        return await self._pacer.tick() * SAMPLES_PER_FRAME


class PcmTrack(MediaStreamTrack):
    """A PCM source as an aiortc audio track: its frames, timed in 1/48000 s from 0; it ends
    when the source does, and stopping it stops the source."""

    kind = "audio"

    def __init__(self, source: PcmSource) -> None:
        super().__init__()
        self.source = source
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            samples = await self.source.read()
        except EndOfStream:
            raise MediaStreamError from None
        if self.readyState != "live":
            raise MediaStreamError
        frame = audio_frame(samples, self._pts)
        self._pts += len(samples)
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()


def as_track(source: AudioSource) -> MediaStreamTrack:
    """The source as an aiortc track: itself if it is one, else a PcmTrack reading it."""
    return source if isinstance(source, MediaStreamTrack) else PcmTrack(source)


FrameWriter: TypeAlias = Callable[[av.AudioFrame], None]


def writer_for(sink: AudioSink) -> FrameWriter | None:
    """Start ``sink`` and return what hands it each decoded frame at once, as it is decoded
    (no queue and no task in between: ``play`` costs a task step per 20 ms frame); None for
    a sink that reads a track itself (``TrackSink``: ``play`` it)."""
    if isinstance(sink, HeldSink):
        return sink.writer()
    if isinstance(sink, DrainSink):
        return _discard
    if isinstance(sink, TrackSink):
        return None
    sink.start()
    return functools.partial(_write_pcm, sink)


def _write_pcm(sink: PcmSink, frame: av.AudioFrame) -> None:
    sink.write(frame_to_mono(frame), frame.sample_rate)


def _discard(frame: av.AudioFrame) -> None:
    pass


async def play(track: MediaStreamTrack, sink: AudioSink) -> None:
    """Hand the far end's audio in ``track`` to ``sink`` until the track ends."""
    if isinstance(sink, TrackSink):
        await sink.consume(track)
        return
    sink.start()
    try:
        while True:
            frame = await track.recv()
            if isinstance(frame, av.AudioFrame):  # what a far end's audio track gives
                sink.write(frame_to_mono(frame), frame.sample_rate)
    except MediaStreamError:
        pass


class BorrowedTrack(MediaStreamTrack):
    """The call's source as one media session sees it: aiortc stops a sender's track when
    the peer connection closes, and a call outlives its first peer connection."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source

    async def recv(self) -> Frame | Packet[Any]:
        return await self.source.recv()


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
    """Passes the source through, or silence of the same shape while muted, or ``hold``'s
    music in its place while the call is on hold (Call.hold, a piphone extension).

    Muting sends silence rather than nothing, as Twilio's SDK does: the far end keeps
    receiving packets, so its quality monitors do not mistake mute for a dead path. On hold
    the source is still read (it sets the pace) and its frames replaced. What it passes is
    also pushed to every StreamCopy in ``copies`` (the call's local stream).
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        self.hold: HoldMusic | None = None  # set while the call is on hold
        self.copies: list[StreamCopy] = []

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self.source.recv()
        if not isinstance(frame, av.AudioFrame):
            return frame  # encoded already (a bench's packets): neither muted nor copied
        if self.hold is not None:
            frame = _music_like(frame, self.hold)
        elif self.muted:
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


def _music_like(frame: av.AudioFrame, music: HoldMusic) -> av.AudioFrame:
    """A frame of the same format, layout, rate and time as ``frame``, of hold music."""
    samples = music.frame(frame.samples, frame.sample_rate)
    channels = len(frame.layout.channels)
    data: np.ndarray[Any, Any]
    if frame.format.name == "s16" and channels == 1:
        data = samples.reshape(1, -1)
    elif frame.format.name in ("s16", "s16p"):
        data = (np.tile(samples, (channels, 1)) if frame.format.is_planar
                else np.repeat(samples, channels).reshape(1, -1))
    else:  # a float source (rare): the same music, scaled to -1..1
        scaled = samples.astype(np.float32) / 32768
        data = (np.tile(scaled, (channels, 1)) if frame.format.is_planar
                else np.repeat(scaled, channels).reshape(1, -1))
    music_frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data),
                                             format=frame.format.name, layout=frame.layout.name)
    music_frame.sample_rate = frame.sample_rate
    music_frame.pts = frame.pts
    if frame.time_base is not None:
        music_frame.time_base = frame.time_base
    return music_frame


class HeldSink:
    """The call's sink, given silence in place of the far end's audio while ``held()``: a
    held call is not played (the sink keeps its pace, so resuming needs no restart)."""

    def __init__(self, sink: AudioSink, held: Callable[[], bool]) -> None:
        self.sink = sink
        self._held = held

    def writer(self) -> FrameWriter | None:
        """``writer_for`` this sink: silence of the same length in place of frames while held."""
        inner = self.sink
        if isinstance(inner, DrainSink):
            return _discard
        if isinstance(inner, TrackSink):
            return None
        inner.start()
        held = self._held

        def write(frame: av.AudioFrame) -> None:
            samples = frame_to_mono(frame)
            inner.write(np.zeros_like(samples) if held() else samples, frame.sample_rate)

        return write

    async def consume(self, track: MediaStreamTrack) -> None:
        gated = _Silenced(track, self._held)
        await (self.sink.consume(gated) if isinstance(self.sink, TrackSink)
               else play(gated, self.sink))


class _Silenced(MediaStreamTrack):
    kind = "audio"

    def __init__(self, track: MediaStreamTrack, held: Callable[[], bool]) -> None:
        super().__init__()
        self.track = track
        self._held = held

    async def recv(self) -> Frame | Packet[Any]:
        frame = await self.track.recv()
        if isinstance(frame, av.AudioFrame) and self._held():
            return _silence_like(frame)
        return frame


class DrainSink:
    """Reads and discards: aiortc queues decoded frames without bound until someone reads."""

    async def consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            pass
