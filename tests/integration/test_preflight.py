"""Device.run_preflight through the real exchange: a test call to its echo line, the SDK's
events and report; the failures (unreachable exchange, refused token) with the SDK's codes."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from piphone.voice import Device
from piphone.voice.preflight import CallQuality, PreflightStatus
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK
from .helpers import Events

pytestmark = pytest.mark.net

PREFLIGHT_EVENTS = ("connected", "sample", "warning", "completed", "failed")


def token_for(exchange, identity: str = "preflight", **changes) -> str:
    kwargs = {**exchange.config.token_kwargs(), **changes}
    return mint(identity=identity, ttl=600, **kwargs)


async def test_preflight_to_the_echo_line_reports_as_the_sdk(exchange):
    test = Device.run_preflight(token_for(exchange), {
        "signaling_url": exchange.url, "ice_addresses": LOOPBACK, "params": {"To": "echo"},
        "fake_mic_input": True, "duration": 4.0})
    events = Events(test, PREFLIGHT_EVENTS)
    assert test.status is PreflightStatus.CONNECTING
    await events.wait("connected", timeout=10)
    assert test.status is PreflightStatus.CONNECTED
    assert test.call_sid is not None and test.call_sid.startswith("CA")
    (report,) = await events.wait("completed", timeout=15)
    assert test.status is PreflightStatus.COMPLETED and test.report is report
    names = events.names()
    assert names[0] == "connected" and names[-1] == "completed" and "failed" not in names
    samples = events.all("sample")
    assert len(samples) >= 3 and list(report.samples) == [s for (s,) in samples]
    assert test.latest_sample is report.samples[-1]
    # The report: call quality from the average MOS (loopback: excellent), stats of the
    # samples from the first with a MOS, the timings of every step, the candidates.
    assert report.call_sid == test.call_sid
    assert report.stats is not None and set(report.stats) == {"jitter", "mos", "rtt"}
    mos = report.stats["mos"]
    assert 4.2 < mos["min"] <= mos["max"] < 4.5
    # the average is rounded to 5 significant digits (the SDK's toPrecision(5)), min/max not
    assert mos["min"] - 1e-4 <= mos["average"] <= mos["max"] + 1e-4
    assert report.call_quality is CallQuality.EXCELLENT
    assert report.stats["rtt"]["max"] < 100
    for measure in ("signaling", "ice", "dtls", "peerConnection"):
        timing = report.network_timing[measure]
        assert timing["start"] <= timing["end"] and timing["duration"] == (
            timing["end"] - timing["start"]), measure
        assert test.start_time <= timing["start"] and timing["end"] <= test.end_time
    assert report.network_timing["signaling"]["start"] <= report.network_timing["ice"]["start"]
    kinds = {(c["type"], c["address"], c["candidateType"]) for c in report.ice_candidate_stats}
    assert ("local-candidate", "127.0.0.1", "host") in kinds
    assert ("remote-candidate", "127.0.0.1", "host") in kinds
    pair = report.selected_ice_candidate_pair_stats
    assert pair is not None and pair["localCandidate"]["address"] == "127.0.0.1"
    assert pair["remoteCandidate"]["port"] == next(
        c["port"] for c in report.ice_candidate_stats if c["type"] == "remote-candidate")
    assert report.is_turn_required is False
    assert report.totals is not None and report.totals.packets_received > 100
    assert report.selected_edge is None and report.edge is not None  # the exchange's name
    assert report.test_timing["duration"] == test.end_time - test.start_time >= 4000
    # The SDK's JSON: camelCase keys, every field serialisable.
    data = json.loads(json.dumps(report.to_dict()))
    assert data["callQuality"] == "excellent" and data["callSid"] == test.call_sid
    assert set(data["networkTiming"]) == {"signaling", "ice", "dtls", "peerConnection"}
    assert data["totals"]["packetsReceived"] == report.totals.packets_received
    assert data["samples"][0]["codecName"] == "pcmu"  # the SDK's preference: pcmu first
    assert data["isTurnRequired"] is False


async def test_preflight_stop_fails_with_call_cancelled(exchange):
    test = Device.run_preflight(token_for(exchange), {
        "signaling_url": exchange.url, "ice_addresses": LOOPBACK, "params": {"To": "echo"}})
    events = Events(test, PREFLIGHT_EVENTS)
    await events.wait("connected", timeout=10)
    test.stop()
    (error,) = await events.wait("failed")
    assert error.code == 31008 and test.status is PreflightStatus.FAILED
    with pytest.raises(Exception) as raised:
        await asyncio.wait_for(test.wait(), 10)
    assert getattr(raised.value, "code", None) == 31008
    assert test.report is None and "completed" not in events.names()


async def test_preflight_with_a_refused_token_fails_with_20101(exchange):
    bad = token_for(exchange, api_key_secret="not the exchange's secret, 32 bytes or more")
    test = Device.run_preflight(bad, {"signaling_url": exchange.url,
                                      "ice_addresses": LOOPBACK, "params": {"To": "echo"}})
    events = Events(test, PREFLIGHT_EVENTS)
    (error,) = await events.wait("failed", timeout=10)
    assert error.code == 20101
    assert events.names() == ["failed"] and test.status is PreflightStatus.FAILED


async def test_preflight_to_an_unreachable_exchange_fails_with_53000():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = mint(identity="preflight", ttl=600, account_sid="AC" + "0" * 32,
                 api_key_sid="SK" + "0" * 32, api_key_secret="s" * 40)
    test = Device.run_preflight(token, {"signaling_url": f"ws://127.0.0.1:{port}/signal",
                                        "signaling_timeout_ms": 1500})
    events = Events(test, PREFLIGHT_EVENTS)
    (error,) = await events.wait("failed", timeout=10)
    assert error.code == 53000 and events.names() == ["failed"]


async def test_preflight_without_a_route_fails_with_the_exchange_code(exchange):
    """The SDK's own test call names no party: the local exchange has no TwiML App to answer
    it, and says so (31404) instead of leaving the test waiting."""
    test = Device.run_preflight(token_for(exchange), {"signaling_url": exchange.url,
                                                      "ice_addresses": LOOPBACK})
    events = Events(test, PREFLIGHT_EVENTS)
    (error,) = await events.wait("failed", timeout=10)
    assert error.code == 31404 and "connected" not in events.names()
