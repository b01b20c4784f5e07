#!/usr/bin/env python3
"""The exchange's Opus encoder on audio from a G.711 leg: wideband (a phone's setting,
encoding.OPUS_OPTIONS) against narrowband (NARROWBAND_CUTOFF, what the exchange uses for audio
transcoded from PCMU), thread CPU per 20 ms frame, best of --rounds.

Two signals at 48 kHz, as the exchange's decoder hands them over: a 440 Hz tone (what
exchange_capacity.py's phones send) and noise band-limited to 300-3400 Hz under a 4 Hz
syllable envelope (G.711 speech's band). Runs anywhere (no network).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from piphone.voice.rtc.encoding import VoiceEncoder  # noqa: E402
from piphone.voice.rtc.frames import audio_frame  # noqa: E402

RATE = 48_000


def signals(seconds: float) -> dict[str, np.ndarray]:
    t = np.arange(int(RATE * seconds)) / RATE
    tone = (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    spectrum = np.fft.rfft(np.random.default_rng(1).normal(0, 3000, len(t)))
    freqs = np.fft.rfftfreq(len(t), 1 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    speechlike = np.fft.irfft(spectrum, len(t)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    return {"440 Hz tone": tone,
            "G.711-band noise": np.clip(speechlike, -32000, 32000).astype(np.int16)}


def per_frame_us(samples: np.ndarray, narrowband: bool) -> float:
    encoder = VoiceEncoder("opus", narrowband=narrowband)
    frames = [audio_frame(samples[i:i + 960], i) for i in range(0, len(samples) - 959, 960)]
    start = time.thread_time()
    for frame in frames:
        encoder.encode(frame)
    return (time.thread_time() - start) / len(frames) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="of audio per signal")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'signal':18} {'wideband us':>12} {'narrowband us':>14} {'ratio':>6}")
    for name, samples in signals(args.seconds).items():
        wide = min(per_frame_us(samples, False) for _ in range(args.rounds))
        narrow = min(per_frame_us(samples, True) for _ in range(args.rounds))
        print(f"{name:18} {wide:12.0f} {narrow:14.0f} {narrow / wide:6.2f}")


if __name__ == "__main__":
    main()
