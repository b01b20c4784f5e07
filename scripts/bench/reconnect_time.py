#!/usr/bin/env python3
"""Time from the network coming back to ``reconnected``, for signaling and for media loss.

One call (alice behind tests/netfault.py's proxy and media relay, bob straight to the
exchange) is cut again and again:

- signaling: the proxy drops alice's socket and refuses new ones for an outage of random
  length, then lets them through again;
- media: the relay black-holes every packet; once the call reports ``reconnecting`` the hole
  stays open for a random further while (reconnect attempts fail meanwhile), then closes.

Each run times restore -> ``reconnected`` on alice's call. The reference, measured in the
same run and on the same path, is the set-up of a fresh call (``connect()`` -> ``accept`` on
both sides). Goals (issue 8): median <= 1 s for media, <= 2 s for signaling.

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT))  # tests.netfault: the same fault rig as the tests

from _common import ensure_isolated_network  # noqa: E402

LOOPBACK = ("127.0.0.1",)


class Waiter:
    """Futures for the next occurrence of a call's events."""

    def __init__(self, emitter, names) -> None:
        self._waiting: dict[str, list[asyncio.Future]] = {n: [] for n in names}
        for name in names:
            emitter.on(name, lambda *args, _n=name: self._fire(_n))

    def _fire(self, name: str) -> None:
        waiting, self._waiting[name] = self._waiting[name], []
        for future in waiting:
            if not future.done():
                future.set_result(time.perf_counter())

    def next(self, name: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiting[name].append(future)
        return future


async def setup(tmp: Path, rtp_timeout: float):
    from tests.netfault import SignalingProxy

    from piphone.exchange import config as exchange_config
    from piphone.exchange.server import Exchange
    from piphone.pcm import Tone
    from piphone.voice import Device
    from piphone.voice.reconnect import ReconnectSettings
    from piphone.voice.tokens import mint

    cfg = exchange_config.load(exchange_config.write_starter(tmp / "exchange.toml"))
    exchange = Exchange(replace(cfg, port=0, ice_addresses=LOOPBACK, reconnect_grace=60.0))
    await exchange.start(host="127.0.0.1", port=0)
    proxy = await SignalingProxy(exchange.url).start()
    settings = ReconnectSettings(rtp_timeout=rtp_timeout)

    def device(identity: str, url: str) -> Device:
        token = mint(identity=identity, ttl=3600, **exchange.config.token_kwargs())
        return Device(token, signaling_url=url, ice_addresses=LOOPBACK, reconnect=settings,
                      audio_source=lambda: Tone(440))

    alice, bob = device("alice", proxy.url), device("bob", exchange.url)
    carol = device("carol", exchange.url)  # like alice, without the fault rig in the path
    await alice.register()
    await bob.register()
    bob.on("incoming", lambda call: call.accept())
    return exchange, proxy, alice, bob, carol


async def place(alice, bob) -> tuple[object, float]:
    """A call from alice to bob; returns it and connect() -> accept on both sides."""
    loop = asyncio.get_running_loop()
    both = [loop.create_future(), loop.create_future()]

    def stamp(future):
        return lambda *_: future.done() or future.set_result(time.perf_counter())

    bob_accepted = stamp(both[1])
    bob.once("incoming", lambda c: c.once("accept", bob_accepted))
    started = time.perf_counter()
    call = await alice.connect({"To": "bob"})
    call.once("accept", stamp(both[0]))
    done = await asyncio.wait_for(asyncio.gather(*both), 10)
    return call, max(done) - started


async def reference(alice, bob, trials: int) -> list[float]:
    times = []
    for _ in range(trials):
        call, took = await place(alice, bob)
        times.append(took)
        call.disconnect()
        await asyncio.wait_for(call.wait_closed(), 10)
    return times


async def outage_runs(call, trials: int, rng: random.Random, cut, restore,
                      lost_within: float) -> list[float]:
    """``trials`` outages of 0.5-3 s: ``cut()`` until the call says reconnecting (within
    ``lost_within`` s), then ``restore()``; each time is restore -> reconnected."""
    events = Waiter(call, ("reconnecting", "reconnected"))
    times = []
    for _ in range(trials):
        lost = events.next("reconnecting")
        cut()
        await asyncio.wait_for(lost, lost_within)
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # the outage: its length is the point
        back = events.next("reconnected")
        restore()
        restored = time.perf_counter()
        times.append(await asyncio.wait_for(back, 30) - restored)
    return times


async def signaling_runs(proxy, call, trials: int, rng: random.Random) -> list[float]:
    return await outage_runs(call, trials, rng, proxy.block, proxy.restore, 5)


async def media_runs(proxy, call, trials: int, rng: random.Random) -> list[float]:
    # reconnection attempts fail while the hole lasts
    return await outage_runs(call, trials, rng, lambda: proxy.media.set(blackhole=True),
                             lambda: proxy.media.set(blackhole=False), 10)


def line(name: str, values: list[float], ref: float) -> str:
    median, worst = statistics.median(values), max(values)
    return (f"  {name:34s} median {median * 1000:7.1f} ms  worst {worst * 1000:7.1f} ms  "
            f"ratio to reference {median / ref:5.2f}")


async def main_async(args) -> None:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        exchange, proxy, alice, bob, carol = await setup(Path(tmp), args.rtp_timeout)
        try:
            await reference(alice, bob, 1)  # warm-up: imports, codecs
            ref = await reference(alice, bob, args.trials)
            direct = await reference(carol, bob, args.trials)
            call, _ = await place(alice, bob)
            sig = await signaling_runs(proxy, call, args.trials, rng)
            med = await media_runs(proxy, call, args.trials, rng)
            call.disconnect()
        finally:
            await alice.destroy()
            await bob.destroy()
            await carol.destroy()
            await proxy.close()
            await exchange.close()
    ref_median = statistics.median(ref)
    print(f"\nrestore -> reconnected ({args.trials} runs each; outages 0.5-3 s after the loss "
          f"was reported; RTP watchdog {args.rtp_timeout:.1f} s)")
    print(f"  {'reference: fresh call set-up':34s} median {ref_median * 1000:7.1f} ms  worst "
          f"{max(ref) * 1000:7.1f} ms")
    print(f"  {'(the same, without the fault rig)':34s} median "
          f"{statistics.median(direct) * 1000:7.1f} ms  worst {max(direct) * 1000:7.1f} ms")
    print(line("signaling loss", sig, ref_median))
    print(line("media loss", med, ref_median))
    goals = [("media", med, 1.0), ("signaling", sig, 2.0)]
    for name, values, goal in goals:
        verdict = "met" if statistics.median(values) <= goal else "NOT met"
        print(f"  goal {name}: median <= {goal:.0f} s -> {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rtp-timeout", type=float, default=1.0,
                        help="seconds without RTP that mean media is lost (phone default 3; "
                             "shorter here only to save time: it is not what is timed)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("-v", action="store_true", help="log what happens")
    args = parser.parse_args()
    ensure_isolated_network(sys.argv)
    logging.basicConfig(level=logging.INFO if args.v else logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
