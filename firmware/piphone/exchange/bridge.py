"""Media legs at the exchange and the audio bridge between them.

Like Twilio's edge, every client's media ends here: one MediaSession (aiortc peer) per leg.
A leg sends whatever its ``outbox`` (a BridgeTrack) holds; ``pump`` decodes what a leg
receives and pushes it into another leg's outbox (or back into its own for the echo line).
Decoded audio is normalised to 48 kHz mono so that an Opus leg can talk to a PCMU leg.
(Forwarding encoded frames without decoding is the low-latency work of its own issue.)
"""

from __future__ import annotations

import asyncio
import collections
import logging

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..voice.media import MediaSession, MediaSettings
from ..voice.tracks import SAMPLE_RATE, SAMPLES_PER_FRAME, PacedAudioTrack, audio_frame

log = logging.getLogger(__name__)

OUTBOX_FRAMES = 5  # at most 100 ms queued per leg; older frames are dropped, never delayed


class BridgeTrack(PacedAudioTrack):
    """A paced source fed from a bounded queue; silence when nothing is queued."""

    def __init__(self, depth: int = OUTBOX_FRAMES) -> None:
        super().__init__()
        self._queue: collections.deque[np.ndarray] = collections.deque(maxlen=depth)
        self.dropped = 0
        self.silent = 0

    def push(self, samples: np.ndarray) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self._queue.append(samples)

    def clear(self) -> None:
        self._queue.clear()

    async def recv(self) -> av.AudioFrame:
        pts = await self._next_pts()
        if self._queue:
            samples = self._queue.popleft()
        else:
            self.silent += 1
            samples = np.zeros(SAMPLES_PER_FRAME, np.int16)
        return audio_frame(samples, pts)


class Leg:
    """One client's media session at the exchange, with its outbox."""

    def __init__(self, settings: MediaSettings, source: MediaStreamTrack | None = None) -> None:
        self.outbox = BridgeTrack()
        self.media = MediaSession(settings, source or self.outbox,
                                  on_remote_track=self._remote_track)
        self._remote: asyncio.Future[MediaStreamTrack] = (
            asyncio.get_running_loop().create_future())
        self._pump: asyncio.Task | None = None

    def _remote_track(self, track: MediaStreamTrack) -> None:
        if not self._remote.done():
            self._remote.set_result(track)

    def connect_to(self, target: BridgeTrack | None) -> None:
        """Send what this leg receives to ``target`` (None: drain and discard)."""
        if self._pump is not None:
            self._pump.cancel()
        self._pump = asyncio.ensure_future(self._run_pump(target))

    async def _run_pump(self, target: BridgeTrack | None) -> None:
        track = await self._remote
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE,
                                      frame_size=SAMPLES_PER_FRAME)
        try:
            while True:
                frame = await track.recv()
                if target is None:
                    continue
                frame.pts = None  # the resampler re-times; arrival gaps must not raise
                for out in resampler.resample(frame):
                    target.push(out.to_ndarray().reshape(-1).copy())
        except MediaStreamError:
            pass

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        await self.media.close()


def bridge(a: Leg, b: Leg) -> None:
    """Join two legs' audio both ways."""
    a.connect_to(b.outbox)
    b.connect_to(a.outbox)
