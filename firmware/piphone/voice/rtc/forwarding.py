"""Bridging media sessions (the exchange's legs, exchange/bridge.py), below the port.

What a bridged session sends is its ``Outbox``: packets forwarded from another session as
they arrive, at the SRTP level (MediaSession.forward_to, relay.py: no decoding, no
re-encoding, no clock of ours in the path; each leg has its own SSRC, sequence numbers and
timestamps), or audio decoded from another session, normalised to 48 kHz mono and re-encoded
on this session's paced clock (MediaSession.decode_to: when the codecs differ, an Opus leg and
a PCMU leg, or for lines set up before negotiation, echo).
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
from collections.abc import Callable
from typing import Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.packet import Packet

from ...pcm import SAMPLE_RATE, SAMPLES_PER_FRAME, PcmTarget, Samples
from .encoding import VoiceEncoder
from .frames import audio_frame, frame_to_mono
from .tracks import PacedAudioTrack

log = logging.getLogger(__name__)

OUTBOX_FRAMES = 5  # at most 100 ms queued per leg; older frames are dropped, never delayed
# A forwarding leg whose source went quiet this long (seconds) sends silence meanwhile: its
# client would otherwise take the quiet for lost media (reconnect.py) while the far party
# reconnects or has not connected yet. Far longer than any jitter worth waiting out.
FILL_AFTER = 0.5
_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
SILENCE_CODECS = ("opus", "pcmu")  # what VoiceEncoder can make a frame of silence in
_silence_payloads: dict[str, bytes] = {}


def silence_payload(codec: str) -> bytes:
    """One 20 ms frame of silence, encoded (made once per codec with the voice encoder)."""
    if codec not in _silence_payloads:
        encoder = VoiceEncoder(codec)
        zeros = np.zeros(encoder.frame_size, np.int16)
        packets: list[Packet[Any]] = []
        pts = 0
        while not packets:  # libopus may hold the first frame back
            packets = encoder.encode(audio_frame(zeros, pts, encoder.context.sample_rate))
            pts += encoder.frame_size
        _silence_payloads[codec] = bytes(packets[0])
    return _silence_payloads[codec]


class Relaying(Protocol):
    """What sends an Outbox's forwarded packets (relay.RelayOut)."""

    def start(self) -> None: ...  # a source forwards to us from now on

    def stop(self) -> None: ...  # no longer: decoded audio is pushed instead


class Outbox(PacedAudioTrack):
    """What a bridged session sends: another session's packets, forwarded by the relay
    (relay.py: aiortc's sender then waits here, idle), or decoded audio on a 20 ms clock
    (silence when nothing is queued; the queue is bounded and drops the oldest). The exchange
    handles it only as a target (Leg.outbox), never reads it."""

    def __init__(self, depth: int = OUTBOX_FRAMES) -> None:
        super().__init__()
        # 20 ms frames of 48 kHz mono s16, as the decoder's resampler made them
        self._frames: collections.deque[av.AudioFrame] = collections.deque(maxlen=depth)
        self._mode_changed = asyncio.Event()
        self.forwarding = False  # set by MediaSession.forward_to
        self.codec: str | None = None  # of the forwarded packets
        # what sends the forwarded packets: set by the session that sends this outbox
        self.relay: Relaying | None = None
        self.narrowband = False  # what is pushed comes from a G.711 leg (encoding.py)
        self.dropped = 0
        self.silent = 0

    def push(self, samples: Samples) -> None:
        """20 ms of 48 kHz mono audio (a PcmTarget: a conference's mix), sent on our clock."""
        self.push_frame(audio_frame(samples, 0))  # re-timed in recv()

    def push_frame(self, frame: av.AudioFrame) -> None:
        """A decoded 20 ms frame of 48 kHz mono s16 audio, sent on our clock (handed on as
        it is: no copy into numpy and back)."""
        if len(self._frames) == self._frames.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self._frames.append(frame)

    def forward_from(self, codec: str | None) -> None:
        """From now on, the relay sends packets of ``codec`` forwarded from another session."""
        self.forwarding = True
        self.codec = codec
        if self.relay is not None:
            self.relay.start()
        self._mode_changed.set()

    def decode_from(self, narrowband: bool = False) -> None:
        """From now on, what is sent is the audio ``push``ed (another session decodes it;
        ``narrowband``: from a G.711 leg, nothing above 4 kHz)."""
        self.forwarding = False
        self.narrowband = narrowband
        # aiortc's sender waited while the relay sent: the frames of that time were sent, and
        # sending them again in a burst would only flood the far end's buffer
        self._pacer.skip_ahead()
        if self.relay is not None:
            self.relay.stop()
        self._mode_changed.set()

    async def recv(self) -> av.AudioFrame:
        while self.forwarding:  # the relay sends; aiortc's sender waits here
            if self.readyState != "live":
                raise MediaStreamError
            self._mode_changed.clear()
            await self._mode_changed.wait()
        pts = await self._next_pts()
        if not self._frames:
            self.silent += 1
            return audio_frame(np.zeros(SAMPLES_PER_FRAME, np.int16), pts)
        frame = self._frames.popleft()
        frame.pts = pts
        frame.time_base = _TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._mode_changed.set()  # a waiting recv() ends


async def decode_into(track: MediaStreamTrack, target: PcmTarget | None) -> None:
    """Decode what ``track`` (a session's far-end audio) carries into ``target`` in 20 ms of
    48 kHz mono, or drain it (None: aiortc queues decoded frames until someone reads). An
    Outbox takes the frames as they are; any other target (a recording, a conference's
    input) takes samples."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE,
                                  frame_size=SAMPLES_PER_FRAME)
    deliver: Callable[[av.AudioFrame], None] | None = (
        None if target is None else target.push_frame if isinstance(target, Outbox)
        else lambda frame: target.push(frame_to_mono(frame)))
    try:
        while True:
            frame = await track.recv()
            if deliver is None or not isinstance(frame, av.AudioFrame):
                continue
            frame.pts = None  # the resampler re-times; arrival gaps must not raise
            for out in resampler.resample(frame):
                deliver(out)
    except MediaStreamError:
        pass
