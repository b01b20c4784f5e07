#!/usr/bin/env python3
"""What call quality costs: CPU per call-second of a piphone client with and without it.

Two piphone clients, each its own process, call the exchange's echo line at the same time and
are measured over the same windows (so both see the same machine load):

  quality off   QualitySettings(enabled=False): no monitor, no level meters on the media path
  quality on    the default: level meters, ``volume`` every 50 ms, ``sample`` (getStats,
                MOS, thresholds) every second, with listeners that read every event as an
                application would (``sample.to_dict()``)

Two figures, because the difference of two processes' CPU on a shared 2-core machine moves by
a few percent from run to run: the A/B difference over the same windows, and the CPU time the
"on" client spends inside the quality code itself (each volume tick: two level reads and the
event; each sample: stats, MOS, thresholds, listeners), counted with the thread CPU clock
around those calls. Goal: at most 5 % of a call's CPU.

Usage:  .venv/bin/python scripts/bench/quality_cost.py [--seconds 10] [--rounds 3]

Like the other benchmarks it re-executes itself under `unshare -n` unless it already runs in a
loopback-only namespace. Workers (`--worker on|off`) are this same file run as a child.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
from call_cost import (  # noqa: E402
    READY,
    call_echo_until_stopped,
    echo_sink,
    offer_loopback,
    token_from_config,
)

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
GOAL_SHARE = 0.05  # of a call's CPU


async def client(config: str, url: str, quality: bool) -> None:
    import asyncio

    from piphone.pcm import Tone
    from piphone.voice import Device
    from piphone.voice.quality import QualitySettings

    echoed = asyncio.Event()

    seen = {"sample": 0, "volume": 0}
    inside = [0.0]  # thread CPU seconds spent in the quality code
    if quality:
        from piphone.voice import quality as quality_module

        def timed(cls, name, is_async=False):
            original = getattr(cls, name)
            if is_async:
                async def wrapper(*args):
                    start = time.thread_time()
                    try:
                        return await original(*args)
                    finally:
                        inside[0] += time.thread_time() - start
            else:
                def wrapper(*args):
                    start = time.thread_time()
                    try:
                        return original(*args)
                    finally:
                        inside[0] += time.thread_time() - start
            setattr(cls, name, wrapper)

        # audio_clock is each volume tick (every 50 ms of audio sent); a push itself is an
        # assignment and an addition (not timed: the timer would cost more than it)
        timed(quality_module.QualityMonitor, "audio_clock")
        timed(quality_module.QualityMonitor, "sample_tick", is_async=True)
    device = Device(token_from_config(config, f"bench-{'on' if quality else 'off'}"),
                    signaling_url=url, ice_addresses=["127.0.0.1"], codec_preferences=("opus",),
                    audio_source=lambda: Tone(440), audio_sink=echo_sink(echoed),
                    quality=QualitySettings(enabled=quality, volume_events=quality))

    def on_call(call) -> None:
        if quality:
            def on_sample(sample) -> None:
                sample.to_dict()
                seen["sample"] += 1

            def on_volume(inp: float, out: float) -> None:
                seen["volume"] += 1

            call.on("sample", on_sample)
            call.on("volume", on_volume)

    window = {}

    def on_ready() -> None:
        window["wall"], window["cpu"], inside[0] = time.monotonic(), time.process_time(), 0.0

    def on_stop() -> None:
        wall = time.monotonic() - window["wall"]
        cpu = time.process_time() - window["cpu"]
        print(f"events: {seen['sample']} samples, {seen['volume']} volumes; "
              f"inside {inside[0] / wall:.5f} of {cpu / wall:.5f} CPU-s per call-second",
              flush=True)

    await call_echo_until_stopped(device, echoed, on_call, on_ready, on_stop)


def run(opts: argparse.Namespace) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(FIRMWARE), os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        config = Path(tmp) / "exchange.toml"
        subprocess.run([sys.executable, "-m", "piphone", "exchange", "--init-config",
                        str(config)], env=env, check=True, capture_output=True, cwd=tmp,
                       timeout=opts.timeout)
        offer_loopback(config)
        port = common.free_port(also_next=True)  # the event gateway takes port + 1
        exchange = common.spawn(
            [sys.executable, "-m", "piphone", "-q", "exchange", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, cwd=tmp)
        common.wait_for_port(port, opts.timeout, "piphone exchange", exchange)
        url = f"ws://127.0.0.1:{port}/signal"
        workers = {}
        for mode in ("off", "on"):
            workers[mode] = common.spawn(
                [sys.executable, str(Path(__file__).resolve()), "--worker", mode,
                 "--config", str(config), "--url", url], env=env, cwd=tmp)
        for mode, proc in workers.items():
            common.wait_for_line(proc, lambda s: s == READY, opts.timeout, f"call ({mode})")
        time.sleep(opts.warmup)

        def alive() -> None:
            for proc in (exchange, *workers.values()):
                if proc.poll() is not None:
                    raise RuntimeError(f"a process exited (rc={proc.returncode})")

        rounds = []
        for _ in range(opts.rounds):
            off, on = common.measure([workers["off"].pid, workers["on"].pid], opts.seconds,
                                     alive=alive)
            rounds.append((off.cpu_per_s, on.cpu_per_s))
        common.stop(workers["on"])
        counts = common.wait_for_line(workers["on"], lambda s: s.startswith("events:"),
                                      opts.timeout, "event counts") \
            if workers["on"].stdout else ""
        common.stop_all()
    report(rounds, opts, counts)


def report(rounds: list[tuple[float, float]], opts: argparse.Namespace, counts: str) -> None:
    print(f"\nCost of call quality: one piphone client calling the echo line, Opus, "
          f"{opts.rounds} windows of {opts.seconds:.0f} s, both clients measured together\n")
    print(f"{'window':>8} {'off CPU-s/call-s':>18} {'on CPU-s/call-s':>17} {'extra':>8}")
    for i, (off, on) in enumerate(rounds, 1):
        print(f"{i:>8} {off:>18.4f} {on:>17.4f} {(on - off) / off:>8.1%}")
    off = sum(r[0] for r in rounds) / len(rounds)
    on = sum(r[1] for r in rounds) / len(rounds)
    share = (on - off) / on
    print(f"{'mean':>8} {off:>18.4f} {on:>17.4f} {(on - off) / off:>8.1%}")
    verdict = "meets" if share <= GOAL_SHARE else "MISSES"
    print(f"\nA/B: quality machinery {on - off:.4f} CPU-s per call-second = {share:.1%} of the "
          f"call's CPU; goal <= {GOAL_SHARE:.0%}: {verdict}")
    if counts:
        seen, _, measured = counts.removeprefix("events: ").partition("; inside ")
        inside, _, total = measured.partition(" of ")
        total = total.split()[0]
        share = float(inside) / float(total)
        verdict = "meets" if share <= GOAL_SHARE else "MISSES"
        print(f"inside the quality code: {float(inside):.4f} of {float(total):.4f} CPU-s per "
              f"call-second = {share:.1%}; goal <= {GOAL_SHARE:.0%}: {verdict} ({seen})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="window (default 10 s)")
    parser.add_argument("--rounds", type=int, default=3, help="windows (default 3)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--timeout", type=float, default=20.0, help="bound on start-up waits")
    parser.add_argument("--worker", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import asyncio

        asyncio.run(client(args.config, args.url, args.worker == "on"))
        return
    common.ensure_isolated_network([str(Path(__file__).resolve()), *argv])
    common.install_signal_cleanup()
    run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
