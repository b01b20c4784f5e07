"""piphone's own encoding: packets aiortc can send as they are, decodable back to the tone."""

import av
import numpy as np
import pytest

from piphone.pcm import Tone, dominant_frequency
from piphone.voice.rtc.encoding import EncodingTrack, VoiceEncoder
from piphone.voice.rtc.frames import frame_to_mono
from piphone.voice.rtc.tracks import PcmTrack


class Unpaced(Tone):
    """The tone without real-time pacing, for a fast unit test."""

    def __init__(self, frequency: float) -> None:
        super().__init__(frequency)
        self._number = -1

    async def _next_frame(self) -> int:
        self._number += 1
        return self._number


def Frames(frequency: float) -> PcmTrack:  # noqa: N802 (it stands for a track class)
    return PcmTrack(Unpaced(frequency))


@pytest.mark.parametrize("codec, decoder, rate", [("opus", "libopus", 48_000),
                                                  ("pcmu", "pcm_mulaw", 8_000)])
async def test_packets_decode_back_to_the_tone(codec, decoder, rate):
    track = EncodingTrack(Frames(700), lambda: codec)
    packets = [await track.recv() for _ in range(50)]
    assert all(isinstance(p, av.Packet) for p in packets)
    step = int(rate * 0.020)
    assert [p.pts for p in packets] == [i * step for i in range(50)]
    assert all(p.time_base == packets[0].time_base for p in packets)
    context = av.CodecContext.create(decoder, "r")
    context.sample_rate, context.layout = rate, "mono"
    decoded = np.concatenate([frame_to_mono(f) for p in packets for f in context.decode(p)])
    assert dominant_frequency(decoded[-rate // 2:], rate) == pytest.approx(700, abs=5)


async def test_opus_is_mono_voice_at_the_set_bitrate():
    encoder = VoiceEncoder("opus", opus_bitrate=24_000)
    assert encoder.context.layout.name == "mono" and encoder.context.bit_rate == 24_000
    track = EncodingTrack(Frames(440), lambda: "opus", opus_bitrate=24_000)
    sizes = [len(bytes(await track.recv())) for _ in range(100)]
    # 24 kbit/s is 60 bytes per 20 ms packet; aiortc's 96 kbit/s stereo would be about 240.
    assert 30 < np.mean(sizes[10:]) < 90


async def test_an_unknown_codec_passes_frames_through():
    track = EncodingTrack(Frames(440), lambda: "g722")
    assert isinstance(await track.recv(), av.AudioFrame)
    with pytest.raises(ValueError):
        VoiceEncoder("g722")


async def test_opus_codes_wideband_voice_at_a_lower_complexity():
    """The cost lever (encoding.OPUS_OPTIONS): wideband, complexity 7. A wideband
    stream decodes with nothing above 8 kHz: a 12 kHz tone comes out as near silence, where
    libopus's default fullband passes it."""
    encoder = VoiceEncoder("opus")
    assert encoder.context.options["cutoff"] == "8000"
    assert encoder.context.options["compression_level"] == "7"
    track = EncodingTrack(Frames(12_000), lambda: "opus")
    packets = [await track.recv() for _ in range(50)]
    context = av.CodecContext.create("libopus", "r")
    context.sample_rate, context.layout = 48_000, "mono"
    decoded = np.concatenate([frame_to_mono(f) for p in packets for f in context.decode(p)])
    tail = decoded[-24_000:].astype(np.float64)
    # the tone went in at -12 dBFS (RMS about 5800)
    assert np.sqrt(np.mean(tail * tail)) < 300


async def test_audio_from_a_g711_leg_is_coded_narrowband_with_timestamps_going_on():
    """The exchange transcoding PCMU into Opus (Outbox.narrowband): nothing above 4 kHz comes
    from a G.711 leg, so libopus codes it narrowband. The switch (a new encoder) keeps the
    timestamps going on, and a 3 kHz tone still comes through where a 6 kHz one does not."""
    source = Frames(3000)
    track = EncodingTrack(source, lambda: "opus")
    before = [await track.recv() for _ in range(10)]
    source.narrowband = True  # as Outbox.decode_from sets it
    after = [await track.recv() for _ in range(50)]
    assert track._encoder is not None and track._encoder.narrowband
    assert VoiceEncoder("opus", narrowband=True).context.options["cutoff"] == "4000"
    assert [p.pts for p in before + after] == [i * 960 for i in range(60)]
    context = av.CodecContext.create("libopus", "r")
    context.sample_rate, context.layout = 48_000, "mono"
    decoded = np.concatenate([frame_to_mono(f) for p in after for f in context.decode(p)])
    assert dominant_frequency(decoded[-24_000:], 48_000) == pytest.approx(3000, abs=10)
    high = EncodingTrack(Frames(6000), lambda: "opus")
    high.source.narrowband = True
    packets = [await high.recv() for _ in range(50)]
    context = av.CodecContext.create("libopus", "r")
    context.sample_rate, context.layout = 48_000, "mono"
    tail = np.concatenate([frame_to_mono(f) for p in packets
                           for f in context.decode(p)])[-24_000:].astype(np.float64)
    assert np.sqrt(np.mean(tail * tail)) < 300  # the 6 kHz tone went in at RMS about 5800


async def test_a_pcmu_encoder_is_not_remade_for_narrowband():
    source = Frames(440)
    track = EncodingTrack(source, lambda: "pcmu")
    await track.recv()
    encoder = track._encoder
    source.narrowband = True
    await track.recv()
    assert track._encoder is encoder
