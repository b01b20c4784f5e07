#!/usr/bin/env python3
"""The handsfree stage's glue offline: CaptureStage (webrtc, everything on) and its echo
reference's tap, thread CPU per call-second, for several versions of the firmware in turn.

Each version runs in its own process (``--firmware DIR``, a ``firmware`` directory: this work
tree's, or one from ``git archive REV firmware``), on the same synthetic scene (a tone in
syllables, its echo 80 ms later at -10 dB, noise), with the playback device's 5 ms periods
handed to the tap as the playback thread hands them; ``--repeat`` rounds, the versions
alternating, so a load that comes and goes weighs on each alike.

Usage:  .venv/bin/python scripts/bench/echo_glue.py --firmware /tmp/main/firmware \\
            --firmware firmware [--seconds 60] [--repeat 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from piphone.audio import processing as p
from piphone.audio.alsa import PERIOD, RATE
seconds = float(sys.argv[2])
rng = np.random.default_rng(1)
n = int(seconds * RATE)
t = np.arange(n) / RATE
far = (3000 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
       + rng.normal(0, 300, n)).astype(np.int16)
echo = np.concatenate((np.zeros(3840), far[:-3840] * 0.3)).astype(np.int16)
near = (echo + rng.normal(0, 100, n)).astype(np.int16)
stage = p.make_stage(p.ProcessingSettings.handsfree(), playback_periods=3,
                     playback_period_ms=5, backend="webrtc")
tap = play = 0.0
for k in range(n // PERIOD):
    a = time.thread_time()
    for q in range(0, PERIOD, PERIOD // 4):  # the device's 5 ms periods
        stage.reference.played(far[k * PERIOD + q:k * PERIOD + q + PERIOD // 4], RATE)
    b = time.thread_time()
    stage.process(near[k * PERIOD:(k + 1) * PERIOD])
    c = time.thread_time()
    if k >= 50:  # past the first second
        tap += b - a
        play += c - b
s = (n // PERIOD - 50) * PERIOD / RATE
print(f"tap {tap / s:.5f} stage {play / s:.5f} total {(tap + play) / s:.5f} CPU-s/s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--firmware", action="append", required=True,
                        help="a firmware directory to measure (give two or more)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    for _ in range(args.repeat):
        for firmware in args.firmware:
            out = subprocess.run([sys.executable, "-c", CHILD, firmware, str(args.seconds)],
                                 check=True, capture_output=True, text=True).stdout
            print(f"{firmware}: {out.strip()}", flush=True)


if __name__ == "__main__":
    main()
