#!/usr/bin/env python3
"""The echo cancellers on the package index, offline, on the echo bench's scene and measures.

The README's library table: each candidate's canceller alone (no noise suppression, no gain
control), fed 20 ms blocks at 48 kHz as the capture path feeds the stage (the WebRTC bindings
at 16 kHz through the stage's own resampling, audio/processing.py's ``_Resampled``), on the
synthetic speech of scripts/bench/echo_cancel.py: far end -20 dBFS, echo path ``--delay-ms``
through an 80 ms room at -10 dB, near-end speech as loud as the far end from 8 s to 16 s,
microphone noise -70 dBFS. No rig, no thread timing: the reference is the far end itself, so
this is each library's best case (the rig's figures are echo_cancel.py's).

Printed per candidate: ERLE over the last 3 s of single talk, the near end's energy lost in
double talk (echo_cancel.py's ``attenuation``) and the measure before it (the gain's amplitude
averaged over the whole double talk), and CPU-s per second of audio (the thread's CPU clock,
one canceller at a time; ratios only mean something within one run).

Candidates: pywebrtc-audio (a dependency), livekit's ``rtc.AudioProcessingModule`` (when
``livekit`` is installed: ``pip install livekit``; not a dependency), speexdsp through
Debian's libspeexdsp1 (audio/speexdsp.py). ``--field-trials`` sets WebRTC's field-trial string
inside pywebrtc-audio's extension before its canceller is made (through ctypes: a measurement
only, never done by piphone): AEC3 reads its tuning overrides from there.

Usage:  .venv/bin/python scripts/bench/echo_candidates.py [--delay-ms 80] [--field-trials S]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT))  # tests.speechlike

RATE, BLOCK = 48_000, 960
SINGLE, END = 8.0, 16.0
Process = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (near, far) 20 ms at 48 kHz


def bench_module():
    spec = importlib.util.spec_from_file_location("echo_cancel_bench",
                                                  Path(__file__).with_name("echo_cancel.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def pywebrtc(rate: int) -> Process:
    import pywebrtc_audio as webrtc

    from piphone.audio.processing import _Resampled

    echo = webrtc.EchoCanceller(sample_rate=rate)
    if rate == RATE:
        return echo.process
    resampled = _Resampled(rate)
    return lambda near, far: resampled.process(near, far, echo.process)


def livekit(rate: int) -> Process | None:
    try:
        from livekit import rtc
    except ImportError:
        return None
    from piphone.audio.processing import _Resampled

    apm = rtc.AudioProcessingModule(echo_cancellation=True)
    frame = rate // 100

    def work(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        out = []
        for at in range(0, len(near), frame):
            played = rtc.AudioFrame(far[at:at + frame].tobytes(), rate, 1, frame)
            apm.process_reverse_stream(played)
            heard = rtc.AudioFrame(near[at:at + frame].tobytes(), rate, 1, frame)
            apm.process_stream(heard)  # in place
            out.append(np.frombuffer(heard.data, np.int16).copy())
        return np.concatenate(out)

    resampled = _Resampled(rate)
    return lambda near, far: resampled.process(near, far, work)


def speex(tail_ms: int) -> Process:
    from piphone.audio.speexdsp import SpeexProcessor

    processor = SpeexProcessor(rate=RATE, frame=BLOCK, echo_cancellation=True,
                               noise_suppression=False, auto_gain=False, tail_ms=tail_ms)
    return processor.process


def set_field_trials(trials: str) -> ctypes.c_char_p:
    """WebRTC's global field-trial string, in pywebrtc-audio's extension (kept alive: WebRTC
    keeps the pointer)."""
    import pywebrtc_audio._webrtc_audio as extension

    library = ctypes.CDLL(extension.__file__)
    keep = ctypes.c_char_p(trials.encode())
    library._ZN6webrtc11field_trial25InitFieldTrialsFromStringEPKc(keep)
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=80.0)
    parser.add_argument("--echo-db", type=float, default=-10.0)
    parser.add_argument("--field-trials", default="",
                        help="WebRTC field trials for pywebrtc-audio's AEC3 (measurement only)")
    args = parser.parse_args()
    from tests import speechlike as sl

    bench = bench_module()
    keep = set_field_trials(args.field_trials) if args.field_trials else None
    far, _ = sl.speech(END, 1)
    near, _ = sl.speech(END, 2, level_dbfs=-20, pitch=(170, 250), formants=(700, 1800, 2900))
    near[: int(SINGLE * RATE)] = 0
    echo = sl.echo_path(far, delay_ms=args.delay_ms, gain_db=args.echo_db,
                        impulse=sl.room_impulse(3))
    mic = sl.to_int16(echo + near + sl.white_noise(END, 4, level_dbfs=-70))
    far16 = sl.to_int16(far)
    n = len(mic) // BLOCK
    t = np.arange(n) * BLOCK / RATE
    loud = 32768.0 ** 2 * 10 ** (bench.ECHO_ACTIVE_DBFS / 10) * BLOCK
    echo_on = np.sum(echo[: n * BLOCK].reshape(n, BLOCK) ** 2, axis=1) > loud
    near_b = near[: n * BLOCK].reshape(n, BLOCK)
    near_on = np.sum(near_b ** 2, axis=1) > loud
    mic_b = mic[: n * BLOCK].reshape(n, BLOCK).astype(np.float64)
    candidates = {"pywebrtc-audio 16 kHz": lambda: pywebrtc(16_000),
                  "pywebrtc-audio 48 kHz": lambda: pywebrtc(RATE),
                  "livekit 16 kHz": lambda: livekit(16_000),
                  "speexdsp 48 kHz": lambda: speex(int(args.delay_ms) + 120)}
    print(f"echo {args.delay_ms:.0f} ms, {args.echo_db:+.0f} dB through an 80 ms room; near end "
          f"as loud as the far end; {args.field_trials or 'no field trials'}\n")
    print(f"{'':24}{'ERLE':>10}{'DT lost':>10}{'(before)':>10}{'alone':>10}{'CPU-s/s':>10}")
    for name, make in candidates.items():
        process = make()
        if process is None:
            print(f"{name:24}  not installed")
            continue
        out = np.zeros((n, BLOCK))
        started = time.thread_time()
        for i in range(n):
            at = i * BLOCK
            out[i] = process(mic[at:at + BLOCK], far16[at:at + BLOCK])
        cpu = (time.thread_time() - started) / (n * BLOCK / RATE)
        out = bench.shift(out, bench.stage_lag(out, near_b, near_on & ~echo_on))
        late = (t >= SINGLE - 3) & (t < SINGLE) & echo_on
        erle = bench.db(np.sum(mic_b[late] ** 2), np.sum(out[late] ** 2))
        both, alone = near_on & echo_on, near_on & ~echo_on
        print(f"{name:24}{erle:>7.1f} dB"
              f"{bench.attenuation(out[both], near_b[both]):>7.1f} dB"
              f"{bench.coherent_attenuation(out[both], near_b[both]):>7.1f} dB"
              f"{bench.attenuation(out[alone], near_b[alone]):>7.1f} dB{cpu:>10.4f}",
              flush=True)
    del keep


if __name__ == "__main__":
    main()
