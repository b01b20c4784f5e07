"""PCM: audio as numpy int16 arrays, the shape voice/ and audio/ hand each other.

The bottom layer under voice/ and audio/, which may not import each other (ARCHITECTURE.md): a frame
is 20 ms of mono int16 samples at 48 kHz. A call's source (``PcmSource``) gives one frame per
``read``, at its own pace; a call's sink (``PcmSink``) is given the far end's audio as it is
heard, mono, at the rate of the far end's codec. Here too is what both sides measure and make
such frames with: the one level meter (a call's ``volume`` events and quality samples), gain
and mixing down to mono, and the sources and sinks that need no hardware (a tone, silence, a
recorder). audio/pcm_io.py has the headset's; voice/rtc/ turns sources and sinks into aiortc
tracks and back (rtc/tracks.py, rtc/frames.py). Nothing here knows aiortc or PyAV.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, cast, overload

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000  # Hz of the frames sources give
PTIME = 0.020  # seconds per frame
SAMPLES_PER_FRAME = int(SAMPLE_RATE * PTIME)

Samples: TypeAlias = npt.NDArray[np.int16]


class EndOfStream(Exception):
    """The source was stopped: there is no more audio."""


class PcmSource(Protocol):
    """A call's audio source: ``read`` waits for the next 20 ms frame (``SAMPLES_PER_FRAME``
    mono int16 samples at ``SAMPLE_RATE``) and returns it; the source sets the pace (a sound
    card's clock, or a timer). After ``stop`` it raises EndOfStream."""

    async def read(self) -> Samples: ...

    def stop(self) -> None: ...


class PcmSink(Protocol):
    """A call's audio sink: ``start`` when the far end's audio is about to come (a new media
    session; it may come again after a reconnection), then ``write`` with each frame heard:
    mono int16 at ``sample_rate`` (48 kHz for Opus, 8 kHz for PCMU), an array of its own that
    the sink may keep."""

    def start(self) -> None: ...

    def write(self, samples: Samples, sample_rate: int) -> None: ...


class PcmTarget(Protocol):
    """Where a leg's decoded audio goes at the exchange: another leg's ``Outbox``, or a
    voicemail recording: ``push`` 20 ms blocks of 48 kHz mono int16, on the loop."""

    def push(self, samples: Samples) -> None: ...


# --- samples ---------------------------------------------------------------------------------
def apply_gain(samples: Samples, gain: float) -> Samples:
    """The samples times ``gain`` (linear), saturated at the int16 limits."""
    if gain == 1.0:
        return samples
    scaled: npt.NDArray[np.float64] = np.clip(samples * gain, -32768, 32767)
    return scaled.astype(np.int16)


def mix_down(data: npt.NDArray[Any], channels: int, planar: bool = False) -> Samples:
    """int16 mono of ``channels`` channels, interleaved in one row (packed) or one row per
    channel (``planar``), as a decoder hands them over: the channels are averaged."""
    if channels == 1:
        return np.asarray(data.reshape(-1), dtype=np.int16)  # no copy when it is int16
    mean: npt.NDArray[np.float64] = (data.mean(axis=0) if planar
                                     else data.reshape(-1, channels).mean(axis=1))
    return mean.astype(np.int16)


def rms(samples: Samples) -> float:
    if len(samples) == 0:
        return 0.0
    x = samples.astype(np.float64)
    return float(np.sqrt(np.mean(x * x)))


def dominant_frequency(samples: Samples, sample_rate: int) -> float | None:
    """The strongest frequency in the samples, or None for (near) silence."""
    if len(samples) < sample_rate // 50:
        return None
    x = samples.astype(np.float64)
    if np.sqrt(np.mean(x * x)) < 30:  # about -60 dBFS: silence
        return None
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = int(np.argmax(spectrum[1:])) + 1
    return peak * sample_rate / len(x)


# --- levels ----------------------------------------------------------------------------------
FULL_SCALE = 32768.0  # int16 magnitude of 1.0 (a full-scale square wave is 0 dBFS)
DBFS_FLOOR = -100.0  # silence, and anything quieter: never -inf (the value goes into JSON)
VOLUME_MIN_DBFS = -100.0  # the SDK's volume scale: -100 dBFS -> 0.0 ...
VOLUME_MAX_DBFS = -30.0  # ... -30 dBFS -> 1.0 (its AnalyserNode's byte scale)
LEVEL_MAX = 32767  # sample's audioInputLevel / audioOutputLevel scale
HALF_FRAME = 0.01  # s: a tick goes with the 20 ms frame nearest its time


def dbfs(rms: float) -> float:
    """An RMS amplitude (int16 units) in dBFS, DBFS_FLOOR at the quietest."""
    if rms <= 0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, 20.0 * math.log10(rms / FULL_SCALE))


def rms_dbfs(samples: Samples) -> float:
    """The RMS level of int16 samples in dBFS (a full-scale sine is about -3 dBFS)."""
    if np.asarray(samples).dtype != np.int16:
        raise TypeError(f"levels need int16 samples, got {np.asarray(samples).dtype}")
    return dbfs(rms(samples))


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


F = TypeVar("F")
F_contra = TypeVar("F_contra", contravariant=True)


class FrameReader(Protocol[F_contra]):
    """How a meter reads the frames pushed into it: their int16 samples (every channel;
    empty when they are not int16) and their length in seconds."""

    def samples(self, frame: F_contra) -> Samples: ...

    def seconds(self, frame: F_contra) -> float: ...


class PcmFrames:
    """Frames that are int16 arrays at ``sample_rate``, one channel."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate = sample_rate

    def samples(self, frame: Samples) -> Samples:
        return frame

    def seconds(self, frame: Samples) -> float:
        return len(frame) / self.sample_rate


class LevelReading(Protocol):
    """What reads a level meter (the quality monitor): the RMS of the latest frame."""

    def read(self) -> float: ...


class LevelMeter(Generic[F]):
    """RMS of the latest frame pushed, read once per volume tick.

    As the SDK's analyser does (it reads the latest samples of the stream at each tick), a read
    measures the latest frame pushed: pushing costs one assignment on the media path, and a
    read three numpy calls (scripts/bench/quality_cost.py). Frames are int16 arrays, or
    whatever ``reader`` can read (voice/rtc meters PyAV frames without converting each one).
    Push and read both run on the event loop; levels are read 40 times a second per call.
    """

    __slots__ = ("_latest", "_reader", "on_tick", "tick_every", "_audio", "_due", "_wide")

    @overload
    def __init__(self: LevelMeter[Samples], on_tick: Callable[[], None] | None = None,
                 tick_every: float = 0.05) -> None: ...

    @overload
    def __init__(self, on_tick: Callable[[], None] | None = None, tick_every: float = 0.05,
                 *, reader: FrameReader[F]) -> None: ...

    def __init__(self, on_tick: Callable[[], None] | None = None, tick_every: float = 0.05,
                 *, reader: FrameReader[F] | None = None) -> None:
        self._latest: F | None = None
        self._reader = reader if reader is not None else cast(FrameReader[F], PcmFrames())
        self._wide: npt.NDArray[np.float32] | None = None  # float32 copy of the frame read
        self.on_tick = on_tick  # called every ``tick_every`` s of audio (the volume ticks)
        self.tick_every = tick_every
        self._audio = 0.0  # s of audio pushed
        self._due = 0.0  # audio time of the next tick

    def push(self, frame: F) -> None:
        self._latest = frame
        if self.on_tick is not None:
            # Ticks follow the audio's own clock: on the frame nearest each step (20 ms frames
            # give 40 and 60 ms, 50 ms on average), with no clock read and no timer.
            self._audio += self._reader.seconds(frame)
            if self._audio >= self._due - HALF_FRAME:
                self._due += self.tick_every
                self.on_tick()

    def read(self) -> float:
        """The RMS (int16 units) of the latest frame; 0.0 if none came since the last read."""
        frame, self._latest = self._latest, None
        if frame is None:
            return 0.0
        samples = self._reader.samples(frame)
        count = len(samples)
        if count == 0:
            return 0.0
        # Squares in float32 (int16 squares overflow), in a buffer kept between reads: no
        # allocation per read. The method ``dot`` skips np.dot's dispatch.
        wide = self._wide
        if wide is None or len(wide) != count:
            wide = self._wide = np.empty(count, np.float32)
        np.copyto(wide, samples)
        return math.sqrt(float(wide.dot(wide)) / count)


# --- sources and sinks that need no hardware ------------------------------------------------
class Pacer:
    """A real-time clock of 20 ms frames: ``tick`` waits until the next frame is due and
    returns its number (the first, 0, at once: the clock starts at the first tick)."""

    def __init__(self) -> None:
        self._start: float | None = None
        self.frames = 0  # number of the last frame ticked

    async def tick(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self.frames += 1
            wait = self._start + self.frames * PTIME - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        return self.frames


    def skip_ahead(self) -> None:
        """The frames that fell due while nobody ticked are let go: the next tick waits for
        the next frame due from now, instead of handing out the missed ones in a burst."""
        if self._start is not None:
            due = int((time.monotonic() - self._start) / PTIME)
            self.frames = max(self.frames, due)


class PacedSource:
    """Base of sources that make 20 ms frames on a real-time clock (lazy start at first read)."""

    def __init__(self) -> None:
        self._pacer = Pacer()
        self.stopped = False

    async def _next_frame(self) -> int:
        """Wait until the next frame is due; its number (0 for the first, given at once)."""
        if self.stopped:
            raise EndOfStream
        number = await self._pacer.tick()
        if self.stopped:
            raise EndOfStream
        return number

    def stop(self) -> None:
        self.stopped = True


class Tone(PacedSource):
    """A continuous sine tone: piphone's test signal (frequency in Hz, level in dBFS)."""

    def __init__(self, frequency: float = 440.0, level_dbfs: float = -12.0) -> None:
        super().__init__()
        self.frequency = frequency
        amplitude = 32767 * 10 ** (level_dbfs / 20)
        # One second holds a whole number of cycles of a whole-Hz tone: compute it once and
        # play it in a loop (a sine per frame costs more than the rest of the source).
        seconds = 1 if float(frequency).is_integer() else 10
        n = np.arange(SAMPLE_RATE * seconds)
        self._table: Samples = (amplitude * np.sin(2 * math.pi * frequency / SAMPLE_RATE * n)
                                ).astype(np.int16)

    async def read(self) -> Samples:
        start = (await self._next_frame()) * SAMPLES_PER_FRAME % len(self._table)
        return self._table[start:start + SAMPLES_PER_FRAME]


class HoldMusic(PacedSource):
    """What the far end of a held call hears (Call.hold, a piphone extension): a soft
    arpeggio the phone makes itself, never silence (which sounds like a dropped line).

    ``frame(count, sample_rate)`` gives the next samples unpaced (a held call's gate keeps its
    microphone's pace and swaps each frame); ``read`` gives the same, paced, as a PcmSource."""

    NOTES = (523.25, 659.25, 783.99, 659.25)  # Hz: C5 E5 G5 E5, one after another
    NOTE_SECONDS = 0.4
    FADE_SECONDS = 0.01  # each note fades in and out (no clicks between notes)

    def __init__(self, level_dbfs: float = -18.0) -> None:
        super().__init__()
        amplitude = 32767 * 10 ** (level_dbfs / 20)
        n = np.arange(int(SAMPLE_RATE * self.NOTE_SECONDS))
        fade = int(SAMPLE_RATE * self.FADE_SECONDS)
        envelope = np.ones(len(n))
        envelope[:fade] = envelope[-fade:][::-1] = np.linspace(0.0, 1.0, fade)
        notes = [amplitude * envelope * np.sin(2 * math.pi * f / SAMPLE_RATE * n)
                 for f in self.NOTES]
        self._table: Samples = np.concatenate(notes).astype(np.int16)
        self._position = 0  # in samples of the 48 kHz table

    def frame(self, count: int = SAMPLES_PER_FRAME, sample_rate: int = SAMPLE_RATE) -> Samples:
        step = SAMPLE_RATE / sample_rate
        index = (self._position + (np.arange(count) * step).astype(np.int64)) % len(self._table)
        self._position = int(self._position + count * step) % len(self._table)
        return self._table[index]

    async def read(self) -> Samples:
        await self._next_frame()
        return self.frame()


# Ringback (audible ringing): the tone a caller hears while the far end rings, North American
# 440 + 480 Hz, 2 s on / 4 s off. audio/tones.py plays it at the phone; the exchange plays it
# to a party it hands on (exchange/transfers.py).
RINGBACK_FREQUENCIES = (440.0, 480.0)  # Hz
RINGBACK_CADENCE = (2.0, 4.0)  # seconds on, off


class Ringback(PacedSource):
    """Ringback, paced, from the start of its first on period (peak ``level_dbfs``, each
    frequency at half of it; 5 ms fades at each edge so nothing clicks)."""

    FADE_SECONDS = 0.005
    _tables: dict[float, Samples] = {}  # one cadence of it per level, made once

    def __init__(self, level_dbfs: float = -12.0) -> None:
        super().__init__()
        if level_dbfs not in self._tables:
            self._tables[level_dbfs] = self._cadence(level_dbfs)
        self._table = self._tables[level_dbfs]
        self._position = 0

    @classmethod
    def _cadence(cls, level_dbfs: float) -> Samples:
        on, off = (int(SAMPLE_RATE * s) for s in RINGBACK_CADENCE)
        n = np.arange(on)  # whole-Hz tones: a whole number of cycles in each cadence
        wave = sum(np.sin(2 * math.pi * f / SAMPLE_RATE * n) for f in RINGBACK_FREQUENCIES)
        envelope = np.ones(on)
        fade = int(SAMPLE_RATE * cls.FADE_SECONDS)
        envelope[:fade] = envelope[-fade:][::-1] = np.linspace(0.0, 1.0, fade)
        peak = 32767 * 10 ** (level_dbfs / 20) / len(RINGBACK_FREQUENCIES)
        burst = (peak * envelope * wave).astype(np.int16)
        return np.concatenate((burst, np.zeros(off, np.int16)))

    def frame(self) -> Samples:
        """The next 20 ms, unpaced."""
        start = self._position
        self._position = (start + SAMPLES_PER_FRAME) % len(self._table)
        return self._table[start:start + SAMPLES_PER_FRAME]

    async def read(self) -> Samples:
        await self._next_frame()
        return self.frame()


class Silence(PacedSource):
    """Digital silence, paced: the source of a call placed with no microphone."""

    _zeros: Samples = np.zeros(SAMPLES_PER_FRAME, np.int16)

    async def read(self) -> Samples:
        await self._next_frame()
        return self._zeros


class Recorder:
    """A sink that keeps the last ``seconds`` of what it is given, mono int16 (tests,
    `piphone call`)."""

    def __init__(self, seconds: float = 10.0) -> None:
        self.seconds = seconds
        self.sample_rate: int | None = None
        self._chunks: collections.deque[Samples] = collections.deque()
        self._kept = 0
        self.frames = 0
        self._frame_event = asyncio.Event()

    def start(self) -> None:
        pass  # nothing to open

    def write(self, samples: Samples, sample_rate: int) -> None:
        if self.sample_rate != sample_rate:
            self.clear()
            self.sample_rate = sample_rate
        self._chunks.append(samples)
        self._kept += len(samples)
        limit = int(self.seconds * sample_rate)
        while self._kept - len(self._chunks[0]) >= limit:
            self._kept -= len(self._chunks.popleft())
        self.frames += 1
        self._frame_event.set()

    def clear(self) -> None:
        self._chunks.clear()
        self._kept = 0

    def last(self, seconds: float) -> Samples:
        if not self._chunks or self.sample_rate is None:
            return np.zeros(0, np.int16)
        data = np.concatenate(list(self._chunks))
        return data[-int(seconds * self.sample_rate):]

    async def wait_for_frames(self, count: int) -> None:
        target = self.frames + count
        while self.frames < target:
            self._frame_event.clear()
            await self._frame_event.wait()
