#!/usr/bin/env python3
"""Mouth to ear, phone to phone: a click spoken into phone A's headset, heard in phone B's.

Both phones are real pyalsaaudio headsets on the ALSA test rig (tests/alsa_rig.py: ALSA's
``file`` plugin, FIFOs paced by a clock thread that plays the sound card) and talk through the
local exchange on 127.0.0.1. This script is the sound card: every 20 ms it hands A's capture
FIFO one period (a 2 ms click every CLICK_EVERY s) and takes one period out of B's playback
FIFO, noting the time of each. A click is "spoken" when the first sample of its period was (a
period is delivered when its last sample is in: 20 ms later), and "heard" when the card takes
the sample out of B's playback FIFO.

In between, the click is timed at each hand-over:
  A  capture: spoken -> the 20 ms frame holding it leaves CaptureSource (includes the frame's
     own 20 ms: a frame cannot go before its last sample is in)
  A  encode:  -> the encoded frame is handed to aiortc's RTP sender (RTP out)
  net: RTP out -> the packet reaches B's receiver (SRTP, exchange forwarding, loopback)
  B  jitter:  RTP in -> the decoded frame reaches PlaybackSink (jitter buffer, Opus decode)
  B  playback: frame handed to Playback -> its first sample taken by the card (playback buffer
     plus the device's, here the rig's playback FIFO of two periods)

Paths, measured in the same run: piphone's receive path (its jitter buffer) and the same call
with aiortc's stock jitter buffer (capacity 16, prefetch 4) on B's receiver.
Goals: mouth to ear <= 80 ms; the ALSA path's own share <= 20 ms per phone (capture beyond the
frame's 20 ms, plus the playback buffer).
Also: CPU of the ALSA threads (capture + playback) per phone per call-second.

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import fcntl
import logging
import os
import statistics
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT))  # tests.alsa_rig: the same rig the tests use

from _common import CLK_TCK, ensure_isolated_network  # noqa: E402

LOOPBACK = ("127.0.0.1",)
RATE = 48_000
PERIOD = 960
CLICK_EVERY = 0.5  # seconds between clicks
LOUD = 8000  # a sample above this is the click (the rest is silence)
_STOCK_JITTER = "_RTCRtpReceiver__jitter_buffer"


@dataclass
class Timeline:
    """Times (perf_counter) of each hand-over, in the order they happened."""

    spoken: list[float] = field(default_factory=list)
    frame_ready: list[float] = field(default_factory=list)
    rtp_out: list[float] = field(default_factory=list)
    rtp_in: list[float] = field(default_factory=list)
    to_playback: list[float] = field(default_factory=list)  # the frame's first sample
    heard: list[float] = field(default_factory=list)  # the click's offset in its frame (-s)
    to_device: list[float] = field(default_factory=list)  # the click's sample, written
    heard_click: list[float] = field(default_factory=list)  # the click's own first sample
    trouble: str = ""
    fifo_sampled: float = 0.0
    device_buffer: float = 0.0

    def clear(self) -> None:
        for values in vars(self).values():
            if isinstance(values, list):  # lists of times; the rest are figures
                values.clear()


def onset(samples: np.ndarray) -> int | None:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > LOUD)
    return int(loud[0]) if len(loud) else None


class Card(threading.Thread):
    """The sound card of rig headsets a (the mouth) and b (the ear). Every 20 ms it delivers
    one period into each capture FIFO (a's with the click every CLICK_EVERY s); every TICK it
    plays TICK of audio out of each playback FIFO, as a DAC takes samples out of its buffer.
    The device's own buffer (periods x period) is kept by ALSA's file plugin, which writes a
    sample out only once a buffer's worth follows it; the FIFO (one pipe page, up to 42.7 ms)
    is the rig's own addition, so its fill is sampled every tick and reported apart."""

    TICK = 240  # frames: 5 ms

    def __init__(self, rig, timeline: Timeline, *, wide: bool = False) -> None:
        super().__init__(name="bench-card", daemon=True)
        self.rig, self.t = rig, timeline
        self.frame_bytes = 8 if wide else 2  # s32 stereo, or s16 mono
        self.fifo_fill: list[int] = []  # bytes waiting in b's playback FIFO, each tick
        self.stop = threading.Event()
        self._quiet = True

    def run(self) -> None:
        a, b = self.rig["a"], self.rig["b"]
        every = int(CLICK_EVERY * RATE / PERIOD)
        ticks_per_period = PERIOD // self.TICK
        tick = 0
        deadline = time.perf_counter()
        while not self.stop.is_set():
            tick += 1
            if tick % ticks_per_period == 0:
                self._capture(a.fds[0], b.fds[0], tick // ticks_per_period % every == 0)
            self._play(a.fds[1], ear=False)
            self._play(b.fds[1], ear=True)
            deadline += self.TICK / RATE
            self.stop.wait(max(0.0, deadline - time.perf_counter()))

    def _capture(self, mouth: int, other: int, click: bool) -> None:
        period = np.zeros(PERIOD, np.int16)
        if click:
            period[:96] = 30000
        for fd, data in ((mouth, period.tobytes()), (other, bytes(2 * PERIOD))):
            try:
                os.write(fd, data)
            except BlockingIOError:
                continue  # that headset is not capturing (yet)
            if click and fd == mouth:  # its first sample was spoken a period before
                self.t.spoken.append(time.perf_counter() - PERIOD / RATE)

    def _play(self, fd: int, *, ear: bool) -> None:
        """TICK frames out of a playback FIFO: the DAC starts them now."""
        now = time.perf_counter()
        if ear:
            waiting = array.array("i", [0])
            fcntl.ioctl(fd, termios.FIONREAD, waiting)
            self.fifo_fill.append(waiting[0])
        try:
            data = os.read(fd, self.TICK * self.frame_bytes)
        except BlockingIOError:
            return
        if not ear:
            return
        if self.frame_bytes == 8:  # s32 stereo: the left channel's top 16 bits
            samples = (np.frombuffer(data[:len(data) // 8 * 8], "<i4")[::2] >> 16)
        else:
            samples = np.frombuffer(data[:len(data) // 2 * 2], np.int16)
        at = onset(samples)
        if at is not None and self._quiet:
            self.t.heard_click.append(now + at / RATE)
        self._quiet = at is None


def timed_source(capture, timeline: Timeline):
    """A's CaptureSource, noting when the frame with the click leaves it."""
    from piphone.audio.pcm_io import CaptureSource

    class Timed(CaptureSource):
        quiet = True

        async def read(self):
            samples = await super().read()
            loud = onset(samples) is not None
            if loud and self.quiet:
                timeline.frame_ready.append(time.perf_counter())
            self.quiet = not loud
            return samples

    return Timed(capture)


def timed_sink(playback, timeline: Timeline, arrivals: dict[int, float]):
    """B's PlaybackSink, noting when the frame with the click is handed to Playback and when
    the packet it was decoded from arrived (the frame's pts tells: a track sink sees it)."""
    from piphone.audio.pcm_io import PlaybackSink
    from piphone.voice.rtc.frames import frame_to_mono
    from piphone.voice.rtc.tracks import play

    class Tap:
        def __init__(self, track) -> None:
            self.track, self.quiet = track, True

        async def recv(self):
            frame = await self.track.recv()
            at = onset(frame_to_mono(frame))
            if at is not None and self.quiet:
                now = time.perf_counter()
                timeline.to_playback.append(now)
                timeline.rtp_in.append(arrivals.get(frame.pts, float("nan")))
                # the click is `at` samples into the frame: its first sample plays that early
                timeline.heard.append(-at / frame.sample_rate)  # completed by the card's time
            self.quiet = at is None
            return frame

    class Sink:
        def __init__(self) -> None:
            self.sink = PlaybackSink(playback)

        async def consume(self, track) -> None:
            await play(Tap(track), self.sink)

    return Sink()


def timed_playback(device: str, timeline: Timeline, **kwargs):
    """B's Playback, noting when the block with the click goes from its buffer to the
    device (the time its click sample would play if the device held nothing)."""
    from piphone.audio.alsa import Playback

    class Timed(Playback):
        quiet = True

        def _next_block(self):
            block = super()._next_block()
            at = onset(block)
            if at is not None and self.quiet:
                timeline.to_device.append(time.perf_counter() + at / (self.rate or RATE))
            self.quiet = at is None
            return block

    return Timed(device, **kwargs)


class StockBuffer:
    """aiortc's own audio jitter buffer (what RTCRtpReceiver makes: capacity 16, prefetch 4)
    in place of piphone's, which still counts the packets (the call's media watchdog reads
    its stats: unfed, it would take the call for cut off and reconnect it)."""

    def __init__(self, ours) -> None:
        from aiortc.jitterbuffer import JitterBuffer

        self.ours, self.stock = ours, JitterBuffer(capacity=16, prefetch=4)
        self.capacity = self.stock.capacity

    def add(self, packet):
        self.ours.add(packet)  # for its counters only; what it releases is not used
        return self.stock.add(packet)


def thread_cpu(native_ids: list[int]) -> float:
    total = 0.0
    for tid in native_ids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def alsa_threads() -> list[int]:
    return [t.native_id for t in threading.enumerate()
            if t.name.startswith(("alsa-capture", "alsa-playback")) and t.native_id]


async def measure(rig, stock: bool, seconds: float, playback_kw: dict,
                  wide: bool) -> tuple[Timeline, float, float]:
    """One call A -> B through the exchange: the timeline of every click, the ALSA threads'
    CPU seconds per phone per call-second, and the seconds of audio in the rig's FIFO."""
    from piphone.audio.alsa import Capture, Playback
    from piphone.audio.pcm_io import CaptureSource, PlaybackSink
    from piphone.exchange import config as exchange_config
    from piphone.exchange.server import Exchange
    from piphone.voice import Device
    from piphone.voice.tokens import mint

    timeline = Timeline()
    card = Card(rig, timeline, wide=wide)
    card.start()
    play = "bench_{}_play" if wide else "piphone_{}_play"
    streams = [Capture(rig["a"].cap), Playback(play.format("a"), **playback_kw),
               Capture(rig["b"].cap),
               timed_playback(play.format("b"), timeline, **playback_kw)]
    tmp = tempfile.mkdtemp()
    cfg = exchange_config.load(exchange_config.write_starter(Path(tmp) / "x.toml"))
    exchange = Exchange(replace(cfg, port=0, ice_addresses=LOOPBACK))
    await exchange.start(host="127.0.0.1", port=0)
    arrivals: dict[int, float] = {}

    def device(identity, **kw):
        token = mint(identity=identity, **cfg.token_kwargs())
        return Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK, **kw)

    a = device("a", audio_source=lambda: timed_source(streams[0], timeline),
               audio_sink=lambda: PlaybackSink(streams[1]))
    b = device("b", audio_source=lambda: CaptureSource(streams[2]),
               audio_sink=lambda: timed_sink(streams[3], timeline, arrivals))
    try:
        await b.register()
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        b.on("incoming", lambda call: (call.accept(), answered.set_result(call)))
        call = await a.connect({"To": "b"})
        incoming = await asyncio.wait_for(answered, 10)
        opened = loop.create_future()
        call.once("accept", opened.set_result)
        await asyncio.wait_for(opened, 10)
        receiver = incoming._media.pc.getTransceivers()[0].receiver
        sender = call._media.pc.getTransceivers()[0].sender
        if stock:
            setattr(receiver, _STOCK_JITTER, StockBuffer(incoming._media.jitter_buffer))
        handle = receiver._handle_rtp_packet

        mapper = receiver._RTCRtpReceiver__timestamp_mapper  # decoded pts = RTP ts - origin

        async def arrived(packet, arrival_time_ms):
            if mapper._origin is not None:
                arrivals[(packet.timestamp - mapper._origin) & 0xFFFFFFFF] = time.perf_counter()
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = arrived
        track = sender.track  # encoding.EncodingTrack: its packet is sent as it returns
        encoded = track.recv

        async def sent():
            packet = await encoded()
            if len(timeline.rtp_out) < len(timeline.frame_ready):
                timeline.rtp_out.append(time.perf_counter())  # the frame after the click's
            return packet

        track.recv = sent
        await asyncio.sleep(1.0)  # settle: buffers fill, the first click may straddle setup
        timeline.clear()
        card.fifo_fill.clear()
        threads = alsa_threads()
        cpu0, t0 = thread_cpu(threads), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = (thread_cpu(threads) - cpu0) / (time.perf_counter() - t0) / 2  # two phones
        if str(call.status()) != "open":
            raise RuntimeError("the call dropped during the measurement")
        if incoming._media.pc.getTransceivers()[0].receiver is not receiver:
            raise RuntimeError("the call's media was renegotiated during the measurement: "
                               "the figures would mix two receivers")
    finally:
        await a.destroy()
        await b.destroy()
        await exchange.close()
        for stream in streams:  # while the card runs: a stream blocked on its FIFO returns
            await asyncio.to_thread(stream.close)
        card.stop.set()
        card.join(2)
    ear = streams[3]
    device_buffer = ear.periods * ear.period_ms / 1000  # what a real device would hold
    found = clicks(timeline)
    # What the card held beyond the device's own buffer is the rig's FIFO (a real device has
    # none); FIONREAD's samples of it are only a cross-check.
    fifo = (statistics.median(c.device for c in found) - device_buffer) if found else 0.0
    timeline.fifo_sampled = statistics.median(card.fifo_fill or [0]) / card.frame_bytes / RATE
    timeline.device_buffer = device_buffer
    timeline.trouble = (f"B's playback: {ear.xruns} xruns, {ear.underruns} underruns, "
                        f"{ear.skipped} periods left out to catch up, {ear.dropped} dropped; "
                        f"cushion at the end {ear.cushion * ear.period_ms} ms")
    return timeline, cpu, fifo


@dataclass
class Click:
    total: float  # spoken -> heard (the click's own first sample)
    capture: float  # spoken -> frame out of CaptureSource
    encode: float  # -> handed to aiortc's RTP sender
    net: float  # -> its packet at B's receiver
    jitter: float  # -> decoded frame handed to Playback
    buffer: float  # -> its block written to the device
    device: float  # -> played by the card

    @property
    def playback(self) -> float:
        return self.buffer + self.device

    def alsa(self, fifo: float) -> float:
        """The ALSA path's own share: capture beyond the frame's own 20 ms, plus playback
        less the rig's FIFO (``fifo`` s), which a real device does not have."""
        return self.capture - PERIOD / RATE + self.playback - fifo


def _first_after(values: list[float], after: float) -> float | None:
    return next((x for x in values if x >= after), None)


def clicks(t: Timeline) -> list[Click]:
    """Follow each spoken click through the hand-overs (each the first after the last)."""
    out: list[Click] = []
    for spoken in t.spoken:
        ready = _first_after(t.frame_ready, spoken)
        sent = ready and _first_after(t.rtp_out, ready)
        handed = sent and _first_after(t.to_playback, sent)
        if not handed:
            continue
        i = t.to_playback.index(handed)
        offset = -t.heard[i]  # the click is this far into its frame
        written = _first_after(t.to_device, handed)
        heard = written and _first_after(t.heard_click, written - 0.001)
        if not heard or heard - spoken > CLICK_EVERY:
            continue
        out.append(Click(heard - spoken, ready - spoken, sent - ready, t.rtp_in[i] - sent,
                         handed - t.rtp_in[i], written - offset - handed,
                         heard - written))
    return out


def ms(values: list[float]) -> str:
    values = [v for v in values if v == v]  # no NaN (a packet whose arrival was not seen)
    if not values:
        return "   n/a"
    return f"{statistics.median(values) * 1000:5.1f}"


def report(name: str, found: list[Click], cpu: float, fifo: float, t: Timeline) -> float:
    """Prints one path's figures; returns its median mouth -> ear less the rig's FIFO."""
    if not found:
        print(f"  {name}: no click went through")
        return float("nan")
    total = [c.total for c in found]
    p95 = sorted(total)[min(len(total) - 1, int(0.95 * len(total)))]
    print(f"  {name}  ({len(found)} clicks; medians)")
    print(f"    mouth -> ear             {ms(total)} ms   (p95 {p95 * 1000:5.1f} ms);"
          f" less the rig's FIFO: {ms([t - fifo for t in total])} ms")
    print(f"    A capture -> RTP out     {ms([c.capture + c.encode for c in found])} ms"
          f"   capture {ms([c.capture for c in found])} (20.0 of it the frame itself),"
          f" encode {ms([c.encode for c in found])}")
    print(f"    network + exchange       {ms([c.net for c in found])} ms")
    print(f"    B RTP in -> ear          {ms([c.jitter + c.playback for c in found])} ms"
          f"   jitter buffer + decode {ms([c.jitter for c in found])},"
          f" Playback buffer {ms([c.buffer for c in found])},"
          f" device {ms([c.device for c in found])}\n"
          f"{'':30s}(the device's buffer {t.device_buffer * 1000:.1f} + the rig's FIFO"
          f" {fifo * 1000:.1f}; FIFO fill sampled {t.fifo_sampled * 1000:.1f})")
    print(f"    ALSA path's own share    {ms([c.alsa(fifo) for c in found])} ms per phone"
          f"   (capture beyond the frame + Playback buffer + device)")
    print(f"    ALSA threads' CPU        {cpu * 1000:5.1f} ms per call-second per phone"
          f" ({cpu * 100:.2f} % of a core)")
    print(f"    {t.trouble}")
    return statistics.median(total) - fifo


# The rig's playback FIFOs behind a conversion to s32 stereo: four times the bytes per sample.
WIDE_PCM = ('pcm.bench_{name}_play {{ type plug slave {{ pcm {{ type file slave.pcm "null" '
            'file "{fifo}" format "raw" }} format S32_LE channels 2 }} }}\n')


async def main_async(seconds: float, playback_kw: dict, wide: bool) -> None:
    from tests.alsa_rig import AlsaRig

    rig = AlsaRig(Path(tempfile.mkdtemp()) / "alsa")
    wide_rc = rig.directory / "wide.asoundrc"
    wide_rc.write_text("".join(WIDE_PCM.format(name=n, fifo=rig[n].play_fifo) for n in "ab"))
    config = rig.directory / "bench.conf"
    config.write_text(rig.config.read_text() + f"<{wide_rc}>\n")
    os.environ["ALSA_CONFIG_PATH"] = str(config)  # read by alsa-lib at its first open
    results = {}
    try:
        for name, stock in (("piphone", False), ("aiortc stock jitter buffer", True)):
            timeline, cpu, fifo = await measure(rig, stock, seconds, playback_kw, wide)
            results[name] = (clicks(timeline), cpu, fifo, timeline)
    finally:
        for headset in rig.headsets.values():
            headset.close()
    from piphone.audio import alsa

    shipped = (f"as shipped: {alsa.PLAYBACK_PERIODS} device periods of "
               f"{alsa.PLAYBACK_PERIOD_MS} ms, its own buffer up to {alsa.BUFFER_MS} ms with an "
               f"adaptive cushion of {alsa.CUSHION_MS}-{alsa.MAX_CUSHION_MS} ms")
    if alsa.CUSHION_MS:
        playback_kw = {**playback_kw, "cushion_ms": alsa.CUSHION_MS}
    print(f"\nmouth -> ear: headset A -> exchange -> headset B on the ALSA rig, {seconds:.0f} s"
          f" per path, a click every {CLICK_EVERY * 1000:.0f} ms; Playback "
          f"{playback_kw or shipped}; the card's FIFO page is "
          f"{4096 / (8 if wide else 2) / RATE * 1000:.1f} ms ({'--wide' if wide else 's16'})")
    medians = {name: report(name, *result) for name, result in results.items()}
    ours, stock = medians["piphone"], medians["aiortc stock jitter buffer"]
    print(f"\n  mouth -> ear (less the rig's FIFO), piphone / aiortc's stock buffering: "
          f"x{ours / stock:.2f}")
    found, _, fifo, _ = results["piphone"]
    if found:
        alsa = statistics.median(c.alsa(fifo) for c in found)
        print(f"  goal mouth -> ear <= 80 ms: {'met' if ours <= 0.080 else 'NOT met'}")
        print(f"  goal ALSA share <= 20 ms per phone: {'met' if alsa <= 0.020 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per path")
    parser.add_argument("--period-ms", type=int, help="Playback's device period (5, 10, 20)")
    parser.add_argument("--playback-periods", type=int, help="device periods of playback")
    parser.add_argument("--playback-buffer", type=int, help="Playback's own buffer, periods")
    parser.add_argument("--wide", action="store_true",
                        help="the playback FIFOs carry s32 stereo: a pipe page is 10.7 ms "
                             "instead of 42.7 ms, closer to a real device's granularity")
    parser.add_argument("--cushion-ms", type=int, help="Playback's least cushion")
    parser.add_argument("--max-cushion-ms", type=int, help="Playback's cushion at most")
    args = parser.parse_args()
    if args.wide and (args.period_ms or 10) > 10:
        parser.error("--wide needs periods of 10 ms or less: a 20 ms period of s32 stereo is "
                     "larger than the FIFO's one page, which then takes it in pieces")
    ensure_isolated_network(sys.argv)
    logging.basicConfig(level=logging.ERROR)
    playback_kw = {}
    if args.cushion_ms is not None:
        from piphone.audio import alsa

        alsa.CUSHION_MS = args.cushion_ms  # read by each Playback as it is made
    if args.max_cushion_ms is not None:
        from piphone.audio import alsa

        alsa.MAX_CUSHION_MS = args.max_cushion_ms
    if args.period_ms:
        playback_kw["period_ms"] = args.period_ms
    if args.playback_periods:
        playback_kw["periods"] = args.playback_periods
    if args.playback_buffer:
        playback_kw["buffer_periods"] = args.playback_buffer
    asyncio.run(main_async(args.seconds, playback_kw, args.wide))


if __name__ == "__main__":
    main()
