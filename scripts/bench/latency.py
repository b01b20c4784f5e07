#!/usr/bin/env python3
"""App-to-app audio latency: a click handed to A's sender, found in B's received frames.

Paths, measured in the same run: piphone A -> exchange (forwarding) -> piphone B; the same
through a transcoding bridge; and a direct pair of stock aiortc peers. Each path is measured
clean, then again after one packet lost on B's receive side (aiortc's stock jitter buffer
keeps about 200 ms more delay for good after a single loss: aiortc issue #543).
Goal: <= 40 ms through the exchange, and no growth after the loss.

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from _common import ensure_isolated_network  # noqa: E402

LOOPBACK = ("127.0.0.1",)
CLICK_EVERY = 0.5  # seconds between clicks


def click_track(sent: list[float]):
    """Silence with a full-scale 2 ms click every CLICK_EVERY s; notes when each is handed
    to the sender."""
    from piphone.pcm import SAMPLES_PER_FRAME
    from piphone.voice.rtc.frames import audio_frame
    from piphone.voice.rtc.tracks import PacedAudioTrack

    every = int(CLICK_EVERY / 0.020)

    class ClickTrack(PacedAudioTrack):
        async def recv(self):
            pts = await self._next_pts()
            samples = np.zeros(SAMPLES_PER_FRAME, np.int16)
            if (pts // SAMPLES_PER_FRAME) % every == every - 1:
                samples[:96] = 30000
                sent.append(time.perf_counter())
            return audio_frame(samples, pts)

    return ClickTrack()


class ClickSink:
    """Notes when each click shows up in what is played: a PCM sink (piphone.pcm.PcmSink), as
    the phone's earpiece is."""

    def __init__(self) -> None:
        self.heard: list[float] = []
        self._quiet = True

    def start(self) -> None:
        pass

    def write(self, samples, sample_rate: int) -> None:
        loud = np.abs(samples.astype(np.int32)).max() > 8000
        if loud and self._quiet:
            self.heard.append(time.perf_counter())
        self._quiet = not loud


async def consume(sink: ClickSink, track) -> None:
    """Play a stock aiortc peer's track into ``sink`` (the aiortc pair's way)."""
    from aiortc.mediastreams import MediaStreamError

    from piphone.voice.rtc.frames import frame_to_mono

    try:
        while True:
            frame = await track.recv()
            sink.write(frame_to_mono(frame), frame.sample_rate)
    except MediaStreamError:
        pass


def drop_one_packet_at(receiver) -> None:
    """Lose the next RTP packet this receiver would handle (deterministic, once)."""
    handle = receiver._handle_rtp_packet
    state = {"dropped": False}

    async def lossy(packet, arrival_time_ms):
        if not state["dropped"]:
            state["dropped"] = True
            return
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = lossy


def latencies(sent: list[float], heard: list[float]) -> list[float]:
    """Pair each click heard with the latest click sent before it."""
    out = []
    for t in heard:
        before = [s for s in sent if s <= t]
        if before and t - before[-1] < CLICK_EVERY:
            out.append(t - before[-1])
    return out


async def measure(setup, seconds: float) -> tuple[list[float], list[float]]:
    """(clean latencies, latencies after one lost packet) for one path."""
    sent: list[float] = []
    sink = ClickSink()
    receiver, teardown = await setup(sent, sink)
    try:
        await asyncio.sleep(seconds)
        clean = latencies(sent, sink.heard)
        sent.clear()
        sink.heard.clear()
        drop_one_packet_at(receiver)
        await asyncio.sleep(seconds)
        after = latencies(sent, sink.heard)
    finally:
        await teardown()
    return clean, after


def piphone_path(transcode: bool):
    async def setup(sent, sink):
        from piphone.exchange import config as exchange_config
        from piphone.exchange import media as exchange_media
        from piphone.exchange.server import Exchange
        from piphone.voice import Device
        from piphone.voice.tokens import mint

        tmp = tempfile.mkdtemp()
        cfg = exchange_config.load(exchange_config.write_starter(Path(tmp) / "x.toml"))
        exchange = Exchange(replace(cfg, port=0, ice_addresses=LOOPBACK))
        bridge = exchange_media.bridge
        if transcode:  # the decoding bridge, whatever the codecs
            def transcoding(a, b):
                a.connect_to(b.outbox)
                b.connect_to(a.outbox)
                return "transcoded"

            exchange_media.bridge = transcoding  # where MediaBridge.join bridges two legs
        await exchange.start(host="127.0.0.1", port=0)

        def device(identity, **kw):
            token = mint(identity=identity, **cfg.token_kwargs())
            return Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK, **kw)

        a = device("a", audio_source=lambda: click_track(sent))
        b = device("b", audio_sink=lambda: sink)
        await b.register()
        answered = asyncio.get_running_loop().create_future()
        b.on("incoming", lambda call: (call.accept(), answered.set_result(call)))
        call = await a.connect({"To": "b"})
        incoming = await asyncio.wait_for(answered, 10)
        opened = asyncio.get_running_loop().create_future()
        call.once("accept", opened.set_result)
        await asyncio.wait_for(opened, 10)
        receiver = incoming._media.pc.getTransceivers()[0].receiver

        async def teardown():
            await a.destroy()
            await b.destroy()
            await exchange.close()
            exchange_media.bridge = bridge

        return receiver, teardown

    return setup


async def aiortc_pair(sent, sink):
    from aiortc import RTCConfiguration, RTCPeerConnection

    from piphone.voice.rtc import hooks as rtc_hooks

    config = RTCConfiguration(iceServers=[])
    a, b = RTCPeerConnection(config), RTCPeerConnection(config)
    a.addTrack(click_track(sent))
    b.addTransceiver("audio", direction="recvonly")
    consumers = []
    b.on("track", lambda track: consumers.append(asyncio.ensure_future(consume(sink, track))))
    with rtc_hooks.ice_addresses(LOOPBACK):
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)

    async def teardown():
        await a.close()
        await b.close()

    return b.getTransceivers()[0].receiver, teardown


def summary(values: list[float]) -> str:
    if not values:
        return "no clicks heard"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"median {statistics.median(values) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


async def main_async(seconds: float) -> None:
    paths = [("piphone via exchange (forwarding)", piphone_path(False)),
             ("piphone via transcoding bridge", piphone_path(True)),
             ("stock aiortc pair, direct", aiortc_pair)]
    results = {}
    for name, setup in paths:
        results[name] = await measure(setup, seconds)
    ref = statistics.median(results["stock aiortc pair, direct"][0] or [float("nan")])
    print(f"\nclick -> heard, app to app ({seconds:.0f} s each, a click every "
          f"{CLICK_EVERY * 1000:.0f} ms)")
    for name, (clean, after) in results.items():
        ratio = statistics.median(clean) / ref if clean else float("nan")
        print(f"  {name:36s} clean: {summary(clean)}   x{ratio:.2f} of stock pair")
        print(f"  {'':36s} after 1 lost packet: {summary(after)}")
    ours = results["piphone via exchange (forwarding)"]
    if ours[0]:
        goal = "met" if statistics.median(ours[0]) <= 0.040 else "NOT met"
        print(f"\n  goal <= 40 ms through the exchange: {goal}")
    if ours[0] and ours[1]:
        growth = statistics.median(ours[1]) - statistics.median(ours[0])
        print(f"  growth after one loss: {growth * 1000:+.1f} ms "
              f"({'none' if growth < 0.010 else 'GROWS'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per path and phase")
    args = parser.parse_args()
    ensure_isolated_network(sys.argv)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args.seconds))


if __name__ == "__main__":
    main()
