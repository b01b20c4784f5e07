"""A cheap level meter for the PCM a call sends (before encoding) and hears (after decoding).

The quality monitor reads it every 50 ms (``volume``) and folds the readings into the
once-a-second ``sample``. As the SDK's analyser does (it reads the latest samples of the
stream at each tick), a read measures the latest frame pushed: pushing costs one assignment
on the media path, and a read a handful of numpy calls (scripts/bench/quality_cost.py).
voice/ may not import audio/ (DESIGN.md), whose ``levels.py`` computes the SDK's
analyser-exact levels for the headset; this one is the call's own, from the very frames that
go on and come off the wire.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

FULL_SCALE = 32768.0  # int16 magnitude of 1.0
VOLUME_MIN_DBFS = -100.0  # the SDK's volume scale: -100 dBFS -> 0.0 ...
VOLUME_MAX_DBFS = -30.0  # ... -30 dBFS -> 1.0
LEVEL_MAX = 32767  # sample's audioInputLevel / audioOutputLevel scale


@dataclass(slots=True)
class Reading:
    """The latest frame pushed before a read."""

    rms: float = 0.0  # int16 units, 0..32767
    peak: int = 0  # largest sample magnitude, 0..32768
    frames: int = 0  # frames pushed since the previous read

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
    """RMS and peak of the latest s16 frame pushed, read once per volume tick.

    Push and read both run on the event loop (the encoder and the decoder run there).
    """

    __slots__ = ("_latest", "_frames", "on_push")

    def __init__(self, on_push: Callable[[], None] | None = None) -> None:
        self._latest: av.AudioFrame | None = None
        self._frames = 0
        self.on_push = on_push  # called after each frame (the quality monitor's audio clock)

    def push(self, frame: av.AudioFrame) -> None:
        self._latest = frame
        self._frames += 1
        if self.on_push is not None:
            self.on_push()

    def read(self) -> Reading:
        """The latest frame's level (silence if none came since the last read)."""
        frame, frames = self._latest, self._frames
        self._latest, self._frames = None, 0
        if frame is None or frame.format.name != "s16":  # piphone's paths are s16
            return Reading(frames=frames)
        samples = np.frombuffer(frame.planes[0], dtype=np.int16,
                                count=frame.samples * len(frame.layout.channels))
        if samples.size == 0:
            return Reading(frames=frames)
        wide = samples.astype(np.float32)  # int16 squares overflow; float32 sums are ample
        peak = max(int(samples.max()), -int(samples.min()))
        return Reading(rms=math.sqrt(float(np.dot(wide, wide)) / samples.size), peak=peak,
                       frames=frames)
