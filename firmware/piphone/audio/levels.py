"""Audio levels of int16 frames, in the shapes the Twilio Voice SDK reports them (numpy only).

- `rms_dbfs(samples)`: RMS level in dBFS, where a full-scale square wave is 0 dBFS and so a
  full-scale sine is about -3 dBFS. Silence (and anything quieter) gives DBFS_FLOOR, -100.0,
  never -inf: the value goes into JSON and logs, and -100 is where `volume` reaches 0 anyway.
- `volume_value(dbfs)`: the `volume` event's 0.0..1.0, -100..-30 dBFS mapped linearly and
  clamped. That is the SDK's AnalyserNode byte scale (minDecibels -100, maxDecibels -30) applied
  to the frame's RMS level instead of to each FFT bin.
- `sample_level(samples)`: the 0..32767 audioInputLevel/audioOutputLevel of `sample` stats,
  computed as the SDK does it (see below).
- `LevelMeter`: fed 20 ms frames (e.g. by a capture thread), read at each 50 ms volume tick.

How the SDK (voice-sdk 2.x, PeerConnection._startPollingVolume and Call) gets the sample level:
every 50 ms it reads `getByteFrequencyData` of an AnalyserNode with fftSize 32, no smoothing,
minDecibels -127, maxDecibels 0, averages the 16 bytes, and pushes (average / 255) * 32767 into
the StatsMonitor, which reports the rounded mean of a second's pushes. `analyser_bytes`
implements the Web Audio analyser (Blackman window, |FFT|/N, dB, byte scale) to match.
Knows nothing of calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FULL_SCALE = 32768.0  # int16 magnitude of 1.0 in Web Audio's float samples
DBFS_FLOOR = -100.0
VOLUME_MIN_DBFS = -100.0  # the SDK analyser's default minDecibels
VOLUME_MAX_DBFS = -30.0  # ... and maxDecibels
SAMPLE_LEVEL_MAX = 32767  # "legacy getStats" audio level scale
ANALYSER_FFT_SIZE = 32
SAMPLE_MIN_DB = -127.0  # the SDK's second analyser, used for sample levels
SAMPLE_MAX_DB = 0.0


def _as_int16(samples: np.ndarray) -> np.ndarray:
    a = np.asarray(samples)
    if a.dtype != np.int16:
        raise TypeError(f"levels need int16 samples, got {a.dtype}")
    return a


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dBFS; DBFS_FLOOR (-100.0) for silence or an empty frame."""
    a = _as_int16(samples)
    if a.size == 0:
        return DBFS_FLOOR
    rms = math.sqrt(float(np.mean(np.square(a, dtype=np.float64))))
    if rms == 0.0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, 20.0 * math.log10(rms / FULL_SCALE))


def volume_value(dbfs: float) -> float:
    """The `volume` event value: -100 dBFS -> 0.0, -30 dBFS -> 1.0, linear, clamped."""
    if math.isnan(dbfs):
        return 0.0
    x = (dbfs - VOLUME_MIN_DBFS) / (VOLUME_MAX_DBFS - VOLUME_MIN_DBFS)
    return min(1.0, max(0.0, x))


def _blackman(n: int) -> np.ndarray:
    # Web Audio's periodic Blackman window (alpha 0.16), not numpy's symmetric np.blackman.
    x = np.arange(n) / n
    return 0.42 - 0.5 * np.cos(2 * np.pi * x) + 0.08 * np.cos(4 * np.pi * x)


def analyser_magnitudes(samples: np.ndarray, fft_size: int = ANALYSER_FFT_SIZE) -> np.ndarray:
    """|X[k]| for k < fft_size/2 of the last fft_size samples, as a Web Audio AnalyserNode.

    Fewer samples than fft_size are preceded by silence, as in the analyser's buffer.
    """
    a = _as_int16(samples)
    if fft_size < 2 or fft_size & (fft_size - 1):
        raise ValueError(f"fft_size must be a power of two >= 2, got {fft_size!r}")
    x = np.zeros(fft_size)
    tail = a[-fft_size:].astype(np.float64) / FULL_SCALE
    x[fft_size - len(tail) :] = tail
    spectrum = np.fft.rfft(x * _blackman(fft_size))[: fft_size // 2]
    return np.abs(spectrum) / fft_size


def analyser_bytes(
    magnitudes: np.ndarray, min_db: float = VOLUME_MIN_DBFS, max_db: float = VOLUME_MAX_DBFS
) -> np.ndarray:
    """getByteFrequencyData: floor(255 * (dB - min) / (max - min)), clamped to 0..255."""
    if not max_db > min_db:
        raise ValueError(f"max_db must exceed min_db, got {min_db!r}..{max_db!r}")
    with np.errstate(divide="ignore"):  # log10(0) = -inf clamps to 0 below
        db = 20.0 * np.log10(np.asarray(magnitudes, dtype=np.float64))
    scaled = np.floor(255.0 * (db - min_db) / (max_db - min_db))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def sample_level(samples: np.ndarray) -> float:
    """One 50 ms tick's 0..32767 audio level, as the SDK pushes it into its stats.

    `sample.audioInputLevel`/`audioOutputLevel` are the rounded mean of a second's ticks.
    """
    b = analyser_bytes(analyser_magnitudes(samples), SAMPLE_MIN_DB, SAMPLE_MAX_DB)
    return float(np.mean(b)) / 255.0 * SAMPLE_LEVEL_MAX


@dataclass(frozen=True)
class Level:
    dbfs: float = DBFS_FLOOR
    volume: float = 0.0  # volume event value, 0.0..1.0
    sample: float = 0.0  # sample stats level, 0..32767


class LevelMeter:
    """Keeps the level of the latest frame for whoever ticks the `volume` event.

    `push` may run on a capture/playback thread and `latest` on the event loop: the reading is
    one immutable object swapped by a single assignment, so a reader never sees a torn value.
    """

    def __init__(self) -> None:
        self.latest = Level()

    def push(self, frame: np.ndarray) -> Level:
        dbfs = rms_dbfs(frame)
        self.latest = Level(dbfs, volume_value(dbfs), sample_level(frame))
        return self.latest

    def reset(self) -> None:
        """Back to silence, e.g. when a device goes away."""
        self.latest = Level()
