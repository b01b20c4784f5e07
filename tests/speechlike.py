"""Synthetic speech, rooms and noise for the echo canceller's tests and bench.

Not speech, but what an echo canceller and a noise suppressor react to in it: a voice's
harmonics (a glottal pulse train whose pitch wanders), the long-term spectrum of speech (most
energy at 200-1000 Hz, falling about 6 dB an octave above), syllables (4-6 a second, each a
rise and fall) grouped into phrases with pauses between them, and some unvoiced hiss. Seeded:
the same arguments give the same samples.
"""

from __future__ import annotations

import numpy as np

RATE = 48_000
FULL_SCALE = 32768.0


def _shape(x: np.ndarray, gains) -> np.ndarray:
    """``x`` filtered by a magnitude response ``gains(frequencies)`` (zero phase, via FFT)."""
    spectrum = np.fft.rfft(x)
    return np.fft.irfft(spectrum * gains(np.fft.rfftfreq(len(x), 1 / RATE)), len(x))


def speech_spectrum(f: np.ndarray, formants=(500, 1500, 2500)) -> np.ndarray:
    """Long-term speech spectrum: band 100 Hz-7 kHz, falling above 500 Hz, three formants."""
    gain = (f > 90) * (f < 7500) / np.sqrt(1 + (f / 600) ** 2)
    for centre, width, boost in zip(formants, (150, 250, 350), (4.0, 2.5, 1.5), strict=True):
        gain = gain * (1 + boost * np.exp(-((f - centre) / width) ** 2))
    return gain


def speech(seconds: float, seed: int, *, level_dbfs: float = -20.0,
           pitch: tuple[float, float] = (100.0, 160.0), formants=(500, 1500, 2500),
           pauses: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(samples as float at full scale 32768, a per-sample mask of where it talks).

    ``level_dbfs`` is the RMS while talking (pauses excluded)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    # Pitch: a slow random walk within the range; pulses where the phase wraps.
    drift = np.cumsum(rng.standard_normal(n // 480 + 2)) * 0.05
    contour = np.interp(np.arange(n), np.arange(len(drift)) * 480, np.tanh(drift))
    f0 = pitch[0] + (pitch[1] - pitch[0]) * (contour + 1) / 2
    phase = np.cumsum(f0 / RATE)
    voiced = np.zeros(n)
    voiced[1:][np.diff(np.floor(phase)) > 0] = 1.0
    voiced = _shape(voiced, lambda f: speech_spectrum(f, formants))
    hiss = _shape(rng.standard_normal(n), lambda f: (f > 2500) * (f < 7500) * 1.0)
    # Syllables in phrases: each syllable a raised cosine 150-250 ms long, some of them hissed.
    envelope = np.zeros(n)
    unvoiced = np.zeros(n)
    t = int(rng.uniform(0.05, 0.2) * RATE)
    while t < n:
        phrase_end = t + int(rng.uniform(0.8, 2.5) * RATE) if pauses else n
        while t < min(phrase_end, n):
            length = int(rng.uniform(0.15, 0.25) * RATE)
            seg = slice(t, min(t + length, n))
            shape = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(seg.stop - seg.start) / length)
            envelope[seg] = shape * rng.uniform(0.5, 1.0)
            if rng.random() < 0.3:
                unvoiced[seg] = shape * 0.6
            t += length + int(rng.uniform(0.0, 0.05) * RATE)
        t += int(rng.uniform(0.3, 1.0) * RATE) if pauses else 0
    hiss_rms = np.sqrt(np.mean(hiss ** 2)) or 1.0
    voiced_rms = np.sqrt(np.mean(voiced ** 2)) or 1.0
    x = voiced / voiced_rms * envelope + hiss / hiss_rms * unvoiced * 0.3
    talking = envelope + unvoiced > 0.05
    rms = np.sqrt(np.mean(x[talking] ** 2)) if talking.any() else 1.0
    return x / rms * FULL_SCALE * 10 ** (level_dbfs / 20), talking


def room_impulse(seed: int, *, length_ms: float = 80.0, rt60_ms: float = 200.0) -> np.ndarray:
    """A small room's impulse response: the direct sound, then a decaying diffuse tail;
    unit energy."""
    rng = np.random.default_rng(seed)
    n = int(length_ms / 1000 * RATE)
    t = np.arange(n) / RATE
    tail = rng.standard_normal(n) * 10 ** (-3 * t / (rt60_ms / 1000)) * 0.3
    tail[: int(0.002 * RATE)] = 0.0  # first reflections arrive after a couple of ms
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail ** 2))


def echo_path(far: np.ndarray, *, delay_ms: float, gain_db: float,
              impulse: np.ndarray) -> np.ndarray:
    """What the microphone hears of ``far``: delayed, through the room, attenuated."""
    delay = int(delay_ms / 1000 * RATE)
    wet = np.convolve(far, impulse)[: len(far)] * 10 ** (gain_db / 20)
    return np.concatenate((np.zeros(delay), wet[: len(far) - delay]))


def steady_noise(seconds: float, seed: int, *, level_dbfs: float = -45.0) -> np.ndarray:
    """A fan's or a room's steady noise: pink-ish, 50 Hz-8 kHz, at ``level_dbfs`` RMS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    noise = _shape(rng.standard_normal(n),
                   lambda f: (f > 50) * (f < 8000) / np.sqrt(np.maximum(f, 50) / 50))
    return noise / np.sqrt(np.mean(noise ** 2)) * FULL_SCALE * 10 ** (level_dbfs / 20)


def white_noise(seconds: float, seed: int, *, level_dbfs: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(int(seconds * RATE)) * FULL_SCALE * 10 ** (level_dbfs / 20)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def level_dbfs(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return 10 * np.log10(np.mean(x ** 2) / FULL_SCALE ** 2 + 1e-12)
