"""PyAV audio frames <-> PCM (piphone/pcm.py): the one place frames are made from samples and
samples read out of frames."""

from __future__ import annotations

import fractions

import av
import numpy as np

from ...pcm import SAMPLE_RATE, Samples, mix_down


def audio_frame(samples: Samples, pts: int, sample_rate: int = SAMPLE_RATE) -> av.AudioFrame:
    """A mono s16 frame of int16 samples, timed ``pts`` in units of 1/``sample_rate``."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, sample_rate)
    return frame


def frame_to_mono(frame: av.AudioFrame) -> Samples:
    """int16 mono samples of an s16 frame, packed or planar, any channel count (averaged)."""
    return mix_down(frame.to_ndarray(), len(frame.layout.channels), frame.format.is_planar)


class AvFrames:
    """How a level meter (pcm.LevelMeter) reads the PyAV frames of one stream: a view of their
    samples, taken only when the meter is read (a stream's format and layout do not change:
    checked once, as PyAV builds a new object at each ``format`` or ``layout`` read)."""

    __slots__ = ("_channels",)

    def __init__(self) -> None:
        self._channels = 0  # of this stream's frames; -1: not s16 (not metered)

    def samples(self, frame: av.AudioFrame) -> Samples:
        if not self._channels:
            self._channels = len(frame.layout.channels) if frame.format.name == "s16" else -1
        count = frame.samples * self._channels
        if count <= 0:
            return _NONE
        return np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=count)

    def seconds(self, frame: av.AudioFrame) -> float:
        return frame.samples / frame.sample_rate


_NONE: Samples = np.zeros(0, np.int16)
