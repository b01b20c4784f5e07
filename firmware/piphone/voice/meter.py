"""A cheap level meter for the PCM a call sends (before encoding) and hears (after decoding).

The quality monitor reads it every 50 ms (``volume``) and folds the readings into the
once-a-second ``sample``. Pushing a 20 ms frame costs one dot product and one max over its
samples (numpy), so it can sit on the media path of every call. voice/ may not import audio/
(DESIGN.md), whose ``levels.py`` computes the SDK's analyser-exact levels for the headset; this
one is the call's own, from the very frames that go on and come off the wire.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import av
import numpy as np

FULL_SCALE = 32768.0  # int16 magnitude of 1.0
VOLUME_MIN_DBFS = -100.0  # the SDK's volume scale: -100 dBFS -> 0.0 ...
VOLUME_MAX_DBFS = -30.0  # ... -30 dBFS -> 1.0
LEVEL_MAX = 32767  # sample's audioInputLevel / audioOutputLevel scale


@dataclass(frozen=True)
class Reading:
    """The audio pushed since the previous read."""

    rms: float = 0.0  # int16 units, 0..32767
    peak: int = 0  # largest sample magnitude, 0..32768
    frames: int = 0  # frames pushed

    @property
    def level(self) -> int:
        """sample's 0..32767 level: the RMS amplitude, clamped."""
        return min(LEVEL_MAX, round(self.rms))

    @property
    def volume(self) -> float:
        """The ``volume`` event's 0.0..1.0: RMS dBFS mapped from -100..-30, clamped."""
        if self.rms <= 0:
            return 0.0
        dbfs = 20.0 * math.log10(self.rms / FULL_SCALE)
        x = (dbfs - VOLUME_MIN_DBFS) / (VOLUME_MAX_DBFS - VOLUME_MIN_DBFS)
        return min(1.0, max(0.0, x))


class LevelMeter:
    """Sum of squares and peak of the s16 frames pushed since the last ``read``.

    Push and read both run on the event loop (the encoder and the decoder run there).
    """

    def __init__(self) -> None:
        self._energy = 0
        self._count = 0
        self._peak = 0
        self._frames = 0

    def push(self, frame: av.AudioFrame) -> None:
        if frame.format.name != "s16":  # piphone's paths are s16; another format is not metered
            return
        samples = np.frombuffer(frame.planes[0], dtype=np.int16)[: frame.samples
                                                                  * len(frame.layout.channels)]
        if samples.size == 0:
            return
        wide = samples.astype(np.int64)  # squares of 1920 samples overflow int32
        self._energy += int(np.dot(wide, wide))
        self._count += samples.size
        self._peak = max(self._peak, int(np.abs(wide).max()))
        self._frames += 1

    def read(self) -> Reading:
        """What was pushed since the last read (silence if nothing), and start afresh."""
        if self._count == 0:
            return Reading()
        reading = Reading(rms=math.sqrt(self._energy / self._count), peak=self._peak,
                          frames=self._frames)
        self._energy = self._count = self._peak = self._frames = 0
        return reading
