"""PyAV audio frames <-> PCM (piphone/pcm.py): the one place frames are made from samples and
samples read out of frames."""

from __future__ import annotations

import fractions
import functools

import av
import numpy as np

from ...pcm import SAMPLE_RATE, Samples, mix_down


def audio_frame(samples: Samples, pts: int, sample_rate: int = SAMPLE_RATE) -> av.AudioFrame:
    """A mono s16 frame of int16 samples, timed ``pts`` in units of 1/``sample_rate``."""
    pcm = np.asarray(samples, dtype=np.int16).reshape(-1)
    if len(pcm):
        # An empty frame, then the samples copied into its plane: a third of what
        # AudioFrame.from_ndarray costs (50 frames a second each way: a phone's hot path).
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm))
        np.frombuffer(memoryview(frame.planes[0]), np.int16, len(pcm))[:] = pcm
    else:
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = _time_base(sample_rate)
    return frame


@functools.cache
def _time_base(sample_rate: int) -> fractions.Fraction:
    return fractions.Fraction(1, sample_rate)


def frame_to_mono(frame: av.AudioFrame) -> Samples:
    """int16 mono samples of an s16 frame, packed or planar, any channel count (averaged)."""
    channels = frame.layout.nb_channels
    if channels == 1 and frame.format.name in ("s16", "s16p"):
        # a copy of the plane: a quarter of what to_ndarray costs (a decoded mono frame)
        return np.frombuffer(memoryview(frame.planes[0]), np.int16, frame.samples).copy()
    return mix_down(frame.to_ndarray(), channels, frame.format.is_planar)


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
