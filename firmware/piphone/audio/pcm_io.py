"""The headset in a call, as PCM (piphone/pcm.py): its microphone as a call's source, its
earpiece as a call's sink.

Mute is the call's (voice mutes what it sends, whatever the source); gain is done here in
software: USB headsets often have no usable mixer. Knows nothing of calls beyond the shape of
their sources and sinks.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import soxr

from ..pcm import EndOfStream, Samples, apply_gain
from .alsa import PERIOD, RATE, RESAMPLE_QUALITY, Capture, Playback

log = logging.getLogger(__name__)

QUEUE_PERIODS = 5  # capture blocks a slow reader may fall behind before the oldest go
STALL = 0.5  # seconds without a block from capture before a silent frame is sent anyway


class CaptureSource:
    """The headset microphone as a call's source (pcm.PcmSource): 20 ms mono int16 frames
    at 48 kHz, paced by the device's clock.

    Starts the capture at the first ``read`` (lazy start). A device that stalls or is gone
    gives silence at the same pace (a warning says so), so the call goes on.
    """

    def __init__(self, capture: Capture, *, gain: float = 1.0) -> None:
        self.capture = capture
        self.gain = gain  # linear factor applied to every sample
        self._queue: asyncio.Queue[Samples] = asyncio.Queue()
        self._subscribed = False
        self.stopped = False

    def _deliver(self, block: Samples) -> None:
        if self._queue.qsize() >= QUEUE_PERIODS:
            self._queue.get_nowait()  # a reader that fell behind hears now, not then
        self._queue.put_nowait(block)

    async def read(self) -> Samples:
        if self.stopped:
            raise EndOfStream
        if not self._subscribed:
            self._subscribed = True
            self.capture.subscribe(self._deliver)
        try:
            block = await asyncio.wait_for(self._queue.get(), STALL)
        except TimeoutError:
            log.warning("no audio from %s for %s s", self.capture.device, STALL)
            block = np.zeros(PERIOD, np.int16)
        if self.stopped:
            raise EndOfStream
        return apply_gain(block, self.gain)

    def stop(self) -> None:
        self.stopped = True
        self.capture.unsubscribe(self._deliver)

    def switch(self, capture: Capture) -> None:
        """Read from another microphone from the next block on (handsfree <-> headset):
        the reader sees one stream, a block from the old device perhaps among the first."""
        if capture is self.capture:
            return
        old, self.capture = self.capture, capture
        if self._subscribed and not self.stopped:
            old.unsubscribe(self._deliver)
            capture.subscribe(self._deliver)


class PlaybackSink:
    """The earpiece as a call's sink (pcm.PcmSink): what the far end says, mono at its
    codec's rate (Opus 48 kHz, PCMU 8 kHz), played at 48 kHz with a software gain."""

    def __init__(self, playback: Playback, *, gain: float = 1.0) -> None:
        self.playback = playback
        self.gain = gain  # linear factor
        self.frames = 0
        self._rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None

    def start(self) -> None:
        self.playback.start(tolerate_missing=True)  # a missing headset: the call goes on

    def switch(self, playback: Playback) -> None:
        """Play to another device from the next frame on (what the old one holds plays out:
        at most its 80 ms buffer)."""
        if playback is not self.playback:
            self.playback = playback
            playback.start(tolerate_missing=True)

    def write(self, samples: Samples, sample_rate: int) -> None:
        self.playback.write(apply_gain(self._to_48k(samples, sample_rate), self.gain))
        self.frames += 1

    def _to_48k(self, samples: Samples, rate: int) -> Samples:
        if rate == RATE:
            return samples
        if rate != self._rate:  # a new codec after a re-invite: a fresh resampler
            self._rate = rate
            self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="int16",
                                                   quality=RESAMPLE_QUALITY)
        assert self._resampler is not None
        resampled: Samples = self._resampler.resample_chunk(samples)
        return resampled

