#!/usr/bin/env python3
"""The microphone's way into a call (audio/pcm_io.CaptureSource.read): the work tree's
against git revision ``--base``'s, two processes in the same windows (a ratio).

Each process reads 20 ms blocks that a thread hands to the event loop every 20 ms with
``call_soon_threadsafe``, as alsa.Capture's thread does, and counts its own CPU (the thread's
included: the same in both). call_cost.py's client sends a paced tone, which does not go
this way; a phone's microphone does. Runs anywhere (no network, no sound card).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = "firmware/piphone/audio/pcm_io.py"


def child(path: str, seconds: float) -> None:
    """Read for ``seconds`` after a second's warm-up; print CPU-s per second."""
    sys.path.insert(0, str(ROOT / "firmware"))
    import numpy as np

    import piphone.audio  # noqa: F401  (the package the module's relative imports need)

    module = types.ModuleType("piphone.audio._bench_pcm_io")
    module.__package__ = "piphone.audio"
    exec(compile(Path(path).read_text(), path, "exec"), module.__dict__)

    class ThreadCapture:  # alsa.Capture's delivery, without a device
        device = "bench"

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop, self.subscribers, self.done = loop, [], False

        def subscribe(self, deliver) -> None:  # type: ignore[no-untyped-def]
            self.subscribers.append(deliver)
            threading.Thread(target=self._run, daemon=True).start()

        def unsubscribe(self, deliver) -> None:  # type: ignore[no-untyped-def]
            self.subscribers.remove(deliver)

        def _run(self) -> None:
            block, due = np.zeros(960, np.int16), time.monotonic()
            while not self.done:
                due += 0.020
                time.sleep(max(0.0, due - time.monotonic()))
                for deliver in list(self.subscribers):
                    self.loop.call_soon_threadsafe(deliver, block)

    async def run() -> None:
        capture = ThreadCapture(asyncio.get_running_loop())
        source = module.CaptureSource(capture)
        warm = time.monotonic() + 1.0
        while time.monotonic() < warm:
            await source.read()
        cpu, start = time.process_time(), time.monotonic()
        while time.monotonic() - start < seconds:
            await source.read()
        print(f"{(time.process_time() - cpu) / (time.monotonic() - start):.6f}", flush=True)
        capture.done = True
        source.stop()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("PATH", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], float(args.child[1]))
        return
    base_text = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.base}:{MODULE}"],
                               check=True, capture_output=True, text=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py") as base_file:
        base_file.write(base_text)
        base_file.flush()
        paths = {"base": base_file.name, "new": str(ROOT / MODULE)}
        ratios = []
        print(f"CaptureSource.read, work tree (new) against {args.base} (base), "
              f"{args.seconds:.0f} s windows, CPU-s per second of one reader")
        for run in range(1, args.repeat + 1):
            procs = {name: subprocess.Popen(
                [sys.executable, __file__, "--base", args.base, "--child", path,
                 str(args.seconds)], stdout=subprocess.PIPE, text=True)
                for name, path in paths.items()}
            cpu = {}
            for name, proc in procs.items():
                out, _ = proc.communicate(timeout=args.seconds + 30)
                if proc.returncode != 0:
                    sys.exit(f"the {name} reader failed")
                cpu[name] = float(out.split()[-1])
            ratios.append(cpu["new"] / cpu["base"])
            print(f"  run {run}: base {cpu['base']:.4f}, new {cpu['new']:.4f}: "
                  f"new/base {ratios[-1]:.2f}x")
        print(f"new/base: {min(ratios):.2f}-{max(ratios):.2f} "
              f"(median {statistics.median(ratios):.2f})x over {len(ratios)} windows")


if __name__ == "__main__":
    main()
