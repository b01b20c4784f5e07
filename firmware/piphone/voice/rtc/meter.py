"""A cheap level meter for the PCM a call sends (before encoding) and hears (after decoding).

The quality monitor reads it every 50 ms (``volume``) and folds the readings into the
once-a-second ``sample``. As the SDK's analyser does (it reads the latest samples of the
stream at each tick), a read measures the latest frame pushed: pushing costs one assignment
on the media path, and a read three numpy calls (scripts/bench/quality_cost.py).
voice/ may not import audio/ (DESIGN.md), whose ``levels.py`` computes the SDK's
analyser-exact levels for the headset; this one is the call's own, from the very frames that
go on and come off the wire.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import av
import numpy as np

FULL_SCALE = 32768.0  # int16 magnitude of 1.0
VOLUME_MIN_DBFS = -100.0  # the SDK's volume scale: -100 dBFS -> 0.0 ...
VOLUME_MAX_DBFS = -30.0  # ... -30 dBFS -> 1.0
LEVEL_MAX = 32767  # sample's audioInputLevel / audioOutputLevel scale
HALF_FRAME = 0.01  # s: a tick goes with the 20 ms frame nearest its time


def level(rms: float) -> int:
    """sample's 0..32767 level: the RMS amplitude, clamped."""
    return LEVEL_MAX if rms >= LEVEL_MAX else int(rms + 0.5)


def volume(rms: float) -> float:
    """The ``volume`` event's 0.0..1.0: RMS dBFS mapped from -100..-30, clamped."""
    if rms <= 0:
        return 0.0
    x = (20.0 * math.log10(rms / FULL_SCALE) - VOLUME_MIN_DBFS) / (VOLUME_MAX_DBFS
                                                                 - VOLUME_MIN_DBFS)
    return 1.0 if x >= 1.0 else 0.0 if x <= 0.0 else x


class LevelMeter:
    """RMS of the latest s16 frame pushed, read once per volume tick.

    Push and read both run on the event loop (the encoder and the decoder run there). Each
    read is three numpy calls (a view, a float32 copy, a dot product): levels are read 40
    times a second per call, on a busy event loop where every call counts.
    """

    __slots__ = ("_latest", "_channels", "on_tick", "tick_every", "_audio", "_due", "_wide")

    def __init__(self, on_tick: Callable[[], None] | None = None,
                 tick_every: float = 0.05) -> None:
        self._latest: av.AudioFrame | None = None
        self._channels = 0  # of this stream's frames (its layout does not change); -1: not s16
        self._wide: np.ndarray | None = None  # float32 copy of the frame read
        self.on_tick = on_tick  # called every ``tick_every`` s of audio (the volume ticks)
        self.tick_every = tick_every
        self._audio = 0.0  # s of audio pushed
        self._due = 0.0  # audio time of the next tick

    def push(self, frame: av.AudioFrame) -> None:
        self._latest = frame
        if self.on_tick is not None:
            # Ticks follow the audio's own clock: on the frame nearest each step (20 ms frames
            # give 40 and 60 ms, 50 ms on average), with no clock read and no timer.
            self._audio += frame.samples / frame.sample_rate
            if self._audio >= self._due - HALF_FRAME:
                self._due += self.tick_every
                self.on_tick()

    def read(self) -> float:
        """The RMS (int16 units) of the latest frame; 0.0 if none came since the last read."""
        frame, self._latest = self._latest, None
        if frame is None:
            return 0.0
        if not self._channels:
            # A stream's format and layout do not change (piphone's paths are s16): checked
            # once, as PyAV builds a new object for each ``format`` / ``layout`` read.
            self._channels = len(frame.layout.channels) if frame.format.name == "s16" else -1
        count = frame.samples * self._channels
        if count <= 0:
            return 0.0
        # Squares in float32 (int16 squares overflow), in a buffer kept between reads: no
        # allocation per read. The method ``dot`` skips np.dot's dispatch.
        wide = self._wide
        if wide is None or len(wide) != count:
            wide = self._wide = np.empty(count, np.float32)
        np.copyto(wide, np.frombuffer(frame.planes[0], dtype=np.int16, count=count))
        return math.sqrt(float(wide.dot(wide)) / count)
