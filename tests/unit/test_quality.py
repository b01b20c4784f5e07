"""voice/quality.py and the level meter (pcm.py) with fake statistics: samples, MOS, the SDK's
warnings and rules, the one-way-audio and condition extensions, and settings per Device."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace

import numpy as np
import pytest

from piphone.errors import InvalidArgumentError
from piphone.pcm import LevelMeter, level, volume
from piphone.voice.quality import (
    Counters,
    QualityMonitor,
    QualitySettings,
    Sample,
    Threshold,
    mos,
)

SDK_SAMPLE_KEYS = {"audioInputLevel", "audioOutputLevel", "bytesReceived", "bytesSent",
                   "codecName", "jitter", "mos", "packetsLost", "packetsLostFraction",
                   "packetsReceived", "packetsSent", "rtt", "timestamp", "totals"}
SDK_TOTALS_KEYS = {"bytesReceived", "bytesSent", "packetsLost", "packetsLostFraction",
                   "packetsReceived", "packetsSent"}


def tone(amplitude: float, n: int = 960) -> np.ndarray:
    return np.rint(amplitude * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.int16)


class Harness:
    """A monitor on fake counters, meters and clock; ``second()`` is one second of a call."""

    def __init__(self, settings: QualitySettings | None = None) -> None:
        settings = replace(settings or QualitySettings(), sample_interval=1.0,
                           volume_interval=0.05)
        self.now = 0.0
        self.events: list[tuple] = []
        self.muted = False
        self.sent, self.heard = LevelMeter(), LevelMeter()
        self.totals = Counters(codec_name="opus", rtt=20.0, jitter=1.0, far_received=0)
        self.monitor = QualityMonitor(
            settings, read_counters=self._read, meters=lambda: (self.sent, self.heard),
            is_muted=lambda: self.muted, emit=lambda *a: self.events.append(a),
            clock=lambda: self.now, wall_clock=lambda: 1_700_000_000.0 + self.now)
        self.monitor._started = 0.0  # opened at t=0 (start() would also run its timers)
        self.input_amplitude = 8000.0
        self.output_amplitude = 8000.0

    async def _read(self) -> Counters:
        return self.totals

    def second(self, *, sent: int = 50, received: int = 50, lost: int = 0,
               rtt: float | None = 20.0, jitter: float = 1.0, payload: int = 100,
               far_advances: bool = True, input_wobble: bool = True) -> Sample:
        start = self.now
        for tick in range(20):
            wobble = 1 + 0.5 * (tick % 2) if input_wobble else 1
            self.sent.push(tone(self.input_amplitude * wobble))
            self.heard.push(tone(self.output_amplitude))
            self.monitor.volume_tick()
            self.now = start + (tick + 1) / 20
        self.now = start + 1.0
        t = self.totals
        self.totals = replace(
            t, packets_sent=t.packets_sent + sent, bytes_sent=t.bytes_sent + sent * payload,
            packets_received=t.packets_received + received,
            bytes_received=t.bytes_received + received * payload,
            packets_lost=t.packets_lost + lost, rtt=rtt, jitter=jitter,
            far_received=(t.far_received or 0) + sent if far_advances else t.far_received)
        return self.monitor.add_sample(self.totals)

    def warnings(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "warning"]

    def cleared(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "warning-cleared"]

    def data(self, name: str) -> dict:
        return next(e[2] for e in self.events if e[0] == "warning" and e[1] == name)


# --- MOS -------------------------------------------------------------------------------------
def test_mos_of_a_clean_path_is_about_4_4():
    assert mos(0, 0, 0) == pytest.approx(4.43, abs=0.01)
    assert mos(20, 1, 0) == pytest.approx(4.42, abs=0.01)


def test_mos_follows_the_formula_for_latency_and_loss():
    # L = 100 + 2*10 + 10 = 130 < 160: R = 94.768 - 130/40; loss 2 %: R -= 5
    r = 94.768 - 130 / 40 - 5
    assert mos(100, 10, 2) == pytest.approx(1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))
    # L = 450 + 10 >= 160: R = 94.768 - (460 - 120) / 10
    r = 94.768 - 34
    assert mos(450, 0, 0) == pytest.approx(1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))
    assert mos(0, 0, 5) < mos(0, 0, 1) < mos(0, 0, 0)
    assert mos(400, 0, 0) < mos(100, 0, 0)


def test_mos_floor_and_hopeless_loss_and_unknowns():
    assert mos(0, 0, 36) == pytest.approx(1 + 0.035 * 6.52 + 7e-6 * 6.52 * (6.52 - 60) * 93.48)
    assert mos(0, 0, 50) == pytest.approx(1.0)  # loss beyond R/2.5: R = 0
    assert mos(None, 0, 0) is None and mos(0, None, 0) is None and mos(0, 0, None) is None
    assert mos(-1, 0, 0) is None and mos(0, 0, math.nan) is None


# --- samples -----------------------------------------------------------------------------------
async def test_sample_fields_units_and_sdk_keys():
    h = Harness()
    first = h.second(sent=50, received=48, lost=2, payload=120)
    assert first.mos is None  # the SDK's first sample has none
    second = h.second(sent=50, received=45, lost=5, payload=120)
    d = second.to_dict()
    assert SDK_SAMPLE_KEYS <= set(d) and set(d["totals"]) == SDK_TOTALS_KEYS
    assert {"jitterBufferDepth", "framesConcealed", "framesLate"} <= set(d)
    assert (second.packets_sent, second.packets_received, second.packets_lost) == (50, 45, 5)
    assert second.bytes_sent == 6000 and second.bytes_received == 5400
    assert second.packets_lost_fraction == pytest.approx(10.0)  # 5 of 50 this second
    assert d["totals"]["packetsLostFraction"] == pytest.approx(100 * 7 / 100)
    assert d["totals"]["packetsSent"] == 100
    assert second.mos == pytest.approx(mos(20.0, 1.0, 10.0))
    assert second.codec_name == "opus" and second.timestamp == pytest.approx(1_700_000_002e3)
    # the input tone wobbles between 8000 and 12000 peak: its RMS lies in between / sqrt 2
    assert 8000 / math.sqrt(2) < second.audio_input_level < 12000 / math.sqrt(2)
    assert second.audio_output_level == pytest.approx(8000 / math.sqrt(2), rel=0.01)


async def test_rtt_is_none_until_known_then_the_last_known():
    h = Harness()
    assert h.second(rtt=None).rtt is None
    assert h.second(rtt=None).mos is None  # no rtt, no MOS
    assert h.second(rtt=30.0).rtt == 30.0
    assert h.second(rtt=None).rtt == 30.0


async def test_volume_maps_minus_100_to_minus_30_dbfs():
    h = Harness()
    h.sent.push(np.full(960, 1036, np.int16))  # -30 dBFS
    h.heard.push(np.full(960, 33, np.int16))  # about -60 dBFS
    inp, out = h.monitor.volume_tick()
    assert inp == pytest.approx(1.0, abs=0.01)
    assert out == pytest.approx(40 / 70, abs=0.01)
    assert h.monitor.volume_tick() == (0.0, 0.0)  # nothing pushed since: silence
    assert [e for e in h.events if e[0] == "volume"][0][1:] == (inp, out)


def test_level_meter_reads_the_latest_frame_without_overflow():
    ticks = []
    meter = LevelMeter(on_tick=lambda: ticks.append(1))
    meter.push(np.full(960, 1000, np.int16))
    meter.push(np.full(960, -32768, np.int16))
    rms = meter.read()
    assert rms == 32768.0 and len(ticks) == 2  # at 20 and 40 ms of audio
    assert level(rms) == 32767 and volume(rms) == 1.0
    assert meter.read() == 0.0 and volume(0.0) == 0.0 and level(0.4) == 0
    meter.push(tone(8000))
    assert meter.read() == pytest.approx(8000 / math.sqrt(2), rel=0.01)


# --- the SDK's warnings ------------------------------------------------------------------------
async def test_high_packet_loss_waits_for_warm_up_raises_and_clears_with_data():
    h = Harness()
    for _ in range(4):  # t = 1..4 s: lossy, but no warnings in the first 5 s
        h.second(received=47, lost=3)
    assert h.warnings() == []
    h.second(received=47, lost=3)  # t = 5 s
    assert "high-packet-loss" in h.warnings()
    data = h.data("high-packet-loss")
    assert data["name"] == "packetsLostFraction"
    assert data["threshold"] == {"name": "max", "value": 1}
    assert data["values"] == [pytest.approx(6.0)] * 5 and len(data["samples"]) == 5
    assert all(isinstance(s, Sample) for s in data["samples"])
    for _ in range(5):  # a clean window clears it (raised at 5 s, so not before 10 s)
        h.second()
    assert h.cleared().count("high-packet-loss") == 1
    assert h.monitor.raised.count("high-packet-loss") == 1


async def test_a_warning_stays_at_least_5_s():
    h = Harness(QualitySettings().with_thresholds(packetsLostFraction=Threshold(
        max=1, sample_count=1, raise_count=1)))
    for _ in range(6):
        h.second(received=48, lost=2)
    assert h.warnings() == ["high-packet-loss"]
    h.second()  # 1 s after raising: clean, but kept
    assert h.cleared() == []
    for _ in range(4):
        h.second()
    assert h.cleared() == ["high-packet-loss"]


async def test_high_packets_lost_fraction_averages_7_and_clears_at_1_percent():
    h = Harness()
    for _ in range(7):
        h.second(received=48, lost=2)  # 4 % every second (also high-packet-loss)
    assert "high-packets-lost-fraction" in h.warnings()
    assert h.data("high-packets-lost-fraction")["threshold"] == {"name": "maxAverage",
                                                                 "value": 3}
    for _ in range(3):  # average falls below 3 % but stays above 1 %: kept
        h.second(received=50, lost=0)
    assert "high-packets-lost-fraction" not in h.cleared()
    for _ in range(5):
        h.second(received=50, lost=0)
    assert "high-packets-lost-fraction" in h.cleared()


@pytest.mark.parametrize(("kwargs", "name", "stat"), [
    ({"rtt": 450.0}, "high-rtt", "rtt"),
    ({"jitter": 40.0}, "high-jitter", "jitter"),
    ({"rtt": 600.0, "jitter": 80.0}, "low-mos", "mos"),
])
async def test_rtt_jitter_mos_thresholds(kwargs, name, stat):
    h = Harness()
    for _ in range(7):
        h.second(**kwargs)
    assert name in h.warnings()
    assert h.data(name)["name"] == stat
    for _ in range(6):
        h.second()
    assert name in h.cleared()


async def test_low_bytes_received_after_3_empty_seconds_clears_on_a_good_one():
    h = Harness()
    for _ in range(5):
        h.second()
    h.second(received=0)
    h.second(received=0)
    assert "low-bytes-received" not in h.warnings()
    h.second(received=0)
    assert h.data("low-bytes-received")["threshold"] == {"name": "min", "value": 1}
    for _ in range(4):
        h.second(received=0)
    assert h.cleared() == []
    h.second()  # SDK: at most 2 of the last 3 low clears it
    assert h.cleared() == ["low-bytes-received"]


async def test_low_bytes_sent():
    h = Harness()
    for _ in range(8):
        h.second(sent=0)
    assert "low-bytes-sent" in h.warnings()


async def test_constant_input_level_raised_not_while_muted_and_cleared():
    h = Harness()
    h.muted = True
    for _ in range(12):
        h.second(input_wobble=False)
    assert "constant-audio-input-level" not in h.warnings()
    h.muted = False
    h.second(input_wobble=False)
    data = h.data("constant-audio-input-level")
    assert data["value"] < 327.67
    assert data["threshold"] == {"name": "minStandardDeviation", "value": 327.67}
    for _ in range(10):
        h.second(input_wobble=True)
    assert "constant-audio-input-level" in h.cleared()


async def test_no_warnings_on_a_good_call():
    h = Harness()
    for _ in range(20):
        h.second()
    assert h.warnings() == []
    assert h.monitor.mos_average == pytest.approx(mos(20, 1, 0))
    assert h.monitor.mos_minimum == pytest.approx(mos(20, 1, 0))


async def test_thresholds_are_overridable():
    h = Harness(QualitySettings().with_thresholds(rtt=Threshold(max=100)))
    for _ in range(6):
        h.second(rtt=150.0)
    assert h.data("high-rtt")["threshold"] == {"name": "max", "value": 100}
    with pytest.raises(InvalidArgumentError, match="no thresholds"):
        QualitySettings().with_thresholds(latency=Threshold(max=1))
    with pytest.raises(InvalidArgumentError):
        QualitySettings(sample_interval=0)


async def test_ice_connectivity_lost_follows_the_ice_state():
    h = Harness()
    h.monitor.media_state("disconnected")
    h.monitor.media_state("disconnected")
    h.monitor.media_state("connected")
    assert h.warnings() == ["ice-connectivity-lost"]
    assert h.cleared() == ["ice-connectivity-lost"]


# --- piphone's extensions ----------------------------------------------------------------------
async def test_one_way_audio_when_packets_arrive_as_digital_silence():
    h = Harness()
    h.output_amplitude = 0
    for _ in range(9):
        h.second()
    assert "one-way-audio" not in h.warnings()
    h.second()  # 10 s of silence
    data = h.data("one-way-audio")
    assert data["direction"] == "receive" and data["values"] == [0] * 10
    assert data["threshold"] == {"name": "maxDuration", "value": 10.0}
    h.output_amplitude = 3000
    for _ in range(5):
        h.second()
    assert h.cleared() == ["one-way-audio"]


async def test_one_way_audio_not_while_muted_nor_without_packets():
    h = Harness()
    h.output_amplitude = 0
    h.muted = True
    for _ in range(12):
        h.second()
    h.muted = False
    for _ in range(5):
        h.second(received=0)  # nothing arrives: that is low-bytes-received, not one-way
    assert "one-way-audio" not in h.warnings()
    assert "low-bytes-received" in h.warnings()


async def test_one_way_audio_when_the_far_end_receives_nothing_we_send():
    h = Harness()
    for _ in range(3):
        h.second()
    for _ in range(10):
        h.second(far_advances=False)
    assert h.data("one-way-audio")["direction"] == "send"
    for _ in range(5):
        h.second()
    assert "one-way-audio" in h.cleared()


async def test_conditions_raise_and_clear_at_once():
    h = Harness()
    h.monitor.set_condition("audio-device-lost", True)
    h.monitor.set_condition("audio-device-lost", True)
    assert h.warnings() == ["audio-device-lost"]
    h.monitor.set_condition("audio-device-lost", False)
    assert h.cleared() == ["audio-device-lost"]
    with pytest.raises(InvalidArgumentError, match="unknown condition"):
        h.monitor.set_condition("cat-on-keyboard", True)


# --- life cycle ----------------------------------------------------------------------------------
async def test_start_samples_on_a_timer_and_stop_ends_it():
    events: list[tuple] = []
    sampled = asyncio.Event()
    counters = Counters(packets_sent=10, codec_name="pcmu")

    def emit(*args):
        events.append(args)
        if sum(e[0] == "sample" for e in events) >= 2:
            sampled.set()

    async def read():
        return counters

    monitor = QualityMonitor(QualitySettings(sample_interval=0.1), read_counters=read,
                             meters=lambda: None, is_muted=lambda: False, emit=emit)
    monitor.start()
    await asyncio.wait_for(sampled.wait(), 5)
    monitor.stop()
    await asyncio.sleep(0)  # let the cancellation land
    count = len(events)
    assert events[0][0] == "sample" and events[0][1].codec_name == "pcmu"
    monitor.audio_clock()  # stopped: no volume either
    await asyncio.sleep(0.25)  # the timer is gone: nothing more comes
    assert len(events) == count


async def test_volume_ticks_every_50_ms_of_audio_sent():
    h = Harness()
    sent = LevelMeter(on_tick=h.monitor.audio_clock)
    h.sent = sent
    for _ in range(50):  # one second of 20 ms frames
        sent.push(tone(8000))
    volumes = [e for e in h.events if e[0] == "volume"]
    assert len(volumes) == 21  # at 0, 50, ... 1000 ms of audio: 20 a second, as the SDK
    assert all(v[1] == pytest.approx(1.0) for v in volumes)
    for _ in range(25):  # 10 ms frames count by their length
        sent.push(tone(8000, n=480))
    assert len([e for e in h.events if e[0] == "volume"]) == 26


async def test_a_failing_stats_read_is_logged_and_sampling_goes_on(caplog):
    calls = 0
    done = asyncio.Event()

    async def read():
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("stats went away")
        done.set()
        return Counters()

    monitor = QualityMonitor(QualitySettings(sample_interval=0.05, volume_events=False),
                             read_counters=read, meters=lambda: None,
                             is_muted=lambda: False, emit=lambda *a: None)
    monitor.start()
    await asyncio.wait_for(done.wait(), 5)
    monitor.stop()
    assert "quality sample_tick failed" in caplog.text
