"""The preflight report's maths, as the SDK's preflight.ts computes it: the call quality
rating, the stats of the samples, the timings, the options."""

from __future__ import annotations

import pytest

from piphone.errors import InvalidArgumentError
from piphone.voice.preflight import (
    CallQuality,
    PreflightOptions,
    PreflightWarning,
    build_report,
    call_quality,
    rtc_stats,
)
from piphone.voice.rtc import NetworkReport
from piphone.voice.rtc.network import NetworkWatch
from piphone.voice.samples import Sample, Totals


def sample(mos: float | None, jitter: float | None = 1.0, rtt: float | None = 20.0,
           received: int = 50) -> Sample:
    return Sample(audio_input_level=0, audio_output_level=0, bytes_received=0, bytes_sent=0,
                  codec_name="pcmu", jitter=jitter, mos=mos, packets_lost=0,
                  packets_lost_fraction=0.0, packets_received=received, packets_sent=50,
                  rtt=rtt, timestamp=0.0, totals=Totals(packets_received=received))


@pytest.mark.parametrize(("mos", "quality"), [
    (4.5, CallQuality.EXCELLENT), (4.2001, CallQuality.EXCELLENT),
    (4.2, CallQuality.GREAT), (4.1, CallQuality.GREAT),
    (4.0, CallQuality.GOOD), (3.7, CallQuality.GOOD),
    (3.6, CallQuality.FAIR), (3.1, CallQuality.FAIR),
    (3.0, CallQuality.DEGRADED), (1.0, CallQuality.DEGRADED),
    # The SDK's ranges leave gaps, which its code rates degraded: kept as the SDK does.
    (4.05, CallQuality.DEGRADED), (3.65, CallQuality.DEGRADED),
])
def test_call_quality_uses_the_sdk_thresholds(mos, quality):
    assert call_quality(mos) is quality


def test_stats_start_at_the_first_sample_with_a_mos_and_round_as_the_sdk():
    samples = [sample(None, jitter=99, rtt=None), sample(4.4, jitter=1, rtt=10),
               sample(4.3, jitter=2, rtt=20), sample(4.0, jitter=4, rtt=31)]
    stats = rtc_stats(samples)
    assert stats == {
        "jitter": {"average": 2.3333, "max": 4, "min": 1},  # toPrecision(5)
        "mos": {"average": 4.2333, "max": 4.4, "min": 4.0},
        "rtt": {"average": 20.333, "max": 31, "min": 10},
    }


def test_no_stats_and_no_quality_without_a_mos():
    samples = [sample(None), sample(None)]
    assert rtc_stats(samples) is None and rtc_stats([]) is None
    report = build_report(call_sid=None, edge=None, selected_edge="roaming", start=1000,
                          end=3000, network=None, signaling_start=None, samples=samples,
                          warnings=())
    assert report.stats is None and report.call_quality is None
    data = report.to_dict()
    assert "stats" not in data and "callQuality" not in data and "isTurnRequired" not in data
    assert data["testTiming"] == {"start": 1000, "end": 3000, "duration": 2000}
    assert data["totals"]["packetsReceived"] == 50


def test_unknown_values_after_the_first_mos_are_left_out():
    stats = rtc_stats([sample(4.4, rtt=10), sample(4.4, rtt=None)])
    assert stats is not None and stats["rtt"] == {"average": 10, "max": 10, "min": 10}


def test_report_timings_turn_and_json():
    network = NetworkReport(
        timing={"ice": {"start": 1100, "end": 1110, "duration": 10},
                "signaling": {"start": 1050, "end": 1200, "duration": 150}},
        ice_candidate_stats=({"type": "local-candidate", "candidateType": "relay"},),
        selected_pair={"localCandidate": {"candidateType": "relay"},
                       "remoteCandidate": {"candidateType": "host"}})
    warning = PreflightWarning("high-rtt", "Received an RTCWarning",
                               {"name": "rtt", "samples": [sample(4.0)]})
    report = build_report(call_sid="CA1", edge="ashburn", selected_edge="roaming", start=1000,
                          end=None, network=network, signaling_start=1020,
                          samples=[sample(None), sample(3.5)], warnings=[warning])
    # Signaling is measured from connect(), as the SDK's, to the answer applied.
    assert report.network_timing["signaling"] == {"start": 1020, "end": 1200, "duration": 180}
    assert report.network_timing["ice"]["duration"] == 10
    assert report.is_turn_required is True and report.call_quality is CallQuality.FAIR
    data = report.to_dict()
    assert data["testTiming"] == {"start": 1000}
    assert data["isTurnRequired"] is True and data["edge"] == "ashburn"
    assert data["warnings"][0]["rtcWarning"]["samples"][0]["mos"] == 4.0
    no_turn = build_report(
        call_sid="CA1", edge=None, selected_edge=None, start=0, end=1, signaling_start=None,
        network=NetworkReport(selected_pair={"localCandidate": {"candidateType": "srflx"},
                                             "remoteCandidate": {"candidateType": "host"}}),
        samples=[], warnings=[])
    assert no_turn.is_turn_required is False and no_turn.totals is None


def test_network_watch_measures_as_the_sdk_shim():
    class Emits:
        def on(self, *_):
            pass

    clock = iter(range(100, 1000, 10))
    watch = NetworkWatch(Emits(), Emits(), clock=lambda: next(clock))
    watch.state("ice", "new")
    watch.state("ice", "checking")  # 100
    watch.state("ice", "completed")  # 110: aiortc's "connected"
    watch.state("ice", "completed")  # a second end changes nothing
    watch.state("dtls", "connected")  # no start seen: nothing measured
    watch.state("signaling", "have-local-offer")  # 120
    watch.state("signaling", "stable")  # 130
    assert watch.timing == {"ice": {"start": 100, "end": 110, "duration": 10},
                            "signaling": {"start": 120, "end": 130, "duration": 10}}


def test_options_by_mapping_and_their_errors():
    options = PreflightOptions.of({"edge": "ashburn", "fake_mic_input": True})
    assert options.edge == "ashburn" and options.codec_preferences == ("pcmu", "opus")
    assert options.duration == 20.0 and options.signaling_timeout_ms == 10_000
    with pytest.raises(InvalidArgumentError, match="fakeMicInput"):
        PreflightOptions.of({"fakeMicInput": True})
    with pytest.raises(InvalidArgumentError):
        PreflightOptions(duration=0)
    rtc = PreflightOptions(ice_servers=("stun:a",), rtc_configuration={"iceServers": ["b"]})
    assert rtc.ice() == ("b",)  # rtcConfiguration's servers win, as in the SDK's Device
    assert PreflightOptions(ice_servers=("stun:a",)).ice() == ("stun:a",)
