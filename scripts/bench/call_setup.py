#!/usr/bin/env python3
"""How fast piphone answers and sets up calls, against references measured in the same run.

1. accept latency: ``accept()`` -> the ``answer`` frame arriving at the exchange, for a callee
   that gathered ICE while ringing (piphone's default) and for one that gathers at accept.
   Gathering on bare loopback costs well under 1 ms, so the callee is given real STUN/TURN
   servers: Debian's coturn on 127.0.0.1 behind a UDP relay that adds --delay ms each way,
   as a TURN server across a real network would. Goal: <= 20 ms.
2. call set-up: ``connect()`` -> ``accept`` on both sides through the exchange (the callee
   accepts on ``incoming``), against a bare pair of aiortc peers (offer -> both connected).

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from _common import ensure_isolated_network  # noqa: E402

LOOPBACK = ("127.0.0.1",)
TURN_PORT, RELAY_PORT = 3478, 3479


class DelayRelay(asyncio.DatagramProtocol):
    """UDP relay in front of coturn that delays every datagram by ``delay`` seconds each way."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.clients: dict[tuple, asyncio.DatagramTransport] = {}

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        loop = asyncio.get_running_loop()
        loop.call_later(self.delay, self._forward, data, addr)

    def _forward(self, data, addr):
        transport = self.clients.get(addr)
        if transport is None:
            asyncio.ensure_future(self._open(data, addr))
        else:
            transport.sendto(data)

    async def _open(self, data, addr):
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, reply, _):
                asyncio.get_running_loop().call_later(relay.delay, relay.transport.sendto,
                                                      reply, addr)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Back, remote_addr=self.upstream)
        self.clients[addr] = transport
        transport.sendto(data)


def start_coturn() -> subprocess.Popen:
    if shutil.which("turnserver") is None:
        sys.exit("coturn is needed: apt-get install coturn")
    return subprocess.Popen(
        ["turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
         f"--listening-port={TURN_PORT}", "--lt-cred-mech", "--user=u:p", "--realm=bench",
         "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--log-file=stdout"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def make_exchange(tmp: Path):
    from piphone.exchange import config as exchange_config
    from piphone.exchange.server import Exchange

    path = Path(tempfile.mkdtemp(dir=tmp)) / "exchange.toml"
    cfg = exchange_config.load(exchange_config.write_starter(path))
    exchange = Exchange(replace(cfg, port=0, ice_addresses=LOOPBACK))
    await exchange.start(host="127.0.0.1", port=0)
    return exchange


def make_device(exchange, identity: str, **options):
    from piphone.pcm import Tone
    from piphone.voice import Device
    from piphone.voice.tokens import mint

    token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
    return Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK,
                  audio_source=lambda: Tone(440), **options)


async def one_accept(exchange, caller, callee, answered: dict) -> float:
    incoming = asyncio.get_running_loop().create_future()
    callee.once("incoming", incoming.set_result)
    call = await caller.connect({"To": "callee"})
    ringing = await asyncio.wait_for(incoming, 10)
    await asyncio.sleep(0.3)  # let it ring: gathering while ringing has had its chance
    answered.clear()
    started = time.perf_counter()
    ringing.accept()
    while "at" not in answered:
        await asyncio.sleep(0.0005)
    latency = answered["at"] - started
    opened = asyncio.get_running_loop().create_future()
    call.once("accept", lambda c: opened.done() or opened.set_result(True))
    await asyncio.wait_for(opened, 10)
    call.disconnect()
    await asyncio.wait_for(ringing.wait_closed(), 10)
    return latency


async def accept_latency(tmp: Path, trials: int, delay: float) -> dict[str, list[float]]:
    from aiortc import RTCIceServer

    relay_transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: DelayRelay(("127.0.0.1", TURN_PORT), delay), local_addr=("127.0.0.1", RELAY_PORT))
    servers = [RTCIceServer(f"stun:127.0.0.1:{RELAY_PORT}"),
               RTCIceServer(f"turn:127.0.0.1:{RELAY_PORT}?transport=udp", "u", "p")]
    exchange = await make_exchange(tmp)
    answered: dict = {}
    handle = exchange.calls.handle

    def spy(session, frame):
        if frame.type == "answer":
            answered["at"] = time.perf_counter()
        handle(session, frame)

    exchange.calls.handle = spy
    results = {}
    try:
        caller = make_device(exchange, "caller")
        for mode, gather in (("gather while ringing", True), ("gather at accept", False)):
            callee = make_device(exchange, "callee", ice_servers=servers,
                                 gather_while_ringing=gather)
            await callee.register()
            results[mode] = [await one_accept(exchange, caller, callee, answered)
                             for _ in range(trials)]
            await callee.destroy()
        await caller.destroy()
    finally:
        await exchange.close()
        relay_transport.close()
    return results


async def call_setup(tmp: Path, trials: int) -> dict[str, list[float]]:
    exchange = await make_exchange(tmp)
    piphone_times = []
    try:
        caller, callee = make_device(exchange, "a"), make_device(exchange, "b")
        await callee.register()
        callee.on("incoming", lambda call: call.accept())
        warm_up = await caller.connect({"To": "echo"})  # imports, codec set-up
        opened = asyncio.get_running_loop().create_future()
        warm_up.once("accept", opened.set_result)
        await asyncio.wait_for(opened, 10)
        warm_up.disconnect()
        await asyncio.wait_for(warm_up.wait_closed(), 10)
        for _ in range(trials):
            both = [asyncio.get_running_loop().create_future() for _ in range(2)]
            def stamp(future: asyncio.Future) -> object:
                return lambda *_: future.done() or future.set_result(time.perf_counter())

            callee_done = stamp(both[1])
            callee.once("incoming", lambda c, done=callee_done: c.once("accept", done))
            started = time.perf_counter()
            call = await caller.connect({"To": "b"})
            call.once("accept", stamp(both[0]))
            done = await asyncio.wait_for(asyncio.gather(*both), 10)
            piphone_times.append(max(done) - started)
            call.disconnect()
            await asyncio.wait_for(call.wait_closed(), 10)
        await caller.destroy()
        await callee.destroy()
    finally:
        await exchange.close()
    return {"piphone through the exchange": piphone_times,
            "bare aiortc pair, direct": [await bare_pair() for _ in range(trials)]}


async def bare_pair() -> float:
    from aiortc import RTCConfiguration, RTCPeerConnection

    from piphone.pcm import Tone
    from piphone.voice.rtc import hooks as rtc_hooks
    from piphone.voice.rtc.tracks import PcmTrack

    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    connected = [asyncio.get_running_loop().create_future() for _ in range(2)]
    for pc, fut in ((a, connected[0]), (b, connected[1])):
        pc.addTrack(PcmTrack(Tone(440)))
        pc.on("connectionstatechange", lambda pc=pc, fut=fut: (
            pc.connectionState == "connected" and not fut.done() and fut.set_result(
                time.perf_counter())))
    started = time.perf_counter()
    with rtc_hooks.ice_addresses(LOOPBACK):
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    done = await asyncio.wait_for(asyncio.gather(*connected), 10)
    await a.close()
    await b.close()
    return max(done) - started


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms  p90 " \
           f"{sorted(values)[int(0.9 * (len(values) - 1))] * 1000:7.1f} ms"


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        coturn = start_coturn()
        try:
            await asyncio.sleep(1.0)  # coturn binds its port
            accept = await accept_latency(Path(tmp), args.trials, args.delay / 1000)
        finally:
            coturn.terminate()
            coturn.wait(5)
        setup = await call_setup(Path(tmp), args.trials)
    ref, ours = accept["gather at accept"], accept["gather while ringing"]
    print(f"\naccept() -> answer frame at the exchange ({args.trials} calls each; STUN+TURN "
          f"behind a {args.delay:.0f} ms relay)")
    for name, values in accept.items():
        print(f"  {name:32s} {ms(values)}")
    goal = "met" if statistics.median(ours) <= 0.020 else "NOT met"
    ratio = statistics.median(ours) / statistics.median(ref)
    print(f"  ratio (ringing / at accept)      {ratio:.3f}   goal: <= 20 ms -> {goal}")
    print(f"\nconnect() -> accept on both sides ({args.trials} calls each)")
    for name, values in setup.items():
        print(f"  {name:32s} {ms(values)}")
    a, b = setup["piphone through the exchange"], setup["bare aiortc pair, direct"]
    print(f"  ratio (piphone / bare pair)      {statistics.median(a) / statistics.median(b):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--delay", type=float, default=50.0, help="relay delay each way, ms")
    parser.add_argument("-v", action="store_true", help="log what happens")
    args = parser.parse_args()
    ensure_isolated_network(sys.argv)
    logging.basicConfig(level=logging.INFO if "-v" in sys.argv else logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
