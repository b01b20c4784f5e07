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
import logging
from typing import Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.packet import Packet

from ...pcm import SAMPLE_RATE, SAMPLES_PER_FRAME, Samples
from .encoding import VoiceEncoder
from .frames import audio_frame
from .tracks import PacedAudioTrack

log = logging.getLogger(__name__)

OUTBOX_FRAMES = 5  # at most 100 ms queued per leg; older frames are dropped, never delayed
# A forwarding leg whose source went quiet this long (seconds) sends silence meanwhile: its
# client would otherwise take the quiet for lost media (reconnect.py) while the far party
# reconnects or has not connected yet. Far longer than any jitter worth waiting out.
FILL_AFTER = 0.5
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
        self._samples: collections.deque[Samples] = collections.deque(maxlen=depth)
        self._mode_changed = asyncio.Event()
        self.forwarding = False  # set by MediaSession.forward_to
        self.codec: str | None = None  # of the forwarded packets
        # what sends the forwarded packets: set by the session that sends this outbox
        self.relay: Relaying | None = None
        self.narrowband = False  # what is pushed comes from a G.711 leg (encoding.py)
        self.dropped = 0
        self.silent = 0

    def push(self, samples: Samples) -> None:
        """Decoded 48 kHz mono audio, sent on our clock."""
        if len(self._samples) == self._samples.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self._samples.append(samples)

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
        if self._samples:
            samples = self._samples.popleft()
        else:
            self.silent += 1
            samples = np.zeros(SAMPLES_PER_FRAME, np.int16)
        return audio_frame(samples, pts)

    def stop(self) -> None:
        super().stop()
        self._mode_changed.set()  # a waiting recv() ends


async def decode_into(track: MediaStreamTrack, target: Outbox | None) -> None:
    """Decode what ``track`` (a session's far-end audio) carries into ``target`` in 20 ms of
    48 kHz mono, or drain it (None: aiortc queues decoded frames until someone reads)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE,
                                  frame_size=SAMPLES_PER_FRAME)
    try:
        while True:
            frame = await track.recv()
            if target is None or not isinstance(frame, av.AudioFrame):
                continue
            frame.pts = None  # the resampler re-times; arrival gaps must not raise
            for out in resampler.resample(frame):
                target.push(np.array(out.to_ndarray().reshape(-1), dtype=np.int16))
    except MediaStreamError:
        pass
