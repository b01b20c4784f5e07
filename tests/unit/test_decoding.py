"""voice/rtc/decoding.py: Opus decoded as a phone plays it, 48 kHz mono."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc import RTCRtpCodecParameters
from aiortc.codecs.g711 import PcmuDecoder
from aiortc.jitterbuffer import JitterFrame

from piphone.pcm import SAMPLE_RATE, Tone, dominant_frequency, rms
from piphone.voice.rtc.decoding import MonoOpusDecoder, voice_decoder
from piphone.voice.rtc.encoding import VoiceEncoder
from piphone.voice.rtc.frames import audio_frame, frame_to_mono

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                             payloadType=111)
PCMU = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)


def opus_packets(frames: int, layout: str = "mono") -> list[bytes]:
    """A 700 Hz tone, Opus-coded in ``layout`` (a phone sends mono; a stereo stream may come)."""
    table = Tone(700)._table
    if layout == "mono":
        encoder = VoiceEncoder("opus")
        return [bytes(p) for i in range(frames)
                for p in encoder.encode(audio_frame(table[i * 960:(i + 1) * 960], i * 960))]
    context = av.CodecContext.create("libopus", "w")
    context.format, context.layout, context.sample_rate = "s16", "stereo", SAMPLE_RATE
    context.time_base = fractions.Fraction(1, SAMPLE_RATE)
    packets = []
    for i in range(frames):
        both = np.repeat(table[i * 960:(i + 1) * 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(both, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = SAMPLE_RATE, i * 960
        packets += [bytes(p) for p in context.encode(frame)]
    return packets


def decoded(layout: str) -> list[av.AudioFrame]:
    decoder = voice_decoder(OPUS)
    return [f for i, data in enumerate(opus_packets(25, layout))
            for f in decoder.decode(JitterFrame(data=data, timestamp=i * 960))]


def test_opus_is_decoded_to_48_khz_mono_frames_of_20_ms():
    frames = decoded("mono")
    assert isinstance(voice_decoder(OPUS), MonoOpusDecoder)
    assert frames and all(len(f.layout.channels) == 1 and f.samples == 960
                          and f.sample_rate == 48000 and f.format.name == "s16"
                          for f in frames)
    heard = np.concatenate([frame_to_mono(f) for f in frames[5:]])
    assert abs((dominant_frequency(heard, SAMPLE_RATE) or 0) - 700) < 10 and rms(heard) > 1000


def test_a_stereo_stream_is_downmixed_by_libopus():
    frames = decoded("stereo")
    assert all(len(f.layout.channels) == 1 for f in frames)
    heard = np.concatenate([frame_to_mono(f) for f in frames[5:]])
    assert abs((dominant_frequency(heard, SAMPLE_RATE) or 0) - 700) < 10 and rms(heard) > 1000


def test_g711_is_left_to_aiortc_s_decoder():
    assert isinstance(voice_decoder(PCMU), PcmuDecoder)
