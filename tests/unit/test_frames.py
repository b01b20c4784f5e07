"""voice/rtc/frames.py: PCM <-> PyAV frames, the per-frame work of both directions."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from piphone.voice.rtc.frames import audio_frame, frame_to_mono


@pytest.mark.parametrize("count, rate", [(960, 48000), (160, 8000), (961, 48000), (1, 16000)])
def test_samples_round_trip_through_a_mono_s16_frame(count, rate):
    samples = ((np.arange(count) - count // 2) * 37).astype(np.int16)
    frame = audio_frame(samples, 1234, rate)
    assert (frame.format.name, frame.layout.nb_channels, frame.samples) == ("s16", 1, count)
    assert (frame.pts, frame.sample_rate, frame.time_base) == (
        1234, rate, fractions.Fraction(1, rate))
    assert np.array_equal(frame.to_ndarray().reshape(-1), samples)
    assert np.array_equal(frame_to_mono(frame), samples)


def test_a_frame_is_made_of_a_copy_and_read_into_a_copy():
    samples = np.full(960, 5, np.int16)
    frame = audio_frame(samples, 0)
    samples[:] = 9  # the source reuses its buffer: the frame keeps what it was given
    mono = frame_to_mono(frame)
    mono[:] = 7  # a sink works in place: the frame (still metered, copied) is untouched
    assert (frame.to_ndarray() == 5).all() and mono.flags.writeable


def test_other_shapes_are_still_averaged_to_mono():
    stereo = av.AudioFrame.from_ndarray(np.array([[100, 300, -100, -300]], np.int16),
                                        format="s16", layout="stereo")
    planar = av.AudioFrame.from_ndarray(np.array([[100, -100], [300, -300]], np.int16),
                                        format="s16p", layout="stereo")
    assert frame_to_mono(stereo).tolist() == [200, -200] == frame_to_mono(planar).tolist()
    assert audio_frame(np.zeros(0, np.int16), 0).samples == 0
