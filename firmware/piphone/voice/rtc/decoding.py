"""Decode on the event loop what a phone plays: Opus as 48 kHz mono.

aiortc's Opus decoder asks libopus for stereo, whatever the far end sends (a phone and
Twilio's edge send mono): libopus then upmixes every frame, and every frame read as PCM
(the earpiece, the quality meter) is averaged back to mono with numpy, which costs more than
the decoding itself (scripts/bench/README.md has the figures). ``voice_decoder`` decodes Opus
to mono (libopus downmixes a stereo stream itself) and leaves the other codecs (G.711: mono
already) to aiortc's decoders.
"""

from __future__ import annotations

import fractions

import av
from aiortc import RTCRtpCodecParameters
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from av.audio.codeccontext import AudioCodecContext
from av.frame import Frame

OPUS_RATE = 48_000
_TIME_BASE = fractions.Fraction(1, OPUS_RATE)


class MonoOpusDecoder(Decoder):
    """aiortc's OpusDecoder, mono."""

    def __init__(self) -> None:
        self.context: AudioCodecContext = av.CodecContext.create("libopus", "r")
        self.context.format = "s16"
        self.context.layout = "mono"
        self.context.sample_rate = OPUS_RATE

    def decode(self, encoded_frame: JitterFrame) -> list[Frame]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = encoded_frame.timestamp
        packet.time_base = _TIME_BASE
        return list(self.context.decode(packet))


def voice_decoder(codec: RTCRtpCodecParameters) -> Decoder:
    """The decoder of ``codec``'s frames: mono Opus, else aiortc's."""
    if codec.mimeType.lower() == "audio/opus":
        return MonoOpusDecoder()
    return get_decoder(codec)
