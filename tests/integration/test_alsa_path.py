"""The real pyalsaaudio path on the ALSA rig (tests/alsa_rig.py): capture, playback, a call."""

from __future__ import annotations

import asyncio
import contextlib
import fractions

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from piphone.audio import alsa
from piphone.audio.alsa import Capture, Playback
from piphone.audio.pcm_io import CaptureSource, PlaybackSink
from piphone.pcm import dominant_frequency, rms
from piphone.voice import Device
from piphone.voice.rtc.tracks import PcmTrack, play
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, Phone, until
from .helpers import place_and_answer

pytestmark = pytest.mark.net

RATE = 48_000


def frequency(samples: np.ndarray, rate: int = RATE) -> float | None:
    return dominant_frequency(samples, rate)


def capture_track(capture: Capture) -> PcmTrack:
    """The microphone as a call sends it: its PCM source behind voice/rtc's track adapter."""
    return PcmTrack(CaptureSource(capture))


async def recorded_seconds(headset, seconds: float, timeout: float = 5.0) -> np.ndarray:
    """Waits (polling the file's size, bounded) until the recording grew by ``seconds``."""
    start = len(headset.recorded())
    await until(lambda: len(headset.recorded()) - start >= seconds * RATE, timeout,
                what=f"{seconds} s recorded on {headset.play}")
    return headset.recorded()[start:]


class FramesTrack(MediaStreamTrack):
    """A paced tone in any layout and rate, as a decoder hands them to a sink."""

    kind = "audio"

    def __init__(self, frequency: float, rate: int, channels: int, count: int) -> None:
        super().__init__()
        self.frequency, self.rate, self.channels, self.left = frequency, rate, channels, count
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.left == 0:
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        n = self.rate // 50
        await asyncio.sleep(max(0.0, self._start + self._pts / self.rate - loop.time()))
        t = (self._pts + np.arange(n)) / self.rate
        mono = (8000 * np.sin(2 * np.pi * self.frequency * t)).astype(np.int16)
        data = np.repeat(mono, self.channels).reshape(1, -1)  # packed, interleaved
        frame = av.AudioFrame.from_ndarray(data, format="s16",
                                           layout="mono" if self.channels == 1 else "stereo")
        frame.sample_rate, frame.pts = self.rate, self._pts
        frame.time_base = fractions.Fraction(1, self.rate)
        self._pts += n
        self.left -= 1
        return frame


@contextlib.contextmanager
def closing(*streams):
    try:
        yield streams
    finally:
        for stream in streams:
            stream.close()
            assert stream._thread is None


async def test_capture_gives_the_tone_in_20ms_frames(alsa_rig):
    alsa_rig["a"].tone(1000)
    with closing(Capture("piphone_a_cap")) as (capture,):
        track = capture_track(capture)
        assert not capture.started  # lazy: nothing opened before the first recv
        frames = [await asyncio.wait_for(track.recv(), 1) for _ in range(30)]
        assert capture.started and capture.rate == RATE
        assert [f.pts for f in frames] == [960 * i for i in range(30)]
        assert all(f.samples == 960 and f.sample_rate == RATE and f.layout.name == "mono"
                   and f.time_base == fractions.Fraction(1, RATE) for f in frames)
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames[10:]])
        assert abs(frequency(samples) - 1000) < 5
        track.source.gain = 0.5
        loud = rms(samples)
        half = np.concatenate([(await track.recv()).to_ndarray().reshape(-1)
                               for _ in range(10)])
        assert 0.4 * loud < rms(half) < 0.6 * loud
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()


@pytest.mark.parametrize(("rate", "channels"), [(48000, 2), (8000, 1)])
async def test_playback_sink_lands_in_the_recorded_file(alsa_rig, rate, channels):
    headset = alsa_rig["b"]
    with closing(Playback("piphone_b_play")) as (playback,):
        sink = PlaybackSink(playback)
        consume = asyncio.ensure_future(play(FramesTrack(700, rate, channels, 75), sink))
        tail = await recorded_seconds(headset, 1.5)
        await asyncio.wait_for(consume, 5)
        assert sink.frames == 75
        heard = tail[np.abs(tail) > 0]
        assert len(heard) > 0.9 * RATE  # most of the 1.5 s of tone made it
        assert abs(frequency(heard[:RATE]) - 700) < 5


async def test_playback_resamples_for_a_device_that_is_not_48k(alsa_rig):
    headset = alsa_rig["c"]
    # 10 ms periods: 5 ms at 44.1 kHz are 440-byte writes, which the rig's one-page FIFO
    # cannot pass at full rate (a pipe page takes new data only at its tail, so it refills
    # once drained: 9 writes per 3 rig ticks). A real device has no such FIFO.
    with closing(Playback("piphone_c_play", rate=44100, period_ms=10)) as (playback,):
        sink = PlaybackSink(playback)
        consume = asyncio.ensure_future(play(FramesTrack(500, 48000, 1, 50), sink))
        await asyncio.wait_for(consume, 5)
        assert playback.rate == 44100
        data = await recorded_seconds(headset, 0.2)
        data = headset.recorded()
        heard = data[np.abs(data) > 0]
        assert abs(frequency(heard[:22050], 44100) - 500) < 5


async def test_underrun_plays_silence_without_a_click(alsa_rig):
    headset = alsa_rig["a"]
    with closing(Playback("piphone_a_play")) as (playback,):
        sink = PlaybackSink(playback)
        await asyncio.wait_for(play(FramesTrack(400, 48000, 1, 25), sink), 5)
        after = await recorded_seconds(headset, 0.6)  # the source has ended: underrun
        assert playback.underruns >= 1 and playback.started
        data = headset.recorded()
        loud = np.flatnonzero(np.abs(data) > 0)
        assert len(loud) > 0.3 * RATE and rms(after[-RATE // 5:]) == 0
        # Where the tone stops, the step to silence is no larger than the tone's own steps.
        edge = data[loud[-1] - 960:loud[-1] + 960].astype(np.int32)
        assert np.abs(np.diff(edge)).max() <= 8000 * 2 * np.pi * 400 / RATE * 1.5


async def test_read_failure_is_reported_and_capture_gives_silence(alsa_rig):
    alsa_rig["d"].tone(300)
    failures: list[Exception] = []
    recovered = asyncio.Event()
    capture = Capture("piphone_d_cap", on_failure=failures.append,
                      on_recovered=recovered.set)
    with closing(capture):
        track = capture_track(capture)
        for _ in range(10):
            frame = await asyncio.wait_for(track.recv(), 1)
        assert rms(frame.to_ndarray()) > 1000
        alsa_rig.unplug("d")
        await until(lambda: failures, 2, what="the failure report")
        assert "No such device" in str(failures[0]) and capture.failed is not None
        for _ in range(5):  # whatever was queued before the failure
            await asyncio.wait_for(track.recv(), 1)
        silent = [await asyncio.wait_for(track.recv(), 1) for _ in range(10)]
        assert all(rms(f.to_ndarray()) == 0 for f in silent)
        assert [f.pts for f in silent] == [silent[0].pts + 960 * i for i in range(10)]
        alsa_rig.replug("d")
        await asyncio.wait_for(recovered.wait(), 2)  # reopened within the 2 s
        for _ in range(10):
            frame = await asyncio.wait_for(track.recv(), 1)
        assert capture.failed is None and rms(frame.to_ndarray()) > 1000


async def test_missing_device_is_a_clear_error(alsa_rig):
    from piphone.audio.devices import AudioDeviceError

    capture = Capture("piphone_nosuch_cap")
    with closing(capture), pytest.raises(AudioDeviceError, match="piphone_nosuch_cap"):
        capture.start()
    # A call's track on a missing headset reports it and sends silence instead of failing.
    failures: list[Exception] = []
    with closing(Capture("piphone_nosuch_cap", on_failure=failures.append)) as (capture,):
        track = capture_track(capture)
        frames = [await asyncio.wait_for(track.recv(), 1) for _ in range(5)]
        assert all(rms(f.to_ndarray()) == 0 for f in frames)
        assert isinstance(capture.failed, AudioDeviceError)
        await until(lambda: failures, 1, what="the failure report")


async def alsa_phone(exchange, identity: str, capture: Capture, playback: Playback) -> Phone:
    token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
    device = Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK,
                    audio_source=lambda: CaptureSource(capture),
                    audio_sink=lambda: PlaybackSink(playback))
    await device.register()
    return Phone(device, 0, [])


async def test_call_through_the_exchange_from_headset_to_headset(exchange, alsa_rig):
    alsa_rig["a"].tone(600)
    alsa_rig["b"].silence()
    streams = (Capture("piphone_a_cap"), Playback("piphone_a_play"),
               Capture("piphone_b_cap"), Playback("piphone_b_play"))
    phones: list[Phone] = []
    with closing(*streams):
        try:
            phones.append(await alsa_phone(exchange, "alice", *streams[:2]))
            phones.append(await alsa_phone(exchange, "bob", *streams[2:]))
            outgoing, _, _, _ = await place_and_answer(*phones)
            bob_ear = alsa_rig["b"]

            async def hears_tone() -> None:
                def ok() -> bool:
                    f = frequency(bob_ear.recorded()[-RATE // 2:])
                    return f is not None and abs(f - 600) < 5
                await until(ok, 5, what="600 Hz in bob's earpiece")

            await hears_tone()
            tail = await recorded_seconds(bob_ear, 0.5)
            assert abs(frequency(tail) - 600) < 5
            outgoing.mute(True)
            await until(lambda: rms(bob_ear.recorded()[-RATE // 4:]) < 30, 5,
                        what="silence in bob's earpiece")
            outgoing.mute(False)
            await hears_tone()
            assert streams[0].failed is None and streams[3].failed is None
        finally:
            for phone in phones:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(phone.device.destroy(), 10)



class XrunPCM:
    """A real rig PCM whose every third read or write reports an xrun (-EPIPE), as
    pyalsaaudio does after re-preparing the stream."""

    def __init__(self, pcm) -> None:
        self._pcm, self.calls = pcm, 0

    def _xrun(self) -> bool:
        self.calls += 1
        return self.calls % 3 == 0

    def read(self):
        return (-32, b"") if self._xrun() else self._pcm.read()

    def write(self, data):
        return -32 if self._xrun() else self._pcm.write(data)

    def __getattr__(self, name):
        return getattr(self._pcm, name)


async def test_xruns_are_counted_and_not_fatal(alsa_rig, monkeypatch):
    from piphone.audio import alsa

    real_open = alsa.open_pcm
    monkeypatch.setattr(alsa, "open_pcm", lambda *args: XrunPCM(real_open(*args)))
    alsa_rig["a"].tone(800)
    with closing(Capture("piphone_a_cap"), Playback("piphone_a_play")) as (capture, playback):
        track = capture_track(capture)
        frames = [await asyncio.wait_for(track.recv(), 1) for _ in range(20)]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames[5:]])
        assert capture.xruns >= 5 and capture.failed is None
        assert abs(frequency(samples) - 800) < 5
        playback.start()
        await recorded_seconds(alsa_rig["a"], 0.2)
        assert playback.xruns >= 3 and playback.failed is None


async def test_playback_overrun_drops_the_oldest_audio(alsa_rig):
    playback = Playback("piphone_b_play", buffer_periods=3, period_ms=20)
    with closing(playback):  # not started: nothing drains the buffer
        for i in range(5):
            playback.write(np.full(960, i, np.int16))
        assert playback.buffered == 3 and playback.dropped == 2
        assert [int(b[0]) for b in playback._buffer] == [2, 3, 4]


async def test_piphone_call_uses_the_headset(exchange, alsa_rig):
    """`piphone call` with a headset: its microphone goes out, the echo lands in its earpiece."""
    from piphone.audio.devices import HeadsetSpec
    from piphone.cli.call import place_call
    from piphone.voice.tokens import mint

    alsa_rig["a"].tone(700)
    lines: list[str] = []
    token = mint(identity="desk", **exchange.config.token_kwargs())
    options = {"signaling_url": exchange.url, "ice_addresses": ("127.0.0.1",)}
    headset = HeadsetSpec.parse(f"{alsa_rig['a'].cap},{alsa_rig['a'].play}").devices()
    assert await place_call(token, {"To": "echo"}, options, 440.0, 2.0, read_digits=False,
                                out=lines.append, headset=headset) == 0, lines
    assert any("headset: capture piphone_a_cap" in line for line in lines)
    heard = alsa_rig["a"].recorded()
    assert frequency(heard[-24_000:]) == pytest.approx(700, abs=10)
    assert HeadsetSpec.parse("none").devices() is None


def band_level(samples: np.ndarray, frequency: float, rate: int = RATE) -> float:
    """Spectral magnitude near ``frequency`` (Hann window), for telling tones apart."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(freqs - frequency) < 8].max())


async def test_ring_cadence_on_the_speaker(alsa_rig):
    """The North American ring: 440+480 Hz, 2 s on, 4 s off, as recorded by the device."""
    from piphone.audio import tones

    playback = Playback(alsa_rig["b"].play)
    playback.start()
    try:
        playback.play_tone(tones.RING)
        await until(lambda: len(alsa_rig["b"].recorded()) >= 7 * RATE, timeout=12,
                    what="7 s of ringing recorded")
    finally:
        playback.close()
    audio = alsa_rig["b"].recorded()
    loud = np.abs(audio.astype(np.int32)) > 500
    start = int(np.argmax(loud))  # the ring's first sample (after any leading silence)
    on = audio[start:start + 2 * RATE]
    assert band_level(on, 440) > 20 * band_level(on, 1000)
    assert band_level(on, 480) > 20 * band_level(on, 1000)
    # 2 s on, then 4 s of silence, within a period (20 ms) of the cadence
    envelope = loud[start:start + 6 * RATE].reshape(-1, RATE // 50).any(axis=1)
    assert 99 <= envelope.sum() <= 101, envelope.sum()
    assert envelope[:99].all() and not envelope[102:].any()


async def test_dtmf_digit_has_both_frequencies(alsa_rig):
    from piphone.audio import tones

    playback = Playback(alsa_rig["c"].play)
    playback.start()
    try:
        playback.play_clip(tones.dtmf("5", duration_s=0.3, gap_s=0.0))
        await until(lambda: len(alsa_rig["c"].recorded()) >= RATE // 2, timeout=5,
                    what="the digit recorded")
    finally:
        playback.close()
    audio = alsa_rig["c"].recorded()
    loud = np.abs(audio.astype(np.int32)) > 500
    start = int(np.argmax(loud))
    digit = audio[start:start + int(0.25 * RATE)]
    row, col = band_level(digit, 770), band_level(digit, 1336)
    assert row > 20 * band_level(digit, 697) and col > 20 * band_level(digit, 1209)
    assert 0.5 < row / col < 2


class DepthPlayback(Playback):
    """Playback that notes, per device period, how many periods waited in its buffer as its
    own thread took the next one: the buffer's depth at the device's pace, which a sampling
    loop on a loaded machine cannot see reliably."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.depths: list[int] = []

    def _next_block(self) -> np.ndarray:
        self.depths.append(self.buffered)
        return super()._next_block()


async def test_a_burst_does_not_stay_in_the_playback_buffer(alsa_rig):
    """Audio arrives as fast as it plays: a burst queued once would be latency for the rest of
    the call. The buffer catches up to its cushion, gliding over each period it leaves out."""
    headset = alsa_rig["d"]
    with closing(DepthPlayback("piphone_d_play")) as (playback,):
        sink = PlaybackSink(playback)
        playback.start()
        await recorded_seconds(headset, 0.1)  # the device is full and at its steady pace
        burst = 60 // playback.period_ms  # 60 ms ahead of the steady stream that follows
        for _ in range(3):
            playback.write(np.zeros(960, np.int16))
        consume = asyncio.ensure_future(play(FramesTrack(400, 48000, 1, 150), sink))
        # Left out to catch up (or dropped, had it overflowed the buffer): at least 40 ms of
        # it, as the stream's first frame plays right behind the burst's first 20 ms.
        await until(lambda: playback.skipped + playback.dropped >= 40 // playback.period_ms, 5,
                    what="the burst left out")
        caught_up = len(playback.depths)
        await asyncio.wait_for(consume, 5)  # 3 s of tone, the last ~2 s after catch-up
        during = playback.depths[caught_up:]
        # Judge the steady state as the playback thread saw it: the buffer's low mark over
        # each catch-up window after catch-up (the depth just before a frame arrives) is no
        # more than the cushion it means to keep; a burst left in would stand 60 ms above.
        window = alsa.CATCH_UP_MS // playback.period_ms
        lows = [min(during[i:i + window]) for i in range(0, len(during) - window, window)]
        cushion_max = alsa.MAX_CUSHION_MS // playback.period_ms
        assert lows and max(lows) <= 1 + cushion_max < burst, lows
        assert lows[-1] <= playback.target_depth, (lows, playback.target_depth)
        # Only the burst went: beyond it, what catch-up left out is no more than the
        # silence underruns (late frames on a loaded machine) put in.
        left_out = playback.skipped + playback.dropped
        assert left_out <= burst + playback.depths.count(0), (left_out, playback.depths)
        data = headset.recorded()
        loud = np.flatnonzero(np.abs(data) > 0)
        tone = data[loud[0]:loud[-1]].astype(np.int32)
        # no click where periods were left out: no step larger than the tone's own
        assert np.abs(np.diff(tone)).max() <= 8000 * 2 * np.pi * 400 / RATE * 1.5


async def test_10ms_device_periods_still_make_20ms_frames(alsa_rig):
    """Shorter device periods (less audio waiting in the device); tracks still see 20 ms."""
    alsa_rig["c"].tone(1000)
    with closing(Capture("piphone_c_cap", period_ms=10),
                 Playback("piphone_c_play", period_ms=10)) as (capture, playback):
        track = capture_track(capture)
        frames = [await asyncio.wait_for(track.recv(), 1) for _ in range(20)]
        assert all(f.samples == 960 for f in frames) and capture.period == 480
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames[5:]])
        assert abs(frequency(samples) - 1000) < 5
        sink = PlaybackSink(playback)
        await asyncio.wait_for(play(FramesTrack(700, 48000, 1, 50), sink), 5)
        assert playback.period == 480
        heard = alsa_rig["c"].recorded()
        heard = heard[np.abs(heard) > 0]
        assert len(heard) > 0.8 * RATE and abs(frequency(heard[:RATE // 2]) - 700) < 5
    with pytest.raises(ValueError, match="7 ms"):
        Playback("piphone_c_play", period_ms=7)
