#!/usr/bin/env python3
"""Exchange capacity: CPU per bridged call, and calls per core, forwarding vs transcoding.

The exchange runs in its own process pinned to CPU 0; the phones run in this process pinned
to CPU 1. For N = 1, 2, 4, ... calls (2N light phones, LightPhones: real piphone Devices set
each call up, then one clock sends a pre-encoded 20 ms frame on every phone's SRTP session
and arrivals are counted undecrypted, so that the phones' core is not what runs out) the
exchange's CPU per second is measured, with the packets each phone received. Forwarding: both
phones talk Opus; transcoding: the caller Opus, the callee PCMU (the exchange decodes each side
and encodes it in the other's codec). Calls per core = 1 / CPU per call at the highest level
measured. Levels go on doubling until saturation: the exchange's core is busy (>= 90 % of
CPU 0) or a phone gets under 90 % of its packets. ``--base REV`` measures the exchange of
another revision at each level in the same run (ratios new/base); ``--profile DIR`` samples
the exchange with py-spy. Goals (issue 19): >= 100 forwarded calls per core, >= 25 transcoded.

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

import _common as common  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

LOOPBACK = ("127.0.0.1",)
GOAL_FORWARDED, GOAL_TRANSCODED = 100, 25  # calls per core (issue 19)
SATURATED_CPU = 0.9  # of the exchange's core
SATURATED_PPS = 45.0  # of the 50 packets per second each phone should get
EXCHANGE_CPU, PHONES_CPU = {0}, {1}


def payload(codec: str) -> bytes:
    """One 20 ms frame of a 500 Hz tone in ``codec``, encoded once and sent by every phone of
    that codec every 20 ms."""
    import numpy as np

    from piphone.voice.rtc.encoding import VoiceEncoder
    from piphone.voice.rtc.frames import audio_frame

    encoder = VoiceEncoder(codec)
    tone = (3000 * np.sin(np.arange(960) * 2 * np.pi * 500 / 48000)).astype(np.int16)
    packets = (p for i in range(10) for p in encoder.encode(audio_frame(tone, i * 960)))
    return bytes(next(packets))


def idle_track():
    """The phones' aiortc senders send nothing: LightPhones' one clock sends for all."""
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class Idle(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._ended = asyncio.Event()

        async def recv(self):
            await self._ended.wait()
            raise MediaStreamError

        def stop(self) -> None:
            super().stop()
            self._ended.set()

    return Idle()


class LightPhones:
    """The load generator, light enough that the exchange, not the phones, runs out first:
    each phone's call is set up by a real piphone Device (signaling, ICE, DTLS), then one
    20 ms clock sends the same Opus frame on every phone's SRTP session (the relay's sender,
    relay.RelayOut: no aiortc task per phone), and what arrives is counted as the datagram
    comes in (hooks.set_rtp_relay), neither decrypted nor decoded; RTCP stays aiortc's."""

    def __init__(self) -> None:
        self.payloads = {codec: payload(codec) for codec in ("opus", "pcmu")}
        self.received: list[int] = []
        self._outs: dict[str, list] = {"opus": [], "pcmu": []}

    def add(self, media) -> None:
        """A phone's media session (MediaSession), once its call is open."""
        from piphone.voice.rtc.hooks import set_rtp_relay
        from piphone.voice.rtc.relay import RelayOut

        index = len(self.received)
        self.received.append(0)
        connection = media._ice_connection()

        def count(data: bytes) -> bool:
            if 127 < data[0] < 192 and not 192 <= data[1] <= 208:  # RTP, not RTCP
                self.received[index] += 1
                return True
            return False

        set_rtp_relay(connection, count)
        self._outs[media.codec].append(RelayOut(media._transceiver, connection,
                                                lambda: media.codec, lambda coro: coro.close()))

    async def send(self) -> None:
        import random
        import struct

        from piphone.voice.rtc.relay import parse

        loop = asyncio.get_running_loop()
        seq, ssrc = 0, random.getrandbits(32)
        at = loop.time()
        while True:
            for codec, outs in self._outs.items():
                ts = seq * (960 if codec == "opus" else 160) & 0xFFFFFFFF
                plain = struct.pack("!BBHII", 0x80, 111, seq, ts, ssrc) + self.payloads[codec]
                view = parse(plain)
                for out in outs:
                    out.send(codec, view, plain)
            seq = (seq + 1) & 0xFFFF
            at += 0.020
            await asyncio.sleep(max(0.0, at - loop.time()))


class Counter:
    """A sink that is never fed (the phones count packets as they arrive)."""

    async def consume(self, track) -> None:
        return None


async def phones(url: str, token_kwargs: dict, calls: int, seconds: float, window,
                 transcode: bool) -> dict:
    from piphone.voice import Device
    from piphone.voice.reconnect import ReconnectSettings
    from piphone.voice.tokens import mint

    light = LightPhones()
    # The phones' own RTP watchdogs would see nothing (received packets are counted before
    # aiortc): they must not restart media during the bench.
    options = dict(signaling_url=url, ice_addresses=LOOPBACK, audio_source=idle_track,
                   audio_sink=Counter,
                   reconnect=ReconnectSettings(rtp_timeout=3600, check_interval=5.0))
    # Transcoding: the caller talks Opus and the callee PCMU, as a PSTN-like leg would: the
    # exchange decodes each side and encodes it in the other's codec.
    codecs = (("opus", "pcmu"), ("pcmu",)) if transcode else (("opus",), ("opus",))
    devices = []
    for i in range(calls):
        caller = Device(mint(identity=f"a{i}", **token_kwargs), **options,
                        codec_preferences=codecs[0])
        callee = Device(mint(identity=f"b{i}", **token_kwargs), **options,
                        codec_preferences=codecs[1])
        await callee.register()
        callee.on("incoming", lambda call: call.accept())
        devices += [caller, callee]
        call = await caller.connect({"To": f"b{i}"})
        opened = asyncio.get_running_loop().create_future()
        call.once("accept", opened.set_result)
        await asyncio.wait_for(opened, 20)
        for c in (call, *callee.calls):
            await c._media.wait_connected()
            assert c._media.codec == ("pcmu" if transcode and c is not call else "opus")
            light.add(c._media)
    sending = asyncio.ensure_future(light.send())
    await asyncio.sleep(1.5)  # settle
    before = list(light.received)
    started = time.monotonic()
    window("start")
    await asyncio.sleep(seconds)
    window("end")
    elapsed = time.monotonic() - started
    got = [(b - a) / elapsed for a, b in zip(before, light.received, strict=True)]
    sending.cancel()
    for device in devices:
        await device.destroy()
    return {"min_pps": min(got), "mean_pps": sum(got) / len(got)}


def export_firmware(rev: str, into: Path) -> Path:
    """``firmware/`` as it is at ``rev``, unpacked under ``into``; returns its path."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "firmware"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "firmware"


def run_level(config: Path, calls: int, seconds: float, transcode: bool,
              profile: Path | None = None, firmware: Path = REPO / "firmware",
              ) -> tuple[float, dict]:
    port = common.free_port()
    env = dict(os.environ, PYTHONPATH=str(firmware))
    cmd = [sys.executable, "-c", EXCHANGE_MAIN, str(config), str(port)]
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

        received = asyncio.run(phones(url, kwargs, calls, seconds, window, transcode))
        (cpu0, t0), (cpu1, t1) = marks["start"], marks["end"]
        return (cpu1 - cpu0) / (t1 - t0), received
    finally:
        common.stop(exchange)


EXCHANGE_MAIN = """
import asyncio, sys, logging
from dataclasses import replace
from piphone.exchange import config as c
from piphone.exchange.server import Exchange
logging.basicConfig(level=logging.ERROR)
# Every phone of the bench connects from 127.0.0.1: lift the per-address and total caps too.
cfg = replace(c.load(sys.argv[1]), ice_addresses=("127.0.0.1",), max_calls=1000)
cfg = replace(cfg, limits=replace(cfg.limits, max_sessions=10_000, max_sockets_per_address=10_000,
                                  max_unauthenticated_per_address=10_000,
                                  max_calls_per_identity=10_000))
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
                        help="py-spy each window of the exchange into DIR/MODE-TREE-CALLS.txt "
                             "(collapsed stacks; the CPU figures then include py-spy's pauses; "
                             "needs py-spy in the venv: .venv/bin/pip install py-spy)")
    parser.add_argument("--base", default=None, metavar="REV",
                        help="A/B: at each level, the exchange of git revision REV too, in the "
                             "same run (alternating which goes first); ratios new/base")
    parser.add_argument("--only", choices=("forwarding", "transcoding"), default=None,
                        help="measure one bridge only")
    args = parser.parse_args()
    if args.profile is not None and not (Path(sys.executable).parent / "py-spy").exists():
        parser.error("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")
    common.ensure_isolated_network(sys.argv)
    common.install_signal_cleanup()
    logging.basicConfig(level=logging.ERROR)
    os.sched_setaffinity(0, PHONES_CPU)
    levels = [int(n) for n in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        from piphone.exchange import config as exchange_config
        from piphone.voice.errors import TwilioError

        trees = {"new": REPO / "firmware"}
        if args.base:
            trees = {"base": export_firmware(args.base, Path(tmp) / "base"), **trees}
        config = exchange_config.write_starter(Path(tmp) / "exchange.toml")
        print(f"\nexchange on CPU 0, phones on CPU 1; {args.seconds:.0f} s per level; "
              "50 packets/s expected per phone"
              + (f"; base = {args.base}, new = the work tree" if args.base else ""))
        print(f"{'bridge':12} {'tree':>4} {'calls':>5} {'exchange CPU-s/s':>17} {'per call':>9} "
              f"{'calls/core':>11} {'min pkt/s':>10}")
        # (mode, tree) -> (calls, CPU per call) at the top level whose phones got their packets
        per_call: dict[tuple[str, str], tuple[int, float]] = {}
        for mode, transcode in (("forwarding", False), ("transcoding", True)):
            if args.only and mode != args.only:
                continue
            running = dict(trees)  # the trees not saturated yet
            for level, calls in enumerate(levels):
                order = list(running) if level % 2 == 0 else list(reversed(running))
                cost: dict[str, float] = {}
                for name in order:
                    try:
                        profile = (args.profile / f"{mode}-{name}-{calls}.txt"
                                   if args.profile is not None else None)
                        cpu, received = run_level(config, calls, args.seconds, transcode,
                                                  profile, running[name])
                    except (TimeoutError, RuntimeError, TwilioError) as exc:  # no more calls
                        print(f"{mode:12} {name:>4} {calls:5d} saturated: "
                              f"{type(exc).__name__} {exc}")
                        del running[name]
                        continue
                    delivered = received["min_pps"] >= SATURATED_PPS
                    if delivered:  # a level whose phones lost packets costs nothing valid
                        per_call[mode, name] = (calls, cpu / calls)
                        cost[name] = cpu / calls
                    saturated = cpu >= SATURATED_CPU or not delivered
                    print(f"{mode:12} {name:>4} {calls:5d} {cpu:17.3f} {cpu / calls:9.4f} "
                          f"{calls / cpu if cpu else float('inf'):11.0f} "
                          f"{received['min_pps']:10.1f}"
                          + ("  saturated" if saturated else ""), flush=True)
                    if saturated:
                        del running[name]
                if len(cost) == 2:
                    print(f"{mode:12}  new/base CPU per call at {calls}: "
                          f"{cost['new'] / cost['base']:.2f}x", flush=True)
                if not running:
                    break
        print()
        for tree in trees:
            for mode, goal in (("forwarding", GOAL_FORWARDED),
                               ("transcoding", GOAL_TRANSCODED)):
                if (mode, tree) not in per_call:
                    continue
                calls, cost_ = per_call[mode, tree]
                fits = 1 / cost_ if cost_ else float("inf")
                print(f"{tree}: {mode}: {cost_:.4f} CPU-s per call-second at {calls} calls = "
                      f"{fits:.0f} calls per core; goal >= {goal}: "
                      f"{'met' if fits >= goal else 'MISSED'}")


if __name__ == "__main__":
    main()
