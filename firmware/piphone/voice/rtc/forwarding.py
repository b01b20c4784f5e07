"""Bridging media sessions (the exchange's legs, exchange/bridge.py), below the port.

What a bridged session sends is its ``Outbox``: encoded frames forwarded from another
session's receiver as they arrive (MediaSession.forward_to: no decoding, no re-encoding, no
clock of ours in the path; aiortc's sender re-originates SSRC, sequence numbers and timestamps
per session), or audio decoded from another session, normalised to 48 kHz mono and re-encoded
on this session's paced clock (MediaSession.decode_to: when the codecs differ, an Opus leg and
a PCMU leg, or for lines set up before negotiation, echo).
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.packet import Packet

from ...pcm import SAMPLE_RATE, SAMPLES_PER_FRAME, PcmTarget, Samples
from .encoding import VoiceEncoder
from .frames import audio_frame
from .jitter import CLOCK_RATE
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


class Outbox(PacedAudioTrack):
    """What a bridged session sends: forwarded packets as they come, or decoded audio on a
    20 ms clock (silence when nothing is queued). Both queues are bounded and drop the
    oldest. The exchange handles it only as a target (Leg.outbox), never reads it."""

    def __init__(self, depth: int = OUTBOX_FRAMES) -> None:
        super().__init__()
        self._samples: collections.deque[Samples] = collections.deque(maxlen=depth)
        self._packets: collections.deque[Packet[Any]] = collections.deque(maxlen=depth)
        self._packet_arrived = asyncio.Event()
        self.forwarding = False  # set by MediaSession.forward_to
        self.codec: str | None = None  # of the forwarded packets (for silence fill)
        self.dropped = 0
        self.silent = 0
        # The timeline of what we send: forwarded timestamps go on from the last one sent,
        # so fill and a new source (a leg that reconnected) never make it jump back.
        self._in_pts: int | None = None
        self._out_pts: int | None = None

    def push(self, samples: Samples) -> None:
        """Decoded 48 kHz mono audio, sent on our clock."""
        if len(self._samples) == self._samples.maxlen:
            self.dropped += 1  # the deque drops the oldest
        self._samples.append(samples)

    def forward_from(self, codec: str | None) -> None:
        """From now on, send encoded frames of ``codec`` handed to ``forward``."""
        self.forwarding = True
        self.codec = codec

    def forward(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        """An encoded frame another session received (its receive tap hands it here)."""
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = fractions.Fraction(1, codec.clockRate)
        self.push_packet(packet)

    def push_packet(self, packet: Packet[Any]) -> None:
        """An encoded frame of this leg's codec, sent as soon as the sender asks."""
        if len(self._packets) == self._packets.maxlen:
            self.dropped += 1
        self._packets.append(packet)
        self._packet_arrived.set()

    async def recv(self) -> av.AudioFrame | Packet[Any]:
        if self.forwarding:
            wait = FILL_AFTER
            while not self._packets:
                if self.readyState != "live":
                    raise MediaStreamError
                self._packet_arrived.clear()
                try:
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancel
                    # of a stopping sender when a packet arrives at the same moment.
                    async with asyncio.timeout(wait):
                        await self._packet_arrived.wait()
                except TimeoutError:
                    if self.readyState == "live" and self.codec in SILENCE_CODECS:
                        return self._silence_packet()
                wait = 0.020  # filling: a frame of silence every 20 ms until packets come
            return self._retime(self._packets.popleft())
        pts = await self._next_pts()
        if self._samples:
            samples = self._samples.popleft()
        else:
            self.silent += 1
            samples = np.zeros(SAMPLES_PER_FRAME, np.int16)
        return audio_frame(samples, pts)

    def _ticks(self) -> int:
        return CLOCK_RATE.get(self.codec or "", 48_000) // 50  # one 20 ms frame

    def _retime(self, packet: Packet[Any]) -> Packet[Any]:
        rate = CLOCK_RATE.get(self.codec or "", 48_000)
        pts = packet.pts if packet.pts is not None else 0
        if self._out_pts is None:
            out = pts
        else:
            delta = pts - self._in_pts if self._in_pts is not None else 0
            if not 0 < delta <= rate:  # another source, or a jump: carry on by one frame
                delta = rate // 50  # one 20 ms frame
            out = self._out_pts + delta
        self._in_pts, self._out_pts = pts, out
        packet.pts = out
        return packet

    def _silence_packet(self) -> Packet[Any]:
        assert self.codec is not None
        self.silent += 1
        packet = av.Packet(silence_payload(self.codec))
        self._out_pts = 0 if self._out_pts is None else self._out_pts + self._ticks()
        packet.pts = self._out_pts
        packet.time_base = fractions.Fraction(1, CLOCK_RATE[self.codec])
        return packet

    def stop(self) -> None:
        super().stop()
        self._packet_arrived.set()  # a waiting recv() ends


async def decode_into(track: MediaStreamTrack, target: PcmTarget | None) -> None:
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
