"""The headset in a call, as PCM (piphone/pcm.py): its microphone as a call's source, its
earpiece as a call's sink.

Mute is the call's (voice mutes what it sends, whatever the source); gain is done here in
software: USB headsets often have no usable mixer. Knows nothing of calls beyond the shape of
their sources and sinks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

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

    Written by hand rather than an asyncio.Queue read under wait_for: that made a task, a
    timer and three loop turns for every 20 ms block (10 ms of CPU a second on the test
    machine, a third of a call's); here a block that waits is taken at once, a reader waits
    on one future, and one timer a STALL looks for a stalled device (capture_read.py).
    """

    def __init__(self, capture: Capture, *, gain: float = 1.0) -> None:
        self.capture = capture
        self.gain = gain  # linear factor applied to every sample
        # a reader that fell behind hears now, not then: the oldest blocks go
        self._blocks: deque[Samples] = deque(maxlen=QUEUE_PERIODS)
        self._waiter: asyncio.Future[None] | None = None
        self._last_block = 0.0  # loop time of the newest block
        self._stall_timer: asyncio.TimerHandle | None = None
        self._subscribed = False
        self.stopped = False

    def _deliver(self, block: Samples) -> None:
        self._blocks.append(block)
        self._last_block = asyncio.get_running_loop().time()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> Samples:
        if self.stopped:
            raise EndOfStream
        if not self._subscribed:
            self._subscribed = True
            self._last_block = asyncio.get_running_loop().time()
            self.capture.subscribe(self._deliver)
        if not self._blocks:
            await self._arrival()
        if self.stopped:
            raise EndOfStream
        return apply_gain(self._blocks.popleft(), self.gain)

    async def _arrival(self) -> None:
        loop = asyncio.get_running_loop()
        if self._stall_timer is None:
            self._stall_timer = loop.call_at(self._last_block + STALL, self._look)
        self._waiter = loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _look(self) -> None:
        """STALL after the newest block: silence for a reader still waiting; else look again
        STALL after the newest block (one timer a STALL, not one per block)."""
        self._stall_timer = None
        if self.stopped or self._waiter is None:
            return  # the next wait looks again
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_block < STALL:
            self._stall_timer = loop.call_at(self._last_block + STALL, self._look)
            return
        log.warning("no audio from %s for %s s", self.capture.device, STALL)
        self._last_block = loop.time()
        self._blocks.append(np.zeros(PERIOD, np.int16))
        self._wake()

    def stop(self) -> None:
        self.stopped = True
        self.capture.unsubscribe(self._deliver)
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._wake()  # a waiting read ends

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

