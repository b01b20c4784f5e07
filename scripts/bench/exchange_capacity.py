#!/usr/bin/env python3
"""Exchange capacity: CPU per bridged call, and calls per core, forwarding vs transcoding.

The exchange runs in its own process pinned to CPU 0; the phones run in this process pinned
to CPU 1. For N = 1, 2, 4, ... calls (2N light phones: they send one pre-encoded Opus packet
every 20 ms and count what arrives, without decoding) the exchange's CPU per second is
measured, with the packets each phone received. Calls per core = 1 / CPU per call, extrapolated
where the phones' core cannot drive more calls (two cores cannot hold 80 aiortc peers). The
transcoding bridge is measured the same way as the reference. Levels go on doubling (up to
--max-calls) until saturation: the exchange's core is busy (>= 90 % of CPU 0) or a phone gets
under 90 % of its packets. Goals (issue 19): >= 100 forwarded calls per core, >= 25 transcoded.

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

import _common as common  # noqa: E402

LOOPBACK = ("127.0.0.1",)
GOAL_FORWARDED, GOAL_TRANSCODED = 100, 25  # calls per core (issue 19)
SATURATED_CPU = 0.9  # of the exchange's core
SATURATED_PPS = 45.0  # of the 50 packets per second each phone should get
EXCHANGE_CPU, PHONES_CPU = {0}, {1}


def opus_packets():
    """A paced source of one ready Opus packet every 20 ms (encoded once, sent as is)."""
    import av
    import numpy as np

    from piphone.voice.rtc.encoding import VoiceEncoder
    from piphone.voice.rtc.frames import audio_frame
    from piphone.voice.rtc.tracks import PacedAudioTrack

    encoder = VoiceEncoder("opus")
    tone = (3000 * np.sin(np.arange(960) * 2 * np.pi * 500 / 48000)).astype(np.int16)
    packets = (p for i in range(10) for p in encoder.encode(audio_frame(tone, i * 960)))
    payload = bytes(next(packets))

    class PacketTrack(PacedAudioTrack):
        async def recv(self):
            pts = await self._next_pts()
            packet = av.Packet(payload)
            packet.pts = pts
            packet.time_base = fractions.Fraction(1, 48000)
            return packet

    return PacketTrack()


class Counter:
    """A sink that is never fed: received frames are counted at the receive tap instead."""

    async def consume(self, track) -> None:
        return None


async def phones(url: str, token_kwargs: dict, calls: int, seconds: float,
                 window) -> dict:
    from piphone.voice import Device
    from piphone.voice.tokens import mint

    received: list[int] = []
    devices = []
    for i in range(calls):
        caller = Device(mint(identity=f"a{i}", **token_kwargs), signaling_url=url,
                        ice_addresses=LOOPBACK, codec_preferences=("opus",),
                        audio_source=opus_packets, audio_sink=Counter)
        callee = Device(mint(identity=f"b{i}", **token_kwargs), signaling_url=url,
                        ice_addresses=LOOPBACK, codec_preferences=("opus",),
                        audio_source=opus_packets, audio_sink=Counter)
        await callee.register()
        callee.on("incoming", lambda call: call.accept())
        devices += [caller, callee]
        call = await caller.connect({"To": f"b{i}"})
        opened = asyncio.get_running_loop().create_future()
        call.once("accept", opened.set_result)
        await asyncio.wait_for(opened, 20)
        for c in (call, *callee.calls):
            index = len(received)
            received.append(0)

            def count(codec, frame, index=index):
                received[index] += 1

            c._media.receive_tap.forward = count
    await asyncio.sleep(1.0)  # settle
    before = list(received)
    started = time.monotonic()
    window("start")
    await asyncio.sleep(seconds)
    window("end")
    elapsed = time.monotonic() - started
    got = [(b - a) / elapsed for a, b in zip(before, received, strict=True)]
    for device in devices:
        await device.destroy()
    return {"min_pps": min(got), "mean_pps": sum(got) / len(got)}


def run_level(config: Path, calls: int, seconds: float, transcode: bool,
              profile: Path | None = None) -> tuple[float, dict]:
    port = common.free_port()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "firmware"))
    cmd = [sys.executable, "-c", EXCHANGE_MAIN, str(config), str(port), str(int(transcode))]
    exchange = common.spawn(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.sched_setaffinity(exchange.pid, EXCHANGE_CPU)
    try:
        common.wait_for_port(port, 20, "exchange", exchange)
        from piphone.exchange import config as exchange_config

        kwargs = exchange_config.load(config).token_kwargs()
        url = f"ws://127.0.0.1:{port}/signal"

        marks: dict[str, tuple[float, float]] = {}

        def window(edge: str) -> None:
            marks[edge] = (common.cpu_seconds(exchange.pid), time.monotonic())
            if edge == "start" and profile is not None:  # py-spy samples the window
                common.spawn([str(Path(sys.executable).parent / "py-spy"), "record", "-p",
                              str(exchange.pid), "-d", str(int(seconds)), "-r", "200",
                              "-f", "raw", "-o", str(profile)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        received = asyncio.run(phones(url, kwargs, calls, seconds, window))
        (cpu0, t0), (cpu1, t1) = marks["start"], marks["end"]
        return (cpu1 - cpu0) / (t1 - t0), received
    finally:
        common.stop(exchange)


EXCHANGE_MAIN = """
import asyncio, sys, logging
from dataclasses import replace
from piphone.exchange import config as c, media
from piphone.exchange.server import Exchange
logging.basicConfig(level=logging.ERROR)
# Every phone of the bench connects from 127.0.0.1: lift the per-address and total caps too.
cfg = replace(c.load(sys.argv[1]), ice_addresses=("127.0.0.1",), max_calls=1000)
cfg = replace(cfg, limits=replace(cfg.limits, max_sessions=10_000, max_sockets_per_address=10_000,
                                  max_unauthenticated_per_address=10_000,
                                  max_calls_per_identity=10_000))
if sys.argv[3] == "1":
    def transcoding(a, b):
        a.connect_to(b.outbox); b.connect_to(a.outbox); return "transcoded"
    media.bridge = transcoding  # where MediaBridge.join bridges two legs
async def main():
    ex = Exchange(cfg)
    await ex.start(host="127.0.0.1", port=int(sys.argv[2]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--levels", default="1,2,4,8,16,32",
                        help="numbers of concurrent calls, tried in turn until saturation")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy each window of the exchange into DIR/MODE-CALLS.txt "
                             "(collapsed stacks; the CPU figures then include py-spy's pauses)")
    args = parser.parse_args()
    common.ensure_isolated_network(sys.argv)
    common.install_signal_cleanup()
    logging.basicConfig(level=logging.ERROR)
    os.sched_setaffinity(0, PHONES_CPU)
    levels = [int(n) for n in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        from piphone.exchange import config as exchange_config

        config = exchange_config.write_starter(Path(tmp) / "exchange.toml")
        print(f"\nexchange on CPU 0, phones on CPU 1; {args.seconds:.0f} s per level; "
              "50 packets/s expected per phone")
        print(f"{'bridge':12} {'calls':>5} {'exchange CPU-s/s':>17} {'per call':>9} "
              f"{'calls/core':>11} {'min pkt/s':>10}")
        per_call: dict[str, tuple[int, float]] = {}  # mode -> (calls, CPU per call) at the top
        for mode, transcode in (("forwarding", False), ("transcoding", True)):
            for calls in levels:
                try:
                    profile = (args.profile / f"{mode}-{calls}.txt"
                               if args.profile is not None else None)
                    cpu, received = run_level(config, calls, args.seconds, transcode, profile)
                except (TimeoutError, RuntimeError) as exc:  # calls no longer set up in time
                    print(f"{mode:12} {calls:5d} saturated: {type(exc).__name__} {exc}")
                    break
                per_call[mode] = (calls, cpu / calls)
                saturated = cpu >= SATURATED_CPU or received["min_pps"] < SATURATED_PPS
                print(f"{mode:12} {calls:5d} {cpu:17.3f} {cpu / calls:9.4f} "
                      f"{calls / cpu if cpu else float('inf'):11.0f} "
                      f"{received['min_pps']:10.1f}"
                      + ("  saturated" if saturated else ""), flush=True)
                if saturated:
                    break
        print()
        for mode, goal in (("forwarding", GOAL_FORWARDED), ("transcoding", GOAL_TRANSCODED)):
            calls, cost = per_call[mode]
            fits = 1 / cost if cost else float("inf")
            print(f"{mode}: {cost:.4f} CPU-s per call-second at {calls} calls = {fits:.0f} "
                  f"calls per core; goal >= {goal}: {'met' if fits >= goal else 'MISSED'}")
        fwd, ref = per_call["forwarding"][1], per_call["transcoding"][1]
        print(f"forwarding / transcoding CPU per call: {fwd / ref:.2f}")


if __name__ == "__main__":
    main()
