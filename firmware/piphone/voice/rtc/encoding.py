"""Encode on the event loop, as a phone needs: mono voice, a sane bitrate, no thread hop.

aiortc encodes every 20 ms frame in the default thread pool, with an Opus encoder set for
music (96 kbit/s stereo). For a phone that is twice the work for nothing: each frame costs a
hand-off to a worker thread and back, and the encoder codes two channels of a mono voice.
``EncodingTrack`` encodes what its source produces with the negotiated codec itself (mono,
Opus at ``opus_bitrate``, or G.711 mu-law) and hands aiortc ready ``av.Packet``s, which
aiortc sends as they are (its public path for pre-encoded media).
"""

from __future__ import annotations

import fractions
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import av
from aiortc.mediastreams import MediaStreamTrack
from av.audio.codeccontext import AudioCodecContext
from av.audio.resampler import AudioResampler
from av.frame import Frame
from av.packet import Packet

from ...pcm import LevelMeter

PTIME = 0.020  # seconds per packet

# Opus for a phone's voice (scripts/bench/README.md, "Levers measured", has the figures): a
# wideband voice (audio up to 8 kHz, as "HD voice" handsets carry; Twilio's PSTN leg is 8 kHz)
# at complexity 7 in place of libopus's 10. On speech that is 22 % less encoder CPU, and
# PESQ-WB 4.26 against 4.05 for fullband at complexity 10 (the bits go where speech is); what
# is lost is the 8-20 kHz band, which a voice barely has. Not 6 or less: below 7 libopus skips
# its signal analysis and codes a tone or music with SILK, twice the CPU of CELT.
OPUS_OPTIONS = {
    "application": "voip",
    "cutoff": "8000",  # Hz: wideband (no CELT layer above 8 kHz for speech)
    "compression_level": "7",  # libopus complexity 0-10
}
# Audio that comes from a G.711 leg (the exchange transcoding PCMU into Opus) has nothing above
# 4 kHz: coded narrowband, libopus spends a third less CPU on G.711-band noise and an eighth
# less on a tone (narrowband_opus.py; scripts/bench/README.md).
NARROWBAND_CUTOFF = "4000"  # Hz


class VoiceEncoder:
    """One codec context and the resampler that feeds it exact 20 ms mono frames."""

    def __init__(self, codec: str, *, opus_bitrate: int = 32_000, narrowband: bool = False,
                 pts_from: int = 0) -> None:
        name: Literal["libopus", "pcm_mulaw"]
        if codec == "opus":
            name, rate = "libopus", 48_000
        elif codec == "pcmu":
            name, rate = "pcm_mulaw", 8_000
        else:
            raise ValueError(f"no voice encoder for {codec!r}")
        self.codec = codec
        self.context: AudioCodecContext = av.CodecContext.create(name, "w")
        self.context.format = "s16"
        self.context.layout = "mono"
        self.context.sample_rate = rate
        self.context.time_base = fractions.Fraction(1, rate)
        if codec == "opus":
            self.context.bit_rate = opus_bitrate
            self.context.options = dict(OPUS_OPTIONS, **(
                {"cutoff": NARROWBAND_CUTOFF} if narrowband else {}))
        self.frame_size = int(rate * PTIME)
        self.resampler = AudioResampler(format="s16", layout="mono", rate=rate,
                                        frame_size=self.frame_size)
        self.narrowband = narrowband
        self._first_pts: int | None = None
        self._pts_from = pts_from  # where our packets' timestamps start (an encoder before us)
        self.next_pts = pts_from  # of the packet after the last one made

    def encode(self, frame: av.AudioFrame) -> list[Packet[Any]]:
        if (frame.samples == self.frame_size and frame.sample_rate == self.context.sample_rate
                and frame.format.name == "s16" and frame.layout.name == "mono"):
            packets = self.context.encode(frame)  # already what the codec takes
        else:
            packets = []
            for chunk in self.resampler.resample(frame):
                packets += self.context.encode(chunk)
        for packet in packets:
            if packet.pts is None:  # an encoder always dates its packets
                continue
            # libopus starts at a negative pts (its pre-skip): RTP timestamps start at 0.
            if self._first_pts is None:
                self._first_pts = packet.pts
            packet.pts += self._pts_from - self._first_pts
            self.next_pts = packet.pts + self.frame_size
        return packets


class EncodingTrack(MediaStreamTrack):
    """The source's audio as packets of the codec that ``codec()`` names once media flows."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, codec: Callable[[], str | None], *,
                 opus_bitrate: int = 32_000) -> None:
        super().__init__()
        self.source = source
        self._codec = codec
        self.opus_bitrate = opus_bitrate  # read when media starts (the far end may cap it)
        self._encoder: VoiceEncoder | None = None
        self._passthrough = False
        self._ready: deque[Packet[Any]] = deque()
        # levels of what we send, before encoding (quality.py)
        self.meter: LevelMeter[av.AudioFrame] | None = None

    async def recv(self) -> Frame | Packet[Any]:
        while not self._ready:
            frame = await self.source.recv()
            if not isinstance(frame, av.AudioFrame):
                return frame  # already encoded (the exchange forwarding a leg's packets)
            if self.meter is not None:
                self.meter.push(frame)
            encoder = self._encoder_for_now()
            if encoder is None:
                return frame  # a codec we do not encode ourselves: aiortc will
            self._ready.extend(encoder.encode(frame))
        return self._ready.popleft()

    def _encoder_for_now(self) -> VoiceEncoder | None:
        # narrowband: the exchange's Outbox, while it carries a G.711 leg's audio
        narrowband: bool = getattr(self.source, "narrowband", False)
        if (self._encoder is not None and self._encoder.codec == "opus"
                and self._encoder.narrowband != narrowband):
            # a new encoder (libopus takes its bandwidth once), going on with the timestamps
            self._encoder = VoiceEncoder(self._encoder.codec, opus_bitrate=self.opus_bitrate,
                                         narrowband=narrowband,
                                         pts_from=self._encoder.next_pts)
        if self._encoder is None and not self._passthrough:
            try:
                self._encoder = VoiceEncoder(self._codec() or "",
                                             opus_bitrate=self.opus_bitrate,
                                             narrowband=narrowband)
            except ValueError:
                self._passthrough = True
        return self._encoder

    def stop(self) -> None:
        super().stop()
        self.source.stop()
