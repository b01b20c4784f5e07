"""aiortc bridges to ALSA: the headset's microphone as a track, and a sink that plays a track.

Mute and gain are done here in software: USB headsets often have no usable mixer. Frames are
built with av and numpy directly (audio/ knows nothing of voice/).
"""

from __future__ import annotations

import asyncio
import fractions
import logging

import av
import numpy as np
import soxr
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..pcm import apply_gain, mix_down
from .alsa import PERIOD, RATE, RESAMPLE_QUALITY, Capture, Playback

log = logging.getLogger(__name__)

TIME_BASE = fractions.Fraction(1, RATE)
QUEUE_PERIODS = 5  # capture blocks a slow reader may fall behind before the oldest go
STALL = 0.5  # seconds without a block from capture before a silent frame is sent anyway


def mono_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.int16).reshape(1, -1),
                                       format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def to_mono(frame: av.AudioFrame) -> np.ndarray:
    """int16 mono samples of an s16 frame, packed or planar, any channel count."""
    return mix_down(frame.to_ndarray(), len(frame.layout.channels), frame.format.is_planar)


class CaptureTrack(MediaStreamTrack):
    """The headset microphone as an aiortc audio track: 20 ms s16 mono 48 kHz frames.

    Starts the capture at the first ``recv`` (lazy start); its pace is the device's clock.
    """

    kind = "audio"

    def __init__(self, capture: Capture, *, gain: float = 1.0) -> None:
        super().__init__()
        self.capture = capture
        self.gain = gain  # linear factor applied to every sample
        self.muted = False  # sends silence of the same shape, as Twilio's SDK does
        self._queue: asyncio.Queue[np.ndarray] = asyncio.Queue()
        self._pts = 0
        self._subscribed = False

    def _deliver(self, block: np.ndarray) -> None:
        if self._queue.qsize() >= QUEUE_PERIODS:
            self._queue.get_nowait()  # a reader that fell behind hears now, not then
        self._queue.put_nowait(block)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._subscribed:
            self._subscribed = True
            self.capture.subscribe(self._deliver)
        try:
            block = await asyncio.wait_for(self._queue.get(), STALL)
        except TimeoutError:
            log.warning("no audio from %s for %s s", self.capture.device, STALL)
            block = np.zeros(PERIOD, np.int16)
        if self.readyState != "live":
            raise MediaStreamError
        if self.muted:
            block = np.zeros(PERIOD, np.int16)
        frame = mono_frame(apply_gain(block, self.gain), self._pts)
        self._pts += PERIOD
        return frame

    def stop(self) -> None:
        super().stop()
        self.capture.unsubscribe(self._deliver)


class PlaybackSink:
    """Plays a remote track on a Playback: any s16 frame (Opus 48 kHz stereo, PCMU 8 kHz mono)
    becomes mono 48 kHz, with a software gain."""

    def __init__(self, playback: Playback, *, gain: float = 1.0) -> None:
        self.playback = playback
        self.gain = gain  # linear factor
        self.frames = 0
        self._rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None

    def _to_48k(self, samples: np.ndarray, rate: int) -> np.ndarray:
        if rate == RATE:
            return samples
        if rate != self._rate:  # a new codec after a re-invite: a fresh resampler
            self._rate = rate
            self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="int16",
                                                   quality=RESAMPLE_QUALITY)
        assert self._resampler is not None
        return self._resampler.resample_chunk(samples)

    async def consume(self, track: MediaStreamTrack) -> None:
        self.playback.start(tolerate_missing=True)  # a missing headset: the call goes on
        try:
            while True:
                frame = await track.recv()
                samples = self._to_48k(to_mono(frame), frame.sample_rate)
                self.playback.write(apply_gain(samples, self.gain))
                self.frames += 1
        except MediaStreamError:
            pass
